"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel.

Bińkowski et al. 2018 ("Demystifying MMD GANs", Sec. 4 and App. D): with the
kernel

    k(x, y) = (x . y / d + 1)^3,       d = feature dimension,

and samples X = {x_1..x_m} ~ P, Y = {y_1..y_n} ~ Q, the unbiased estimator of
MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y) is

    MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j)
            + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
            - 2/(mn)     sum_{i, j}   k(x_i, y_j).

Its expectation is the population MMD^2 exactly (the diagonal terms, whose
expectation E k(x, x) differs from E k(x, x'), are left out), so it can be
negative for close distributions. KID is the mean of MMD^2_u over
`num_subsets` random subsets of `subset_size` from each set (drawn without
replacement within a subset, independently across subsets); its standard
deviation over subsets is reported beside it.

The Gram matrices are float32 matrix products, jitted over all subsets at
once; each row of each kernel matrix is summed in float32 (at most
`subset_size` terms) and the rows are summed and combined in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """k(x, y) = (x . y / d + 1)^3 for all pairs of rows, in float64 (numpy)."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """MMD^2_u of one pair of samples x (m, d), y (n, d), in float64 (numpy)."""
  m, n = len(x), len(y)
  kxx = polynomial_kernel(x, x)
  kyy = polynomial_kernel(y, y)
  kxy = polynomial_kernel(x, y)
  return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
               + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
               - 2.0 * kxy.sum() / (m * n))


@jax.jit
def _kernel_row_sums(x, y, idx_x, idx_y):
  """Row sums of K_xx, K_yy, K_xy and the diagonals of K_xx, K_yy, per subset."""
  dim = x.shape[1]

  def one(ix, iy):
    xs, ys = x[ix], y[iy]
    kxx = (xs @ xs.T / dim + 1.0) ** 3
    kyy = (ys @ ys.T / dim + 1.0) ** 3
    kxy = (xs @ ys.T / dim + 1.0) ** 3
    return (kxx.sum(1), kyy.sum(1), kxy.sum(1), jnp.diagonal(kxx),
            jnp.diagonal(kyy))

  return jax.lax.map(lambda ii: one(*ii), (idx_x, idx_y))


def kernel_inception_distance(feats_a: np.ndarray, feats_b: np.ndarray,
                              num_subsets: int = 100,
                              subset_size: int = 1000,
                              seed: int = 0) -> dict:
  """KID between feats_a (n_a, d) and feats_b (n_b, d).

  Args:
    feats_a, feats_b: feature arrays with the same dimension d.
    num_subsets: number of random subset pairs (100 in Bińkowski et al.).
    subset_size: samples per subset; min(subset_size, n_a, n_b) is used.
    seed: seed of the subset draws (numpy default_rng).

  Returns:
    {'kid_mean', 'kid_std', 'kid_subsets', 'kid_subset_size'}: the mean and
    standard deviation (ddof=0) of MMD^2_u over the subsets.
  """
  a = np.asarray(feats_a, np.float32)
  b = np.asarray(feats_b, np.float32)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise ValueError(f'features must be (n, d) arrays of one dimension d, got '
                     f'{a.shape} and {b.shape}')
  m = min(subset_size, len(a), len(b))
  if m < 2:
    raise ValueError(f'KID needs at least 2 samples per set, got {len(a)} and '
                     f'{len(b)}')
  rng = np.random.default_rng(seed)
  idx_a = np.stack([rng.choice(len(a), m, replace=False)
                    for _ in range(num_subsets)])
  idx_b = np.stack([rng.choice(len(b), m, replace=False)
                    for _ in range(num_subsets)])
  sums = _kernel_row_sums(jnp.asarray(a), jnp.asarray(b), jnp.asarray(idx_a),
                          jnp.asarray(idx_b))
  sxx, syy, sxy, dxx, dyy = (np.asarray(s, np.float64).sum(axis=1)
                             for s in sums)
  values = ((sxx - dxx) / (m * (m - 1)) + (syy - dyy) / (m * (m - 1))
            - 2.0 * sxy / (m * m))
  return {'kid_mean': float(values.mean()), 'kid_std': float(values.std()),
          'kid_subsets': int(num_subsets), 'kid_subset_size': int(m)}
