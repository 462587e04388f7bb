"""The Dirac-GAN report's text: tables and findings generated from the runs.

Every sentence of `report_markdown` that states a result is computed from the
table rows of `gan_jax.dirac_report.dirac_table`: a theoretical prediction is
printed beside the measured counts it is about, with the runs that do not
follow it named, so the prose cannot contradict the table.

Predictions (Mescheder, Geiger & Nowozin 2018, "Which Training Methods for
GANs do actually Converge?", ICML):

* Unregularised, J(0, 0) = [[0, -g'(0)], [h'(0), 0]] has eigenvalues
  +-sqrt(-g'(0) h'(0)), purely imaginary when g'(0) h'(0) > 0 (Sec. 2.2).
* Simultaneous gradient steps map an imaginary eigenvalue i a to 1 + h i a,
  of modulus > 1 for every step h > 0: no convergence to (0, 0) (Sec. 2.2).
  Alternating steps have eigenvalues on the unit circle for small h (the
  bilinear game conserves a quadratic form): no convergence either.
* WGAN with a clipped critic and WGAN-GP do not converge in general (Sec. 3.1
  and 3.3); instance noise and the zero-centred penalties (R1) make J(0, 0)
  damped (Sec. 3.2, 3.3), and Theorem 4.1 proves local convergence of
  simultaneous and alternating gradient descent with R1 for small enough
  step sizes. These runs start at (1, 1) with h = 0.2: neither "local" nor
  "small enough" is guaranteed, so a failure is a measurement, not a
  contradiction of the theorem.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

VERDICTS = ('converged', 'converging', 'cycling', 'stalled', 'diverged')
_SYMBOL = {'converged': 'converged', 'converging': 'converging',
           'cycling': 'cycling', 'stalled': 'stalled', 'diverged': 'DIVERGED'}
_TOL = 5e-7


def _fmt_eig(eig: list[list[float]]) -> str:
  parts = []
  for re, im in eig:
    re = 0.0 if abs(re) < _TOL else re
    im = 0.0 if abs(im) < _TOL else im
    parts.append(f'{re:+.3g}{im:+.3g}i' if im else f'{re:+.3g}')
  return ', '.join(parts)


def _spectrum_kind(eig: list[list[float]]) -> str:
  """'imaginary' (all real parts 0, some imaginary part not), 'damped' (all
  real parts < 0), 'zero', or 'other'."""
  re = np.array([e[0] for e in eig])
  im = np.array([e[1] for e in eig])
  if np.all(np.abs(re) < _TOL) and np.any(np.abs(im) >= _TOL):
    return 'imaginary'
  if np.all(re < -_TOL):
    return 'damped'
  if np.all(np.abs(re) < _TOL) and np.all(np.abs(im) < _TOL):
    return 'zero'
  return 'other'


def _counts(rows: list[dict]) -> str:
  """'3/14 converged; converging 2, cycling 9' style summary of `rows`."""
  good = sum(r['verdict'] == 'converged' for r in rows)
  rest = ', '.join(f'{v if v != "diverged" else "DIVERGED"} '
                   f'{sum(r["verdict"] == v for r in rows)}'
                   for v in VERDICTS[1:]
                   if any(r['verdict'] == v for r in rows))
  return f'{good}/{len(rows)} converged' + (f'; {rest}' if rest else '')


def _names(rows: list[dict], verdicts: Sequence[str]) -> str:
  named = [f'{r["row"]} ({_SYMBOL[r["verdict"]]})' for r in rows
           if r['verdict'] in verdicts]
  return ', '.join(named) if named else 'none'


def _select(rows, **match) -> list[dict]:
  return [r for r in rows if all(r[k] == v for k, v in match.items())]


def findings(rows: list[dict], sections, columns) -> list[str]:
  """The report's findings: each prediction with the measured counts."""
  none = sections[0].label
  out = []
  plain = _select(rows, section=none, column=columns[0].label)
  kinds = {r['row']: _spectrum_kind(r['eigenvalues']) for r in plain}
  imaginary = [k for k, v in kinds.items() if v == 'imaginary']
  others = [f'{k} ({_fmt_eig(next(r for r in plain if r["row"] == k)["eigenvalues"])})'
            for k, v in kinds.items() if v != 'imaginary']
  out.append(
      f'* **Spectrum without a regulariser.** Predicted: purely imaginary '
      f'wherever g\'(0) h\'(0) > 0. Measured: {len(imaginary)}/{len(kinds)} '
      f'rows purely imaginary; the others: {", ".join(others) or "none"}.')
  on_imaginary = lambda r: kinds.get(r['row']) == 'imaginary'
  for column, claim in (
      ('simultaneous', 'no convergence to (0, 0) for any step size'),
      ('alternating', 'no convergence for small steps (eigenvalues on the '
       'unit circle)')):
    sel = [r for r in _select(rows, section=none, column=column)
           if on_imaginary(r)]
    if not sel:
      continue
    out.append(
        f'* **{column.capitalize()} steps, no regulariser, imaginary '
        f'spectrum.** Predicted: {claim}. Measured: {_counts(sel)}. '
        f'Converged: {_names(sel, ("converged",))}.')
  for section in sections[1:]:
    sel = [r for r in rows if r['section'] == section.label]
    kinds_here = {r['row']: _spectrum_kind(r['eigenvalues']) for r in sel}
    damped = sum(v == 'damped' for v in kinds_here.values())
    text = f'* **{section.label}.** '
    if section.label.startswith('r1') or section.label.startswith('instance'):
      text += ('Predicted: a damped spectrum (every real part < 0)' + (
          ' where the loss is curved at 0; zero-mean noise leaves a linear '
          'loss (wasserstein, hinge near 0) unchanged' if
          section.label.startswith('instance') else '') +
               f'. Measured: {damped}/{len(kinds_here)} rows damped. ')
      theorem = (' (Theorem 4.1\'s schemes)' if section.label.startswith('r1')
                 else '')
      for column in ('simultaneous', 'alternating'):
        part = _select(sel, column=column)
        text += (f'{column.capitalize()} steps{theorem}: '
                 f'{_counts(part)}; not converged: '
                 f'{_names(part, VERDICTS[1:])}. ')
    else:
      text += ('Predicted: no convergence to (0, 0) in general. Measured '
               f'over every scheme: {_counts(sel)}. ')
    others = [c.label for c in columns
              if c.label not in ('simultaneous', 'alternating')]
    text += 'Other schemes: ' + '; '.join(
        f'{c} ({_counts(_select(sel, column=c))})' for c in others) + '.'
    out.append(text)
  clipped = [r for r in rows if r['weight_clip'] > 0 and r['section'] == none]
  if clipped:
    out.append(
        '* **WGAN with a clipped critic** (psi in [-1, 1], no regulariser). '
        'Predicted for simultaneous and alternating gradient descent: no '
        'convergence (Sec. 3.1). Measured: '
        + '; '.join(f'{r["column"]} {_SYMBOL[r["verdict"]]} '
                    f'{r["distance"]:.2g}' for r in clipped) + '.')
  one, five = 'alternating', 'alternating, 5 D steps'
  if any(c.label == five for c in columns):
    parts = []
    for section in sections:
      a = _select(rows, section=section.label, column=one)
      b = _select(rows, section=section.label, column=five)
      parts.append(f'{section.label}: {sum(r["verdict"] == "converged" for r in a)}'
                   f' vs {sum(r["verdict"] == "converged" for r in b)}')
    out.append('* **1 vs 5 D steps per G step** (alternating), rows '
               'converged: ' + '; '.join(parts) + '.')
  return out


def report_markdown(rows, base, loss_rows, sections, columns, plot_losses,
                    seconds) -> str:
  lines = [
      '# Dirac-GAN: which losses, regularisers and update schemes converge',
      '',
      'Generated by',
      '',
      '```bash',
      '.venv/bin/python -m gan_jax.dynamics --report_dir=experiments/dynamics',
      '```',
      '',
      f'({seconds:.0f} s on CPU). Setup of Mescheder, Geiger & Nowozin (2018), '
      'Sec. 2.2: data delta_0, generator delta_theta, discriminator '
      'D_psi(x) = psi x; both players take plain gradient steps of size '
      f'{base.learning_rate} from theta0 = {base.theta0:g}, psi0 = '
      f'{base.psi0:g} for {base.num_steps} steps, through the library\'s own '
      '`Steps.train_step` (`gan_jax.dirac.simulate`). The unique '
      'equilibrium is (0, 0) (for `least_squares` every (theta, 0) is '
      'stationary). Consensus weight '
      f'{base.consensus_weight:g}.',
      '',
      'Rows: every loss of `gan_jax.losses`. `wasserstein` alone is an '
      '*unconstrained* linear critic; the WGAN of Arjovsky et al. (2017) is '
      'the row with psi clipped to [-1, 1] after every D step (the '
      'notebook\'s `WGAN(1.)`). Sections: the stabilisers at the weights of '
      'Mescheder et al.\'s DiracGAN notebook (`notebooks/DiracGAN.ipynb` of '
      'LMescheder/GAN_stability): `r1` = gamma/2 |grad_x D(x)|^2 on real data '
      '(the notebook\'s `GAN_GradPenalty(0.3)` and its "critical" 1.0); '
      '`wgan_gp` = gamma (|grad_x D(x_hat)| - 1)^2 with gamma = 0.35, whose '
      'gradient 0.7 (|psi| - 1) sign(psi) is the notebook\'s '
      '`WGAN_GP(0.7, 1.)`; instance noise sigma = 0.7 (`GAN_InstNoise(0.7)`): '
      'D sees both points blurred by N(0, sigma^2), '
      f'{base.noise_draws} draws of each per step. The penalties are '
      '`gan_jax.regularizers`\' own; D\'s input gradient is psi everywhere, '
      'so they are gamma/2 psi^2 and gamma (|psi| - 1)^2. Columns: every '
      'update scheme, and alternating steps with 5 D steps per G step.',
      '',
      'Verdicts (`gan_jax.dirac.classify`): **converged** |theta_T|, '
      '|psi_T| < 0.01; converging: closer than at the start and still '
      'shrinking; cycling: bounded but not approaching; stalled: stopped away '
      'from (0, 0); DIVERGED: ended farther out and still moving out, or '
      'non-finite. Each cell gives the verdict and |x_T| = |(theta_T, psi_T)|. '
      'The last column is the spectrum of the Jacobian of the field at (0, 0) '
      '(`jax.jacfwd`; under instance noise, of the expected field).',
      '',
      '## Findings',
      '',
      'Each prediction of the theory (Mescheder et al. 2018) beside what '
      'these runs measured; generated from the table below.',
      '',
  ]
  lines += findings(rows, sections, columns)
  lines.append('')
  for section in sections:
    lines += [f'## {section.label}', '',
              '| loss | ' + ' | '.join(c.label for c in columns) +
              ' | eig J(0, 0) |',
              '|---|' + '---|' * len(columns) + '---|']
    for row in loss_rows:
      cells, eig, reg = [], None, None
      for column in columns:
        r = next(r for r in rows if (r['row'], r['section'], r['column']) ==
                 (row.label, section.label, column.label))
        eig, reg = r['eigenvalues'], r['regularizer']
        text = f'{_SYMBOL[r["verdict"]]} {r["distance"]:.2g}'
        cells.append(f'**{text}**' if r['verdict'] == 'converged' else text)
      spectrum = (_fmt_eig(eig) if reg != 'wgan_gp' else
                  'undefined (kink of abs(psi) at 0)')
      lines.append(f'| {row.label} | ' + ' | '.join(cells) + f' | {spectrum} |')
    lines.append('')
  lines += [
      'Plots (grey: normalised field v; blue: trajectory from the green dot '
      'to the red cross; black star: (0, 0)):',
      '',
  ]
  for name in plot_losses:
    lines += [f'![Dirac-GAN {name}](dirac_{name}.png)', '']
    if name == 'wasserstein':
      lines += ['![Dirac-GAN WGAN, clipped critic](dirac_wgan_clipped.png)', '']
  return '\n'.join(lines)
