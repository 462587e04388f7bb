"""Training actually learns: a short mix1d run moves p_g onto p_data."""

from absl.testing import absltest

from gan_jax import train
import testing

# A toy GAN on mix1d: wider than the tiny one, trained for 3000 steps.
MIX1D = testing.tiny_toy_config(
    dataset='mix1d', num_steps=3000, log_every=1000, z_dim=2,
    g_hidden=(64, 64), d_hidden=(64, 64), g_lr=1e-3, d_lr=1e-3,
    batch_size=128, num_eval_samples=2500)


class LearningTest(absltest.TestCase):

  def test_mix1d_jsd_falls_and_both_modes_are_found(self):
    workdir = self.create_tempdir().full_path
    before = train.run(MIX1D.replace(workdir=workdir + '/0', num_steps=1,
                                     log_every=1), out=None)
    after = train.run(MIX1D.replace(workdir=workdir + '/1'), out=None)
    # At initialisation G puts its mass near 0, between the modes at +-2.
    self.assertGreater(before['jsd'], 0.4)
    # 3000 steps (seed 0) measured: JSD 0.062, 2/2 modes, 97.8% high quality.
    self.assertLess(after['jsd'], 0.1)
    self.assertEqual(after['modes'], 2)
    self.assertGreater(after['hq_fraction'], 0.9)
    self.assertLess(after['reverse_kl'], 0.02)


if __name__ == '__main__':
  absltest.main()
