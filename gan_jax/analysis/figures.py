"""Figures of sweeps: metric box plots, training curves, samples per seed.

Every figure is composed of `gan_jax.plots`' primitives, the ones a run's
own `samples.png` is drawn with, and is redrawn from a sweep directory
without training anything.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from gan_jax import plots
from gan_jax.analysis import results as results_lib


def box_plots(path: str,
              panels: dict[str, dict[str, Sequence[Optional[float]]]],
              title: str = '') -> None:
  """One panel per entry of `panels` ({y label: {group: values}}), a box
  per group with its seeds as dots (`plots.draw_boxes`), in one row."""
  width = max(3.6, 0.6 * max(len(g) for g in panels.values()) + 1.2)
  fig, axes = plots.panels(len(panels), len(panels), width, 3.3)
  for ax, (label, groups) in zip(axes, panels.items()):
    plots.draw_boxes(ax, groups)
    ax.set_ylabel(label, fontsize=8)
  plots.save(fig, path, title)


def metric_panels(rows: Sequence[dict], metrics: Sequence[str],
                  group_of=lambda row: row['config']
                  ) -> dict[str, dict[str, list]]:
  """`box_plots`' panels from result rows: per metric (by its label), per
  group (by `group_of(row)`, in first-seen order) the seeds' values in the
  metric's `results.SCALES`."""
  groups = list(dict.fromkeys(group_of(r) for r in rows))
  panels = {}
  for metric in metrics:
    scale = results_lib.SCALES.get(metric, 1.0)
    panels[results_lib.LABELS.get(metric, metric)] = {
        g: [None if r.get(metric) is None else scale * r[metric]
            for r in rows if group_of(r) == g] for g in groups}
  return panels


def training_curves(path: str, curves: dict[str, list[list[dict]]],
                    metrics: Sequence[str] = ('d_loss', 'g_loss', 'value'),
                    title: str = '', log_scale: Sequence[str] = ()) -> None:
  """One panel per metric (`plots.draw_curves`): a line per group, the mean
  over its seeds with the min-max band, against the step. `curves[group]`
  holds per-seed logs (`results.load_logs`)."""
  fig, axes = plots.panels(len(metrics), len(metrics), 3.6, 3.0)
  for ax, metric in zip(axes, metrics):
    plots.draw_curves(ax, curves, metric, log_scale=metric in log_scale)
  axes[0].legend(fontsize=6)
  plots.save(fig, path, title)


def seed_titles(finals: Sequence[dict]) -> list[str]:
  """A panel title per seed: its number and, on a toy data set, its modes
  and % high-quality samples."""
  return [f'seed {f["seed"]}' + (f': {f["modes"]} modes, '
                                 f'{100 * f["hq_fraction"]:.0f}% HQ'
                                 if 'modes' in f else '') for f in finals]


def short_label(name: str) -> str:
  """A configuration's grid values without the keys: 'loss=a,d_steps=5' ->
  'a,5'."""
  if name == 'base':
    return name
  return ','.join(part.partition('=')[2] for part in name.split(','))


def sweep_figures(sweep_dir: str) -> list[str]:
  """Writes `sweep_dir/figures/`: a box plot per metric the rows carry
  (`box_METRIC.png`), each configuration's samples per seed
  (`samples_NAME.png`) and the training curves (`curves.png`); returns the
  paths written."""
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  names = results_lib.finished(sweep_dir)
  if not names:
    return []
  rows = results_lib.load_rows(sweep_dir)
  figures = os.path.join(sweep_dir, 'figures')
  os.makedirs(figures, exist_ok=True)
  written = []
  for metric in results_lib.TABLE_METRICS:
    if any(r.get(metric) is not None for r in rows):
      written.append(os.path.join(figures, f'box_{metric}.png'))
      box_plots(written[-1], metric_panels(
          rows, [metric], lambda r: short_label(r['config'])),
                title=f'{results_lib.LABELS[metric]} per configuration (one '
                'dot per seed)')
  config = results_lib.load_config(sweep_dir, names[0])
  # Toy samples are drawn over the data's modes; images need no data.
  data = None if data_lib.is_image(config.dataset) else data_lib.build(config)
  for name in names:
    written.append(os.path.join(figures, f'samples_{name}.png'))
    plots.samples_grid(
        written[-1], np.load(os.path.join(sweep_dir, name, 'samples.npy')),
        data, seed_titles(results_lib.load_result(sweep_dir, name)['finals']),
        title=name)
  written.append(os.path.join(figures, 'curves.png'))
  training_curves(written[-1],
                  {short_label(n): results_lib.load_logs(sweep_dir, n)
                   for n in names},
                  ('d_loss', 'g_loss', 'value', 'g_grad_norm'),
                  log_scale=('g_grad_norm',))
  return written
