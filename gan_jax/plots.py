"""Pictures of a run: generated samples over the data's modes."""

from __future__ import annotations

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def toy_samples(path: str, samples: np.ndarray, data, title: str = '',
                real: np.ndarray | None = None) -> None:
  """Writes a PNG of generated samples against a Gaussian-mixture data set.

  2-D: samples scattered over circles of radius 3 std around each mode (the
  high-quality region), over `real` data samples in grey when given. 1-D: a
  histogram of the samples over the true density.
  """
  fig, ax = plt.subplots(figsize=(5, 5) if data.shape[0] == 2 else (6, 3.5),
                         dpi=120)
  if data.shape[0] == 2:
    if real is not None:
      ax.scatter(real[:, 0], real[:, 1], s=2, c='0.75', label='data',
                 rasterized=True)
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, c='tab:blue',
               label='G(z)', rasterized=True)
    for mu in data.means:
      ax.add_patch(plt.Circle(mu, 3 * data.std, fill=False, color='tab:red',
                              lw=0.8))
    ax.scatter(data.means[:, 0], data.means[:, 1], marker='x', s=20,
               c='tab:red', label='modes (3 std)')
    lim = np.abs(data.means).max() + 1.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect('equal')
    ax.legend(loc='upper right', fontsize=7)
  else:
    lo = float(min(data.means.min() - 6 * data.std, np.percentile(samples, 0.5)))
    hi = float(max(data.means.max() + 6 * data.std, np.percentile(samples, 99.5)))
    grid = np.linspace(lo, hi, 800)
    ax.hist(samples[:, 0], bins=120, range=(lo, hi), density=True, alpha=0.5,
            label='G(z)')
    ax.plot(grid, data.density(grid), 'r-', lw=1.2, label='p_data')
    ax.legend(fontsize=7)
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
