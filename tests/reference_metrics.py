"""Independent float64 numpy/scipy computations of the sample metrics, for
the tests to compare gan_jax's against.

Written from the papers' formulas, not from gan_jax: the package computes FID
by two symmetric eigen-decompositions, KID and the k-NN metrics by jitted
float32 matrix products; these use `scipy.linalg.sqrtm`, float64 kernels and
`scipy.spatial.distance.cdist`.
"""

import warnings

import numpy as np
import scipy.linalg
import scipy.spatial
import scipy.special


def frechet(a, b):
  """FID (Heusel et al. 2017): ||mu_a - mu_b||^2
  + Tr(S_a + S_b - 2 sqrtm(S_a S_b)), unbiased covariances."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  with warnings.catch_warnings():  # rank-deficient features: still exact
    warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
    covmean = np.real(scipy.linalg.sqrtm(s_a @ s_b))
  diff = a.mean(0) - b.mean(0)
  return float(diff @ diff + np.trace(s_a + s_b - 2 * covmean))


def kid(a, b, num_subsets, subset_size=1000, seed=0):
  """Mean over subsets of the unbiased MMD^2 with k(x, y) = (x.y/d + 1)^3
  (Binkowski et al. 2018), subsets drawn as documented: numpy
  default_rng(seed), `num_subsets` draws from a, then from b."""
  m = min(subset_size, len(a), len(b))
  rng = np.random.default_rng(seed)
  idx_a = [rng.choice(len(a), m, replace=False) for _ in range(num_subsets)]
  idx_b = [rng.choice(len(b), m, replace=False) for _ in range(num_subsets)]
  values = []
  for ia, ib in zip(idx_a, idx_b):
    x = np.asarray(a, np.float64)[ia]
    y = np.asarray(b, np.float64)[ib]
    d = x.shape[1]
    kxx, kyy, kxy = [(p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y),
                                                         (x, y))]
    off = lambda k: (k.sum() - np.trace(k)) / (m * (m - 1))
    values.append(off(kxx) + off(kyy) - 2 * kxy.mean())
  return float(np.mean(values))


def inception_score(logits, num_splits=10):
  """exp E_x KL(p(y|x) || p(y)) (Salimans et al. 2016), mean over splits."""
  p = scipy.special.softmax(np.asarray(logits, np.float64), axis=1)
  scores = []
  for part in np.array_split(p, num_splits):
    marginal = part.mean(0)
    scores.append(np.exp(np.mean(np.sum(
        part * (np.log(part) - np.log(marginal)), axis=1))))
  return float(np.mean(scores))


def knn_radius(x, k):
  """Distance from each row of x to its k-th nearest other row."""
  d = scipy.spatial.distance.cdist(x, x)
  return np.sort(d, axis=1)[:, k]  # column 0 is the row itself


def prdc(real, fake, k_pr=3, k_dc=5):
  """Improved precision/recall (Kynkaanniemi et al. 2019, closed balls) and
  density/coverage (Naeem et al. 2020, open balls)."""
  real = np.asarray(real, np.float64)
  fake = np.asarray(fake, np.float64)
  d = scipy.spatial.distance.cdist(fake, real)  # (M, N)
  r_real, r_fake = knn_radius(real, k_pr), knn_radius(fake, k_pr)
  precision = np.mean(np.any(d <= r_real[None, :], axis=1))
  recall = np.mean(np.any(d.T <= r_fake[None, :], axis=1))
  r_real = knn_radius(real, k_dc)
  density = np.sum(d < r_real[None, :]) / (k_dc * len(fake))
  coverage = np.mean(d.min(axis=0) < r_real)
  return precision, recall, density, coverage
