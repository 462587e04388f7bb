"""E1 of the saturation experiment: G-gradient norms against the closed form
on the Dirac-GAN, the fresh D's curves and their summary."""

import dataclasses

from absl.testing import absltest
import jax.numpy as jnp
import numpy as np

from gan_jax import dirac
from gan_jax import saturation
from tests import testing


def _sigmoid(t):
  return 1.0 / (1.0 + np.exp(-t))


class GradNormTest(absltest.TestCase):

  def test_norms_match_the_dirac_closed_form(self):
    # G(z) = theta, D(x) = sigmoid(psi x): d/dtheta log(1 - D) = -psi D and
    # d/dtheta -log D = -psi (1 - D), with D = sigmoid(psi theta).
    steps, state = dirac.dirac_steps(dirac.DiracSetup(loss='minimax'))
    z = jnp.zeros((4, 1))
    for theta, psi in ((1.0, 1.0), (2.0, -3.0), (-0.5, 8.0)):
      mm, ns, prob, sat = saturation.g_grad_norms(
          steps, {'theta': jnp.float32(theta)}, {'psi': jnp.float32(psi)}, z,
          None, None)
      d = _sigmoid(psi * theta)
      np.testing.assert_allclose(mm, abs(psi) * d, rtol=1e-5)
      np.testing.assert_allclose(ns, abs(psi) * (1 - d), rtol=1e-5)
      np.testing.assert_allclose(prob, d, rtol=1e-5)
      self.assertEqual(float(sat), float(d < 1e-3))


class E1Test(absltest.TestCase):

  def test_curves_and_summary(self):
    config = dataclasses.replace(testing.tiny_toy_config(), batch_size=32)
    e1 = saturation.run_e1(config, [0, 5], d_train_steps=7, seeds=[0, 1],
                           log=lambda m: None)
    self.assertLen(e1['runs'], 4)
    for run in e1['runs']:
      for key in ('minimax', 'non_saturating', 'd_fake_prob', 'saturated'):
        self.assertLen(run[key], 7)
        self.assertTrue(np.all(np.isfinite(run[key])))
      self.assertTrue(all(0 <= s <= 1 for s in run['saturated']))
    # The fresh D learns against the frozen G: its outputs on the fakes move.
    first = [r for r in e1['runs'] if r['snapshot'] == 0]
    self.assertNotEqual(first[0]['d_fake_prob'][0],
                        first[0]['d_fake_prob'][-1])
    rows = saturation.summarise(e1)
    for row in rows:
      runs = [r for r in e1['runs'] if r['snapshot'] == row['snapshot']]
      ratio = np.array([r['minimax'][-1] / r['non_saturating'][-1]
                        for r in runs])
      np.testing.assert_allclose(row['ratio'], ratio.mean(), rtol=1e-12)
      np.testing.assert_allclose(row['ratio_se'],
                                 np.std(ratio, ddof=1) / np.sqrt(2),
                                 rtol=1e-12)


if __name__ == '__main__':
  absltest.main()
