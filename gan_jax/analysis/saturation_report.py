"""Section (b) of the reproduction report: does the minimax G loss saturate?

The article (and Goodfellow et al. 2014, Sec. 3) says: early in training D
rejects the fakes confidently, log(1 - D(G(z))) saturates, and G learns
little; -log D(G(z)) is proposed instead. Predictions:

* Goodfellow et al. 2014, Sec. 3: with a confident D, the minimax G loss
  gives weak gradients early; the non-saturating one gives strong ones.
* Arjovsky & Bottou 2017, Sec. 2.2 (Fig. 2): as D approaches its optimum
  against a fixed G the minimax G gradient vanishes
  (grad = -E[D(G(z)) grad f], D(G(z)) -> 0) while the non-saturating one,
  -E[(1 - D(G(z))) grad f], does not vanish (and can be unstable).
* Lucic et al. 2018 ("Are GANs created equal?"): over hyperparameter
  searches the minimax and non-saturating losses reach similar scores;
  differences between losses are mostly within the spread over seeds.

E1 (`gan_jax.saturation`): G frozen at a few steps of a run, a fresh D
trained from scratch against it, both G-gradient norms after every D step.
E2 (sweeps `saturation_e2_{adam,sgd}`): D made to win early by 1, 5 or 25 D
steps per G step, minimax against non-saturating, with Adam and with SGD
(momentum 0.9), 10 seeds; D(G(z)) and the fraction of fakes with
D(G(z)) < 1e-3 are logged every step (`Loss.probabilistic` metrics).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from gan_jax.analysis import results as results_lib

E1_COMMAND = ('python -m gan_jax.saturation '
              '--flagfile=experiments/ring8_non_saturating.cfg '
              '--snapshots=500,2000,8000 --d_train_steps=3000 --e1_seeds=5 '
              '--out=experiments/saturation')


def e1_lines(e1_dir: str) -> list[str]:
  """E1's table (per snapshot, over seeds, at the last D step) and figure."""
  path = os.path.join(e1_dir, 'e1.json')
  if not os.path.isfile(path):
    return [f'E1 is missing: `{E1_COMMAND}` has not been run.', '']
  e1 = json.load(open(path))
  lines = [f'**E1.** `{E1_COMMAND}`: {e1["dataset"]}, {e1["model"]}, batch '
           f'{e1["batch_size"]}; G frozen at steps '
           f'{", ".join(map(str, e1["snapshots"]))} of a non-saturating run, '
           f'a fresh D (Adam, the run\'s settings) trained from scratch for '
           f'{e1["d_train_steps"]} steps against it, {len(e1["seeds"])} '
           'seeds. Values after the last D step, mean ± standard error over '
           'seeds:', '',
           '| G frozen at step | fakes with D(G(z)) < 1e-3 | mean D(G(z)) | '
           '‖∇G‖ minimax | ‖∇G‖ non-saturating | ratio minimax / '
           'non-saturating |', '|---|---|---|---|---|---|']
  for row in e1['summary']:
    lines.append(
        f'| {row["snapshot"]} | {100 * row["saturated"]:.0f} ± '
        f'{100 * row["saturated_se"]:.0f} % | {row["d_fake_prob"]:.3f} ± '
        f'{row["d_fake_prob_se"]:.3f} | {row["minimax"]:.3g} ± '
        f'{row["minimax_se"]:.2g} | {row["non_saturating"]:.3g} ± '
        f'{row["non_saturating_se"]:.2g} | {row["ratio"]:.3f} ± '
        f'{row["ratio_se"]:.3f} |')
  saturated = [r for r in e1['summary'] if r['saturated'] > 0.5]
  if saturated:
    best = max(saturated, key=lambda r: r['saturated'])
    runs = [r for r in e1.get('runs', []) if r['snapshot'] == best['snapshot']]
    growth = ''
    if runs:
      change = {k: float(np.mean([r[k][-1] / r[k][0] for r in runs]))
                for k in ('minimax', 'non_saturating')}
      growth = (f' From D\'s first step to its last, the minimax norm changed '
                f'×{change["minimax"]:.3g} and the non-saturating one '
                f'×{change["non_saturating"]:.3g} (mean over seeds): '
                + ('the minimax gradient vanishes.' if change['minimax'] < 0.1
                   else 'the minimax gradient shrinks relative to the other '
                   'but does not vanish; the fakes D does not reject '
                   'dominate it.'))
    lines += ['', f'The regime the theory is about (most fakes at D(G(z)) < '
              f'1e-3) is reached for G frozen at step {best["snapshot"]} '
              f'({100 * best["saturated"]:.0f}% of fakes); there the '
              f'minimax G gradient is {best["ratio"]:.3f} ± '
              f'{best["ratio_se"]:.3f} of the non-saturating one.' + growth]
  else:
    lines += ['', 'No snapshot reached the regime the theory is about (most '
              'fakes at D(G(z)) < 1e-3) within these D steps.']
  lines += ['', '![E1: G-gradient norms against a fresh D](saturation/e1.png)',
            '']
  return lines


def _early(log: list[dict], key: str, upto: int) -> Optional[float]:
  values = [r[key] for r in log if key in r and r['step'] <= upto]
  return float(np.mean(values)) if values else None


def e2_lines(directories: dict[str, str]) -> list[str]:
  """E2's table (optimizer x d_steps x loss) and who learns."""
  lines = []
  found = {opt: d for opt, d in directories.items()
           if os.path.isdir(d) and results_lib.finished(d)}
  missing = [opt for opt in directories if opt not in found]
  if not found:
    return ['E2 is missing: its sweeps have not finished.', '']
  first = next(iter(found.values()))
  config = results_lib.load_config(first, results_lib.finished(first)[0])
  upto = config.log_every
  lines += [f'**E2.** Sweeps `saturation_e2_{{adam,sgd}}`: {config.dataset}, '
            f'MLP {"x".join(map(str, config.g_hidden))} both players, batch '
            f'{config.batch_size}, {config.num_steps} G steps, '
            f'{len(results_lib.load_result(first, results_lib.finished(first)[0])["finals"])}'
            ' seeds; D takes d_steps updates per G step. "early" = the mean '
            f'over the first {upto} G steps. Mean ± standard error over '
            'seeds.', '',
            '| optimizer | D steps | G loss | early mean D(G(z)) | early '
            'fakes < 1e-3 | modes | % HQ |', '|---|---|---|---|---|---|---|']
  verdicts, outcomes = [], []
  for opt, directory in found.items():
    by_point = {}
    for name in results_lib.finished(directory):
      result = results_lib.load_result(directory, name)
      logs = results_lib.load_logs(directory, name)
      point = result['point']
      by_point[(point['d_steps'], point['loss'])] = (result['finals'], logs)
    for d_steps in sorted({k[0] for k in by_point}, key=int):
      for loss in ('minimax', 'non_saturating'):
        if (d_steps, loss) not in by_point:
          continue
        finals, logs = by_point[(d_steps, loss)]
        prob = [_early(l, 'd_fake_prob', upto) for l in logs]
        sat = [_early(l, 'd_fake_saturated_frac', upto) for l in logs]
        lines.append(
            f'| {opt} | {d_steps} | {loss} | '
            f'{results_lib.format_mean_se("d_fake_prob", prob)} | '
            f'{results_lib.format_mean_se("hq_fraction", sat)} % | '
            f'{results_lib.format_mean_se("modes", [f["modes"] for f in finals])}'
            f' | {results_lib.format_mean_se("hq_fraction", [f["hq_fraction"] for f in finals])} |')
      if all((d_steps, l) in by_point for l in ('minimax', 'non_saturating')):
        mm = [f['modes'] for f in by_point[(d_steps, 'minimax')][0]]
        ns = [f['modes'] for f in by_point[(d_steps, 'non_saturating')][0]]
        diff, se = results_lib.difference(mm, ns)
        learns = max(np.mean(mm), np.mean(ns)) >= 1.0
        if not learns:
          who = 'neither learns: both below one mode on average'
        elif results_lib.resolved(diff, se):
          who = ('non-saturating covers more modes' if diff > 0 else
                 'minimax covers more modes')
        else:
          who = 'no resolved difference'
        verdicts.append(f'{opt}, {d_steps} D steps: non-saturating − minimax '
                        f'= {diff:+.2f} ± {se:.2f} modes ({who})')
        hq = {l: 100 * np.mean([f['hq_fraction']
                                for f in by_point[(d_steps, l)][0]])
              for l in ('minimax', 'non_saturating')}
        outcomes.append((opt, int(d_steps), learns,
                         results_lib.resolved(diff, se), diff, hq))
  lines += ['', 'Who learns (modes at the end, difference with its '
            'standard error; "resolved" = beyond two standard errors): '
            + '; '.join(verdicts) + '.']
  lines += [''] + e2_against_predictions(outcomes)
  if missing:
    lines += ['', f'Missing: E2 with {", ".join(missing)} (its sweep had not '
              'finished).']
  return lines + ['']


INTRO = ('The article says that early in training D rejects the fakes '
         'confidently, so log(1 - D(G(z))) saturates and G learns little; '
         'the non-saturating -log D(G(z)) is proposed instead (Goodfellow et '
         'al. 2014, Sec. 3).')
PREDICTIONS = (
    '* Goodfellow et al. 2014, Sec. 3: with a confident D the minimax G loss '
    'gives weak gradients early; the non-saturating one gives strong ones.',
    '* Arjovsky & Bottou 2017, Sec. 2.2 (Fig. 2): as D approaches its optimum '
    'against a fixed G, the minimax G gradient -E[D(G(z)) ∇f] vanishes while '
    'the non-saturating one, -E[(1 - D(G(z))) ∇f], does not.',
    '* Lucic et al. 2018: over hyperparameter searches the minimax and '
    'non-saturating losses reach similar scores; differences between losses '
    'are mostly within the spread over seeds.',
)


def e2_against_predictions(outcomes: list[tuple]) -> list[str]:
  """E2's (optimizer, d_steps, someone learns, resolved, NS - MM) read
  against Goodfellow et al. (D winning: NS ahead) and Lucic et al. (balanced
  players: no resolved difference)."""
  winning = [o for o in outcomes if o[1] > 1 and o[2]]
  balanced = [o for o in outcomes if o[1] == 1 and o[2]]
  silent = [f'{o[0]} with {o[1]} D steps' for o in outcomes if not o[2]]
  # (optimizer, d_steps, someone learns, resolved, NS - MM, % HQ by loss)
  lines = []
  name = lambda o: f'{o[0]} with {o[1]} D steps'
  if winning:
    ahead = [o for o in winning if o[3] and o[4] > 0]
    behind = [o for o in winning if o[3] and o[4] < 0]
    line = (f'* D made to win (more than one D step per G step), where at '
            f'least one loss learns: the non-saturating loss is ahead, '
            f'resolved, in {len(ahead)} of {len(winning)} settings, as '
            'Goodfellow et al. predict'
            + (f' ({", ".join(map(name, ahead))})' if ahead else '') + '.')
    if behind:
      line += (' Against the prediction, the minimax loss is ahead, '
               'resolved, in ' + '; '.join(
                   f'{name(o)} (% HQ: minimax {o[5]["minimax"]:.1f}, '
                   f'non-saturating {o[5]["non_saturating"]:.1f})'
                   for o in behind) + '.')
    lines.append(line)
  if balanced:
    same = [o for o in balanced if not o[3]]
    lines.append(
        f'* One D step per G step: no resolved difference in {len(same)} of '
        f'{len(balanced)} settings where a loss learns (Lucic et al.: similar '
        'scores).')
  if silent:
    lines.append('* Neither loss learns (under one mode on average) with '
                 + ', '.join(silent) + ': these settings say nothing about '
                 'saturation.')
  return lines + ['']


def section(e1_dir: str, e2_dirs: dict[str, str]) -> list[str]:
  return ([INTRO, '', 'Predictions:', ''] + list(PREDICTIONS) + [''] +
          e1_lines(e1_dir) + e2_lines(e2_dirs))
