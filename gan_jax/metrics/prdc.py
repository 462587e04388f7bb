"""k-NN precision/recall and density/coverage of generated samples.

Both pairs estimate each distribution's support as a union of balls around
its samples, with radius the distance to the sample's k-th nearest neighbour
in its own set (NND_k; the sample itself is not counted among its
neighbours). With real features X = {x_1..x_N} and fake Y = {y_1..y_M}:

Improved precision and recall (Kynkäänniemi et al. 2019, "Improved precision
and recall metric for assessing generative models", Eq. 1-2; closed balls,
`<=`, as in their released code):

    precision = 1/M sum_j 1[ exists i: ||y_j - x_i|| <= NND_k(x_i) ]
    recall    = 1/N sum_i 1[ exists j: ||x_i - y_j|| <= NND_k(y_j) ]

Density and coverage (Naeem et al. 2020, "Reliable fidelity and diversity
metrics for generative models", Eq. 3-4; open balls, `<`, as in their
released `prdc` code), which use only the real balls:

    density  = 1/(kM) sum_j sum_i 1[ ||y_j - x_i|| < NND_k(x_i) ]
    coverage = 1/N    sum_i 1[ min_j ||x_i - y_j|| < NND_k(x_i) ]

Density can exceed 1 (fakes packed where real balls overlap); coverage and the
others lie in [0, 1].

Computation: features are centred on the real mean in float64 and cast to
float32; squared distances ||a||^2 + ||b||^2 - 2 a.b are jitted float32
matrix products over blocks of rows, so N = M = 10,000 at 2,048 dimensions
never holds more than one block x N distances. The k-th neighbour distance
is the row minimum after removing the arg-min k times; all comparisons are
between squared distances.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

_BLOCK = 1024


def _sq_dists(a, b, b_norms):
  a_norms = jnp.sum(a * a, axis=1)
  return jnp.maximum(a_norms[:, None] + b_norms[None, :] - 2.0 * a @ b.T, 0.0)


def _blocks(x, block):
  """x (n, d) padded with zero rows to (num_blocks, block, d)."""
  n = x.shape[0]
  num = -(-n // block)
  x = jnp.pad(x, ((0, num * block - n), (0, 0)))
  return x.reshape(num, block, x.shape[1])


@functools.partial(jax.jit, static_argnames=('k', 'block'))
def knn_sq_radii(x, k: int, block: int = _BLOCK):
  """Squared distance from each row of x to its k-th nearest other row."""
  norms = jnp.sum(x * x, axis=1)

  def one(xb):
    d2 = _sq_dists(xb, x, norms)
    cols = jnp.arange(d2.shape[1])[None, :]

    # The k+1 smallest include the row itself (distance 0). Removing the
    # arg-min k times and taking the minimum is exact with ties, and on CPU
    # much faster than lax.top_k over long rows.
    def drop_min(_, d):
      return jnp.where(cols == jnp.argmin(d, axis=1)[:, None], jnp.inf, d)

    return jnp.min(jax.lax.fori_loop(0, k, drop_min, d2), axis=1)

  return jax.lax.map(one, _blocks(x, block)).reshape(-1)[:x.shape[0]]


@functools.partial(jax.jit, static_argnames=('block',))
def _prdc_counts(real, fake, real_r2, fake_r2, block: int = _BLOCK):
  """Per-fake precision hits and density counts; per-real recall and coverage."""
  n_fake = fake.shape[0]
  real_norms = jnp.sum(real * real, axis=1)
  fake_b = _blocks(fake, block)
  r2_b = _blocks(fake_r2[:, None], block)[..., 0]
  valid_b = _blocks(jnp.ones((n_fake, 1), bool), block)[..., 0]

  def body(carry, xs):
    recalled, min_d2 = carry
    yb, sb, vb = xs
    d2 = _sq_dists(yb, real, real_norms)                  # (block, N)
    precise = jnp.any(d2 <= real_r2[None, :], axis=1)
    density = jnp.sum(d2 < real_r2[None, :], axis=1)
    in_fake_ball = (d2 <= sb[:, None]) & vb[:, None]
    recalled = recalled | jnp.any(in_fake_ball, axis=0)
    min_d2 = jnp.minimum(min_d2, jnp.min(jnp.where(vb[:, None], d2, jnp.inf),
                                         axis=0))
    return (recalled, min_d2), (precise, density)

  init = (jnp.zeros(real.shape[0], bool), jnp.full(real.shape[0], jnp.inf))
  (recalled, min_d2), (precise, density) = jax.lax.scan(
      body, init, (fake_b, r2_b, valid_b))
  return (precise.reshape(-1)[:n_fake], density.reshape(-1)[:n_fake],
          recalled, min_d2 < real_r2)


def _check(real, fake, k):
  real = np.asarray(real, np.float64)
  fake = np.asarray(fake, np.float64)
  if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
    raise ValueError(f'features must be (n, d) arrays of one dimension d, got '
                     f'{real.shape} and {fake.shape}')
  if not 1 <= k < min(len(real), len(fake)):
    raise ValueError(f'k={k} must lie in [1, {min(len(real), len(fake)) - 1}] '
                     f'for {len(real)} real and {len(fake)} fake samples')
  centre = real.mean(axis=0)
  return (jnp.asarray(real - centre, jnp.float32),
          jnp.asarray(fake - centre, jnp.float32))


def real_sq_radii(real: np.ndarray, k: int) -> np.ndarray:
  """Squared NND_k of each real sample, computed as `prdc` does (to reuse)."""
  real = np.asarray(real, np.float64)
  return np.asarray(knn_sq_radii(
      jnp.asarray(real - real.mean(axis=0), jnp.float32), k))


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5,
         real_r2: np.ndarray | None = None) -> dict:
  """Precision, recall, density and coverage of fake (M, d) against real (N, d).

  `real_r2`, if given, must be `real_sq_radii(real, k)` (a fixed reference
  set's radii, computed once). Returns {'precision', 'recall', 'density',
  'coverage', 'prdc_k'}.
  """
  real, fake = _check(real, fake, k)
  real_r2 = knn_sq_radii(real, k) if real_r2 is None else jnp.asarray(real_r2)
  fake_r2 = knn_sq_radii(fake, k)
  precise, density, recalled, covered = _prdc_counts(real, fake, real_r2,
                                                     fake_r2)
  return {'precision': float(np.mean(np.asarray(precise))),
          'recall': float(np.mean(np.asarray(recalled))),
          'density': float(np.asarray(density, np.float64).sum()
                           / (k * fake.shape[0])),
          'coverage': float(np.mean(np.asarray(covered))),
          'prdc_k': int(k)}


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3,
                     real_r2: np.ndarray | None = None) -> dict:
  """Kynkäänniemi et al.'s precision and recall (k = 3 in their paper).

  Example:
    >>> real = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> fake = np.array([[0.5], [10.0]])
    >>> precision_recall(real, fake, k=1)['precision']   # 0.5 is in a ball
    0.5
  """
  out = prdc(real, fake, k, real_r2)
  return {'precision': out['precision'], 'recall': out['recall'],
          'pr_k': int(k)}


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5,
                     real_r2: np.ndarray | None = None) -> dict:
  """Naeem et al.'s density and coverage (k = 5 in their paper)."""
  out = prdc(real, fake, k, real_r2)
  return {'density': out['density'], 'coverage': out['coverage'],
          'dc_k': int(k)}
