"""Gradient penalties against closed forms on linear and quadratic critics."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import regularizers

SHAPE = (2, 3)  # one sample's shape; flattened, d = 6
D = 6


def linear_apply(params, x):
  """D(x) = w . x + b per sample."""
  return x.reshape(x.shape[0], -1) @ params['w'] + params['b']


def quadratic_apply(params, x):
  """D(x) = x^T A x per sample (A not symmetric: the gradient is (A + A^T) x)."""
  flat = x.reshape(x.shape[0], -1)
  return jnp.einsum('bi,ij,bj->b', flat, params['A'], flat)


def _points(seed, n=8):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n,) + SHAPE).astype(np.float32),
          rng.normal(size=(n,) + SHAPE).astype(np.float32))


def _penalty(variant, name, apply):
  """`(params, real, fake, key) -> penalty` of regularizer `name` on the
  critic `apply`, as `variant` runs it (jitted or not)."""
  return variant(functools.partial(regularizers.get(name), apply))


def _quadratic_grad_norms(a, x):
  """||(A + A^T) x_i|| in float64."""
  x = np.asarray(x, np.float64).reshape(x.shape[0], -1)
  g = x @ (np.asarray(a, np.float64) + np.asarray(a, np.float64).T).T
  return np.linalg.norm(g, axis=1)


class LinearCriticTest(chex.TestCase):
  """For D(x) = w . x + b the input gradient is w at every point."""

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.params = {'w': jnp.asarray(rng.normal(size=D), jnp.float32) * 0.7,
                   'b': jnp.float32(0.3)}
    self.norm = float(np.linalg.norm(np.asarray(self.params['w'], np.float64)))
    self.real, self.fake = _points(1)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(('wgan_gp', 'wgan_gp'), ('dragan', 'dragan'))
  def test_unit_norm_penalties(self, name):
    got = _penalty(self.variant, name, linear_apply)(
        self.params, self.real, self.fake, jax.random.PRNGKey(3))
    np.testing.assert_allclose(float(got), (self.norm - 1.0) ** 2, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(('r1', 'r1'), ('r2', 'r2'))
  def test_half_squared_norm_penalties(self, name):
    got = _penalty(self.variant, name, linear_apply)(
        self.params, self.real, self.fake, jax.random.PRNGKey(3))
    np.testing.assert_allclose(float(got), 0.5 * self.norm ** 2, rtol=1e-5)

  def test_wgan_gp_parameter_gradient(self):
    """d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| (a double backward)."""
    grads = jax.grad(lambda p: regularizers.wgan_gp(
        linear_apply, p, self.real, self.fake, jax.random.PRNGKey(0)))(
            self.params)
    w = np.asarray(self.params['w'], np.float64)
    np.testing.assert_allclose(np.asarray(grads['w']),
                               2 * (self.norm - 1) * w / self.norm, rtol=1e-5)
    self.assertEqual(float(grads['b']), 0.0)

  def test_r1_parameter_gradient(self):
    """d/dw ||w||^2 / 2 = w."""
    grads = jax.grad(lambda p: regularizers.r1(
        linear_apply, p, self.real, self.fake, jax.random.PRNGKey(0)))(
            self.params)
    np.testing.assert_allclose(np.asarray(grads['w']),
                               np.asarray(self.params['w']), rtol=1e-6)

  def test_zero_gradient_is_finite(self):
    """At w = 0 the norm is not differentiable; the penalty's gradient is 0."""
    params = {'w': jnp.zeros(D), 'b': jnp.float32(0.0)}
    value, grads = jax.value_and_grad(lambda p: regularizers.wgan_gp(
        linear_apply, p, self.real, self.fake, jax.random.PRNGKey(0)))(params)
    self.assertEqual(float(value), 1.0)
    np.testing.assert_array_equal(np.asarray(grads['w']), np.zeros(D))


class QuadraticCriticTest(chex.TestCase):
  """D(x) = x^T A x: grad D(x) = (A + A^T) x, in closed form at known points."""

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(5)
    self.a = rng.normal(size=(D, D)).astype(np.float32) * 0.3
    self.params = {'A': jnp.asarray(self.a)}
    self.real, self.fake = _points(6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_r1_on_real(self):
    want = 0.5 * np.mean(_quadratic_grad_norms(self.a, self.real) ** 2)
    got = _penalty(self.variant, 'r1', quadratic_apply)(
        self.params, self.real, self.fake, jax.random.PRNGKey(0))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_r2_on_fake(self):
    want = 0.5 * np.mean(_quadratic_grad_norms(self.a, self.fake) ** 2)
    got = _penalty(self.variant, 'r2', quadratic_apply)(
        self.params, self.real, self.fake, jax.random.PRNGKey(0))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)

  def test_wgan_gp_real_equals_fake(self):
    """Every interpolate of x with itself is x."""
    want = np.mean((_quadratic_grad_norms(self.a, self.real) - 1) ** 2)
    got = regularizers.wgan_gp(quadratic_apply, self.params, self.real,
                               self.real, jax.random.PRNGKey(4))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_wgan_gp_at_its_interpolates(self):
    key = jax.random.PRNGKey(7)
    x_hat = np.asarray(regularizers.interpolates(self.real, self.fake, key))
    # each x_hat_i lies on the segment [fake_i, real_i]: x_hat = fake + eps (real - fake)
    diff = (self.real - self.fake).reshape(len(self.real), -1)
    eps = np.sum((x_hat.reshape(len(x_hat), -1)
                  - self.fake.reshape(len(x_hat), -1)) * diff, 1) / np.sum(
                      diff * diff, 1)
    np.testing.assert_allclose(
        x_hat, self.fake + eps[:, None, None] * (self.real - self.fake),
        atol=1e-5)
    self.assertTrue(np.all((eps >= 0) & (eps <= 1)))
    want = np.mean((_quadratic_grad_norms(self.a, x_hat) - 1) ** 2)
    got = _penalty(self.variant, 'wgan_gp', quadratic_apply)(
        self.params, self.real, self.fake, key)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)

  def test_wgan_gp_expectation(self):
    """A = a I, fake = -real, ||real_i|| = rho: x_hat = (2 eps - 1) real, so
    ||grad|| = c u with c = 2 a rho and u = |2 eps - 1| ~ U[0, 1], and
    E(c u - 1)^2 = c^2 / 3 - c + 1."""
    n, a, rho = 20000, 0.75, 1.5
    rng = np.random.default_rng(8)
    real = rng.normal(size=(n, D))
    real = (rho * real / np.linalg.norm(real, axis=1, keepdims=True)).astype(
        np.float32)
    params = {'A': jnp.asarray(a * np.eye(D, dtype=np.float32))}
    got = float(regularizers.wgan_gp(quadratic_apply, params, real, -real,
                                     jax.random.PRNGKey(9)))
    c = 2 * a * rho
    want = c ** 2 / 3 - c + 1
    # standard error of the mean of (c u - 1)^2 over n draws
    u = np.linspace(0, 1, 100001)
    sem = np.std((c * u - 1) ** 2) / np.sqrt(n)
    self.assertLess(abs(got - want), 4 * sem)

  @chex.variants(with_jit=True, without_jit=True)
  def test_dragan_at_its_points(self):
    key = jax.random.PRNGKey(11)
    x_hat = np.asarray(regularizers.dragan_points(self.real, key))
    scale = regularizers.DRAGAN_SCALE * np.std(self.real)
    step = (x_hat - self.real) / scale  # alpha_i u_i, inside [0, 1]
    self.assertTrue(np.all((step >= 0) & (step <= 1 + 1e-6)))
    self.assertGreater(float(np.max(step)), 0.1)
    want = np.mean((_quadratic_grad_norms(self.a, x_hat) - 1) ** 2)
    got = _penalty(self.variant, 'dragan', quadratic_apply)(
        self.params, self.real, self.fake, key)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


class RegistryTest(absltest.TestCase):

  def test_names(self):
    self.assertEqual(regularizers.names(), ['dragan', 'r1', 'r2', 'wgan_gp'])

  def test_unknown_name_lists_valid_ones(self):
    with self.assertRaisesRegex(
        KeyError, "unknown regularizer 'gp'; valid regularizers: "
        'dragan, r1, r2, wgan_gp'):
      regularizers.get('gp')


if __name__ == '__main__':
  absltest.main()
