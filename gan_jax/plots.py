"""Pictures: the drawing primitives every gan_jax figure is made of.

A run writes its `samples.png` with `toy_samples` (one seed), `samples_grid`
(one panel per seed) or `save_image_grid` (images, pixel-exact);
`gan_jax.analysis.figures` composes the same primitives into the sweep and
report figures. Each `draw_*` draws on one matplotlib Axes:

    draw_toy_samples(ax, samples, data)  samples over the modes (2-D) or
                                         against the density p_data (1-D)
    draw_images(ax, images)              the first images as one mosaic
    draw_boxes(ax, groups)               a box per group, its seeds as dots
    draw_curves(ax, curves, metric)      mean over seeds, min-max band

and `save(fig, path)` writes a figure atomically (`gan_jax.fileio`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from gan_jax import fileio  # pylint: disable=g-import-not-at-top


def draw_toy_samples(ax, samples_Nxd: np.ndarray, data,
                     real_Nxd: Optional[np.ndarray] = None, dot_size: float = 2,
                     legend: bool = False) -> None:
  """Generated samples against a Gaussian-mixture data set.

  2-D: the samples scattered over a circle of radius 3 std around each mode
  (the high-quality region of VEEGAN, Srivastava et al. 2017), over `real`
  data samples in grey when given. 1-D: a histogram of the samples over the
  true density p_data(x), between the 0.5th and 99.5th percentiles or 6 std
  beyond the outer modes, whichever is wider.
  """
  if data.shape[0] == 2:
    if real_Nxd is not None:
      ax.scatter(real_Nxd[:, 0], real_Nxd[:, 1], s=dot_size, c='0.75',
                 label='data', rasterized=True)
    ax.scatter(samples_Nxd[:, 0], samples_Nxd[:, 1], s=dot_size, alpha=0.4,
               c='tab:blue', label='G(z)', rasterized=True)
    for mu in data.means:
      ax.add_patch(plt.Circle(mu, 3 * data.std, fill=False, color='tab:red',
                              lw=0.8))
    ax.scatter(data.means[:, 0], data.means[:, 1], marker='x',
               s=10 * dot_size, c='tab:red', label='modes (3 std)')
    lim = np.abs(data.means).max() + 1.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect('equal')
    if legend:
      ax.legend(loc='upper right', fontsize=7)
  else:
    lo = float(min(data.means.min() - 6 * data.std,
                   np.percentile(samples_Nxd, 0.5)))
    hi = float(max(data.means.max() + 6 * data.std,
                   np.percentile(samples_Nxd, 99.5)))
    grid = np.linspace(lo, hi, 800)
    ax.hist(samples_Nxd[:, 0], bins=120, range=(lo, hi), density=True,
            alpha=0.5, label='G(z)')
    ax.plot(grid, data.density(grid), 'r-', lw=1.2, label='p_data')
    if legend:
      ax.legend(fontsize=7)


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


def rows_by_class(images_NxHxWxC: np.ndarray, labels_N: np.ndarray,
                  num_classes: int, per_class: int) -> np.ndarray:
  """The first `per_class` images of each class 0..K-1, class k in row k:
  (K * per_class, H, W, C), a class with fewer images padded with blank
  (-1) cells; tile with `image_grid(..., rows=K, cols=per_class)`."""
  images = np.asarray(images_NxHxWxC, np.float32)
  out = np.full((num_classes, per_class) + images.shape[1:], -1.0, np.float32)
  for k in range(num_classes):
    chosen = images[np.asarray(labels_N) == k][:per_class]
    out[k, :len(chosen)] = chosen
  return out.reshape((-1,) + images.shape[1:])


def draw_images(ax, images_NxHxWxC: np.ndarray, rows: int = 4,
                cols: int = 4) -> None:
  """The first rows x cols images as one `image_grid` mosaic, no axes."""
  grid = image_grid(images_NxHxWxC, rows, cols)
  ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap='gray',
            vmin=0, vmax=255)
  ax.axis('off')


def draw_boxes(ax, groups: dict[str, Sequence[Optional[float]]]) -> None:
  """A box plot per group (median, quartiles, whiskers; no outlier marks)
  with every value drawn as a dot beside it; None and non-finite values are
  left out."""
  names = list(groups)
  values = [np.asarray([v for v in groups[n]
                        if v is not None and np.isfinite(v)], float)
            for n in names]
  ax.boxplot(values, showfliers=False)
  for i, v in enumerate(values):
    jitter = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else 0.0 * v
    ax.scatter(i + 1.0 + jitter, v, s=10, c='tab:blue', zorder=3)
  ax.set_xticks(range(1, len(names) + 1), names)
  ax.tick_params(axis='x', labelsize=7, rotation=20)


def draw_curves(ax, curves: dict[str, list[list[dict]]], metric: str,
                log_scale: bool = False) -> None:
  """One line per group against the step: the mean of `metric` over seeds,
  with the min-max band. `curves[group]` holds per-seed logs, each a list of
  records with `step` and the metric (a missing value is NaN)."""
  for k, (group, logs) in enumerate(curves.items()):
    steps = np.asarray([r['step'] for r in logs[0]])
    ys = np.asarray([[r.get(metric, np.nan) for r in log] for log in logs],
                    float)
    ax.plot(steps, np.nanmean(ys, 0), color=f'C{k}', lw=1, label=group)
    ax.fill_between(steps, np.nanmin(ys, 0), np.nanmax(ys, 0), color=f'C{k}',
                    alpha=0.15, lw=0)
  if log_scale:
    ax.set_yscale('log')
  ax.set_xlabel('step')
  ax.set_title(metric, fontsize=9)


def panels(count: int, columns: int, width: float, height: float,
           title_room: float = 0.0):
  """A figure of `count` panels, `columns` a row, each width x height
  inches plus `title_room` inches above them all: (figure, the first `count`
  axes); spare cells are hidden."""
  rows = -(-count // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(width * columns,
                                                   height * rows + title_room),
                           dpi=110, squeeze=False)
  for ax in axes.flat[count:]:
    ax.axis('off')
  return fig, list(axes.flat[:count])


def save(fig, path: str, title: str = '') -> None:
  """Writes `fig` to `path` (format from its extension) atomically, with
  `title` above every panel, and closes it."""
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp)
  plt.close(fig)


def toy_samples(path: str, samples_Nxd: np.ndarray, data, title: str = '',
                real: Optional[np.ndarray] = None) -> None:
  """A run's samples.png on a toy data set: `draw_toy_samples` with a legend."""
  fig, ax = plt.subplots(figsize=(5, 5) if data.shape[0] == 2 else (6, 3.5),
                         dpi=120)
  draw_toy_samples(ax, samples_Nxd, data, real, legend=True)
  ax.set_title(title, fontsize=9)
  save(fig, path)


def samples_grid(path: str, samples: np.ndarray, data,
                 titles: Sequence[str], title: str = '',
                 columns: Optional[int] = None) -> None:
  """One panel per leading index of `samples` (a seed, a configuration):
  toy samples (M, N, dims) over the data's modes, or images (M, N, H, W, C)
  in [-1, 1] as a mosaic of the first 16; `columns` panels a row (default
  min(M, 5))."""
  fig, axes = panels(len(samples), columns or min(len(samples), 5), 2.2, 2.2,
                     title_room=0.4)
  for ax, member, panel_title in zip(axes, samples, titles):
    if samples.ndim == 3:
      draw_toy_samples(ax, member, data, dot_size=1)
      ax.set_xticks([])
      ax.set_yticks([])
    else:
      draw_images(ax, member)
    ax.set_title(panel_title, fontsize=7)
  save(fig, path, title)


def save_image_grid(path: str, images_NxHxWxC: np.ndarray, rows: int = 8,
                    cols: int = 8, scale: int = 0) -> None:
  """Writes `image_grid(...)` as a PNG atomically, enlarged by
  nearest-neighbour `scale` (default: so the grid is at least 256 pixels
  wide)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  grid = image_grid(images_NxHxWxC, rows, cols)
  scale = scale or max(1, -(-256 // grid.shape[1]))
  grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
  with fileio.atomic_path(path) as tmp:
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(tmp)
