"""Section (a) of the reproduction report: PacGAN's synthetic-data protocol.

Our rows: the sweeps `experiments/sweeps/pacgan_{ring,grid}.cfg` (GAN and
PacGAN2/3/4, `--pack`), `pacgan_{ring,grid}_unrolled.cfg` (Unrolled GAN,
k = 5) and `pacgan_grid_losses.cfg` (the project's other losses), every one
the protocol of `experiments/pacgan_{ring,grid}_gan.cfg` at the report's CPU
budget, 10 seeds. Each row: modes, % high-quality samples and reverse KL as
mean ± standard error over seeds (as PacGAN's Table 1 reports them), beside
the published rows, and a learning curve per seed (`--eval_every`), from
which the text says whether the curves had flattened at the budget.

Published rows (2,500 samples per evaluation in both papers):
  Lin et al. 2018 (PacGAN, NeurIPS), Table 1: 10 runs, mean ± standard
    error, their protocol (radius-1 ring, std 0.01; grid spacing 2, std
    0.05; 400,000 steps).
  Srivastava et al. 2017 (VEEGAN), Table 1: their own protocol (ring of
    radius 2, std 0.02; their networks and training); their Unrolled GAN
    and VEEGAN rows; no reverse KL, no spread.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from gan_jax.analysis import results as results_lib

METRICS = ('modes', 'hq_fraction', 'reverse_kl')
PACGAN_TABLE1 = {  # method: (modes, se), (% HQ, se), (reverse KL, se)
    'ring8': [('GAN', (6.3, 0.5), (98.2, 0.2), (0.45, 0.09)),
              ('ALI', (6.6, 0.3), (97.6, 0.4), (0.36, 0.04)),
              ('PacGAN2', (7.9, 0.1), (95.6, 2.0), (0.07, 0.03)),
              ('PacGAN3', (7.8, 0.1), (97.7, 0.3), (0.10, 0.02)),
              ('PacGAN4', (7.8, 0.1), (95.9, 1.4), (0.07, 0.02))],
    'grid25': [('GAN', (17.3, 0.8), (94.8, 0.7), (0.70, 0.07)),
               ('ALI', (24.1, 0.4), (95.7, 0.6), (0.14, 0.03)),
               ('PacGAN2', (23.8, 0.7), (91.3, 0.8), (0.13, 0.04)),
               ('PacGAN3', (24.6, 0.4), (94.2, 0.4), (0.06, 0.02)),
               ('PacGAN4', (24.8, 0.2), (93.6, 0.6), (0.04, 0.01))],
}
VEEGAN_TABLE1 = {  # method: modes, % HQ (VEEGAN's own protocol)
    'ring8': [('Unrolled GAN', 7.6, 35.6), ('VEEGAN', 8.0, 52.9)],
    'grid25': [('Unrolled GAN', 23.6, 16.0), ('VEEGAN', 24.6, 40.0)],
}
ROW_NAMES = {'pack=1': 'GAN', 'pack=2': 'PacGAN2', 'pack=3': 'PacGAN3',
             'pack=4': 'PacGAN4', 'unroll_steps=5': 'Unrolled GAN (k = 5)'}


def row_label(name: str) -> str:
  """A configuration's name in the report: PacGAN's row names, or the loss."""
  return ROW_NAMES.get(name, name.replace('loss=', 'GAN, loss '))


def _rows_in_order(directories: Sequence[str]) -> list[tuple[str, str]]:
  """(directory, configuration) of every finished configuration, GAN and
  PacGAN2/3/4 first (their order in ROW_NAMES), then the others."""
  found = [(d, n) for d in directories if os.path.isdir(d)
           for n in results_lib.finished(d)]
  order = list(ROW_NAMES)
  return sorted(found, key=lambda dn: (order.index(dn[1]) if dn[1] in order
                                       else len(order), dn[1]))


def curve(directory: str, name: str, metric: str
          ) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values (seeds, steps)) of a configuration's learning curve: the
  in-training evaluations (`--eval_every`) and the final one."""
  logs = results_lib.load_logs(directory, name)
  finals = results_lib.load_result(directory, name)['finals']
  steps = sorted({r['step'] for log in logs for r in log if metric in r})
  values = []
  for log, final in zip(logs, finals):
    at = {r['step']: r.get(metric) for r in log if metric in r}
    values.append([np.nan if at.get(s) is None else at[s] for s in steps]
                  + [np.nan if final.get(metric) is None else final[metric]])
  last = results_lib.load_config(directory, name).num_steps
  return np.array(steps + [last]), np.array(values, np.float64)


def plateau(directory: str, name: str,
            metrics: Sequence[str] = ('modes', 'hq_fraction')) -> str:
  """How the mean curves moved over their last interval: per metric the
  change of the mean between the last two evaluations with the standard
  error of the per-seed changes, and 'still moving' when any change is
  resolved (beyond two standard errors). A flat curve is not a converged
  one: the table beside it says where the rows stand."""
  parts, moving, span = [], False, ''
  for metric in metrics:
    steps, values = curve(directory, name, metric)
    if len(steps) < 2:
      return 'one evaluation only'
    change = values[:, -1] - values[:, -2]
    mean, se, _ = results_lib.mean_se(change[np.isfinite(change)])
    moving = moving or results_lib.resolved(mean, se)
    scale = results_lib.SCALES.get(metric, 1.0)
    parts.append(f'{results_lib.LABELS.get(metric, metric)} '
                 f'{scale * mean:+.2f} ± {scale * se:.2f}')
    span = f'steps {steps[-2]}–{steps[-1]}'
  return (', '.join(parts) + f' over {span} ('
          + ('still moving' if moving else 'flat within standard errors')
          + ')')


def our_table(directories: Sequence[str]) -> tuple[list[str], list[dict]]:
  """Markdown lines of our rows (mean ± SE over seeds) and the rows."""
  lines = ['| row | modes | % HQ | reverse KL | seeds | steps | curve over '
           'the last interval |', '|---|---|---|---|---|---|---|']
  rows = []
  for directory, name in _rows_in_order(directories):
    finals = results_lib.load_result(directory, name)['finals']
    config = results_lib.load_config(directory, name)
    cells = [results_lib.format_mean_se(m, [f.get(m) for f in finals])
             for m in METRICS]
    n_kl = sum(f.get('reverse_kl') is not None for f in finals)
    if n_kl < len(finals):
      cells[2] += f' (n = {n_kl})'
    lines.append(f'| {row_label(name)} | ' + ' | '.join(cells) +
                 f' | {len(finals)} | {config.num_steps} | '
                 f'{plateau(directory, name)} |')
    rows.append({'name': name, 'directory': directory, 'finals': finals,
                 'config': config})
  return lines, rows


def published_table(dataset: str) -> list[str]:
  lines = ['| method | modes | % HQ | reverse KL | source |',
           '|---|---|---|---|---|']
  for method, modes, hq, kl in PACGAN_TABLE1[dataset]:
    lines.append(f'| {method} | {modes[0]} ± {modes[1]} | {hq[0]} ± {hq[1]} '
                 f'| {kl[0]:.2f} ± {kl[1]:.2f} | PacGAN Table 1 (their '
                 'protocol, 400k steps) |')
  for method, modes, hq in VEEGAN_TABLE1[dataset]:
    lines.append(f'| {method} | {modes} | {hq} | – | VEEGAN Table 1 (their '
                 'protocol and layout) |')
  return lines


def comparison(rows: list[dict], dataset: str) -> list[str]:
  """Our GAN and PacGAN rows against the published ones: the difference of
  means and whether the published band (mean ± its SE, widened by ours)
  contains ours."""
  published = {m: (modes, hq) for m, modes, hq, _ in PACGAN_TABLE1[dataset]}
  lines = []
  for row in rows:
    label = row_label(row['name'])
    if label not in published:
      continue
    parts = []
    for (metric, scale), (p_mean, p_se) in zip(
        (('modes', 1.0), ('hq_fraction', 100.0)), published[label]):
      mean, se, _ = results_lib.mean_se(
          [scale * f[metric] for f in row['finals']])
      diff = mean - p_mean
      both = float(np.hypot(se, p_se))
      verdict = ('within' if not results_lib.resolved(diff, both)
                 else 'outside')
      what = 'modes' if metric == 'modes' else '% HQ'
      parts.append(f'{what} {mean:.2f} ± {se:.2f} against {p_mean} ± {p_se} '
                   f'({verdict} two combined standard errors)')
    lines.append(f'* {label}: ' + '; '.join(parts) + f' (ours at '
                 f'{row["config"].num_steps} steps, theirs at 400,000).')
  return lines


def stage(rows: list[dict], dataset: str) -> list[str]:
  """Where the rows stand at the budget: their % HQ against the published
  range (a G whose samples mostly miss the modes covers modes by spread,
  not by quality)."""
  ours = [100 * np.mean([f['hq_fraction'] for f in row['finals']])
          for row in rows]
  theirs = [hq[0] for _, _, hq, _ in PACGAN_TABLE1[dataset]]
  return [f'At {rows[0]["config"].num_steps} steps every row\'s mean % HQ '
          f'lies in {min(ours):.1f}–{max(ours):.1f}, against '
          f'{min(theirs):.1f}–{max(theirs):.1f} published at 400,000 steps: '
          'these rows are the start of training, where the mode counts '
          'measure how widely G spreads rather than how well it covers the '
          'modes, and they say nothing about the published ordering of '
          'GAN and PacGAN.']


def curves_figure(path: str, rows: list[dict], dataset: str) -> None:
  """Modes and % HQ against steps: one colour per row, a thin line per seed
  and the thick mean."""
  from gan_jax import plots  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plots.panels(2, 2, 4.6, 3.4)
  colours = plt.cm.tab10(np.arange(len(rows)) % 10)
  for ax, metric in zip(axes, ('modes', 'hq_fraction')):
    scale = results_lib.SCALES.get(metric, 1.0)
    for colour, row in zip(colours, rows):
      steps, values = curve(row['directory'], row['name'], metric)
      for seed_values in values:
        ax.plot(steps, scale * seed_values, color=colour, lw=0.5, alpha=0.4)
      ax.plot(steps, scale * np.nanmean(values, axis=0), color=colour, lw=2,
              label=row_label(row['name']))
    ax.set_xlabel('step', fontsize=8)
    ax.set_ylabel(results_lib.LABELS[metric], fontsize=8)
    ax.tick_params(labelsize=7)
  axes[0].legend(fontsize=6)
  plots.save(fig, path, f'{dataset}: learning curves (thin: seeds; thick: '
             'mean)')


def section(dataset: str, directories: Sequence[str],
            figure: Optional[tuple[str, str]]) -> list[str]:
  """The lines of (a) for one data set; `figure` = (path, relative path) of
  its learning-curve figure."""
  table, rows = our_table(directories)
  title = {'ring8': '2D-ring (8 modes)', 'grid25': '2D-grid (25 modes)'}
  lines = [f'### {title.get(dataset, dataset)}', '']
  if not rows:
    return lines + ['No row finished within this budget: every row of this '
                    'data set is missing.', '']
  config = rows[0]['config']
  lines += [f'Ours: PacGAN\'s protocol (`experiments/pacgan_'
            f'{"ring" if dataset == "ring8" else "grid"}_gan.cfg`: '
            f'{config.toy_layout} layout, batch {config.batch_size}, Adam '
            f'{config.g_lr:g}, beta1 {config.beta1:g}, {config.update} '
            f'updates, MLP G 4x400 batch norm, maxout D 3x200x5) for '
            f'{config.num_steps} steps instead of 400,000, '
            f'{config.num_eval_samples} samples per evaluation; mean ± '
            'standard error over seeds.', ''] + table + ['']
  lines += comparison(rows, dataset) + [''] + stage(rows, dataset) + ['']
  speed = []
  for row in rows:
    result = results_lib.load_result(row['directory'], row['name'])
    # A result's wall_seconds is its program's wall time per run (seed).
    seconds = result['wall_seconds'] * len(result['finals'])
    hours = seconds * 400_000 / row['config'].num_steps / 3600
    speed.append(f'{row_label(row["name"])} {seconds / 60:.1f} min '
                 f'(400,000 steps: {hours:.0f} h)')
  lines += ['Wall time of each row (its seeds in one vmapped program, this '
            'machine) and its projection to the full protocol: '
            + '; '.join(speed) + '.', '']
  lines += ['Published:', ''] + published_table(dataset) + ['']
  if figure is not None:
    curves_figure(figure[0], rows, dataset)
    lines += [f'![{dataset} learning curves]({figure[1]})', '']
  return lines
