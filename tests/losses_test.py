"""Losses against independent numpy formulas and closed-form gradients."""

import doctest

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import losses


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def _bce(probs, labels):
  """Binary cross-entropy -mean[y log p + (1 - y) log(1 - p)] in float64."""
  p = np.asarray(probs, np.float64)
  return -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))


# Independent float64 references: (value, d_loss, g_loss) of (real, fake).
def _reference(name, r, f):
  r = np.asarray(r, np.float64)
  f = np.asarray(f, np.float64)
  if name in ('minimax', 'non_saturating'):
    v = np.mean(np.log(_sigmoid(r))) + np.mean(np.log(1 - _sigmoid(f)))
    g = (np.mean(np.log(1 - _sigmoid(f))) if name == 'minimax'
         else -np.mean(np.log(_sigmoid(f))))
    return v, -v, g
  if name == 'wasserstein':
    v = r.mean() - f.mean()
    return v, -v, -f.mean()
  if name == 'hinge':
    d = np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f))
    return -d, d, -f.mean()
  if name == 'least_squares':
    d = 0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f**2)
    return -d, d, 0.5 * np.mean((f - 1) ** 2)
  raise KeyError(name)


CORE = ('minimax', 'non_saturating', 'wasserstein', 'hinge', 'least_squares')


class LossesTest(parameterized.TestCase):

  def test_registry_lists_core_losses(self):
    for name in CORE:
      self.assertEqual(losses.get(name).name, name)

  def test_unknown_name_lists_valid_ones(self):
    with self.assertRaisesRegex(KeyError, 'valid losses: .*hinge.*minimax'):
      losses.get('vanilla')

  @parameterized.parameters(*CORE)
  def test_matches_numpy_reference(self, name):
    rng = np.random.default_rng(0)
    r = rng.normal(size=64).astype(np.float32) * 3
    f = rng.normal(size=64).astype(np.float32) * 3
    loss = losses.get(name)
    v, d, g = _reference(name, r, f)
    np.testing.assert_allclose(loss.value(r, f), v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss.d_loss(r, f), d, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss.g_loss(f, r), g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss.d_loss(r, f), -loss.value(r, f),
                               rtol=1e-6, atol=1e-7)

  def test_minimax_d_loss_is_bernoulli_cross_entropy(self):
    # The article: D is the maximum-likelihood estimate of a Bernoulli with
    # label 1 for real and 0 for fake; its loss is the cross-entropy.
    rng = np.random.default_rng(1)
    r = rng.normal(size=32).astype(np.float32)
    f = rng.normal(size=32).astype(np.float32)
    expected = (_bce(_sigmoid(r), np.ones(32)) +
                _bce(_sigmoid(f), np.zeros(32)))
    np.testing.assert_allclose(losses.get('minimax').d_loss(r, f), expected,
                               rtol=1e-6)

  def test_minimax_value_at_chance_is_minus_log4(self):
    np.testing.assert_allclose(
        losses.get('minimax').value(jnp.zeros(8), jnp.zeros(8)), -np.log(4.0),
        rtol=1e-7)

  @parameterized.parameters(*CORE)
  def test_float32_logits_of_100_are_finite(self, name):
    loss = losses.get(name)
    extreme = jnp.array([-100.0, 100.0], jnp.float32)
    for fn in (loss.value, loss.d_loss, lambda r, f: loss.g_loss(f, r)):
      out, grads = jax.value_and_grad(fn, argnums=(0, 1))(extreme, -extreme)
      self.assertTrue(np.isfinite(out))
      self.assertTrue(all(np.all(np.isfinite(g)) for g in grads))

  def test_bernoulli_losses_exact_at_extreme_logits(self):
    # D certain and right: V = log 1 + log 1 = 0; certain and wrong:
    # V = mean(-100, ~0) + mean(~0, -100) = -100 (exactly, in float32).
    loss = losses.get('minimax')
    r = jnp.array([100.0, 100.0], jnp.float32)
    np.testing.assert_allclose(loss.value(r, -r), 0.0, atol=1e-30)
    np.testing.assert_allclose(loss.value(-r, r), -200.0, rtol=1e-6)
    np.testing.assert_allclose(losses.get('non_saturating').g_loss(-r), 100.0,
                               rtol=1e-6)

  @parameterized.parameters(-10.0, -15.0, -30.0)
  def test_saturating_gradient_vanishes_non_saturating_does_not(self, logit):
    # d/df of mean log(1 - sigmoid(f)) = -sigmoid(f)/n -> 0 as D(G(z)) -> 0;
    # d/df of -mean log sigmoid(f) = -(1 - sigmoid(f))/n -> -1/n.
    n = 4
    f = jnp.full((n,), logit, jnp.float32)
    sat = jax.grad(losses.get('minimax').g_loss)(f)
    nonsat = jax.grad(losses.get('non_saturating').g_loss)(f)
    np.testing.assert_allclose(sat, -_sigmoid(logit) / n, rtol=1e-5)
    np.testing.assert_allclose(nonsat, -(1 - _sigmoid(logit)) / n, rtol=1e-5)
    self.assertLess(float(jnp.abs(sat).max()), 5e-5 / n)
    self.assertGreater(float(jnp.abs(nonsat).min()), 0.99 / n)

  def test_docstring_example(self):
    result = doctest.testmod(losses, optionflags=doctest.ELLIPSIS)
    self.assertEqual(result.failed, 0)
    self.assertGreater(result.attempted, 0)


if __name__ == '__main__':
  absltest.main()
