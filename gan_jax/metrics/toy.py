"""Mode-based metrics for Gaussian-mixture toys (VEEGAN / PacGAN definitions).

For generated samples x_1..x_N and mixture modes mu_1..mu_K of std sigma:

* a sample is *high quality* if its distance to the nearest mode is at most
  3 sigma (`hq_fraction` is the fraction of such samples);
* a mode is *covered* if at least `min_count` high-quality samples have it
  as their nearest mode (`modes`; VEEGAN counts a mode once it receives any
  high-quality sample, `min_count=1`, the default here);
* `reverse_kl` is KL(q || u) = sum_k q_k log(K q_k), where q is the histogram
  of the high-quality samples over the modes and u is uniform over the K
  modes: 0 for perfectly balanced mode weights, log K for total collapse.
"""

from __future__ import annotations

import numpy as np


def mode_metrics(samples: np.ndarray, means: np.ndarray, std: float,
                 min_count: int = 1) -> dict:
  """Modes covered, high-quality fraction and reverse KL of the mode histogram.

  Args:
    samples: (N, d) generated samples.
    means: (K, d) mode centres.
    std: the modes' standard deviation.
    min_count: high-quality samples a mode needs to count as covered.

  Returns:
    dict with `modes` (int), `num_modes` (K), `hq_fraction`, `reverse_kl`
    (None when no sample is high quality) and `mode_counts` (list of K ints).
  """
  samples = np.asarray(samples, np.float64).reshape(len(samples), -1)
  means = np.asarray(means, np.float64)
  dist = np.linalg.norm(samples[:, None, :] - means[None, :, :], axis=-1)
  nearest = np.argmin(dist, axis=1)
  hq = dist[np.arange(len(samples)), nearest] <= 3.0 * std
  counts = np.bincount(nearest[hq], minlength=len(means))
  total = counts.sum()
  if total > 0:
    q = counts / total
    nz = q > 0
    reverse_kl = float(np.sum(q[nz] * np.log(len(means) * q[nz])))
  else:
    reverse_kl = None
  return {
      'modes': int(np.sum(counts >= min_count)),
      'num_modes': int(len(means)),
      'hq_fraction': float(np.mean(hq)) if len(samples) else 0.0,
      'reverse_kl': reverse_kl,
      'mode_counts': counts.astype(int).tolist(),
  }
