"""Report section (e): class conditioning and data-efficient training on digits.

digits is the small-data regime the data-efficiency papers study: the GANs
train on its 1,797 images, about 180 per class (10% of them is 179 images).
Four sweeps share one protocol (the DCGAN of section (c), 5 seeds, the FID
learning curve every `eval_every` steps; the last one trains longer):

* `digits_data_efficiency`: 10%, 25% and 100% of the images
  (`--train_fraction`, a fixed subset stratified by class), no augmentation;
* `digits_diffaugment`: the same fractions with DiffAugment (Zhao et al.
  2020) and with DiffAugment plus LeCam (Tseng et al. 2021);
* `digits_conditional`: projection (Miyato & Koyama 2018) and ACGAN (Odena
  et al. 2017) discriminators on the full split, beside the unconditional
  100% row of `digits_data_efficiency`;
* `digits_diffaugment_long`: the 10% DiffAugment rows trained on, to see
  where curves that are still falling at the end of `digits_diffaugment`
  flatten.

FID is the Fréchet distance in the bundled digits classifier's feature space
between each seed's evaluation samples and the classifier's whole training
split, 1,437 digits (also for runs trained on a fraction: the question is
how well G learns the distribution from fewer images). Label accuracy is
the fraction of a conditional run's samples that the classifier assigns to
the class G was asked for (on the curve too, so a collapse after a peak
shows; a fall after the peak is paired by seed, each seed's value at the
mean curve's highest step minus its final value); intra-class FID is the
mean over classes of the class-k samples' FID against the class-k training
images.

Every number is a mean ± standard error over seeds (`results.mean_se`); a
difference is called resolved only beyond two standard errors
(`results.resolved`). A relative change r = 1 - b/a of means a and b carries
the delta-method error |b/a| sqrt((se_a/a)^2 + (se_b/b)^2).

Whether a curve has flattened is judged, not assumed: the change of FID over
the last `FLAT_WINDOW` evaluation intervals, mean ± standard error over
seeds, is "flat" unless resolved, and otherwise "still falling" or
"rising"; with one seed (no standard error) it is "not judged".
"""

from __future__ import annotations

import math
import os
from typing import Callable, Optional, Sequence

import numpy as np

from gan_jax.analysis import results as results_lib

BASELINE = 'digits_data_efficiency'
AUGMENTED = 'digits_diffaugment'
CONDITIONAL = 'digits_conditional'
LONG = 'digits_diffaugment_long'
SWEEPS = (BASELINE, AUGMENTED, CONDITIONAL, LONG)
FLAT_WINDOW = 3  # evaluation intervals
# Targets the section is judged against.
LABEL_ACCURACY_TARGET = 0.95
AUGMENT_GAIN_TARGET = 0.30  # relative FID gain of DiffAugment at 10%
FID_TARGET = 27.0
REAL_HELD_OUT_FID = 13.5  # 360 held-out real digits (bench/digits_metrics.py)


def seed_scores(directory: str, name: str) -> list[dict]:
  """Per seed of configuration `name`: `seed`, the final `fid` (and, in a
  conditional run, `label_acc` and `intra_fid`) of its saved evaluation
  samples, and `curve`: its logged records (`--eval_every` FIDs, and label
  accuracies where logged) with the final scores appended at the last step.

  A seed that diverged (its final record has `diverged_at`) or whose samples
  are not finite has no scores: its entry is `seed` and `diverged_at` alone
  (the step, or the last step for non-finite samples), and the section
  names it instead of averaging it in.
  """
  from gan_jax import evaluation  # pylint: disable=g-import-not-at-top
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  config = results_lib.load_config(directory, name)
  finals = results_lib.load_result(directory, name)['finals']
  samples = np.load(os.path.join(directory, name, 'samples.npy'))
  logs = results_lib.load_logs(directory, name)
  labels = train.eval_labels(config)
  metrics = ('fid',) if labels is None else ('fid', 'label_acc', 'intra_fid')
  out = []
  for final, seed_samples, log in zip(finals, samples, logs):
    if 'diverged_at' in final or not np.all(np.isfinite(seed_samples)):
      out.append({'seed': final['seed'],
                  'diverged_at': final.get('diverged_at', final['step'])})
      continue
    record = evaluation.evaluate_samples(config, seed_samples, labels,
                                         metrics=metrics)
    scores = {m: float(record[m]) for m in metrics}
    on_curve = [m for m in metrics if m != 'intra_fid']
    curve = [{'step': r['step'], **{m: r[m] for m in on_curve if m in r}}
             for r in log if 'fid' in r]
    curve.append({'step': final['step'], **{m: scores[m] for m in on_curve}})
    out.append({'seed': final['seed'], **scores, 'curve': curve})
  return out


def fmt(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
  """'mean ± se' of `values` (times `scale`); 'n/a' without values."""
  m, se, n = results_lib.mean_se(values)
  if not n:
    return 'n/a'
  return f'{scale * m:.{digits}f} ± {scale * se:.{digits}f}'


def relative_gain(a: Sequence[float], b: Sequence[float]
                  ) -> tuple[float, float]:
  """(1 - mean(b) / mean(a), its delta-method standard error): how much
  lower b's mean FID is than a's, as a fraction of a's."""
  ma, sa, _ = results_lib.mean_se(a)
  mb, sb, _ = results_lib.mean_se(b)
  ratio = mb / ma
  return 1.0 - ratio, abs(ratio) * math.sqrt((sa / ma) ** 2 + (sb / mb) ** 2)


def curve_matrix(runs: Sequence[dict], metric: str = 'fid'
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(steps, `metric` per seed x step) of a configuration's curves; every
  seed must have evaluated at the same steps."""
  steps = [r['step'] for r in runs[0]['curve']]
  for r in runs[1:]:
    if [p['step'] for p in r['curve']] != steps:
      raise ValueError(
          f'seed {r.get("seed")} evaluated at steps '
          f'{[p["step"] for p in r["curve"]]}, seed {runs[0].get("seed")} '
          f'at {steps}: the curves of one configuration must share steps')
  return np.asarray(steps), np.asarray(
      [[p.get(metric, math.nan) for p in r['curve']] for r in runs],
      np.float64)


def lowest_on_curve(runs: Sequence[dict]) -> tuple[int, list[float]]:
  """(step, per-seed FIDs) at the step where the seeds' mean FID is lowest."""
  steps, fids = curve_matrix(runs)
  at = int(np.argmin(fids.mean(0)))
  return int(steps[at]), list(fids[:, at])


def highest_on_curve(runs: Sequence[dict], metric: str
                     ) -> Optional[tuple[int, list[float]]]:
  """(step, per-seed values) at the step where the seeds' mean `metric` is
  highest, over the steps every seed logged it; None where none did."""
  steps, values = curve_matrix(runs, metric)
  logged = np.all(np.isfinite(values), axis=0)
  if not logged.any():
    return None
  means = np.where(logged, values.mean(0), -np.inf)
  at = int(np.argmax(means))
  return int(steps[at]), list(values[:, at])


def trend(runs: Sequence[dict], window: int = FLAT_WINDOW
          ) -> Optional[tuple[str, float, float, int, int]]:
  """(verdict, mean change, its standard error, first step, last step) of
  FID over the last `window` evaluation intervals, the change taken per
  seed; the verdict is 'flat' unless the change is resolved, else 'still
  falling' or 'rising'; 'not judged' without a standard error (one seed).
  None for a curve of `window` points or fewer."""
  steps, fids = curve_matrix(runs)
  if len(steps) <= window:
    return None
  change = list(fids[:, -1] - fids[:, -1 - window])
  m, se, _ = results_lib.mean_se(change)
  verdict = ('not judged' if not math.isfinite(se)
             else 'flat' if not results_lib.resolved(m, se)
             else 'still falling' if m < 0 else 'rising')
  return verdict, m, se, int(steps[-1 - window]), int(steps[-1])


def flatness(runs: Sequence[dict], window: int = FLAT_WINDOW) -> str:
  """`trend` in words: 'still falling (-2.0 ± 0.5 from step 17000 to
  20000)'."""
  judged = trend(runs, window)
  if judged is None:
    return 'too short to judge'
  verdict, m, se, first, last = judged
  if verdict == 'not judged':
    return f'not judged, one seed ({m:+.1f} from step {first} to {last})'
  return f'{verdict} ({m:+.1f} ± {se:.1f} from step {first} to {last})'


def fall_after_peak(runs: Sequence[dict], metric: str = 'label_acc'
                    ) -> Optional[tuple[int, float, float]]:
  """(step, mean, standard error) of how far `metric` falls from the step
  where its mean curve is highest to its final value, paired by seed (each
  seed's value at that step minus its own final value); None where no
  step logged it."""
  peak = highest_on_curve(runs, metric)
  if peak is None:
    return None
  step, at_peak = peak
  m, se, _ = results_lib.mean_se(
      [p - r[metric] for p, r in zip(at_peak, runs)])
  return step, m, se


def _steps(runs: Sequence[dict]) -> int:
  """The last step of a configuration's curves."""
  return int(runs[0]['curve'][-1]['step'])


def _fraction_label(fraction: float) -> str:
  return f'{100 * fraction:g}%'


def _rows(directories: dict[str, str],
          score: Callable[[str, str], list[dict]]) -> tuple[dict, dict]:
  """({(fraction, method): per-seed scores} of every finished configuration,
  {(fraction, method): the seeds that diverged, with their steps}); method
  is 'none', 'DiffAugment', 'DiffAugment + LeCam', 'projection' or
  'ACGAN'. A configuration none of whose seeds has scores has no row."""
  rows, diverged = {}, {}
  for sweep, directory in directories.items():
    if not os.path.isdir(directory):
      continue
    for name in results_lib.finished(directory):
      config = results_lib.load_config(directory, name)
      if config.conditional != 'none':
        method = {'projection': 'projection', 'acgan': 'ACGAN'}[
            config.conditional]
      elif config.augment:
        method = ('DiffAugment + LeCam' if config.lecam_weight
                  else 'DiffAugment')
      else:
        method = 'none'
      runs = score(directory, name)
      key = (config.train_fraction, method)
      if any('diverged_at' in r for r in runs):
        diverged[key] = [(r['seed'], r['diverged_at']) for r in runs
                         if 'diverged_at' in r]
      if any('fid' in r for r in runs):
        rows[key] = [r for r in runs if 'fid' in r]
  return rows, diverged


def _curve_figure(path: str, rows: dict, longer: dict) -> None:
  from gan_jax import plots  # pylint: disable=g-import-not-at-top
  fractions = sorted({f for f, m in rows if m not in ('projection', 'ACGAN')})
  panels = [('class conditioning, 100% of the data',
             [m for m in ('none', 'projection', 'ACGAN') if (1.0, m) in rows],
             1.0)]
  panels += [(f'{_fraction_label(f)} of the data',
              [m for m in ('none', 'DiffAugment', 'DiffAugment + LeCam')
               if (f, m) in rows], f) for f in fractions]
  panels = [(title, [(rows, m) for m in methods], f)
            for title, methods, f in panels if methods]
  for f in sorted({f for f, _ in longer}):
    methods = [(longer, m) for m in ('DiffAugment', 'DiffAugment + LeCam')
               if (f, m) in longer]
    steps = _steps(longer[(f, methods[0][1])])
    panels.append((f'{_fraction_label(f)} of the data, {steps} steps',
                   methods, f))
  fig, axes = plots.panels(len(panels), len(panels), 3.6, 3.0)
  for ax, (title, methods, fraction) in zip(axes, panels):
    curves = {m: [[{'step': p['step'], 'fid': p['fid']} for p in r['curve']]
                  for r in source[(fraction, m)]] for source, m in methods}
    plots.draw_curves(ax, curves, 'fid', log_scale=True)
    ax.set_title(title, fontsize=8)
    ax.set_ylabel('FID (mean, min-max band over seeds)', fontsize=7)
    ax.legend(fontsize=6)
  plots.save(fig, path, 'digits: FID during training')


def _class_grid_figure(path: str, directories: dict[str, str]) -> list[str]:
  """A row per class of each conditional configuration's first seed (its
  evaluation samples, asked for classes 0, 1, ..., 9, 0, ...); returns the
  panels' names."""
  from gan_jax import plots  # pylint: disable=g-import-not-at-top
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  directory = directories.get(CONDITIONAL, '')
  names = results_lib.finished(directory) if os.path.isdir(directory) else []
  if not names:
    return []
  fig, axes = plots.panels(len(names), len(names), 3.2, 3.4)
  for ax, name in zip(axes, names):
    config = results_lib.load_config(directory, name)
    labels = train.eval_labels(config)
    k = int(labels.max()) + 1
    samples = np.load(os.path.join(directory, name, 'samples.npy'))[0]
    seed = results_lib.load_result(directory, name)['finals'][0]['seed']
    plots.draw_images(ax, plots.rows_by_class(samples, labels, k, 10), k, 10)
    ax.set_title(f'{config.conditional}, seed {seed}: row k asked for '
                 f'class k', fontsize=7)
  plots.save(fig, path, 'digits: class-conditional samples')
  return names


def section(directories: dict[str, str],
            figures: Callable[[str], tuple[str, str]],
            score: Optional[Callable[[str, str], list[dict]]] = None
            ) -> list[str]:
  """Section (e)'s lines from the sweeps `directories` ({sweep name:
  directory}); `figures(name)` gives a figure's (path on disk, path
  relative to RESULTS.md); `score` defaults to `seed_scores`."""
  from gan_jax.analysis import report  # pylint: disable=g-import-not-at-top
  score = score or seed_scores
  rows, diverged = _rows({k: d for k, d in directories.items() if k != LONG},
                         score)
  longer, longer_diverged = _rows(
      {LONG: directories[LONG]} if LONG in directories else {}, score)
  diverged.update({(f, f'{m} (longer run)'): seeds
                   for (f, m), seeds in longer_diverged.items()})
  finished = {s: d for s, d in directories.items()
              if os.path.isdir(d) and results_lib.finished(d)}
  missing = [s for s in directories if s not in finished]
  lines = ['## (e) Digits: class conditioning and data-efficient training',
           '']
  if not rows and not longer:
    said = []
    if missing:
      said.append('No sweep of this section has finished: '
                  + ', '.join(f'`{m}`' for m in missing) + '.')
    if diverged:
      said.append('Every seed of the finished configurations diverged: '
                  + _diverged_list(diverged) + '.')
    return lines + [' '.join(said), '']
  # The protocol is that of the shorter sweeps where one has finished.
  first = next((d for s, d in finished.items() if s != LONG),
               finished.get(LONG))
  config, num_seeds, protocol = report.sweep_protocol(first)
  longer_steps = _steps(next(iter(longer.values()))) if longer else None
  lines += [
      f'Protocol: {protocol}; the non-saturating loss; FID against the whole '
      'training split (1,437 digits) in the bundled digits classifier\'s '
      f'feature space, every {config.eval_every} steps and at the end. '
      f'For scale: the 360 held-out real digits score {REAL_HELD_OUT_FID} '
      '(FID is biased upward at small sample counts, so real digits would '
      'score lower at the runs\' 1,000 samples; only 360 exist). '
      'Intra-class FID compares about 100 samples per class with about 144 '
      'training digits in 128 feature dimensions: its sample covariances '
      'are rank-deficient and the value is biased upward, so it compares '
      'configurations at equal sample counts only, not with published '
      'intra-FIDs. The GANs train on all 1,797 digits; a fraction is a '
      'fixed subset of them, stratified by class (`--train_fraction`, '
      '`--subset_seed=0`)' + _subset_sizes(rows, longer) + '. DiffAugment '
      'and LeCam '
      'follow the authors\' limited-CIFAR-10 BigGAN scripts '
      '(`--augment=translation,cutout`, `--lecam_weight=0.3`), untuned. '
      'Conditional runs draw fake labels uniformly. Sweeps: '
      + ', '.join(f'`experiments/sweeps/{s}.cfg`' for s in directories)
      + '.' + (f' The longer runs of `{LONG}` train for {longer_steps} '
               'steps, otherwise under the same protocol.'
               if longer_steps not in (None, config.num_steps) else ''),
      '']
  if missing:
    lines += ['Not finished when this was written (their rows are missing): '
              + ', '.join(f'`{m}`' for m in missing) + '.', '']
  if diverged:
    lines += ['Seeds that diverged are left out of their rows: '
              + _diverged_list(diverged) + '.', '']
  lines += _conditioning_lines(rows)
  lines += _efficiency_lines(rows)
  lines += _longer_lines(rows, longer)
  path, rel = figures('digits_fid_curves.png')
  _curve_figure(path, rows, longer)
  lines += [f'![FID learning curves]({rel})', '']
  path, rel = figures('digits_class_grids.png')
  if _class_grid_figure(path, directories):
    lines += [f'![per-class samples]({rel})', '']
  lines += _target_lines(rows, longer)
  return lines


def _diverged_list(diverged: dict) -> str:
  """'10% none: seed 3 (step 4000); ...' of {(fraction, method): [(seed,
  step)]}."""
  return '; '.join(
      f'{_fraction_label(f)} {m}: ' + ', '.join(
          f'seed {s} (step {step})' for s, step in seeds)
      for (f, m), seeds in sorted(diverged.items()))


def _and(names: Sequence[str]) -> str:
  """'a', 'a and b', 'a, b and c'."""
  return (', '.join(names[:-1]) + ' and ' + names[-1] if len(names) > 1
          else names[0])


def _conditioning_lines(rows: dict) -> list[str]:
  methods = [m for m in ('none', 'projection', 'ACGAN') if (1.0, m) in rows]
  if len(methods) < 2:
    return []
  lines = ['### Class conditioning (100% of the data)', '',
           '| discriminator | FID (final) | lowest mean FID on the curve '
           '(step) | label accuracy (final) | highest mean label accuracy on '
           'the curve (step) | intra-class FID | curve over the last '
           f'{FLAT_WINDOW} evaluations | seeds |',
           '|---|---|---|---|---|---|---|---|']
  for m in methods:
    runs = rows[(1.0, m)]
    step, lowest = lowest_on_curve(runs)
    name = 'unconditional' if m == 'none' else m
    acc = fmt([r['label_acc'] for r in runs], 100) + ' %' if (
        'label_acc' in runs[0]) else 'n/a'
    peak = highest_on_curve(runs, 'label_acc') if (
        'label_acc' in runs[0]) else None
    peak = f'{fmt(peak[1], 100)} % ({peak[0]})' if peak else 'n/a'
    intra = fmt([r['intra_fid'] for r in runs]) if (
        'intra_fid' in runs[0]) else 'n/a'
    lines.append(f'| {name} | {fmt([r["fid"] for r in runs])} | '
                 f'{fmt(lowest)} ({step}) | {acc} | {peak} | {intra} | '
                 f'{flatness(runs)} | {len(runs)} |')
  lines.append('')
  base = [r['fid'] for r in rows[(1.0, 'none')]] if (
      (1.0, 'none') in rows) else None
  for m in methods[1:]:
    if base is None:
      break
    diff, se = results_lib.difference(base, [r['fid'] for r in rows[(1.0, m)]])
    lines.append(f'- {m} − unconditional: {diff:+.1f} ± {se:.1f} FID '
                 f'({"resolved" if results_lib.resolved(diff, se) else "not resolved"}).')
  for m in methods[1:]:
    runs = rows[(1.0, m)]
    fall = fall_after_peak(runs) if 'label_acc' in runs[0] else None
    if fall is None:
      continue
    step, drop, se = fall
    if results_lib.resolved(drop, se) and drop > 0:
      lines.append(f'- {m}: label accuracy falls after its peak at step '
                   f'{step}, by {100 * drop:.1f} ± {100 * se:.1f} points '
                   'to its final value (paired by seed; resolved).')
  if ((1.0, 'projection') in rows and (1.0, 'ACGAN') in rows):
    a = [r['label_acc'] for r in rows[(1.0, 'projection')]]
    b = [r['label_acc'] for r in rows[(1.0, 'ACGAN')]]
    diff, se = results_lib.difference(a, b)
    lines.append(f'- label accuracy, ACGAN − projection: {100 * diff:+.1f} ± '
                 f'{100 * se:.1f} points '
                 f'({"resolved" if results_lib.resolved(diff, se) else "not resolved"}).')
  return lines + ['']


def _efficiency_lines(rows: dict) -> list[str]:
  fractions = sorted({f for f, m in rows if m not in ('projection', 'ACGAN')})
  if not fractions:
    return []
  methods = ('none', 'DiffAugment', 'DiffAugment + LeCam')
  lines = ['### DiffAugment and LeCam at 10%, 25% and 100% of the data', '',
           'Final FID, and in brackets the lowest mean FID on the curve with '
           'its step.', '',
           '| training images | ' + ' | '.join(
               'no augmentation' if m == 'none' else m for m in methods)
           + ' | seeds |', '|---|---|---|---|---|']
  for f in fractions:
    cells = []
    for m in methods:
      runs = rows.get((f, m))
      if runs is None:
        cells.append('missing')
        continue
      step, lowest = lowest_on_curve(runs)
      cells.append(f'{fmt([r["fid"] for r in runs])} '
                   f'({fmt(lowest)} at {step})')
    seeds = {len(rows[(f, m)]) for m in methods if (f, m) in rows}
    lines.append(f'| {_fraction_label(f)} | ' + ' | '.join(cells)
                 + f' | {"/".join(map(str, sorted(seeds)))} |')
  lines += ['', 'Curves over the last '
            f'{FLAT_WINDOW} evaluations: ' + '; '.join(
                f'{_fraction_label(f)} {m}: {flatness(rows[(f, m)])}'
                for f in fractions for m in methods if (f, m) in rows) + '.',
            '']
  for f in fractions:
    for a, b in (('none', 'DiffAugment'),
                 ('DiffAugment', 'DiffAugment + LeCam')):
      if (f, a) in rows and (f, b) in rows:
        fa = [r['fid'] for r in rows[(f, a)]]
        fb = [r['fid'] for r in rows[(f, b)]]
        diff, se = results_lib.difference(fa, fb)
        gain, gain_se = relative_gain(fa, fb)
        lines.append(
            f'- {_fraction_label(f)}, {b} against {a}: final FID '
            f'{diff:+.1f} ± {se:.1f} '
            f'({"resolved" if results_lib.resolved(diff, se) else "not resolved"}), '
            f'a relative gain of {100 * gain:.0f} ± {100 * gain_se:.0f} %.')
  return lines + ['']


def _longer_lines(rows: dict, longer: dict) -> list[str]:
  """The longer DiffAugment runs: final and lowest FID, their curves' last
  evaluations, the same runs at the shorter sweep's last step against that
  sweep's finals, and LeCam against DiffAugment alone."""
  if not longer:
    return []
  fractions = sorted({f for f, _ in longer})
  steps = _steps(next(iter(longer.values())))
  verdicts = {}  # verdict: the shorter rows that end with it
  for f, m in sorted(longer):
    judged = trend(rows[(f, m)]) if (f, m) in rows else None
    if judged and judged[0] != 'not judged':
      verdicts.setdefault(judged[0], []).append(f'{_fraction_label(f)} {m}')
  why = ''
  if verdicts:
    why = (f'Over their last {FLAT_WINDOW} evaluations, of the shorter runs '
           'above, ' + '; '.join(
               f'{_and(names)} {"is" if len(names) == 1 else "are"} '
               f'{verdict}' for verdict, names in verdicts.items()) + '. ')
  lines = [f'### DiffAugment trained on to {steps} steps', '',
           why + 'The same configurations (same seeds) go on to '
           f'{steps} steps (`experiments/sweeps/{LONG}.cfg`).', '',
           '| training images | method | FID (final) | lowest mean FID on '
           'the curve (step) | FID on the curve at the shorter run\'s end '
           f'(step) | curve over the last {FLAT_WINDOW} evaluations | '
           'seeds |', '|---|---|---|---|---|---|---|']
  for f in fractions:
    for m in ('DiffAugment', 'DiffAugment + LeCam'):
      runs = longer.get((f, m))
      if runs is None:
        continue
      step, lowest = lowest_on_curve(runs)
      shorter = rows.get((f, m))
      at_end = 'n/a'
      if shorter:
        end = _steps(shorter)
        curve_steps, fids = curve_matrix(runs)
        if end in curve_steps:
          at_end = (f'{fmt(list(fids[:, list(curve_steps).index(end)]))} '
                    f'({end}; that run\'s final: '
                    f'{fmt([r["fid"] for r in shorter])})')
      lines.append(f'| {_fraction_label(f)} | {m} | '
                   f'{fmt([r["fid"] for r in runs])} | {fmt(lowest)} '
                   f'({step}) | {at_end} | {flatness(runs)} | {len(runs)} |')
  lines.append('')
  for f in fractions:
    if (f, 'DiffAugment') in longer and (f, 'DiffAugment + LeCam') in longer:
      fa = [r['fid'] for r in longer[(f, 'DiffAugment')]]
      fb = [r['fid'] for r in longer[(f, 'DiffAugment + LeCam')]]
      diff, se = results_lib.difference(fa, fb)
      lines.append(
          f'- {_fraction_label(f)} at {steps} steps, DiffAugment + LeCam '
          f'against DiffAugment: final FID {diff:+.1f} ± {se:.1f} '
          f'({"resolved" if results_lib.resolved(diff, se) else "not resolved"}).')
  return lines + ['']


def _subset_sizes(rows: dict, longer: dict) -> str:
  """': 10% is 179 images, 25% is 450 images' for the fractions below 1
  that the rows train on: `data.subset_indices` of the digits' labels."""
  from gan_jax import data  # pylint: disable=g-import-not-at-top
  from gan_jax.data import images  # pylint: disable=g-import-not-at-top
  fractions = sorted({f for f, _ in list(rows) + list(longer) if f < 1.0})
  if not fractions:
    return ''
  labels = np.asarray(images.digits().labels)
  return ': ' + ', '.join(
      f'{_fraction_label(f)} is '
      f'{len(data.subset_indices(len(labels), f, labels))} images'
      for f in fractions)


def _target_lines(rows: dict, longer: dict) -> list[str]:
  lines = ['### Against the targets', '']
  for m in ('projection', 'ACGAN'):
    if (1.0, m) in rows and 'label_acc' in rows[(1.0, m)][0]:
      acc = [r['label_acc'] for r in rows[(1.0, m)]]
      mean = results_lib.mean_se(acc)[0]
      lines.append(f'- Label accuracy ≥ {100 * LABEL_ACCURACY_TARGET:.0f} % '
                   f'({m}): {fmt(acc, 100)} % over {len(acc)} seeds, '
                   f'{"met" if mean >= LABEL_ACCURACY_TARGET else "not met"} '
                   'by the mean.')
  if (0.1, 'none') in rows and (0.1, 'DiffAugment') in rows:
    gain, se = relative_gain([r['fid'] for r in rows[(0.1, 'none')]],
                             [r['fid'] for r in rows[(0.1, 'DiffAugment')]])
    lines.append(f'- DiffAugment at 10 % improves final FID by ≥ '
                 f'{100 * AUGMENT_GAIN_TARGET:.0f} %: {100 * gain:.0f} ± '
                 f'{100 * se:.0f} %, '
                 f'{"met" if gain >= AUGMENT_GAIN_TARGET else "not met"} by '
                 'the mean.')
  finals = {(f, 'no augmentation' if m == 'none' else m):
            results_lib.mean_se([r['fid'] for r in v])
            for (f, m), v in rows.items()}
  finals.update({(f, f'{m} for {_steps(v)} steps'):
                 results_lib.mean_se([r['fid'] for r in v])
                 for (f, m), v in longer.items()})
  best = min(finals, key=lambda k: finals[k][0])
  m, se, n = finals[best]
  method = best[1]
  lines.append(f'- Best configuration by mean final FID ≤ {FID_TARGET:g}: '
               f'{method} at {_fraction_label(best[0])} of the data, '
               f'{m:.1f} ± {se:.1f} over {n} seeds, '
               f'{"met" if m <= FID_TARGET else "not met"} (an ordering of '
               'configurations whose intervals overlap is not a ranking).')
  return lines + ['']
