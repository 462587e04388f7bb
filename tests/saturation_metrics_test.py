"""Saturation metrics of probabilistic losses: mean D(G(z)) and the fraction
of fakes with D(G(z)) < 1e-3, against a hand computation on given logits and
on D's outputs computed apart from the step; which losses log them."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import losses
from gan_jax.models import mlp

import testing

# Which registered losses have D(x) = sigmoid(raw output), by their formulas:
# the Bernoulli games, and f-GAN's Jensen-Shannon, whose g_f(v) =
# log 2 + log sigmoid(v) makes v the logit of the GAN discriminator.
PROBABILISTIC = {'minimax', 'non_saturating', 'fgan_js'}


class SaturationMetricsTest(parameterized.TestCase):

  def test_against_a_hand_computation(self):
    # sigmoid(-6.9) = 1.0068e-3 is above the threshold, sigmoid(-6.91) =
    # 0.99676e-3 below it.
    logits = [-30.0, -6.91, -6.9, 0.0, 2.0, 40.0]
    probs = [9.357623e-14, 9.967635e-4, 1.006771e-3, 0.5, 0.8807971, 1.0]
    metrics = losses.saturation_metrics(jnp.asarray(logits, jnp.float32))
    self.assertEqual(sorted(metrics), sorted(losses.SATURATION_METRICS))
    np.testing.assert_allclose(metrics['d_fake_prob'], np.mean(probs),
                               rtol=1e-6)
    np.testing.assert_allclose(metrics['d_fake_saturated_frac'], 2 / 6,
                               rtol=1e-7)

  def test_the_probabilistic_losses(self):
    self.assertEqual({n for n in losses.names()
                      if losses.get(n).probabilistic}, PROBABILISTIC)

  @parameterized.parameters(*sorted(PROBABILISTIC | {'hinge', 'wasserstein',
                                                     'rasgan'}))
  def test_g_step_logs_them_for_probabilistic_losses_only(self, loss):
    config = testing.tiny_toy_config(loss=loss, g_hidden=(8,), d_hidden=(8,))
    _, steps, state = testing.build(config)
    # D's last bias pushes its logits down, so some fakes saturate.
    d_params = jax.tree.map(np.array, state.d_params)
    d_params['Dense_1']['bias'][0] = -6.9
    state = state.replace(d_params=d_params)
    batch, z = testing.batch_and_latents(steps)
    _, metrics = jax.jit(steps.g_step)(state, z, batch)
    if loss not in PROBABILISTIC:
      self.assertNotIn('d_fake_prob', metrics)
      self.assertNotIn('d_fake_saturated_frac', metrics)
      return
    g = mlp.Generator(hidden=config.g_hidden, out_dim=2)
    d = mlp.Discriminator(hidden=config.d_hidden)
    fake = g.apply({'params': state.g_params}, z)
    logits = np.asarray(d.apply({'params': d_params}, fake), np.float64)
    probs = 1.0 / (1.0 + np.exp(-logits))
    np.testing.assert_allclose(metrics['d_fake_prob'], probs.mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(metrics['d_fake_saturated_frac'],
                               np.mean(probs < 1e-3))
    self.assertGreater(float(metrics['d_fake_saturated_frac']), 0.0)
    self.assertLess(float(metrics['d_fake_saturated_frac']), 1.0)

  def test_every_scheme_logs_them(self):
    for update in ('alternating', 'simultaneous', 'extragradient',
                   'optimistic', 'consensus'):
      _, steps, state = testing.build(testing.tiny_toy_config(
          update=update, g_hidden=(8,), d_hidden=(8,)))
      _, metrics = jax.jit(steps.train_step)(state)
      for name in losses.SATURATION_METRICS:
        self.assertIn(name, metrics, update)


if __name__ == '__main__':
  absltest.main()
