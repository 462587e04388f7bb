"""The reproduction report: `experiments/RESULTS.md` and its figures, in one command.

    python -m gan_jax.report [--runs=runs/report] [--out=experiments]

runs the sweeps of `experiments/sweeps/` that the report needs (each with
`python -m gan_jax.sweep`, resuming: finished configurations are kept, so an
interrupted report picks up where it stopped), then writes
`OUT/RESULTS.md` and `OUT/results/*.png`:

(a) ring8 and grid25, every loss x 5 seeds: modes, % high-quality samples and
    reverse KL, next to the published VEEGAN (Srivastava et al. 2017, Table 1)
    and PacGAN (Lin et al. 2018, Table 2) numbers;
(b) the article's saturating minimax G loss against the non-saturating one:
    G's gradient norm early in training, and the final results of both;
(c) digits, when that data set is registered: the loss comparison by
    classifier FID (Lucic et al. 2018 style: every loss, same architecture,
    several seeds, the distribution of FIDs). Without it the section is left
    out;
(d) digits again, non-saturating loss: float32 against bfloat16 computation
    (`--compute_dtype`) by the same FID, whether bfloat16 keeps the result.

Every table states its protocol (seeds, steps, batch, evaluation samples,
architecture), read from the runs' own `config.json`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import app
from absl import flags
from absl import logging

import numpy as np

from gan_jax import results as results_lib

flags.DEFINE_string('runs', os.path.join('runs', 'report'),
                    'Directory for the sweeps the report runs.')
flags.DEFINE_string('out', 'experiments', 'Where RESULTS.md and results/ go.')
flags.DEFINE_string('sweeps', os.path.join('experiments', 'sweeps'),
                    'Directory of the sweep flagfiles.')
FLAGS = flags.FLAGS

TOY_SWEEPS = {'ring8': ('ring8_losses', 'ring8_wgan'),
              'grid25': ('grid25_losses', 'grid25_wgan')}
DIGITS_SWEEP = 'digits_losses'
PRECISION_SWEEP = 'digits_precision'
LOSS_ORDER = ('minimax', 'non_saturating', 'least_squares', 'hinge',
              'wasserstein')

# Published numbers (2,500 samples per evaluation; their networks and training
# lengths differ from ours, see the notes printed with each table).
VEEGAN_TABLE1 = {  # Srivastava et al. 2017, Table 1: modes / % high quality.
    'ring8': [('GAN', 1.0, 99.3), ('ALI', 2.8, 0.13),
              ('Unrolled GAN', 7.6, 35.6), ('VEEGAN', 8.0, 52.9)],
    'grid25': [('GAN', 3.3, 0.5), ('ALI', 15.8, 1.6),
               ('Unrolled GAN', 23.6, 16.0), ('VEEGAN', 24.6, 40.0)],
}
PACGAN_TABLE2 = [  # Lin et al. 2018, Table 2, 2D-grid: modes, % HQ, rev. KL.
    ('GAN', 17.3, 94.8, 0.70), ('PacGAN2', 23.8, 91.3, 0.13),
    ('PacGAN3', 24.6, 94.2, 0.06), ('PacGAN4', 24.8, 93.6, 0.04)]


def run_sweep(name: str, runs: str, sweeps: str) -> str:
  """Runs (or finishes) sweep `name` into runs/name; returns that directory."""
  directory = os.path.join(runs, name)
  command = [sys.executable, '-m', 'gan_jax.sweep',
             f'--flagfile={os.path.join(sweeps, name + ".cfg")}',
             f'--workdir={directory}']
  print('$ ' + ' '.join(command), flush=True)
  subprocess.run(command, check=True)
  return directory


def _config(directory: str) -> dict:
  name = results_lib.finished(directory)[0]
  with open(os.path.join(directory, name, 'config.json')) as f:
    return json.load(f)


def architecture(config: dict) -> str:
  """The models of a run's config, in words."""
  if config.get('model', 'mlp') == 'mlp':
    g = 'x'.join(map(str, config['g_hidden']))
    d = 'x'.join(map(str, config['d_hidden']))
    sn = ', spectral norm in D' if config.get('d_spectral_norm') else ''
    return f'MLP G {g} / D {d} (ReLU{sn})'
  widths = '/'.join(str(config.get(k) or 'default')
                    for k in ('g_features', 'd_features'))
  extras = [name for name, on in (
      ('batch norm in G', config.get('g_batch_norm')),
      ('spectral norm in D', config.get('d_spectral_norm')),
      (f'G EMA {config.get("g_ema_decay")}', config.get('g_ema_decay')))
            if on]
  return (f'{config["model"]} (G/D features {widths}'
          + ''.join(f', {e}' for e in extras) + ')')


def protocol(config: dict) -> str:
  """One line: what a table's numbers were computed with."""
  return (f'{config["num_seeds"]} seeds (vmapped in one program per '
          'configuration), '
          f'{config["num_steps"]} steps of batch {config["batch_size"]}, '
          f'Adam lr {config["g_lr"]:g}/{config["d_lr"]:g} (G/D), '
          f'beta1 {config["beta1"]:g}, {config["d_steps"]} D step(s) per G '
          f'step, {architecture(config)}, z_dim {config["z_dim"]}, '
          f'{config["num_eval_samples"]} samples per evaluation')


def _loss_rows(directories) -> list[dict]:
  rows = []
  for directory in directories:
    for row in results_lib.load_rows(directory):
      row['config'] = row['loss'] + (' (clip 0.01)' if row['loss'] ==
                                     'wasserstein' else '')
      rows.append(row)
  return rows


def _figure_path(out: str, name: str) -> tuple[str, str]:
  """(path on disk, path relative to RESULTS.md)."""
  os.makedirs(os.path.join(out, 'results'), exist_ok=True)
  return os.path.join(out, 'results', name), f'results/{name}'


def toy_section(dataset: str, directories, out: str) -> list[str]:
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import sweep_plots  # pylint: disable=g-import-not-at-top
  from gan_jax.config import Config  # pylint: disable=g-import-not-at-top
  rows = _loss_rows(directories)
  config = _config(directories[0])
  metrics = ['modes', 'hq_fraction', 'reverse_kl']
  summary = results_lib.summarize(rows, metrics)
  lines = [f'### {dataset} ({len(data_lib.build(Config(dataset=dataset)).means)}'
           ' modes)', '',
           f'Ours: {protocol(config)}. Mean ± sample std over seeds, best '
           'first (most modes, then lowest reverse KL).', '',
           results_lib.markdown_table(summary, metrics)]
  lines += ['Published (each a mean over their runs; their protocol: larger '
            'networks and longer training, 2,500 samples per evaluation; '
            'VEEGAN reports no reverse KL):', '',
            '| method | modes | % HQ | reverse KL | source |', '|---|---|---|---|---|']
  for method, modes, hq in VEEGAN_TABLE1[dataset]:
    lines.append(f'| {method} | {modes} | {hq} | – | VEEGAN Table 1 |')
  if dataset == 'grid25':
    for method, modes, hq, kl in PACGAN_TABLE2:
      lines.append(f'| {method} | {modes} | {hq} | {kl} | PacGAN Table 2 |')
  lines.append('')
  # Figures: box plots of the three metrics, samples of every loss x seed.
  values = {}
  for metric in metrics:
    values[metric] = {e['config'].split(' ')[0]: [r.get(metric) for r in rows
                                                  if r['config'] == e['config']]
                      for e in summary}
  path, rel = _figure_path(out, f'{dataset}_boxes.png')
  _boxes(path, values, dataset, config)
  lines += [f'![{dataset} metrics per loss]({rel})', '']
  samples, titles = [], []
  for entry in summary:
    for directory in directories:
      for name in results_lib.finished(directory):
        res = json.load(open(os.path.join(directory, name,
                                          results_lib.RESULTS)))
        label = res['point']['loss']
        if entry['config'].split(' ')[0] != label:
          continue
        samples.append(np.load(os.path.join(directory, name, 'samples.npy')))
        titles += [f'{label} s{f["seed"]}: {f["modes"]} m, '
                   f'{100 * f["hq_fraction"]:.0f}% HQ' for f in res['finals']]
  data = data_lib.build(Config(dataset=dataset))
  path, rel = _figure_path(out, f'{dataset}_samples.png')
  sweep_plots.samples_grid(path, np.concatenate(samples), data, titles,
                           title=f'{dataset}: rows = losses (best first), '
                           'columns = seeds', columns=config['num_seeds'])
  lines += [f'![{dataset} samples, every loss x seed]({rel})', '']
  curves = {}
  for directory in directories:
    for name in results_lib.finished(directory):
      label = name.partition('=')[2]
      curves[label] = results_lib.load_logs(directory, name)
  path, rel = _figure_path(out, f'{dataset}_curves.png')
  sweep_plots.training_curves(path, curves, ('d_loss', 'g_loss', 'value'),
                              title=f'{dataset}: training curves (mean over '
                              'seeds, min-max band)')
  lines += [f'![{dataset} training curves]({rel})', '']
  return lines


def _boxes(path: str, values: dict, dataset: str, config: dict) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(values), figsize=(4.2 * len(values), 3.3),
                           dpi=110)
  for ax, (metric, groups) in zip(axes, values.items()):
    names = list(groups)
    data = [[v * (100 if metric == 'hq_fraction' else 1) for v in groups[n]
             if v is not None] for n in names]
    ax.boxplot(data, showfliers=False)
    for i, d in enumerate(data):
      ax.scatter(np.full(len(d), i + 1.0) + np.linspace(-0.1, 0.1, len(d)),
                 d, s=9, zorder=3)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=25, fontsize=7)
    ax.set_title(results_lib.LABELS[metric], fontsize=9)
  fig.suptitle(f'{dataset}: one dot per seed ({config["num_seeds"]} seeds, '
               f'{config["num_steps"]} steps)', fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def _window_mean(log: list[dict], lo: int, hi: int, key='g_grad_norm'):
  values = [r[key] for r in log if lo < r['step'] <= hi]
  return float(np.mean(values)) if values else float('nan')


def saturation_section(toy_dirs: dict, out: str) -> list[str]:
  from gan_jax import sweep_plots  # pylint: disable=g-import-not-at-top
  first = _config(toy_dirs['ring8'][0])
  every = first['log_every']
  windows = [(0, every), (every, 10 * every), (first['num_steps'] // 2,
                                               first['num_steps'])]
  header = ['dataset', 'G loss'] + [f'‖∇G‖ steps {lo + 1}–{hi}'
                                    for lo, hi in windows] + [
                                        'modes', '% HQ', 'reverse KL']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  curves = {}
  for dataset, directories in toy_dirs.items():
    directory = directories[0]
    rows = results_lib.load_rows(directory)
    for loss in ('minimax', 'non_saturating'):
      name = f'loss={loss}'
      logs = results_lib.load_logs(directory, name)
      curves[f'{dataset} {loss}'] = logs
      cells = [dataset, loss]
      for lo, hi in windows:
        m, s, _ = results_lib.mean_std([_window_mean(l, lo, hi) for l in logs])
        cells.append(f'{m:.3g} ± {s:.2g}')
      mine = [r for r in rows if r['config'] == name]
      for metric in ('modes', 'hq_fraction', 'reverse_kl'):
        cells.append(results_lib._format(  # pylint: disable=protected-access
            metric, results_lib.mean_std([r.get(metric) for r in mine])))
      lines.append('| ' + ' | '.join(cells) + ' |')
  path, rel = _figure_path(out, 'saturation_curves.png')
  sweep_plots.training_curves(path, curves, ('g_grad_norm', 'g_loss', 'value'),
                              title='minimax (saturating) vs non-saturating G '
                              'loss: mean over seeds, min-max band',
                              log_scale=('g_grad_norm',))
  intro = [f'Same runs as (a): {protocol(first)}. ‖∇G‖ is the norm of G\'s '
           f'gradient, averaged over the steps of each window (logged every '
           f'{every} steps), then mean ± std over seeds.', '']
  return intro + lines + ['', f'![saturation: G gradient norm]({rel})', '']


def digits_section(directory: str, out: str, key: str = 'loss',
                   figure: str = 'digits_fid.png') -> list[str]:
  """FID per configuration on digits (named by its `key` field: the loss, say),
  the distribution over seeds (Lucic et al. 2018)."""
  from gan_jax import evaluation  # pylint: disable=g-import-not-at-top
  from gan_jax.config import Config  # pylint: disable=g-import-not-at-top
  rows = []
  for name in results_lib.finished(directory):
    with open(os.path.join(directory, name, 'config.json')) as f:
      resolved = json.load(f)
    fields = {k: tuple(v) if isinstance(v, list) else v
              for k, v in resolved.items() if k in Config.__dataclass_fields__}
    config = Config(**fields)
    samples = np.load(os.path.join(directory, name, 'samples.npy'))
    for s, seed_samples in enumerate(samples):
      record = evaluation.evaluate_samples(config, seed_samples,
                                           metrics=('fid',))
      rows.append({'config': resolved[key], 'seed': resolved['seeds'][s],
                   'fid': float(record['fid'])})
  summary = results_lib.summarize(rows, ['fid'])
  by_seed = {e['config']: {r['seed']: r['fid'] for r in rows
                           if r['config'] == e['config']} for e in summary}
  values = {name: list(fids.values()) for name, fids in by_seed.items()}
  from gan_jax import sweep_plots  # pylint: disable=g-import-not-at-top
  path, rel = _figure_path(out, figure)
  what = key.replace('_', ' ')
  sweep_plots.metric_boxplots(path, values, 'FID (digits classifier)',
                              title=f'digits: FID per {what}, one dot per seed')
  lines = [f'Protocol: {protocol(_config(directory))}; FID in the feature '
           'space of the bundled digits classifier. Mean ± std, best first.',
           '', results_lib.markdown_table(summary, ['fid'])]
  if len(by_seed) == 2:
    lines += [difference_line(by_seed), '']
  return lines + [f'![digits FID per {what}]({rel})', '']


def difference_line(by_seed: dict) -> str:
  """Two configurations' mean FIDs compared, from {config: {seed: FID}}.

  The difference of means (second minus first) with its Welch standard error
  sqrt(s_a^2 / n_a + s_b^2 / n_b); and over the seeds both ran, paired by
  seed: the mean of the per-seed differences d, its standard error
  s_d / sqrt(n), t = mean(d) / (s_d / sqrt(n)) with n - 1 degrees of freedom,
  and how many d are positive. Sample stds (ddof 1).
  """
  (name_a, fid_a), (name_b, fid_b) = by_seed.items()
  a, b = np.array(list(fid_a.values())), np.array(list(fid_b.values()))
  diff = b.mean() - a.mean()
  line = f'{name_b} − {name_a}: {diff:+.1f} FID'
  if len(a) > 1 and len(b) > 1:
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    line += f', standard error {se:.1f}'
    if se > 0:
      line += f' (difference / SE = {diff / se:+.1f})'
  common = [seed for seed in fid_a if seed in fid_b]
  if len(common) > 1:
    d = np.array([fid_b[seed] - fid_a[seed] for seed in common])
    paired_se = d.std(ddof=1) / np.sqrt(len(d))
    line += f'; paired by seed {d.mean():+.1f} ± {paired_se:.1f}'
    if paired_se > 0:
      line += f' (t = {d.mean() / paired_se:+.1f}, {len(d) - 1} df)'
    line += (f', {name_b} higher in {int((d > 0).sum())} of {len(d)} '
             'seeds')
  per_seed = lambda fids: ', '.join(f'{x:.1f}' for x in fids.values())
  return (f'{line}. Per seed ({", ".join(map(str, fid_a))}): {name_a} '
          f'{per_seed(fid_a)}; {name_b} {per_seed(fid_b)}.')


def build(runs: str, out: str, sweeps: str) -> str:
  """Runs every sweep the report needs and writes OUT/RESULTS.md."""
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  toy_dirs = {ds: [run_sweep(n, runs, sweeps) for n in names]
              for ds, names in TOY_SWEEPS.items()}
  digits = {}
  for name in (DIGITS_SWEEP, PRECISION_SWEEP):
    if ('digits' in data_lib.names()
        and os.path.isfile(os.path.join(sweeps, name + '.cfg'))):
      digits[name] = run_sweep(name, runs, sweeps)
  directories = [d for ds in toy_dirs.values() for d in ds]
  directories += list(digits.values())
  minutes = sum(float(row['wall_seconds']) for d in directories
                for row in results_lib.load_rows(d)) / 60
  lines = ['# Reproduction report', '',
           'Regenerate everything below (tables and figures) with',
           '', '```bash', '.venv/bin/python -m gan_jax.report', '```', '',
           'It runs the sweeps in `experiments/sweeps/` with `gan_jax.sweep` '
           '(finished configurations are kept, so an interrupted report '
           'resumes) and writes this file and `experiments/results/`. '
           f'Its sweeps took {minutes:.0f} min of wall time on a 2-core CPU '
           'shared with other jobs. Per-seed numbers: `results.csv` in each sweep '
           f'directory under `{runs}/`.', '',
           '## (a) Mode collapse on ring8 and grid25, every loss', '',
           'Metrics as VEEGAN and PacGAN define them: a sample is high '
           'quality within 3 std of its nearest mode; a mode is covered '
           'when it receives at least one high-quality sample; reverse KL '
           'is KL(q ‖ uniform) of the high-quality samples\' mode histogram '
           '(n/a when a run has none).', '']
  for dataset, directories in toy_dirs.items():
    lines += toy_section(dataset, directories, out)
  lines += ['Protocol differences from the published tables: VEEGAN and PacGAN '
            'train larger networks for longer (PacGAN describes G with 4 '
            'hidden layers of 400 units and D with 3 of 200; quoted from the '
            'papers\' text, not re-checked against their code) and average '
            'over their own number of runs. Our mode layouts follow their '
            'descriptions (ring of radius 2, std 0.02; 5x5 grid of spacing 2, '
            'std 0.05); small differences in the mode std would change what '
            '"within 3 std" admits. The published rows are their methods '
            '(ALI, Unrolled GAN, VEEGAN, PacGAN); only their "GAN" row is the '
            'same algorithm as our non_saturating row.', '',
            '## (b) The saturating minimax G loss against the non-saturating '
            'one', '']
  lines += saturation_section(toy_dirs, out)
  if DIGITS_SWEEP in digits:
    lines += ['## (c) Digits: losses compared by FID', '']
    lines += digits_section(digits[DIGITS_SWEEP], out)
  if PRECISION_SWEEP in digits:
    lines += ['## (d) Digits: float32 against bfloat16 computation', '',
              'The same DCGAN trained with `--compute_dtype=bfloat16` '
              '(every layer computes in bfloat16; parameters, optimizer '
              'states and losses stay float32) and with float32, same seeds.',
              '']
    lines += digits_section(digits[PRECISION_SWEEP], out, 'compute_dtype',
                            'digits_precision_fid.png')
  text = '\n'.join(lines).rstrip() + '\n'
  path = os.path.join(out, 'RESULTS.md')
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'w') as f:
    f.write(text)
  os.replace(tmp, path)
  return path


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.ERROR)  # library notes are not for the user
  print(f'wrote {build(FLAGS.runs, FLAGS.out, FLAGS.sweeps)}', flush=True)


if __name__ == '__main__':
  app.run(main)
