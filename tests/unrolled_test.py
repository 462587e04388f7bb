"""Unrolled GAN (`--unroll_steps`): G's gradient against a hand-unrolled
reference (Adam written out, `jax.grad` of the composed function), D's state
advanced once, k = 0 as the plain step, the dead-unit case of Adam's square
root, and the schemes it composes with."""

import dataclasses

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import config as config_lib
from gan_jax import unrolled
from gan_jax.models import mlp

import testing

LR, B1, B2, EPS = 0.05, 0.5, 0.999, 1e-8


def _config(**changes):
  return testing.tiny_toy_config(**{
      'loss': 'non_saturating', 'g_hidden': (8,), 'd_hidden': (8,),
      'z_dim': 2, 'batch_size': 8, 'd_lr': LR, 'g_lr': 1e-3,
      'beta1': B1, 'beta2': B2, 'unroll_steps': 2, **changes})


def _softplus(v):
  return jnp.logaddexp(v, 0.0)


def _reference(config, state, batch, z, stop_second_order=False):
  """f_k(theta_G) = -mean log sigmoid(D_k(G(z))) with D_k after k Adam
  steps on -mean log sigmoid(D(x)) - mean log(1 - sigmoid(D(G(z)))), Adam
  written out from Kingma & Ba with optax's eps_root; returns (f_k, grad f_k,
  theta_D^1)."""
  d = mlp.Discriminator(hidden=config.d_hidden)
  g = mlp.Generator(hidden=config.g_hidden, out_dim=2)
  disc = lambda p, x: d.apply({'params': p}, x)
  adam = state.d_opt_state[0]

  def d_loss(d_params, g_params):
    fake = g.apply({'params': g_params}, z)
    return (jnp.mean(_softplus(-disc(d_params, batch)))
            + jnp.mean(_softplus(disc(d_params, fake))))

  def f_k(g_params):
    p, mu, nu, t = state.d_params, adam.mu, adam.nu, adam.count
    firsts = []
    for _ in range(config.unroll_steps):
      grad = jax.grad(d_loss)(p, g_params)
      t = t + 1
      mu = jax.tree.map(lambda m, gr: B1 * m + (1 - B1) * gr, mu, grad)
      nu = jax.tree.map(lambda v, gr: B2 * v + (1 - B2) * gr * gr, nu, grad)
      p = jax.tree.map(
          lambda w, m, v: w - LR * (m / (1 - B1 ** t)) / (
              jnp.sqrt(v / (1 - B2 ** t) + unrolled.ADAM_EPS_ROOT) + EPS),
          p, mu, nu)
      firsts.append(p)
    if stop_second_order:
      p = jax.lax.stop_gradient(p)
    fake = g.apply({'params': g_params}, z)
    return jnp.mean(_softplus(-disc(p, fake))), firsts[0]

  (value, first), grads = jax.value_and_grad(f_k, has_aux=True)(
      state.g_params)
  return value, grads, first


def _close(a, b, rtol, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol,
                               atol=atol)


class UnrolledGradientTest(parameterized.TestCase):

  @parameterized.parameters(1, 2, 3)
  def test_g_gradient_is_that_of_the_hand_unrolled_function(self, k):
    config = _config(unroll_steps=k)
    _, steps, state = testing.build(config)
    # From a state one step in, so Adam's moments and count are not zero.
    state, _ = jax.jit(steps.train_step)(state)
    self.assertEqual(int(state.d_opt_state[0].count), 1)
    batch, z = testing.batch_and_latents(steps)
    grads, metrics, _, theta_d_1, d_metrics = jax.jit(
        unrolled.unrolled_g_grads, static_argnums=0)(steps, state, batch, z,
                                                     None)
    value, expected, first = _reference(config, state, batch, z)
    np.testing.assert_allclose(metrics['g_loss'], value, rtol=1e-5)
    _close(grads, expected, rtol=2e-4, atol=1e-6)
    _close(theta_d_1.params, first, rtol=1e-5, atol=1e-6)
    self.assertEqual(int(theta_d_1.opt_state[0].count), 2)
    self.assertIn('d_loss', d_metrics)
    # The second-order term matters here: without it the gradient differs.
    _, first_order, _ = _reference(config, state, batch, z,
                                   stop_second_order=True)
    gap = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree.leaves(expected),
                              jax.tree.leaves(first_order)))
    self.assertGreater(gap, 1e-3)

  def test_a_dead_d_unit_leaves_g_gradient_finite(self):
    # A D unit that never fires has gradient exactly 0 and Adam's nu = 0;
    # d sqrt(nu) / d nu is infinite there, and without eps_root reverse mode
    # forms 0 * inf = NaN.
    config = _config(unroll_steps=2)
    _, steps, state = testing.build(config)
    d_params = jax.tree.map(np.array, state.d_params)
    d_params['Dense_0']['bias'][0] = -1e3
    state = state.replace(d_params=d_params)
    batch, z = testing.batch_and_latents(steps)
    grads = unrolled.unrolled_g_grads(steps, state, batch, z, None)[0]
    self.assertTrue(all(np.all(np.isfinite(x))
                        for x in jax.tree.leaves(grads)))
    plain = dataclasses.replace(steps, d_opt=optax.adam(LR, b1=B1, b2=B2))
    grads = unrolled.unrolled_g_grads(plain, state, batch, z, None)[0]
    self.assertFalse(all(np.all(np.isfinite(x))
                         for x in jax.tree.leaves(grads)))


class UnrolledStepTest(parameterized.TestCase):

  @parameterized.parameters('alternating', 'simultaneous')
  def test_d_moves_once_as_in_the_plain_step_and_g_differently(self, update):
    _, unrolled_steps, state = testing.build(_config(update=update,
                                                     unroll_steps=3))
    _, plain_steps, _ = testing.build(_config(update=update, unroll_steps=0))
    new, metrics = jax.jit(unrolled_steps.train_step)(state)
    plain, plain_metrics = jax.jit(plain_steps.train_step)(state)
    self.assertEqual(int(new.d_opt_state[0].count), 1)
    self.assertEqual(int(new.g_opt_state[0].count), 1)
    self.assertEqual(int(new.step), 1)
    # D's update is the plain one (simultaneous: the unroll's first step).
    _close(new.d_params, plain.d_params, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(metrics['d_loss'], plain_metrics['d_loss'],
                               rtol=1e-6)
    testing.assert_trees_differ(new.g_params, plain.g_params)
    self.assertEqual(sorted(metrics), sorted(plain_metrics))

  @parameterized.parameters('alternating', 'simultaneous')
  def test_zero_unroll_steps_is_the_plain_step(self, update):
    config = _config(update=update, unroll_steps=0)
    _, steps, state = testing.build(config)
    self.assertEqual(config_lib.Config().unroll_steps, 0)
    reference = dataclasses.replace(
        steps, d_opt=optax.adam(LR, b1=B1, b2=B2),
        g_opt=optax.adam(1e-3, b1=B1, b2=B2))
    a, _ = jax.jit(steps.train_step)(state)
    b, _ = jax.jit(reference.train_step)(state)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_array_equal(x, y)

  def test_alternating_draws_a_real_batch_for_g(self):
    _, steps, _ = testing.build(_config(d_steps=2, unroll_steps=2))
    self.assertEqual(steps.batches_per_step(), 3)
    _, steps, _ = testing.build(_config(d_steps=2, unroll_steps=0))
    self.assertEqual(steps.batches_per_step(), 2)

  def test_other_schemes_are_refused(self):
    for update in ('extragradient', 'optimistic', 'consensus'):
      with self.assertRaisesRegex(
          config_lib.ConfigError,
          f'--unroll_steps=2 needs --update=alternating or simultaneous '
          rf'\(--update={update} has no unrolled G step\)'):
        config_lib.validate(_config(update=update, workdir='/tmp/x'))
    _, steps, _ = testing.build(_config(unroll_steps=0,
                                        update='extragradient'))
    with self.assertRaisesRegex(ValueError, 'unroll_steps=2 needs update='
                                'alternating|simultaneous'):
      dataclasses.replace(steps, unroll_steps=2)


if __name__ == '__main__':
  absltest.main()
