"""The reproduction report: `experiments/RESULTS.md` and its figures.

    python -m gan_jax.analysis.report [--runs=runs/report] [--out=experiments]

(or `python -m gan_jax.report`, the same command) runs the sweeps of `experiments/sweeps/` that the report needs (each with
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
architecture), read from the runs' own `config.json` by `Config.load`. The
figures are `gan_jax.analysis.figures`' and `gan_jax.plots`' (the ones runs
draw their samples with).
"""

from __future__ import annotations

import os
import subprocess
import sys

from absl import app
from absl import flags
from absl import logging

import numpy as np

from gan_jax import cli
from gan_jax import fileio
from gan_jax.analysis import results as results_lib
from gan_jax.config import Config

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


def architecture(config: Config) -> str:
  """The models of a run's config, in words."""
  if config.model == 'mlp':
    g = 'x'.join(map(str, config.g_hidden))
    d = 'x'.join(map(str, config.d_hidden))
    sn = ', spectral norm in D' if config.d_spectral_norm else ''
    return f'MLP G {g} / D {d} (ReLU{sn})'
  widths = f'{config.g_features or "default"}/{config.d_features or "default"}'
  extras = [name for name, on in (
      ('batch norm in G', config.g_batch_norm),
      ('spectral norm in D', config.d_spectral_norm),
      (f'G EMA {config.g_ema_decay}', config.g_ema_decay)) if on]
  return (f'{config.model} (G/D features {widths}'
          + ''.join(f', {e}' for e in extras) + ')')


def protocol(config: Config, num_seeds: int) -> str:
  """One line: what a table's numbers were computed with."""
  return (f'{num_seeds} seeds (vmapped in one program per configuration), '
          f'{config.num_steps} steps of batch {config.batch_size}, '
          f'Adam lr {config.g_lr:g}/{config.d_lr:g} (G/D), '
          f'beta1 {config.beta1:g}, {config.d_steps} D step(s) per G '
          f'step, {architecture(config)}, z_dim {config.z_dim}, '
          f'{config.num_eval_samples} samples per evaluation')


def sweep_protocol(directory: str) -> tuple[Config, int, str]:
  """(config, seeds per configuration, `protocol` line) of a sweep, read
  from its first finished configuration."""
  name = results_lib.finished(directory)[0]
  config = results_lib.load_config(directory, name)
  num_seeds = len(results_lib.load_result(directory, name)['finals'])
  return config, num_seeds, protocol(config, num_seeds)


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
  """(a) for one toy data set: our table, the published one, the figures."""
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import plots  # pylint: disable=g-import-not-at-top
  from gan_jax.analysis import figures  # pylint: disable=g-import-not-at-top
  rows = _loss_rows(directories)
  config, num_seeds, ours = sweep_protocol(directories[0])
  # The mixture as the runs laid it out (their --toy_layout).
  data = data_lib.build(config if config.dataset == dataset
                        else Config(dataset=dataset))
  metrics = ['modes', 'hq_fraction', 'reverse_kl']
  summary = results_lib.summarize(rows, metrics)
  lines = [f'### {dataset} ({len(data.means)} modes)', '',
           f'Ours: {ours}. Mean ± sample std over seeds, best '
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
  losses = [entry['config'].split(' ')[0] for entry in summary]
  best_first = [r for entry in summary for r in rows
                if r['config'] == entry['config']]
  path, rel = _figure_path(out, f'{dataset}_boxes.png')
  figures.box_plots(path, figures.metric_panels(
      best_first, metrics, lambda r: r['config'].split(' ')[0]),
                    title=f'{dataset}: one dot per seed ({num_seeds} seeds, '
                    f'{config.num_steps} steps)')
  lines += [f'![{dataset} metrics per loss]({rel})', '']
  samples, titles = [], []
  for loss in losses:
    for directory in directories:
      for name in results_lib.finished(directory):
        result = results_lib.load_result(directory, name)
        if result['point']['loss'] == loss:
          samples.append(np.load(os.path.join(directory, name,
                                              'samples.npy')))
          titles += [f'{loss} s{f["seed"]}: {f["modes"]} m, '
                     f'{100 * f["hq_fraction"]:.0f}% HQ'
                     for f in result['finals']]
  path, rel = _figure_path(out, f'{dataset}_samples.png')
  plots.samples_grid(path, np.concatenate(samples), data, titles,
                     title=f'{dataset}: rows = losses (best first), '
                     'columns = seeds', columns=num_seeds)
  lines += [f'![{dataset} samples, every loss x seed]({rel})', '']
  curves = {}
  for directory in directories:
    for name in results_lib.finished(directory):
      curves[name.partition('=')[2]] = results_lib.load_logs(directory, name)
  path, rel = _figure_path(out, f'{dataset}_curves.png')
  figures.training_curves(path, curves, ('d_loss', 'g_loss', 'value'),
                          title=f'{dataset}: training curves (mean over '
                          'seeds, min-max band)')
  lines += [f'![{dataset} training curves]({rel})', '']
  return lines


def _window_mean(log: list[dict], lo: int, hi: int, key='g_grad_norm'):
  values = [r[key] for r in log if lo < r['step'] <= hi]
  return float(np.mean(values)) if values else float('nan')


def saturation_section(toy_dirs: dict, out: str) -> list[str]:
  """(b): G's gradient norm early and late under the saturating minimax G
  loss, -E_z[log D(G(z))] ascended as E_z[log(1 - D(G(z)))] descended,
  against the non-saturating one, and their final results."""
  from gan_jax.analysis import figures  # pylint: disable=g-import-not-at-top
  first, _, ours = sweep_protocol(toy_dirs['ring8'][0])
  every = first.log_every
  windows = [(0, every), (every, 10 * every), (first.num_steps // 2,
                                               first.num_steps)]
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
        cells.append(results_lib.format_mean_std(
            metric, results_lib.mean_std([r.get(metric) for r in mine])))
      lines.append('| ' + ' | '.join(cells) + ' |')
  path, rel = _figure_path(out, 'saturation_curves.png')
  figures.training_curves(path, curves, ('g_grad_norm', 'g_loss', 'value'),
                          title='minimax (saturating) vs non-saturating G '
                          'loss: mean over seeds, min-max band',
                          log_scale=('g_grad_norm',))
  intro = [f'Same runs as (a): {ours}. ‖∇G‖ is the norm of G\'s '
           f'gradient, averaged over the steps of each window (logged every '
           f'{every} steps), then mean ± std over seeds.', '']
  return intro + lines + ['', f'![saturation: G gradient norm]({rel})', '']


def digits_section(directory: str, out: str, key: str = 'loss',
                   figure: str = 'digits_fid.png') -> list[str]:
  """FID per configuration on digits (named by its `key` field: the loss, say),
  the distribution over seeds (Lucic et al. 2018)."""
  from gan_jax import evaluation  # pylint: disable=g-import-not-at-top
  from gan_jax.analysis import figures  # pylint: disable=g-import-not-at-top
  rows = []
  for name in results_lib.finished(directory):
    config = results_lib.load_config(directory, name)
    finals = results_lib.load_result(directory, name)['finals']
    samples = np.load(os.path.join(directory, name, 'samples.npy'))
    for final, seed_samples in zip(finals, samples):
      record = evaluation.evaluate_samples(config, seed_samples,
                                           metrics=('fid',))
      rows.append({'config': getattr(config, key), 'seed': final['seed'],
                   'fid': float(record['fid'])})
  summary = results_lib.summarize(rows, ['fid'])
  by_seed = {e['config']: {r['seed']: r['fid'] for r in rows
                           if r['config'] == e['config']} for e in summary}
  path, rel = _figure_path(out, figure)
  what = key.replace('_', ' ')
  figures.box_plots(path, {'FID (digits classifier)': {
      name: list(fids.values()) for name, fids in by_seed.items()}},
                    title=f'digits: FID per {what}, one dot per seed')
  lines = [f'Protocol: {sweep_protocol(directory)[2]}; FID in the feature '
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
  path = os.path.join(out, 'RESULTS.md')
  fileio.atomic_write(path, '\n'.join(lines).rstrip() + '\n')
  return path


def main(argv) -> None:
  cli.no_positional_arguments(argv)
  missing = [name for names in TOY_SWEEPS.values() for name in names
             if not os.path.isfile(os.path.join(FLAGS.sweeps, name + '.cfg'))]
  if missing:
    cli.usage_error(f'--sweeps={FLAGS.sweeps} lacks '
                    f'{", ".join(n + ".cfg" for n in missing)}; point it at '
                    'experiments/sweeps')
  logging.set_verbosity(logging.ERROR)  # library notes are not for the user
  print(f'wrote {build(FLAGS.runs, FLAGS.out, FLAGS.sweeps)}', flush=True)


def run() -> None:
  """The command line: `python -m gan_jax.analysis.report`."""
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
