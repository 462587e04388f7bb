"""f-GAN and relativistic losses: the f-GAN value at the optimal D equals the
f-divergence (by quadrature), the conjugates are the convex conjugates (by
numerical maximisation), and every formula matches a float64 numpy reference."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from gan_jax import losses
from gan_jax.data import toy


def _quantile_points(density, lo, hi, n):
  """x_i = F^{-1}((i + 1/2) / n): a deterministic n-point rule for E h(x)."""
  grid = np.linspace(lo, hi, 400_001)
  cdf = np.cumsum(density(grid))
  cdf /= cdf[-1]
  return np.interp((np.arange(n) + 0.5) / n, cdf, grid)


# Independent float64 definitions, written from Nowozin et al. 2016, Tables 1
# and 6: the generator f, its derivative f' (so T* = f'(p/q)), the output
# activation g_f, its inverse, and the conjugate f*.
F = {
    'kl': dict(
        f=lambda u: u * np.log(u),
        df=lambda u: 1.0 + np.log(u),
        act=lambda v: v,
        act_inv=lambda t: t,
        conj=lambda t: np.exp(t - 1.0)),
    'reverse_kl': dict(
        f=lambda u: -np.log(u),
        df=lambda u: -1.0 / u,
        act=lambda v: -np.exp(-v),
        act_inv=lambda t: -np.log(-t),
        conj=lambda t: -1.0 - np.log(-t)),
    'js': dict(
        f=lambda u: u * np.log(u) - (u + 1.0) * np.log((u + 1.0) / 2.0),
        df=lambda u: np.log(2.0 * u / (u + 1.0)),
        act=lambda v: np.log(2.0) - np.log1p(np.exp(-v)),
        act_inv=lambda t: -np.log(2.0 * np.exp(-t) - 1.0),
        conj=lambda t: -np.log(2.0 - np.exp(t))),
    'pearson': dict(
        f=lambda u: (u - 1.0) ** 2,
        df=lambda u: 2.0 * (u - 1.0),
        act=lambda v: v,
        act_inv=lambda t: t,
        conj=lambda t: 0.25 * t**2 + t),
    'hellinger': dict(
        f=lambda u: (np.sqrt(u) - 1.0) ** 2,
        df=lambda u: 1.0 - 1.0 / np.sqrt(u),
        act=lambda v: 1.0 - np.exp(-v),
        act_inv=lambda t: -np.log(1.0 - t),
        conj=lambda t: t / (1.0 - t)),
}

# (P, Q) pairs with equal tail widths, so that p/q grows at most
# exponentially and every divergence (Pearson chi^2 included) is finite, and
# the n-point quantile rules of P and Q both see where the integrands live.
PAIRS = {
    'gaussians': (toy.normal1d_density(0.0, 1.0),
                  toy.normal1d_density(0.7, 1.0)),
    'mixtures': (toy.mix1d().density,
                 toy.GaussianMixture('q', np.array([[-1.8], [2.1]]), 0.5,
                                     np.array([0.4, 0.6])).density),
}


class OptimalCriticTest(parameterized.TestCase):

  @parameterized.product(divergence=sorted(F), pair=sorted(PAIRS))
  def test_value_at_optimal_critic_is_the_f_divergence(self, divergence, pair):
    ref = F[divergence]
    p, q = PAIRS[pair]
    lo, hi = -14.0, 14.0
    n = 200_000
    real = _quantile_points(p, lo, hi, n)
    fake = _quantile_points(q, lo, hi, n)
    # T*(x) = f'(p(x) / q(x)); D's raw output is v* = g_f^{-1}(T*).
    v_star = lambda x: ref['act_inv'](ref['df'](p(x) / q(x)))
    value = losses.get(f'fgan_{divergence}').value(
        jnp.asarray(v_star(real), jnp.float32),
        jnp.asarray(v_star(fake), jnp.float32))
    grid = np.linspace(lo, hi, 400_001)
    pg, qg = p(grid), q(grid)
    expected = np.trapezoid(qg * ref['f'](pg / qg), grid)
    self.assertGreater(expected, 0.01)
    np.testing.assert_allclose(float(value), expected, atol=1e-3)

  @parameterized.parameters(*sorted(F))
  def test_value_is_below_the_divergence_for_other_critics(self, divergence):
    # The variational bound: any other critic gives a smaller value.
    ref = F[divergence]
    p, q = PAIRS['gaussians']
    real = _quantile_points(p, -14, 14, 20_000)
    fake = _quantile_points(q, -14, 14, 20_000)
    v_star = lambda x: ref['act_inv'](ref['df'](p(x) / q(x)))
    loss = losses.get(f'fgan_{divergence}')
    best = float(loss.value(v_star(real), v_star(fake)))
    for shift in (-0.3, 0.2):
      other = float(loss.value(v_star(real) + shift, v_star(fake) + shift))
      self.assertLess(other, best - 1e-4)


class FormulaTest(parameterized.TestCase):

  @parameterized.parameters(*sorted(F))
  def test_conjugate_is_sup_of_ut_minus_f(self, divergence):
    # f*(t) = sup_u (u t - f(u)), maximised numerically over u > 0.
    ref = F[divergence]
    loss = losses.F_DIVERGENCES[divergence]
    for v in (-1.5, -0.2, 0.0, 0.7, 1.3):
      t = ref['act'](v)
      res = optimize.minimize_scalar(lambda u: -(u * t - ref['f'](u)),
                                     bounds=(1e-9, 60.0), method='bounded',
                                     options={'xatol': 1e-12})
      np.testing.assert_allclose(
          float(loss.conjugate_of_activation(jnp.float32(v))), -res.fun,
          rtol=1e-5, atol=1e-5)
      np.testing.assert_allclose(float(loss.activation(jnp.float32(v))), t,
                                 rtol=1e-6, atol=1e-6)

  @parameterized.parameters(*sorted(F))
  def test_fgan_loss_matches_numpy(self, divergence):
    ref = F[divergence]
    rng = np.random.default_rng(0)
    r = rng.normal(size=64).astype(np.float32)
    f = rng.normal(size=64).astype(np.float32)
    loss = losses.get(f'fgan_{divergence}')
    r64, f64 = r.astype(np.float64), f.astype(np.float64)
    value = np.mean(ref['act'](r64)) - np.mean(ref['conj'](ref['act'](f64)))
    np.testing.assert_allclose(loss.value(r, f), value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss.d_loss(r, f), -value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss.g_loss(f, r), -np.mean(ref['act'](f64)),
                               rtol=1e-5, atol=1e-6)
    self.assertFalse(loss.g_needs_real)


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


# Jolicoeur-Martineau 2019, with r~ = C(x_r) - mean C(x_f), f~ = C(x_f) -
# mean C(x_r); G's loss swaps the roles of real and fake.
def _relativistic_reference(name, r, f):
  rt, ft = r - f.mean(), f - r.mean()
  if name == 'rasgan':
    d = -np.mean(_log_sigmoid(rt)) - np.mean(_log_sigmoid(-ft))
    g = -np.mean(_log_sigmoid(ft)) - np.mean(_log_sigmoid(-rt))
  elif name == 'ralsgan':
    d = np.mean((rt - 1) ** 2) + np.mean((ft + 1) ** 2)
    g = np.mean((ft - 1) ** 2) + np.mean((rt + 1) ** 2)
  else:
    d = np.mean(np.maximum(0, 1 - rt)) + np.mean(np.maximum(0, 1 + ft))
    g = np.mean(np.maximum(0, 1 - ft)) + np.mean(np.maximum(0, 1 + rt))
  return d, g


class RelativisticTest(parameterized.TestCase):

  @parameterized.parameters('rasgan', 'ralsgan', 'rahinge')
  def test_matches_numpy_reference(self, name):
    rng = np.random.default_rng(2)
    r = (rng.normal(size=48) * 2 + 0.5).astype(np.float32)
    f = (rng.normal(size=48) * 2 - 0.3).astype(np.float32)
    loss = losses.get(name)
    d, g = _relativistic_reference(name, r.astype(np.float64),
                                   f.astype(np.float64))
    np.testing.assert_allclose(loss.d_loss(r, f), d, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss.value(r, f), -d, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss.g_loss(f, r), g, rtol=1e-5, atol=1e-6)
    self.assertTrue(loss.g_needs_real)
    with self.assertRaisesRegex(ValueError, 'needs real_out'):
      loss.g_loss(f)

  @parameterized.parameters('rasgan', 'rahinge', 'fgan_js')
  def test_float32_outputs_of_100_are_finite(self, name):
    loss = losses.get(name)
    extreme = jnp.array([-100.0, 100.0], jnp.float32)
    for fn in (loss.value, lambda r, f: loss.g_loss(f, r)):
      out, grads = jax.value_and_grad(fn, argnums=(0, 1))(extreme, -extreme)
      self.assertTrue(np.isfinite(out))
      self.assertTrue(all(np.all(np.isfinite(g)) for g in grads))


if __name__ == '__main__':
  absltest.main()
