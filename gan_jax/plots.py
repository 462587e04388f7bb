"""Pictures of a run: toy samples over the data's modes, image sample grids."""

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


def image_grid(images_NxHxWxC: np.ndarray, rows: int = 8,
               cols: int = 8) -> np.ndarray:
  """The first rows x cols images tiled with 1-pixel gaps: uint8 (H', W', C).

  Images in [-1, 1] map to pixels (x + 1) * 127.5, clipped; missing cells
  stay black.
  """
  images = np.asarray(images_NxHxWxC, np.float32)[:rows * cols]
  n, h, w, c = images.shape
  grid = np.zeros((rows * (h + 1) + 1, cols * (w + 1) + 1, c), np.uint8)
  pixels = np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
  for i in range(n):
    r, k = divmod(i, cols)
    grid[1 + r * (h + 1):1 + r * (h + 1) + h,
         1 + k * (w + 1):1 + k * (w + 1) + w] = pixels[i]
  return grid


def save_image_grid(path: str, images_NxHxWxC: np.ndarray, rows: int = 8,
                    cols: int = 8, scale: int = 0) -> None:
  """Writes `image_grid(...)` as a PNG, enlarged by nearest-neighbour
  `scale` (default: so the grid is at least 256 pixels wide)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  grid = image_grid(images_NxHxWxC, rows, cols)
  scale = scale or max(1, -(-256 // grid.shape[1]))
  grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
