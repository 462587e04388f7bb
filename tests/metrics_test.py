"""Toy metrics and divergences against hand counts, scipy and closed forms."""

from absl.testing import absltest
import numpy as np
from scipy import stats
from scipy.spatial import distance

from gan_jax.data import toy
from gan_jax.metrics import divergences
from gan_jax.metrics import toy as toy_metrics


class ModeMetricsTest(absltest.TestCase):

  def test_hand_counted_example(self):
    means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    std = 1.0
    samples = np.array([
        [0.5, 0.5],    # mode 0, distance 0.71: high quality
        [2.9, 0.0],    # mode 0, distance 2.9: high quality
        [3.1, 0.0],    # nearest mode 0, distance 3.1 > 3 std: low quality
        [10.0, 1.0],   # mode 1: high quality
        [5.0, 5.0],    # far from every mode
    ])
    m = toy_metrics.mode_metrics(samples, means, std)
    self.assertEqual(m['mode_counts'], [2, 1, 0])
    self.assertEqual(m['modes'], 2)
    self.assertEqual(m['num_modes'], 3)
    np.testing.assert_allclose(m['hq_fraction'], 3 / 5)
    q = np.array([2 / 3, 1 / 3])
    np.testing.assert_allclose(m['reverse_kl'], np.sum(q * np.log(3 * q)))
    self.assertEqual(toy_metrics.mode_metrics(samples, means, std,
                                              min_count=2)['modes'], 1)

  def test_true_samples_cover_every_mode_uniformly(self):
    import jax  # pylint: disable=g-import-not-at-top
    for data in (toy.ring8(), toy.grid25()):
      x = np.asarray(data.sample(jax.random.PRNGKey(0), 20_000))
      m = toy_metrics.mode_metrics(x, data.means, data.std)
      self.assertEqual(m['modes'], data.num_modes)
      # P(|N(0, I_2)| <= 3) = 1 - exp(-9/2) for a 2-D isotropic Gaussian.
      np.testing.assert_allclose(m['hq_fraction'], 1 - np.exp(-4.5), atol=0.003)
      self.assertLess(m['reverse_kl'], 0.01)

  def test_collapse_to_one_mode_gives_log_k(self):
    data = toy.ring8()
    samples = np.repeat(data.means[:1], 100, axis=0)
    m = toy_metrics.mode_metrics(samples, data.means, data.std)
    self.assertEqual(m['modes'], 1)
    np.testing.assert_allclose(m['reverse_kl'], np.log(8))

  def test_no_high_quality_sample(self):
    m = toy_metrics.mode_metrics(np.full((5, 2), 50.0), toy.ring8().means, 0.02)
    self.assertEqual((m['modes'], m['hq_fraction'], m['reverse_kl']),
                     (0, 0.0, None))


class DivergencesTest(absltest.TestCase):

  def test_jsd_matches_scipy_on_a_grid(self):
    grid = np.linspace(-10, 10, 20_001)
    p = stats.norm.pdf(grid, 0, 1)
    q = stats.norm.pdf(grid, 1.0, 2.0)
    dx = grid[1] - grid[0]
    # scipy's jensenshannon is the square root of the (discrete) JSD.
    expected = distance.jensenshannon(p * dx, q * dx) ** 2
    np.testing.assert_allclose(divergences.jsd(p, q, grid), expected, rtol=1e-4)

  def test_kl_of_gaussians_closed_form(self):
    grid = np.linspace(-15, 15, 30_001)
    m1, s1, m2, s2 = 0.3, 0.8, -1.0, 1.7
    expected = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    np.testing.assert_allclose(
        divergences.kl(stats.norm.pdf(grid, m1, s1), stats.norm.pdf(grid, m2, s2),
                       grid), expected, rtol=1e-6)

  def test_jsd_extremes(self):
    grid = np.linspace(-20, 20, 40_001)
    p = stats.norm.pdf(grid, -10, 0.5)
    self.assertAlmostEqual(divergences.jsd(p, p, grid), 0.0, places=12)
    np.testing.assert_allclose(
        divergences.jsd(p, stats.norm.pdf(grid, 10, 0.5), grid), np.log(2),
        rtol=1e-6)

  def test_jsd_of_kde_to_true_samples_is_small_and_to_wrong_ones_large(self):
    data = toy.mix1d()
    rng = np.random.default_rng(0)
    true = np.concatenate([rng.normal(-2, 0.5, 5000), rng.normal(2, 0.5, 5000)])
    collapsed = rng.normal(2, 0.5, 10_000)
    near = divergences.jsd_to_samples(data.density, true, -6, 6)
    far = divergences.jsd_to_samples(data.density, collapsed, -6, 6)
    # Scott's bandwidth over-smooths two narrow modes a little: ~0.008 here.
    self.assertLess(near, 0.012)
    # Half the mass on one of two equal modes: JSD = 1.5 log 1.5 - ... ~ 0.216
    # for disjoint modes; the KDE's smoothing moves it by < 0.01.
    expected = 0.5 * (0.5 * np.log(0.5 / 0.25)) + 0.5 * (np.log(1 / 0.75)) + \
        0.5 * (0.5 * np.log(0.5 / 0.75))
    np.testing.assert_allclose(far, expected, atol=0.01)


class ToyDataTest(absltest.TestCase):

  def test_mode_layouts(self):
    ring = toy.ring8()
    np.testing.assert_allclose(np.linalg.norm(ring.means, axis=1), 2.0)
    self.assertEqual((ring.num_modes, ring.std), (8, 0.02))
    grid = toy.grid25()
    self.assertEqual(sorted(set(grid.means.ravel())), [-4, -2, 0, 2, 4])
    self.assertEqual((grid.num_modes, grid.std), (25, 0.05))
    self.assertEqual(toy.mix1d().shape, (1,))

  def test_samples_have_the_mixture_moments(self):
    import jax  # pylint: disable=g-import-not-at-top
    data = toy.mix1d()
    x = np.asarray(data.sample(jax.random.PRNGKey(0), 200_000))[:, 0]
    np.testing.assert_allclose(x.mean(), 0.0, atol=0.02)
    np.testing.assert_allclose(x.var(), 4.0 + 0.25, rtol=0.01)
    grid = np.linspace(-8, 8, 16_001)
    np.testing.assert_allclose(np.trapezoid(data.density(grid), grid), 1.0,
                               rtol=1e-8)


if __name__ == '__main__':
  absltest.main()
