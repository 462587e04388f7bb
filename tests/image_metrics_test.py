"""FID, KID, IS, precision/recall and density/coverage against closed forms,
independent numpy/scipy computations and hand-counted examples."""

import itertools

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import scipy.linalg

from gan_jax import metrics
from gan_jax.metrics import frechet
from gan_jax.metrics import kid as kid_lib
from gan_jax.metrics import prdc as prdc_lib


def _with_exact_statistics(rng, n, mu, sigma):
  """n samples whose sample mean is mu and unbiased sample covariance sigma."""
  z = rng.normal(size=(n, len(mu)))
  z -= z.mean(axis=0)
  # Whiten to identity sample covariance, then colour with a factor of sigma.
  z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
  return z @ np.linalg.cholesky(sigma).T + mu


def _random_covariance(rng, d):
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


def _fid_reference(x, y):
  """pytorch-fid's formula, written out with np.cov and scipy's sqrtm."""
  mu1, mu2 = x.mean(0), y.mean(0)
  s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
  return np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)


class FrechetTest(parameterized.TestCase):

  def test_diagonal_covariances_closed_form(self):
    # Commuting covariances: Tr (S1 S2)^{1/2} = sum_i sqrt(s1_i s2_i).
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    x = _with_exact_statistics(rng, 400, mu1, np.diag(s1))
    y = _with_exact_statistics(rng, 300, mu2, np.diag(s2))
    expected = (np.sum((mu1 - mu2) ** 2)
                + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2)))
    np.testing.assert_allclose(metrics.frechet_distance(x, y), expected,
                               rtol=1e-4)

  @parameterized.parameters('eigh', 'sqrtm')
  def test_general_gaussians_closed_form(self, method):
    # Tr (S1 S2)^{1/2} = Tr (S1^{1/2} S2 S1^{1/2})^{1/2}, here with scipy's
    # sqrtm of the symmetric form, a route neither method takes.
    rng = np.random.default_rng(1)
    d = 32
    mu1, mu2 = rng.normal(size=d), 0.5 * rng.normal(size=d)
    s1, s2 = _random_covariance(rng, d), _random_covariance(rng, d)
    x = _with_exact_statistics(rng, 500, mu1, s1)
    y = _with_exact_statistics(rng, 700, mu2, s2)
    r1 = np.real(scipy.linalg.sqrtm(s1))
    expected = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                - 2 * np.trace(np.real(scipy.linalg.sqrtm(r1 @ s2 @ r1))))
    np.testing.assert_allclose(
        metrics.frechet_distance(x, y, method=method), expected, rtol=1e-4)

  def test_matches_pytorch_fid_formula(self):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 24)) * rng.uniform(0.5, 2, 24)
    y = rng.standard_t(5, size=(250, 24)) + 0.3
    np.testing.assert_allclose(metrics.frechet_distance(x, y),
                               _fid_reference(x, y), rtol=1e-8)

  def test_rank_deficient_covariances(self):
    # Fewer samples than dimensions: both covariances are singular.
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(20, 40)), rng.normal(size=(25, 40)) + 0.1
    np.testing.assert_allclose(metrics.frechet_distance(x, y),
                               _fid_reference(x, y), rtol=1e-6)

  def test_identical_sets_give_zero(self):
    x = np.random.default_rng(4).normal(size=(200, 64))
    self.assertLess(metrics.frechet_distance(x, x), 1e-9)
    self.assertEqual(metrics.frechet_distance(x, x, method='eigh'),
                     metrics.frechet_distance(x.copy(), x.copy()))

  def test_statistics_are_float64_unbiased(self):
    x = np.random.default_rng(5).normal(size=(50, 3)).astype(np.float32)
    mu, sigma = metrics.feature_statistics(x)
    self.assertEqual((mu.dtype, sigma.dtype), (np.float64, np.float64))
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64),
                                             rowvar=False), rtol=1e-12)

  def test_bad_shapes(self):
    with self.assertRaisesRegex(ValueError, 'differ in shape'):
      metrics.frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with self.assertRaisesRegex(ValueError, 'valid: eigh, sqrtm'):
      frechet.trace_sqrt_product(np.eye(2), np.eye(2), method='svd')


def _third_moment(mu, sigma):
  """E[x_i x_j x_k] of N(mu, sigma)."""
  return (np.einsum('i,j,k->ijk', mu, mu, mu) + np.einsum('i,jk->ijk', mu, sigma)
          + np.einsum('j,ik->ijk', mu, sigma) + np.einsum('k,ij->ijk', mu, sigma))


def _expected_kernel(mu_a, s_a, mu_b, s_b):
  """E k(x, y) for independent x ~ N(mu_a, s_a), y ~ N(mu_b, s_b), k cubic.

  (1 + u)^3 = 1 + 3u + 3u^2 + u^3 with u = x.y/d, and E (x.y)^p is the inner
  product of the p-th moment tensors for p = 1, 2, 3.
  """
  d = len(mu_a)
  m2_a, m2_b = s_a + np.outer(mu_a, mu_a), s_b + np.outer(mu_b, mu_b)
  e1 = mu_a @ mu_b / d
  e2 = np.sum(m2_a * m2_b) / d**2
  e3 = np.sum(_third_moment(mu_a, s_a) * _third_moment(mu_b, s_b)) / d**3
  return 1 + 3 * e1 + 3 * e2 + e3


def _mmd2_loops(x, y):
  """MMD^2_u with explicit sums over index pairs (float64)."""
  d = x.shape[1]
  k = lambda a, b: (np.dot(a, b) / d + 1.0) ** 3
  m, n = len(x), len(y)
  kxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2))
  kyy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2))
  kxy = sum(k(a, b) for a in x for b in y)
  return kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - 2 * kxy / (m * n)


class KIDTest(absltest.TestCase):

  def test_one_subset_equals_explicit_sums(self):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 6)), rng.normal(size=(30, 6)) * 1.5 + 0.4
    out = metrics.kernel_inception_distance(x, y, num_subsets=1,
                                            subset_size=30)
    np.testing.assert_allclose(out['kid_mean'], _mmd2_loops(x, y), rtol=1e-5)
    np.testing.assert_allclose(kid_lib.mmd2_unbiased(x, y), _mmd2_loops(x, y),
                               rtol=1e-12)
    self.assertEqual((out['kid_std'], out['kid_subset_size']), (0.0, 30))

  def test_subsets_average_per_subset_values(self):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(50, 5)) + 0.2
    out = metrics.kernel_inception_distance(x, y, num_subsets=7,
                                            subset_size=12, seed=3)
    draw = np.random.default_rng(3)
    ia = [draw.choice(40, 12, replace=False) for _ in range(7)]
    ib = [draw.choice(50, 12, replace=False) for _ in range(7)]
    values = [_mmd2_loops(x[i], y[j]) for i, j in zip(ia, ib)]
    np.testing.assert_allclose(out['kid_mean'], np.mean(values), rtol=1e-5)
    np.testing.assert_allclose(out['kid_std'], np.std(values), rtol=1e-4)

  def test_unbiased_mean_matches_population_mmd2(self):
    rng = np.random.default_rng(2)
    d, m, draws = 3, 8, 4000
    mu_a, mu_b = np.array([0.0, 0.5, -0.5]), np.array([0.5, 0.0, 0.0])
    s_a, s_b = _random_covariance(rng, d), _random_covariance(rng, d)
    population = (_expected_kernel(mu_a, s_a, mu_a, s_a)
                  + _expected_kernel(mu_b, s_b, mu_b, s_b)
                  - 2 * _expected_kernel(mu_a, s_a, mu_b, s_b))
    x = rng.multivariate_normal(mu_a, s_a, size=(draws, m))
    y = rng.multivariate_normal(mu_b, s_b, size=(draws, m))
    values = np.array([kid_lib.mmd2_unbiased(a, b) for a, b in zip(x, y)])
    stderr = values.std() / np.sqrt(draws)
    self.assertLess(abs(values.mean() - population), 4 * stderr)
    # The biased (V-statistic) estimator is visibly off at this subset size,
    # so the check above can tell the two apart.
    biased = np.mean([np.mean(kid_lib.polynomial_kernel(a, a))
                      + np.mean(kid_lib.polynomial_kernel(b, b))
                      - 2 * np.mean(kid_lib.polynomial_kernel(a, b))
                      for a, b in zip(x, y)])
    self.assertGreater(abs(biased - population), 20 * stderr)
    # The library's subset means over a large pool agree with the population.
    pool_a = rng.multivariate_normal(mu_a, s_a, size=40_000)
    pool_b = rng.multivariate_normal(mu_b, s_b, size=40_000)
    out = metrics.kernel_inception_distance(pool_a, pool_b, num_subsets=draws,
                                            subset_size=m, seed=0)
    self.assertLess(abs(out['kid_mean'] - population),
                    4 * out['kid_std'] / np.sqrt(draws))

  def test_same_distribution_has_zero_mean(self):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(20_000, 4)), rng.normal(size=(20_000, 4))
    out = metrics.kernel_inception_distance(a, b, num_subsets=2000,
                                            subset_size=10)
    self.assertLess(abs(out['kid_mean']), 4 * out['kid_std'] / np.sqrt(2000))


def _softmax(logits):
  e = np.exp(logits - logits.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


class InceptionScoreTest(absltest.TestCase):

  def test_certain_and_balanced_gives_number_of_classes(self):
    logits = 60.0 * np.tile(np.eye(10), (5, 1))
    out = metrics.inception_score(logits, num_splits=5)
    np.testing.assert_allclose([out['is_mean'], out['is_std']], [10.0, 0.0],
                               atol=1e-9)

  def test_identical_predictions_give_one(self):
    logits = np.tile(np.random.default_rng(0).normal(size=(1, 7)), (40, 1))
    out = metrics.inception_score(logits, num_splits=4)
    np.testing.assert_allclose(out['is_mean'], 1.0, rtol=1e-12)

  def test_matches_direct_formula(self):
    logits = np.random.default_rng(1).normal(size=(103, 9)) * 3
    out = metrics.inception_score(logits, num_splits=10)
    scores = []
    for part in np.array_split(_softmax(logits), 10):
      marginal = part.mean(axis=0)
      scores.append(np.exp(np.mean(np.sum(
          part * (np.log(part) - np.log(marginal)), axis=1))))
    np.testing.assert_allclose([out['is_mean'], out['is_std']],
                               [np.mean(scores), np.std(scores)], rtol=1e-10)


def _brute_prdc(real, fake, k):
  """Definitions of Kynkäänniemi et al. and Naeem et al. in float64 loops."""
  def kth(points, i):
    dist = sorted(np.linalg.norm(points[i] - points[j])
                  for j in range(len(points)) if j != i)
    return dist[k - 1]
  r_real = [kth(real, i) for i in range(len(real))]
  r_fake = [kth(fake, j) for j in range(len(fake))]
  dist = np.array([[np.linalg.norm(x - y) for y in fake] for x in real])
  precision = np.mean([any(dist[i, j] <= r_real[i] for i in range(len(real)))
                       for j in range(len(fake))])
  recall = np.mean([any(dist[i, j] <= r_fake[j] for j in range(len(fake)))
                    for i in range(len(real))])
  density = sum(dist[i, j] < r_real[i] for i in range(len(real))
                for j in range(len(fake))) / (k * len(fake))
  coverage = np.mean([dist[i].min() < r_real[i] for i in range(len(real))])
  return precision, recall, density, coverage


class PRDCTest(parameterized.TestCase):

  def test_hand_counted_example(self):
    # k = 1. Real radii: 0->1, 1->1, 3->2, 7->1, 8->1. Fake radii:
    # 0.5->2.4, 2.9->1.6, 4.5->1.6, 12->0.5, 12.5->0.5.
    # Precision: 0.5, 2.9, 4.5 lie in real balls; 12, 12.5 do not: 3/5.
    # Recall: 0, 1, 3 lie in fake balls; 7, 8 do not: 3/5.
    # Density: 0.5 in 2 real balls, 2.9 in 1, 4.5 in 1, the rest 0: 4/5.
    # Coverage: 7 and 8 have no fake closer than their radius 1: 3/5.
    real = np.array([0.0, 1.0, 3.0, 7.0, 8.0])[:, None]
    fake = np.array([0.5, 2.9, 4.5, 12.0, 12.5])[:, None]
    out = prdc_lib.prdc(real, fake, k=1)
    np.testing.assert_allclose(
        [out['precision'], out['recall'], out['density'], out['coverage']],
        [0.6, 0.6, 0.8, 0.6], rtol=1e-6)

  def test_ball_boundaries(self):
    # A fake exactly on a real ball's boundary counts for precision (closed
    # ball) but not for density or coverage (open ball).
    real, fake = np.array([[0.0], [1.0]]), np.array([[2.0], [5.0]])
    out = prdc_lib.prdc(real, fake, k=1)
    self.assertEqual(
        (out['precision'], out['recall'], out['density'], out['coverage']),
        (0.5, 1.0, 0.0, 0.0))

  @parameterized.parameters(1, 3, 5)
  def test_matches_brute_force(self, k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(90, 6))
    fake = rng.normal(size=(70, 6)) * 1.3 + 0.4
    out = prdc_lib.prdc(real, fake, k=k)
    np.testing.assert_allclose(
        [out['precision'], out['recall'], out['density'], out['coverage']],
        _brute_prdc(real, fake, k), rtol=1e-12)
    pr = metrics.precision_recall(real, fake, k=k)
    dc = metrics.density_coverage(real, fake, k=k)
    self.assertEqual((pr['precision'], pr['recall'], dc['density'],
                      dc['coverage']),
                     (out['precision'], out['recall'], out['density'],
                      out['coverage']))

  def test_blocks_cover_every_row(self):
    # More rows than one block, not a multiple of it.
    rng = np.random.default_rng(7)
    real = rng.normal(size=(1100, 3))
    fake = rng.normal(size=(1030, 3)) + 0.5
    r2 = np.asarray(prdc_lib.knn_sq_radii(real.astype(np.float32), 2,
                                          block=256))
    d2 = ((real[:, None] - real[None]) ** 2).sum(-1)
    np.testing.assert_allclose(r2, np.sort(d2, axis=1)[:, 2], rtol=1e-4,
                               atol=1e-5)
    out = prdc_lib.prdc(real, fake, k=2)
    dist = np.sqrt(((real[:, None] - fake[None]) ** 2).sum(-1))
    r_real = np.sqrt(np.sort(d2, axis=1)[:, 2])
    np.testing.assert_allclose(out['coverage'],
                               np.mean(dist.min(axis=1) < r_real))
    np.testing.assert_allclose(out['density'],
                               np.sum(dist < r_real[:, None]) / (2 * 1030))

  def test_precomputed_real_radii(self):
    rng = np.random.default_rng(9)
    real, fake = rng.normal(size=(80, 5)), rng.normal(size=(60, 5)) + 0.3
    r2 = prdc_lib.real_sq_radii(real, 4)
    d2 = ((real[:, None] - real[None]) ** 2).sum(-1)
    np.testing.assert_allclose(r2, np.sort(d2, axis=1)[:, 4], rtol=1e-5)
    self.assertEqual(prdc_lib.prdc(real, fake, 4, real_r2=r2),
                     prdc_lib.prdc(real, fake, 4))

  def test_identical_sets(self):
    x = np.random.default_rng(8).normal(size=(60, 4))
    out = prdc_lib.prdc(x, x, k=3)
    self.assertEqual((out['precision'], out['recall'], out['coverage']),
                     (1.0, 1.0, 1.0))

  def test_bad_k(self):
    with self.assertRaisesRegex(ValueError, r'k=5 must lie in \[1, 3\]'):
      metrics.precision_recall(np.zeros((4, 2)), np.zeros((6, 2)), k=5)


if __name__ == '__main__':
  absltest.main()
