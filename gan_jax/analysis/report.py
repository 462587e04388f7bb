"""The reproduction report: `experiments/RESULTS.md` and its figures.

    python -m gan_jax.analysis.report [--runs=runs/report] [--out=experiments]
        [--norun_sweeps] [--sections=a,b,c,d,e]

(or `python -m gan_jax.report`, the same command) runs the sweeps of
`experiments/sweeps/` that the report needs (each with `python -m
gan_jax.sweep`, resuming: finished configurations are kept, so an
interrupted report picks up where it stopped) and the saturation experiment
E1 (`gan_jax.saturation`, unless `OUT/saturation/e1.json` exists), then
writes `OUT/RESULTS.md` and `OUT/results/*.png`. With `--norun_sweeps` it
only reads what has finished and names every missing row. With
`--sections` naming some of the sections below, only their sweeps run and
only their text is rewritten: the others' text in OUT/RESULTS.md, and its
opening paragraphs, stay as they are (section (a) takes a day of this CPU;
section (e) an hour).

(a) PacGAN's synthetic-data protocol on the ring and the grid: GAN,
    PacGAN2/3/4, Unrolled GAN (k = 5) and the project's losses, 10 seeds,
    mean ± standard error, learning curves, beside PacGAN's Table 1 and
    VEEGAN's Table 1 (`gan_jax.analysis.pacgan`);
(b) the saturating minimax G loss: E1 and E2 with the predictions of
    Goodfellow et al. 2014, Arjovsky & Bottou 2017 and Lucic et al. 2018
    (`gan_jax.analysis.saturation_report`);
(c) digits, when that data set is registered: the loss comparison by
    classifier FID (Lucic et al. 2018 style: every loss, same architecture,
    several seeds);
(d) digits again: float32 against bfloat16 computation (`--compute_dtype`);
(e) digits: unconditional against projection and ACGAN discriminators, and
    DiffAugment and LeCam at 10%, 25% and 100% of the training split, with
    FID learning curves and per-class sample grids
    (`gan_jax.analysis.small_data`).

Every table states its protocol (seeds, steps, batch, evaluation samples,
architecture), read from the runs' own `config.json` by `Config.load`, and
gives means with standard errors; an ordering is called resolved only when
the difference exceeds two standard errors (`results.resolved`).
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
flags.DEFINE_bool('run_sweeps', True, 'Run (or finish) the sweeps and E1; '
                  'without, only read what has finished.')
SECTIONS = ('a', 'b', 'c', 'd', 'e')
flags.DEFINE_list('sections', list(SECTIONS), 'Sections to (re)write, of '
                  f'{",".join(SECTIONS)}; the others keep their text in '
                  'OUT/RESULTS.md.')
FLAGS = flags.FLAGS

PACGAN_SWEEPS = {'ring8': ('pacgan_ring', 'pacgan_ring_unrolled'),
                 'grid25': ('pacgan_grid', 'pacgan_grid_unrolled',
                            'pacgan_grid_losses')}
E2_SWEEPS = {'adam': 'saturation_e2_adam', 'sgd': 'saturation_e2_sgd',
             'sgd, lr 1e-3': 'saturation_e2_sgd_small_lr'}
DIGITS_SWEEP = 'digits_losses'
PRECISION_SWEEP = 'digits_precision'


def run_sweep(name: str, runs: str, sweeps: str, run: bool = True) -> str:
  """Runs (or finishes) sweep `name` into runs/name; returns that directory.
  With `run` False only returns it (whatever has finished there is read)."""
  directory = os.path.join(runs, name)
  if not run:
    return directory
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


def _figure_path(out: str, name: str) -> tuple[str, str]:
  """(path on disk, path relative to RESULTS.md)."""
  os.makedirs(os.path.join(out, 'results'), exist_ok=True)
  return os.path.join(out, 'results', name), f'results/{name}'


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
  names = list(dict.fromkeys(r['config'] for r in rows))
  by_seed = {name: {r['seed']: r['fid'] for r in rows if r['config'] == name}
             for name in names}
  path, rel = _figure_path(out, figure)
  what = key.replace('_', ' ')
  figures.box_plots(path, {'FID (digits classifier)': {
      name: list(fids.values()) for name, fids in by_seed.items()}},
                    title=f'digits: FID per {what}, one dot per seed')
  table = ['| ' + what + ' | FID | seeds |', '|---|---|---|']
  for name, fids in by_seed.items():
    m, se, n = results_lib.mean_se(list(fids.values()))
    table.append(f'| {name} | {m:.1f} ± {se:.1f} | {n} |')
  lines = [f'Protocol: {sweep_protocol(directory)[2]}; FID in the feature '
           'space of the bundled digits classifier. Mean ± standard error '
           'over seeds, in the sweep\'s order (not a ranking).', ''] + table
  lines += [''] + resolved_pairs(by_seed) + ['']
  if len(by_seed) == 2:
    lines += [difference_line(by_seed), '']
  return lines + [f'![digits FID per {what}]({rel})', '']


def resolved_pairs(by_seed: dict) -> list[str]:
  """The lowest-mean configuration against each other one: the FID
  difference ± its standard error, and whether two standard errors resolve
  it (an unresolved ordering is not a ranking)."""
  means = {n: results_lib.mean_se(list(f.values()))[0]
           for n, f in by_seed.items()}
  best = min(means, key=lambda n: means[n])
  parts = []
  for name, fids in by_seed.items():
    if name == best:
      continue
    diff, se = results_lib.difference(list(by_seed[best].values()),
                                      list(fids.values()))
    parts.append(f'{name} {diff:+.1f} ± {se:.1f} '
                 f'({"resolved" if results_lib.resolved(diff, se) else "not resolved"})')
  return [f'Lowest mean FID: {best}; the others\' differences from it: '
          + '; '.join(parts) + '.'] if parts else []


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


def run_e1(out: str, run: bool) -> str:
  """Runs the saturation experiment E1 into OUT/saturation unless its
  e1.json is there; returns that directory."""
  from gan_jax.analysis import saturation_report  # pylint: disable=g-import-not-at-top
  directory = os.path.join(out, 'saturation')
  if run and not os.path.isfile(os.path.join(directory, 'e1.json')):
    command = [sys.executable, '-m'] + saturation_report.E1_COMMAND.split()[2:]
    command = [c.replace('experiments/saturation', directory) for c in command]
    command.append(f'--workdir={os.path.join(directory, "unused")}')
    print('$ ' + ' '.join(command), flush=True)
    subprocess.run(command, check=True)
  return directory


def _wall_minutes(directories) -> float:
  return sum(float(row['wall_seconds']) for d in directories
             if os.path.isdir(d) for row in results_lib.load_rows(d)) / 60


def _finished(directory: str) -> bool:
  return os.path.isdir(directory) and bool(results_lib.finished(directory))


def _digits_sweeps(names, runs: str, sweeps: str, run: bool) -> dict:
  """{name: directory} of the digits sweeps `names` that have a flagfile,
  when digits is registered (each run, with `run`)."""
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  if 'digits' not in data_lib.names():
    return {}
  return {name: run_sweep(name, runs, sweeps, run) for name in names
          if os.path.isfile(os.path.join(sweeps, name + '.cfg'))}


def section_a(runs: str, out: str, sweeps: str, run: bool):
  """(lines, sweep directories) of section (a)."""
  from gan_jax.analysis import pacgan  # pylint: disable=g-import-not-at-top
  toy_dirs = {ds: [run_sweep(n, runs, sweeps, run) for n in names]
              for ds, names in PACGAN_SWEEPS.items()}
  lines = ['## (a) Mode collapse under PacGAN\'s protocol', '',
           'Metrics as VEEGAN and PacGAN define them (PacGAN\'s '
           '`MetricLogger`): a sample is high quality within 3 std of its '
           'nearest mode; a mode is covered when it receives at least one '
           'high-quality sample; reverse KL is KL(q ‖ uniform) of the '
           'high-quality samples\' mode histogram (n/a when a run has none). '
           'The CPU cannot afford PacGAN\'s 400,000 steps × 10 seeds per row '
           '(each table gives the projection from its measured speed): every '
           'row is the same protocol cut at the budget its table states, '
           'with its learning curve, and the text says whether the curve had '
           'flattened there. The full-length protocol is '
           '`experiments/pacgan_grid_gan.cfg` (or `pacgan_ring_gan.cfg`) with '
           '`--pack=m` or `--unroll_steps=5`.', '']
  for dataset, dirs in toy_dirs.items():
    lines += pacgan.section(dataset, dirs,
                            _figure_path(out, f'{dataset}_pacgan_curves.png'))
  return lines, [d for dirs in toy_dirs.values() for d in dirs]


def section_b(runs: str, out: str, sweeps: str, run: bool):
  """(lines, sweep directories) of section (b)."""
  from gan_jax.analysis import saturation_report  # pylint: disable=g-import-not-at-top
  e2_dirs = {opt: run_sweep(name, runs, sweeps, run)
             for opt, name in E2_SWEEPS.items()}
  e1_dir = run_e1(out, run)
  lines = ['## (b) The saturating minimax G loss', '']
  return (lines + saturation_report.section(e1_dir, e2_dirs),
          list(e2_dirs.values()))


def section_c(runs: str, out: str, sweeps: str, run: bool):
  """(lines, sweep directories) of section (c)."""
  dirs = _digits_sweeps([DIGITS_SWEEP], runs, sweeps, run)
  if not dirs or not _finished(dirs[DIGITS_SWEEP]):
    return [], list(dirs.values())
  lines = ['## (c) Digits: losses compared by FID', '']
  return (lines + digits_section(dirs[DIGITS_SWEEP], out),
          list(dirs.values()))


def section_d(runs: str, out: str, sweeps: str, run: bool):
  """(lines, sweep directories) of section (d)."""
  dirs = _digits_sweeps([PRECISION_SWEEP], runs, sweeps, run)
  if not dirs or not _finished(dirs[PRECISION_SWEEP]):
    return [], list(dirs.values())
  lines = ['## (d) Digits: float32 against bfloat16 computation', '',
           'The same DCGAN trained with `--compute_dtype=bfloat16` '
           '(every layer computes in bfloat16; parameters, optimizer '
           'states and losses stay float32) and with float32, same seeds.',
           '']
  return (lines + digits_section(dirs[PRECISION_SWEEP], out, 'compute_dtype',
                                 'digits_precision_fid.png'),
          list(dirs.values()))


def section_e(runs: str, out: str, sweeps: str, run: bool):
  """(lines, sweep directories) of section (e)."""
  from gan_jax.analysis import small_data  # pylint: disable=g-import-not-at-top
  dirs = _digits_sweeps(small_data.SWEEPS, runs, sweeps, run)
  if not dirs:
    return [], []
  return (small_data.section(dirs, lambda name: _figure_path(out, name)),
          list(dirs.values()))


SECTION_BUILDERS = {'a': section_a, 'b': section_b, 'c': section_c,
                    'd': section_d, 'e': section_e}


def split_sections(text: str) -> tuple[list[str], dict[str, list[str]]]:
  """(opening lines, {letter: lines}) of a RESULTS.md: a section runs from
  its heading `## (x) ...` to the next such heading."""
  head: list[str] = []
  sections: dict[str, list[str]] = {}
  current = head
  for line in text.rstrip('\n').split('\n'):
    if (line.startswith('## (') and len(line) > 6 and line[5] == ')'
        and line[4] in SECTION_BUILDERS):
      current = sections.setdefault(line[4], [])
    current.append(line)
  return head, {k: v + [''] if v and v[-1] else v
                for k, v in sections.items()}


def build(runs: str, out: str, sweeps: str, run: bool = True,
          sections=SECTIONS) -> str:
  """Runs (with `run`) every sweep of `sections` and writes OUT/RESULTS.md
  from whatever has finished; sections not named, and named sections none
  of whose sweeps has finished, keep the text of the existing
  OUT/RESULTS.md, and so do its opening paragraphs (whose wall time and
  list of missing sweeps then describe the earlier build)."""
  path = os.path.join(out, 'RESULTS.md')
  everything = set(sections) == set(SECTIONS)
  head, kept = [], {}
  if not everything and os.path.isfile(path):
    with open(path, encoding='utf-8') as f:
      head, kept = split_sections(f.read())
  written, directories = {}, []
  for letter in SECTIONS:
    if letter in sections:
      written[letter], dirs = SECTION_BUILDERS[letter](runs, out, sweeps, run)
      directories += dirs
  if everything or not head:
    missing = [os.path.basename(d) for d in directories if not _finished(d)]
    head = ['# Reproduction report', '',
            'Regenerate everything below (tables and figures) with',
            '', '```bash', '.venv/bin/python -m gan_jax.report', '```', '',
            'It runs the sweeps in `experiments/sweeps/` with `gan_jax.sweep` '
            '(finished configurations are kept, so an interrupted report '
            'resumes) and the saturation experiment E1, and writes this file '
            'and `experiments/results/`; `--sections=e` (say) redoes one '
            'section and keeps the others\' text. Its finished sweeps took '
            f'{_wall_minutes(directories):.0f} min of wall time on a 2-core '
            'CPU shared with other jobs. Per-seed numbers: `results.csv` in '
            f'each sweep directory under `{runs}/`. Every number is a mean ± '
            'standard error over seeds unless a table says otherwise; an '
            'ordering is called resolved only when the difference exceeds two '
            'standard errors.', '']
    if missing:
      head += ['Not finished when this file was written (their rows are '
               'missing below): ' + ', '.join(f'`{m}`' for m in missing) +
               '.', '']
  lines = list(head)
  for letter in SECTIONS:
    # A section with nothing finished keeps its earlier text, if any.
    lines += written.get(letter) or kept.get(letter, [])
  fileio.atomic_write(path, '\n'.join(lines).rstrip() + '\n')
  return path


def main(argv) -> None:
  cli.no_positional_arguments(argv)
  unknown = [s for s in FLAGS.sections if s not in SECTIONS]
  if unknown or not FLAGS.sections:
    cli.usage_error(f'--sections={",".join(FLAGS.sections)}: valid sections '
                    f'are {", ".join(SECTIONS)}')
  names = []
  if 'a' in FLAGS.sections:
    names += [n for names in PACGAN_SWEEPS.values() for n in names]
  if 'b' in FLAGS.sections:
    names += list(E2_SWEEPS.values())
  missing = [name for name in names
             if not os.path.isfile(os.path.join(FLAGS.sweeps, name + '.cfg'))]
  if missing:
    cli.usage_error(f'--sweeps={FLAGS.sweeps} lacks '
                    f'{", ".join(n + ".cfg" for n in missing)}; point it at '
                    'experiments/sweeps')
  logging.set_verbosity(logging.ERROR)  # library notes are not for the user
  path = build(FLAGS.runs, FLAGS.out, FLAGS.sweeps, FLAGS.run_sweeps,
               tuple(FLAGS.sections))
  print(f'wrote {path}', flush=True)


def run() -> None:
  """The command line: `python -m gan_jax.analysis.report`."""
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
