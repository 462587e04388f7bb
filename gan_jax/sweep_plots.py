"""Figures of a sweep: metric box plots per loss, sample grids, training curves.

All functions write one PNG and take plain numbers (rows of `results.csv`,
per-seed training logs, sample arrays), so they can be redrawn from a sweep
directory without training anything.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def _scatter_toy(ax, samples: np.ndarray, data, title: str) -> None:
  if data.shape[0] == 2:
    ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4, c='tab:blue',
               rasterized=True)
    ax.scatter(data.means[:, 0], data.means[:, 1], marker='x', s=12,
               c='tab:red', lw=0.8)
    lim = np.abs(data.means).max() + 1.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect('equal')
  else:
    lo = float(data.means.min() - 6 * data.std)
    hi = float(data.means.max() + 6 * data.std)
    grid = np.linspace(lo, hi, 400)
    ax.hist(np.clip(samples[:, 0], lo, hi), bins=80, range=(lo, hi),
            density=True, alpha=0.5)
    ax.plot(grid, data.density(grid), 'r-', lw=1)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_title(title, fontsize=7)


def samples_grid(path: str, samples: np.ndarray, data,
                 titles: Sequence[str], title: str = '',
                 columns: Optional[int] = None) -> None:
  """One panel per leading index of `samples` (M, N, dims): toy samples over
  the data's modes, or images (M, N, H, W, C) in [-1, 1] as a mosaic of the
  first 16."""
  m = len(samples)
  columns = columns or min(m, 5)
  rows = -(-m // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns,
                                                   2.2 * rows + 0.4),
                           dpi=110, squeeze=False)
  for i, ax in enumerate(axes.flat):
    if i >= m:
      ax.axis('off')
      continue
    if samples.ndim == 3:
      _scatter_toy(ax, samples[i], data, titles[i])
    else:
      images = np.clip((samples[i][:16] + 1) / 2, 0, 1)
      side = int(np.ceil(np.sqrt(len(images))))
      h, w, c = images.shape[1:]
      canvas = np.ones((side * h, side * w, c))
      for j, image in enumerate(images):
        r, q = divmod(j, side)
        canvas[r * h:(r + 1) * h, q * w:(q + 1) * w] = image
      ax.imshow(canvas.squeeze(-1) if c == 1 else canvas, cmap='gray')
      ax.axis('off')
      ax.set_title(titles[i], fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def metric_boxplots(path: str, values: dict[str, Sequence[float]],
                    metric: str, title: str = '',
                    published: Optional[dict[str, float]] = None) -> None:
  """A box plot of `metric` per group (one box per key, its seeds as dots);
  `published` values, if given, are drawn as labelled horizontal lines."""
  names = list(values)
  fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2.5, 3.4), dpi=110)
  data = [np.asarray([v for v in values[n] if v is not None and np.isfinite(v)],
                     float) for n in names]
  ax.boxplot(data, showfliers=False)
  ax.set_xticks(range(1, len(names) + 1), names)
  for i, d in enumerate(data):
    jitter = np.linspace(-0.12, 0.12, len(d)) if len(d) > 1 else np.zeros(1)
    ax.scatter(np.full(len(d), i + 1.0) + jitter[:len(d)], d, s=10,
               c='tab:blue', zorder=3)
  for k, (label, value) in enumerate((published or {}).items()):
    ax.axhline(value, color=f'C{k + 1}', ls='--', lw=0.8, label=label)
  if published:
    ax.legend(fontsize=6, loc='best')
  ax.set_ylabel(metric)
  ax.tick_params(axis='x', labelsize=7, rotation=20)
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def training_curves(path: str, curves: dict[str, list[list[dict]]],
                    metrics: Sequence[str] = ('d_loss', 'g_loss', 'value'),
                    title: str = '', log_scale: Sequence[str] = ()) -> None:
  """One panel per metric, one line per group (its mean over seeds, with the
  min-max band), against the step. `curves[group]` is a list of per-seed
  logs, each a list of records with `step` and the metrics."""
  fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.0),
                           dpi=110, squeeze=False)
  for ax, metric in zip(axes[0], metrics):
    for k, (group, logs) in enumerate(curves.items()):
      steps = np.asarray([r['step'] for r in logs[0]])
      ys = np.asarray([[r.get(metric, np.nan) for r in log] for log in logs],
                      float)
      ax.plot(steps, np.nanmean(ys, 0), color=f'C{k}', lw=1, label=group)
      ax.fill_between(steps, np.nanmin(ys, 0), np.nanmax(ys, 0),
                      color=f'C{k}', alpha=0.15, lw=0)
    if metric in log_scale:
      ax.set_yscale('log')
    ax.set_xlabel('step')
    ax.set_title(metric, fontsize=9)
  axes[0][0].legend(fontsize=6)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
