"""Results tables of a sweep: `results.csv` (one row per configuration x seed)
and `results.md` (mean ± std per configuration, best first).

A sweep directory holds one subdirectory per configuration; a finished one
has `results.json` (its grid point and one final record per seed) and the
`DONE` marker. Only finished configurations are read, so tables can be drawn
from a sweep that is still running or was interrupted.

Statistics: the mean and the sample standard deviation (ddof = 1, the
spread one would expect between seeds) over the seeds whose value exists;
`reverse_kl` is undefined for a run without one high-quality sample and is
then left out of its mean (the table's `n` column says how many counted).

Ranking ("best first"): by the first of these that the rows carry: lower
`fid`; more `modes`, ties broken by lower `reverse_kl`, then higher
`hq_fraction`; lower `jsd`; higher `label_accuracy` (a conditional run's
share of samples classified as the class they were asked for).

A configuration's training config is read with `Config.load` (`load_config`);
its seeds are those of its `results.json` finals.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from typing import Optional, Sequence

import numpy as np

from gan_jax import fileio
from gan_jax import logging_utils
from gan_jax.config import Config

DONE = 'DONE'
RESULTS = 'results.json'

# (metric, +1 if larger is better, -1 if smaller is better), in ranking order.
RANKINGS = (
    (('fid', -1),),
    (('modes', +1), ('reverse_kl', -1), ('hq_fraction', +1)),
    (('jsd', -1),),
    (('label_accuracy', +1),),
)
# Metrics shown in results.md when present, in this order.
TABLE_METRICS = ('modes', 'hq_fraction', 'reverse_kl', 'jsd', 'fid', 'kid',
                 'precision', 'recall', 'label_accuracy')
LABELS = {'modes': 'modes', 'hq_fraction': '% HQ', 'reverse_kl': 'reverse KL',
          'jsd': 'JSD', 'fid': 'FID', 'kid': 'KID', 'precision': 'precision',
          'recall': 'recall', 'label_accuracy': '% label accuracy'}
# Metrics shown scaled (a fraction as a percentage, as LABELS says).
SCALES = {'hq_fraction': 100.0, 'label_accuracy': 100.0}


def is_done(directory: str) -> bool:
  return os.path.isfile(os.path.join(directory, DONE))


def finished(sweep_dir: str) -> list[str]:
  """Names of the finished configurations of `sweep_dir`, in sweep order
  (`sweep.json`'s list when present, else sorted)."""
  if not os.path.isdir(sweep_dir):
    return []
  order = sorted(n for n in os.listdir(sweep_dir)
                 if os.path.isdir(os.path.join(sweep_dir, n)))
  manifest = os.path.join(sweep_dir, 'sweep.json')
  if os.path.isfile(manifest):
    with open(manifest) as f:
      order = json.load(f)['configurations']
  return [n for n in order if is_done(os.path.join(sweep_dir, n))]


def _scalar(value) -> bool:
  return value is None or isinstance(value, (int, float, str, bool))


def load_result(sweep_dir: str, name: str) -> dict:
  """Configuration `name`'s `results.json`: `point` (its grid values),
  `finals` (one final record per seed, in seed order), `wall_seconds`,
  `program_runs` and the training and compile seconds."""
  with open(os.path.join(sweep_dir, name, RESULTS)) as f:
    return json.load(f)


def load_config(sweep_dir: str, name: Optional[str] = None) -> Config:
  """The `Config` configuration `name` (default: the first finished one)
  trained with, by `Config.load`; raises its one-line `ConfigError`."""
  return Config.load(os.path.join(sweep_dir, name or finished(sweep_dir)[0]))


def load_rows(sweep_dir: str) -> list[dict]:
  """One row per finished configuration x seed: `config` (its name), the grid
  point's values, `seed`, every scalar final metric, `diverged_at` and the
  timings."""
  rows = []
  for name in finished(sweep_dir):
    result = load_result(sweep_dir, name)
    for final in result['finals']:
      row = {'config': name, **result['point']}
      row.update({k: v for k, v in final.items()
                  if _scalar(v) and k not in ('final',)})
      row.update({k: result[k] for k in ('wall_seconds', 'program_runs')})
      rows.append(row)
  return rows


def load_logs(sweep_dir: str, name: str) -> list[list[dict]]:
  """Per-seed training logs of configuration `name` (from its metrics.jsonl,
  read with `logging_utils.read_metrics`: non-finite values come back as
  floats; damaged lines are left out with a warning on stderr)."""
  path = os.path.join(sweep_dir, name, 'metrics.jsonl')
  records, damaged = logging_utils.read_metrics(path)
  if damaged:
    print(f'warning: {len(damaged)} damaged line(s) of {path} left out',
          file=sys.stderr, flush=True)
  by_seed: dict[int, list[dict]] = {}
  for record in records:
    if not record.get('final'):
      by_seed.setdefault(record['seed'], []).append(record)
  return [by_seed[s] for s in sorted(by_seed)]


def write_csv(path: str, rows: Sequence[dict]) -> None:
  """`rows` as CSV; columns are the union of the rows' keys in first-seen
  order; a missing or None value is an empty cell."""
  columns: list[str] = []
  for row in rows:
    columns.extend(k for k in row if k not in columns)
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, columns, lineterminator='\n')
  writer.writeheader()
  for row in rows:
    writer.writerow({k: '' if row.get(k) is None else row[k] for k in columns})
  fileio.atomic_write(path, buffer.getvalue())


def mean_std(values: Sequence[Optional[float]]) -> tuple[float, float, int]:
  """(mean, sample std with ddof=1 (0 for one value), n) over the finite
  values; (nan, nan, 0) if there are none."""
  x = np.asarray([v for v in values
                  if v is not None and math.isfinite(float(v))], np.float64)
  if len(x) == 0:
    return math.nan, math.nan, 0
  return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0, len(x)


def mean_se(values: Sequence[Optional[float]]) -> tuple[float, float, int]:
  """(mean, standard error s / sqrt(n) with the sample std s (ddof = 1), n)
  over the finite values; the error is nan for fewer than two values (one
  seed resolves nothing), all nan for none.
  The spread a reported mean carries (PacGAN's tables report it)."""
  mean, std, n = mean_std(values)
  return mean, (std / math.sqrt(n) if n > 1 else math.nan), n


def difference(a: Sequence[Optional[float]], b: Sequence[Optional[float]]
               ) -> tuple[float, float]:
  """(mean(b) - mean(a), its Welch standard error sqrt(se_a^2 + se_b^2))."""
  ma, sa, _ = mean_se(a)
  mb, sb, _ = mean_se(b)
  return mb - ma, math.sqrt(sa**2 + sb**2)


def resolved(diff: float, se: float, z: float = 2.0) -> bool:
  """Whether a difference is resolved by its standard error: |diff| > z se
  (about a 95% interval that excludes 0). Orderings that are not resolved
  are not rankings."""
  return math.isfinite(diff) and math.isfinite(se) and abs(diff) > z * se


def summarize(rows: Sequence[dict], metrics: Optional[Sequence[str]] = None
              ) -> list[dict]:
  """Per configuration: `config`, `seeds`, `diverged` (how many seeds) and
  `metrics[m] = (mean, std, n)`; sorted best first (see the module docstring).
  """
  if metrics is None:
    metrics = [m for m in TABLE_METRICS if any(m in r for r in rows)]
  groups: dict[str, list[dict]] = {}
  for row in rows:
    groups.setdefault(row['config'], []).append(row)
  summary = []
  for name, members in groups.items():
    summary.append({
        'config': name, 'seeds': len(members),
        'diverged': sum(r.get('diverged_at') not in (None, '')
                        for r in members),
        'metrics': {m: mean_std([r.get(m) for r in members]) for m in metrics},
    })
  for ranking in RANKINGS:
    if all(m in metrics for m, _ in ranking[:1]):
      def key(entry, ranking=ranking):
        out = []
        for m, sign in ranking:
          mean = entry['metrics'].get(m, (math.nan,))[0]
          out.append(math.inf if math.isnan(mean) else -sign * mean)
        return tuple(out)
      summary.sort(key=key)
      break
  return summary


def format_mean_se(metric: str, values: Sequence[Optional[float]]) -> str:
  """The values' 'mean ± standard error' as `format_mean_std` writes it."""
  return format_mean_std(metric, mean_se(values))


def format_mean_std(metric: str, stats: tuple[float, float, int]) -> str:
  """`mean_std`'s (mean, std, n) as 'mean ± std' in the metric's `SCALES`
  (3 decimals for divergences, 1 for percentages, else 2); 'n/a' if n = 0."""
  mean, std, n = stats
  if n == 0:
    return 'n/a'
  scale = SCALES.get(metric, 1.0)
  digits = 1 if scale != 1.0 else 2
  if metric in ('reverse_kl', 'jsd', 'kid', 'd_fake_prob'):
    digits = 3
  return f'{scale * mean:.{digits}f} ± {scale * std:.{digits}f}'


def markdown_table(summary: Sequence[dict], metrics: Optional[Sequence[str]]
                   = None, extra: Optional[dict[str, dict[str, str]]] = None
                   ) -> str:
  """A markdown table of `summarize`'s output: one row per configuration,
  mean ± std per metric, then the seed count; `extra[config]` adds columns."""
  if not summary:
    return '(no finished configurations)\n'
  if metrics is None:
    metrics = list(summary[0]['metrics'])
  extra_columns = list(next(iter(extra.values()))) if extra else []
  header = (['configuration'] + [LABELS.get(m, m) for m in metrics]
            + ['seeds (n)'] + extra_columns)
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)]
  for entry in summary:
    counts = {entry['metrics'][m][2] for m in metrics}
    n = str(entry['seeds'])
    if metrics and counts != {entry['seeds']}:
      n += ' (' + ', '.join(f'{LABELS.get(m, m)}: {entry["metrics"][m][2]}'
                            for m in metrics
                            if entry['metrics'][m][2] != entry['seeds']) + ')'
    if entry['diverged']:
      n += f', {entry["diverged"]} diverged'
    cells = ([entry['config']] + [format_mean_std(m, entry['metrics'][m])
                                  for m in metrics] + [n]
             + [(extra or {}).get(entry['config'], {}).get(c, '')
                for c in extra_columns])
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def write_tables(sweep_dir: str, description: str = '') -> list[dict]:
  """Writes `results.csv` and `results.md` of `sweep_dir`; returns the rows."""
  rows = load_rows(sweep_dir)
  write_csv(os.path.join(sweep_dir, 'results.csv'), rows)
  text = '# Sweep results\n\n'
  if description:
    text += description.rstrip() + '\n\n'
  text += ('Mean ± sample std (ddof = 1) over seeds; best first. One row per '
           'configuration x seed in results.csv.\n\n')
  text += markdown_table(summarize(rows))
  fileio.atomic_write(os.path.join(sweep_dir, 'results.md'), text)
  return rows
