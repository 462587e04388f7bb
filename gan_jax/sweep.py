"""Sweeps: a grid of configurations x seeds, as few compiled programs as can be.

    python -m gan_jax.sweep --flagfile=experiments/sweeps/NAME.cfg \\
        [--grid='loss:minimax,non_saturating,hinge;d_steps:1,5'] \\
        [--num_seeds=5] [--workdir=runs/sweeps/NAME]

The base flags (any training flag, from the flagfile or the command line)
give one configuration; `--grid` crosses it with `key:v1,v2,...` lists
separated by `;` (keys are training flags; a list-valued flag such as
`g_hidden` writes its widths with `x`: `g_hidden:64x64,128x128x128`). Each
configuration runs `--num_seeds` seeds, `--seed`, `--seed+1`, ...

Batching. Configurations that differ only in `g_lr`, `d_lr`, `beta1`,
`beta2` have programs of identical shape: their runs (all their seeds) are
stacked into one vmapped program, the hyperparameters travelling as arrays
in the optimizer state (`gan_jax.seeds`). Loss, `d_steps`, update scheme,
widths and batch size change the program itself and run one program after
another. `--max_runs_per_program` bounds a program's size (memory); a
configuration's seeds always stay together. `--nobatch_hyperparams` gives
every configuration its own program. A program's runs are split over the
host's devices (`gan_jax.seeds`; on a CPU host `--cpu_devices` virtual
devices, default one per core).

Interruption. `--workdir` holds `sweep.json` (the grid and the ordered list of
configurations) and one directory per configuration, named by its grid point
(`loss=hinge,d_steps=5`), with `config.json`, `metrics.jsonl` (records carry
their `seed`), `samples.npy` (seeds, N, dims), `results.json` and, written
last by an atomic rename, `DONE`. A restarted sweep skips every configuration
with `DONE` and recomputes the others; a sweep directory whose `sweep.json`
describes a different sweep is refused.

At the end (and after each program): `results.csv`, `results.md` (see
`gan_jax.analysis.results`) and `figures/` (`gan_jax.analysis.figures`): box
plots of each final metric per configuration, one image of the seeds' samples
per configuration, and the training curves (D loss, G loss, value, G gradient
norm) of every configuration.

A malformed grid or flag prints one line and exits with status 2 before
anything is written.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys
import time
import typing
from typing import Sequence

from absl import app
from absl import flags
from absl import logging

from gan_jax import cli
from gan_jax import config as config_lib
from gan_jax import fileio
from gan_jax import parallel
from gan_jax.analysis import results as results_lib
from gan_jax import seeds as seeds_lib
from gan_jax import workdir_lock
from gan_jax.config import Config, ConfigError

config_lib.define_flags()
seeds_lib.define_flags()
flags.DEFINE_string('grid', '', 'Grid of flag values: key:v1,v2;key2:v1,v2 '
                    '(list-valued flags write their widths with x).')
flags.DEFINE_integer('max_runs_per_program', 64, 'Most runs (configurations '
                     'x seeds) vmapped into one program.')
flags.DEFINE_bool('batch_hyperparams', True, 'Vmap configurations that '
                  'differ only in g_lr, d_lr, beta1, beta2 into one program.')

FLAGS = flags.FLAGS
GRID_EXCLUDED = ('workdir', 'seed')


def grid_keys() -> list[str]:
  return [f.name for f in dataclasses.fields(Config)
          if f.name not in GRID_EXCLUDED]


def _integer_list_keys() -> list[str]:
  """Fields that are lists of integers: their grid values join them by x."""
  return [name for name, hint in typing.get_type_hints(Config).items()
          if hint == tuple[int, ...]]


def parse_grid(text: str) -> list[tuple[str, list[str]]]:
  """`'a:1,2;b:x'` -> [('a', ['1', '2']), ('b', ['x'])]; ConfigError (one
  line) for anything malformed."""
  grid: list[tuple[str, list[str]]] = []
  for part in (p.strip() for p in text.split(';')):
    if not part:
      continue
    key, sep, values = part.partition(':')
    key = key.strip()
    items = [v.strip() for v in values.split(',')]
    if not sep or not key or not all(items):
      raise ConfigError(f'--grid: {part!r} is not key:v1,v2,... (entries '
                        'separated by ";", values by ",")')
    if key not in grid_keys():
      hint = (' (use --seed and --num_seeds for seeds)' if key == 'seed'
              else ' (it is --workdir itself)' if key == 'workdir' else '')
      raise ConfigError(f'--grid: {key!r} is not a training flag{hint}; '
                        f'valid: {", ".join(grid_keys())}')
    if key in (k for k, _ in grid):
      raise ConfigError(f'--grid: {key!r} appears twice')
    if len(set(items)) != len(items):
      raise ConfigError(f'--grid: {key!r} repeats a value')
    grid.append((key, items))
  return grid


def point_name(point: dict[str, str]) -> str:
  """A configuration's directory name: `key=value` pairs joined by commas."""
  return ','.join(f'{k}={v}' for k, v in point.items()) or 'base'


def expand(grid: Sequence[tuple[str, list[str]]], sweep_dir: str,
           flag_values=None) -> list[tuple[dict, Config]]:
  """Every grid point with its validated Config (workdir = its directory).

  Values are parsed by the flags' own parsers and the result validated by
  `config.validate`, so a bad value fails here, naming the valid choices.
  """
  f = flag_values or FLAGS
  keys = [k for k, _ in grid]
  lists = _integer_list_keys()
  saved = {k: f[k].value for k in keys + ['workdir']}
  out = []
  try:
    for values in itertools.product(*(v for _, v in grid)):
      point = dict(zip(keys, values))
      for key, value in point.items():
        text = value.replace('x', ',') if key in lists else value
        try:
          f[key].parse(text)
        except (flags.Error, ValueError) as e:
          raise ConfigError(f'--grid: {key}={value}: '
                            f'{str(e).splitlines()[0]}') from None
      f['workdir'].value = os.path.join(sweep_dir, point_name(point))
      try:
        config = config_lib.from_flags(f)
      except ConfigError as e:
        raise ConfigError(f'--grid point {point_name(point)}: {e}') from None
      out.append((point, config))
  finally:
    for k, v in saved.items():
      f[k].value = v
  return out


def programs(configs: Sequence[Config], num_seeds: int, max_runs: int,
             batch_hyperparams: bool = True) -> list[list[int]]:
  """Indices of `configs` grouped into programs: equal `seeds.static_key`
  (if `batch_hyperparams`), at most max(1, max_runs // num_seeds)
  configurations each, in first-seen order."""
  per_program = max(1, max_runs // num_seeds)
  groups: dict = {}
  for i, c in enumerate(configs):
    key = seeds_lib.static_key(c) if batch_hyperparams else i
    groups.setdefault(key, []).append(i)
  out = []
  for members in groups.values():
    for start in range(0, len(members), per_program):
      out.append(members[start:start + per_program])
  return out


@dataclasses.dataclass
class SweepReport:
  """What `run_sweep` did: configurations computed and skipped, programs."""
  computed: list[str]
  skipped: list[str]
  programs: list[list[str]]
  compilations: int


def _manifest(grid, base: Config, num_seeds: int, names: list[str]) -> dict:
  return {'grid': [[k, v] for k, v in grid], 'num_seeds': num_seeds,
          'base': json.loads(base.replace(workdir='').to_json()),
          'configurations': names}


def _write_config(directory: str, point: dict, config: Config,
                  wall_seconds: float, result,
                  index: Sequence[int], program_runs: int) -> None:
  """All artifacts of one configuration, `DONE` last."""
  seeds_lib.write(config.replace(workdir=directory), result, index,
                  picture=False)
  summary = {'point': point, 'finals': [result.finals[i] for i in index],
             'wall_seconds': wall_seconds, 'program_runs': program_runs,
             'train_seconds': result.train_seconds,
             'compile_seconds': result.compile_seconds}
  fileio.atomic_write(os.path.join(directory, results_lib.RESULTS),
                      json.dumps(summary, indent=1) + '\n')
  fileio.atomic_write(os.path.join(directory, results_lib.DONE),
                      f'{time.time():.3f}\n')


def run_sweep(grid: Sequence[tuple[str, list[str]]], base: Config,
              num_seeds: int, max_runs: int = 64,
              batch_hyperparams: bool = True, out=sys.stdout,
              figures: bool = True, flag_values=None) -> SweepReport:
  """Runs (or finishes) the sweep in `base.workdir`; see the module docstring.

  Every point is expanded and validated before anything is written.
  """
  sweep_dir = base.workdir
  points = expand(grid, sweep_dir, flag_values)
  for _, config in points:
    seeds_lib.check(config, num_seeds if num_seeds > 1 else 2)
  names = [point_name(p) for p, _ in points]
  with workdir_lock.hold(sweep_dir):
    _check_manifest(sweep_dir, _manifest(grid, base, num_seeds, names),
                    _manifest(grid, Config(), num_seeds, names)['base'])
    return _run_programs(points, names, sweep_dir, num_seeds, max_runs,
                         batch_hyperparams, out, figures)


def _check_manifest(sweep_dir: str, manifest: dict, defaults: dict) -> None:
  """Writes sweep.json, or checks that the one there describes this sweep.

  A base field the saved manifest lacks (written before the field existed)
  counts as its default (`defaults`), which is what that sweep computed with.
  """
  path = os.path.join(sweep_dir, 'sweep.json')
  if os.path.isfile(path):
    try:
      with open(path, encoding='utf-8') as f:
        previous = json.load(f)
      previous['base'] = {**defaults, **previous.get('base', {})}
    except (ValueError, TypeError, AttributeError) as e:
      raise ConfigError(f'{path} is not a sweep manifest ('
                        f'{str(e).splitlines()[0]}); use a new --workdir'
                        ) from None
    if previous != manifest:
      changed = [k for k in manifest if previous.get(k) != manifest[k]]
      raise ConfigError(f'--workdir={sweep_dir} holds a different sweep '
                        f'(its {", ".join(changed)} differ); use a new '
                        '--workdir or the same flags')
  fileio.atomic_write(path, json.dumps(manifest, indent=1) + '\n')


def _run_programs(points, names, sweep_dir, num_seeds, max_runs,
                  batch_hyperparams, out, figures) -> SweepReport:
  """The configurations not yet DONE, program by program; then the tables
  and figures."""
  pending = [i for i, name in enumerate(names)
             if not results_lib.is_done(os.path.join(sweep_dir, name))]
  skipped = [n for i, n in enumerate(names) if i not in pending]
  if skipped:
    print(f'{len(skipped)} of {len(names)} configurations already done, '
          'skipped', file=out, flush=True)
  groups = [[pending[j] for j in group] for group in programs(
      [points[i][1] for i in pending], num_seeds, max_runs, batch_hyperparams)]
  report = SweepReport([], skipped, [], 0)
  for k, group in enumerate(groups):
    configs = [points[i][1] for i in group]
    members = [m for c in configs
               for m in seeds_lib.member_configs(c, num_seeds)]
    print(f'program {k + 1}/{len(groups)}: '
          f'{", ".join(names[i] for i in group)} x {num_seeds} seeds '
          f'({len(members)} runs vmapped)', file=out, flush=True)
    start = time.perf_counter()
    result = seeds_lib.train_members(members, out=out)
    wall = time.perf_counter() - start
    for j, i in enumerate(group):
      _write_config(os.path.join(sweep_dir, names[i]), points[i][0],
                    points[i][1], wall / len(members), result,
                    list(range(j * num_seeds, (j + 1) * num_seeds)),
                    len(members))
      report.computed.append(names[i])
    report.programs.append([names[i] for i in group])
    report.compilations += result.compilations
    split = (f', split over {result.devices} devices'
             if result.devices > 1 else '')
    print(f'  done in {wall:.1f} s ({result.train_seconds:.1f} s training, '
          f'{result.compile_seconds:.1f} s compiling{split})', file=out,
          flush=True)
    results_lib.write_tables(sweep_dir)
  results_lib.write_tables(sweep_dir)
  if figures:
    from gan_jax.analysis import figures as figures_lib  # pylint: disable=g-import-not-at-top
    figures_lib.sweep_figures(sweep_dir)
  return report


def base_config(grid: Sequence[tuple[str, list[str]]],
                flag_values=None) -> Config:
  """The sweep's base configuration from the parsed flags (workdir
  runs/sweeps/sweep unless given).

  With a grid the base is validated through its points (`expand`) only: the
  grid may complete it, e.g. --eval_metrics=label_acc with the grid setting
  --conditional.
  """
  f = flag_values or FLAGS
  if not f['workdir'].present and not f.workdir:
    f.workdir = os.path.join('runs', 'sweeps', 'sweep')
  return config_lib.from_flags(f, validated=not grid)


def main(argv: list[str]) -> None:
  # Library logs (backends not found, orbax options, orbax's own report of a
  # failed write) are not for the user: every failure is one line of ours.
  logging.set_verbosity(logging.FATAL)
  cli.no_positional_arguments(argv)
  with cli.Failures() as failures:
    # Every program of a sweep may hold several members (seeds, or
    # configurations batched together): split them over the cores.
    parallel.configure_cpu_devices(FLAGS.cpu_devices, multi_member=True)
    grid = parse_grid(FLAGS.grid)
    if FLAGS.max_runs_per_program < 1:
      raise ConfigError(f'--max_runs_per_program='
                        f'{FLAGS.max_runs_per_program} must be at least 1')
    if FLAGS.num_seeds < 1:
      raise ConfigError(f'--num_seeds={FLAGS.num_seeds} must be at least 1')
    base = base_config(grid)
    failures.workdir = base.workdir
    report = run_sweep(grid, base, FLAGS.num_seeds,
                       FLAGS.max_runs_per_program, FLAGS.batch_hyperparams)
  print(f'{len(report.computed)} configurations computed in '
        f'{len(report.programs)} programs, {len(report.skipped)} skipped; '
        f'results in {os.path.join(base.workdir, "results.md")}', flush=True)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
