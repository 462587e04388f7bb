"""LeCam regularisation against Eq. 3 of Tseng et al. 2021 and a moving
average run by hand in float64."""

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import lecam


class LeCamTest(absltest.TestCase):

  def test_first_update_anchors_at_the_batch_means(self):
    # Zero-debiased: after one update the anchors are the batch means, so
    # real [1, 3] (alpha_R = 2) and fake [-2, 0] (alpha_F = -1) give
    # ((1+1)^2 + (3+1)^2)/2 + ((-2-2)^2 + (0-2)^2)/2 = 10 + 10.
    r, averages = lecam.penalty(lecam.init(), jnp.array([1.0, 3.0]),
                                jnp.array([-2.0, 0.0]))
    # (float32: 1 - 0.99 is not 0.01 exactly.)
    np.testing.assert_allclose(float(r), 20.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(lecam.anchors(averages)),
                               [2.0, -1.0], rtol=1e-5)

  def test_against_a_hand_run_moving_average(self):
    rng = np.random.default_rng(0)
    decay = 0.99
    biased_real = biased_fake = 0.0
    averages = lecam.init()
    step = jax.jit(lambda a, r, f: lecam.penalty(a, r, f, decay))
    for t in range(1, 31):
      real = rng.normal(1.0, 2.0, 16)
      fake = rng.normal(-1.0, 0.5, 16)
      biased_real = decay * biased_real + (1 - decay) * real.mean()
      biased_fake = decay * biased_fake + (1 - decay) * fake.mean()
      alpha_real = biased_real / (1 - decay**t)
      alpha_fake = biased_fake / (1 - decay**t)
      want = (np.mean((real - alpha_fake) ** 2)
              + np.mean((fake - alpha_real) ** 2))
      got, averages = step(averages, jnp.asarray(real, jnp.float32),
                           jnp.asarray(fake, jnp.float32))
      np.testing.assert_allclose(float(got), want, rtol=2e-5)
      np.testing.assert_allclose(np.asarray(lecam.anchors(averages, decay)),
                                 [alpha_real, alpha_fake], rtol=1e-5,
                                 atol=1e-6)
    self.assertEqual(float(averages['updates']), 30.0)

  def test_other_decay(self):
    # decay 0.5 over two updates, by hand: a1 = m1/2, a2 = m1/4 + m2/2,
    # alpha_2 = a2 / (1 - 1/4).
    averages = lecam.init()
    for real in ([2.0], [6.0]):
      averages = lecam.update(averages, jnp.array(real), jnp.array([0.0]),
                              0.5)
    alpha_real, _ = lecam.anchors(averages, 0.5)
    self.assertAlmostEqual(float(alpha_real), (2 / 4 + 6 / 2) / 0.75,
                           places=6)

  def test_anchors_are_constants_of_the_derivative(self):
    real = jnp.array([0.5, -1.0, 2.0])
    fake = jnp.array([1.5, 0.0, -0.5, 3.0])
    g_real, g_fake = jax.grad(
        lambda r, f: lecam.penalty(lecam.init(), r, f)[0], argnums=(0, 1))(
            real, fake)
    alpha_real, alpha_fake = float(real.mean()), float(fake.mean())
    np.testing.assert_allclose(np.asarray(g_real),
                               2 * (np.asarray(real) - alpha_fake) / 3,
                               rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g_fake),
                               2 * (np.asarray(fake) - alpha_real) / 4,
                               rtol=1e-5)

  def test_no_anchor_before_an_update(self):
    self.assertEqual([float(a) for a in lecam.anchors(lecam.init())],
                     [0.0, 0.0])


if __name__ == '__main__':
  absltest.main()
