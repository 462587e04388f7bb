"""The Dirac-GAN report: every loss x penalty x update scheme, simulated.

`write_report(out_dir)` reproduces the experiment of Mescheder, Geiger &
Nowozin (2018, Sec. 2.2; theta0 = psi0 = 1, step size 0.2, 500 steps, plain
SGD) for every loss in `REPORT_LOSSES`, every penalty in
`REPORT_REGULARIZERS` and every update scheme of `gan_jax.steps`, with
`gan_jax.dirac.simulate`, and writes

    out_dir/RESULTS.md         the verdict tables, the spectra of J(0, 0) and
                               a reading of them;
    out_dir/dirac_table.json   one row per (loss, regulariser, update);
    out_dir/dirac_<loss>.png   trajectories over the normalised field, one
                               figure per loss in `PLOT_LOSSES`.

Every file is written atomically (`gan_jax.fileio`). The command is

    python -m gan_jax.dynamics --report_dir=experiments/dynamics
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import fileio
from gan_jax.dirac import DiracSetup, classify, dirac_field, dirac_jacobian
from gan_jax.dirac import simulate
from gan_jax.steps import UPDATES

REPORT_REGULARIZERS = ('none', 'r1', 'wgan_gp')
REPORT_LOSSES = ('minimax', 'non_saturating', 'wasserstein', 'hinge',
                 'least_squares', 'fgan_kl', 'fgan_reverse_kl', 'fgan_js',
                 'fgan_pearson', 'fgan_hellinger', 'rasgan', 'ralsgan',
                 'rahinge')
PLOT_LOSSES = ('non_saturating', 'wasserstein', 'least_squares', 'fgan_kl')
_SYMBOL = {'converged': 'converged', 'converging': 'converging',
           'cycling': 'cycling', 'stalled': 'stalled', 'diverged': 'DIVERGED'}


def dirac_table(base: DiracSetup = DiracSetup(),
                losses: Sequence[str] = REPORT_LOSSES,
                regularizers: Sequence[str] = REPORT_REGULARIZERS,
                updates: Sequence[str] = UPDATES,
                log: Optional[Callable[[str], None]] = None) -> list[dict]:
  """Simulates every (loss, regulariser, update) and returns one row each."""
  rows = []
  for loss in losses:
    for reg in regularizers:
      setup = dataclasses.replace(base, loss=loss, regularizer=reg)
      eig = np.linalg.eigvals(dirac_jacobian(setup))
      for update in updates:
        path = simulate(dataclasses.replace(setup, update=update))
        rows.append(dict(
            loss=loss, regularizer=reg, update=update,
            verdict=classify(path), theta=float(path[-1, 0]),
            psi=float(path[-1, 1]), distance=float(np.linalg.norm(path[-1])),
            eigenvalues=[[float(e.real), float(e.imag)] for e in eig],
            path=path))
      if log is not None:
        log(f'{loss:>16s} {reg:>8s}: ' + ' '.join(
            f'{r["update"]}={r["verdict"]}' for r in rows[-len(updates):]))
  return rows


def _fmt_eig(eig: list[list[float]]) -> str:
  parts = []
  for re, im in eig:
    re = 0.0 if abs(re) < 5e-7 else re
    im = 0.0 if abs(im) < 5e-7 else im
    parts.append(f'{re:+.3g}{im:+.3g}i' if im else f'{re:+.3g}')
  return ', '.join(parts)


def _plot_loss(path: str, rows: list[dict], loss: str, base: DiracSetup,
               regularizers: Sequence[str], updates: Sequence[str]) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  grid = np.linspace(-2.0, 2.0, 17)
  tt, pp = np.meshgrid(grid, grid, indexing='xy')
  points = jnp.asarray(np.stack([tt.ravel(), pp.ravel()], -1), jnp.float32)
  fig, axes = plt.subplots(len(regularizers), len(updates),
                           figsize=(3.0 * len(updates),
                                    3.0 * len(regularizers)),
                           squeeze=False)
  for i, reg in enumerate(regularizers):
    field = jax.jit(jax.vmap(dirac_field(
        dataclasses.replace(base, loss=loss, regularizer=reg))))
    v = np.asarray(field(points))
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.maximum(norm, 1e-12)
    for j, update in enumerate(updates):
      row = next(r for r in rows if (r['loss'], r['regularizer'],
                                     r['update']) == (loss, reg, update))
      ax = axes[i, j]
      ax.quiver(tt, pp, v[:, 0].reshape(tt.shape), v[:, 1].reshape(tt.shape),
                color='0.7', width=0.004, scale=22)
      track = row['path'][np.all(np.isfinite(row['path']), axis=1)]
      ax.plot(track[:, 0], track[:, 1], color='tab:blue', lw=1.0)
      ax.plot(track[:1, 0], track[:1, 1], 'o', color='tab:green', ms=4)
      ax.plot(track[-1:, 0], track[-1:, 1], 'x', color='tab:red', ms=6)
      ax.plot([0], [0], '*', color='black', ms=7)
      ax.set_xlim(-2, 2)
      ax.set_ylim(-2, 2)
      ax.set_aspect('equal')
      ax.set_title(f'{reg} / {update}\n{row["verdict"]}, '
                   f'|x_T| = {row["distance"]:.2g}', fontsize=8)
      ax.tick_params(labelsize=6)
      if i == len(regularizers) - 1:
        ax.set_xlabel('theta', fontsize=7)
      if j == 0:
        ax.set_ylabel('psi', fontsize=7)
  fig.suptitle(f'Dirac-GAN, loss {loss}: normalised field v(theta, psi) and '
               f'{base.num_steps} steps of size {base.learning_rate} from '
               f'({base.theta0:g}, {base.psi0:g})', fontsize=10)
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=60)
  plt.close(fig)


def write_report(out_dir: str, base: DiracSetup = DiracSetup(),
                 losses: Sequence[str] = REPORT_LOSSES,
                 plot_losses: Sequence[str] = PLOT_LOSSES,
                 log: Optional[Callable[[str], None]] = None) -> list[dict]:
  """Writes `out_dir/RESULTS.md`, `out_dir/dirac_table.json` and one
  `out_dir/dirac_<loss>.png` per plotted loss; returns the table rows."""
  start = time.perf_counter()
  rows = dirac_table(base, losses, REPORT_REGULARIZERS, UPDATES, log=log)
  os.makedirs(out_dir, exist_ok=True)
  for loss in plot_losses:
    _plot_loss(os.path.join(out_dir, f'dirac_{loss}.png'), rows, loss, base,
               REPORT_REGULARIZERS, UPDATES)
  seconds = time.perf_counter() - start
  fileio.atomic_write(
      os.path.join(out_dir, 'dirac_table.json'),
      json.dumps([{k: v for k, v in r.items() if k != 'path'} for r in rows],
                 indent=1))
  fileio.atomic_write(
      os.path.join(out_dir, 'RESULTS.md'),
      _report_markdown(rows, base, losses, plot_losses, seconds))
  return rows


def _report_markdown(rows, base, losses, plot_losses, seconds) -> str:
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
      'stationary, see below). Regularisers: `r1` = gamma/2 |grad_x D(x)|^2 on '
      f'real data (zero-centred, gamma = {base.gamma:g}); `wgan_gp` = gamma '
      '(|grad_x D(x_hat)| - 1)^2 (one-centred), both `gan_jax.regularizers`\' '
      'own, the penalties training uses; D\'s input gradient is psi '
      'everywhere, so they are gamma/2 psi^2 and gamma (|psi| - 1)^2. '
      f'Consensus weight {base.consensus_weight:g}.',
      '',
      'Verdicts (`gan_jax.dirac.classify`): **converged** |theta_T|, '
      '|psi_T| < 0.01; converging: closer than at the start and still '
      'shrinking; cycling: bounded but not approaching; stalled: stopped away '
      'from (0, 0); DIVERGED: ended farther out and still moving out, or '
      'non-finite. Each cell gives the verdict and |x_T| = |(theta_T, psi_T)|. '
      'The last column is the spectrum of the Jacobian of the field at (0, 0) '
      '(`jax.jacfwd`).',
      '',
  ]
  for reg in REPORT_REGULARIZERS:
    lines += [f'## Regulariser: {reg}', '',
              '| loss | ' + ' | '.join(UPDATES) + ' | eig J(0, 0) |',
              '|---|' + '---|' * len(UPDATES) + '---|']
    for loss in losses:
      cells = []
      eig = None
      for update in UPDATES:
        r = next(r for r in rows if (r['loss'], r['regularizer'],
                                     r['update']) == (loss, reg, update))
        eig = r['eigenvalues']
        text = f'{_SYMBOL[r["verdict"]]} {r["distance"]:.2g}'
        cells.append(f'**{text}**' if r['verdict'] == 'converged' else text)
      spectrum = (_fmt_eig(eig) if reg != 'wgan_gp' else
                  'undefined (kink of abs(psi) at 0)')
      lines.append(f'| {loss} | ' + ' | '.join(cells) + f' | {spectrum} |')
    lines.append('')

  lines += ['## What converged', '']
  for reg in REPORT_REGULARIZERS:
    for update in UPDATES:
      sel = [r for r in rows if r['regularizer'] == reg and
             r['update'] == update]
      good = [r['loss'] for r in sel if r['verdict'] == 'converged']
      lines.append(f'* {reg} / {update}: {len(good)}/{len(sel)} converged'
                   + (f' ({", ".join(good)})' if good and
                      len(good) < len(sel) else '') + '; ' + ', '.join(
                          f'{v} {sum(r["verdict"] == v for r in sel)}'
                          for v in ('converging', 'cycling', 'stalled',
                                    'diverged')
                          if any(r['verdict'] == v for r in sel)))
  lines += [
      '',
      '## Reading the table',
      '',
      '* Unregularised, J(0, 0) has purely imaginary eigenvalues for every '
      'loss but `least_squares` (+-i f\'(0); e.g. +-0.5i for the seed\'s game, '
      '+-i for WGAN): the continuous flow circles the equilibrium. '
      'Simultaneous steps multiply each mode by |1 + h lambda| > 1 and spiral '
      'out; alternating steps are area-preserving near (0, 0) and cycle; '
      'extragradient, optimistic and consensus steps contract the rotation '
      '(|1 + h lambda + h^2 lambda^2| < 1 for small h|lambda|), so they '
      'converge, slowly where |lambda| is small.',
      '* R1 moves the spectrum to -gamma/2 +- sqrt(gamma^2/4 - f\'(0)^2): '
      'every scheme converges locally, as Mescheder et al. prove. WGAN-GP\'s '
      'penalty gamma (|psi| - 1)^2 = gamma (psi^2 - 2 |psi| + 1) vanishes at '
      '|psi| = 1, not at psi = 0: its kink at psi = 0 pushes D away from the '
      'equilibrium instead of damping the rotation (J(0, 0) does not exist; '
      '`jax.jacfwd` reports the unpenalised spectrum there, because '
      '`regularizers.safe_norm` takes the norm\'s derivative at 0 to be 0), '
      'so nothing converges, as in the paper. The field vanishes instead at '
      'the kink, from one side: at (theta*, 0+) with theta* = 2 gamma / '
      '|h\'(0)|, D\'s pull theta h\'(0) on psi balances the penalty\'s slope '
      '2 gamma towards |psi| = 1, and G\'s velocity -g\'(0) psi is 0. Most '
      'schemes stall there for the losses with |h\'(0)| = 1 (|x_T| = 2), and '
      'drift towards it for `minimax`, `non_saturating` and `fgan_js` '
      '(|x_T| ~ 4).',
      '* A large |lambda| needs a small step: `ralsgan` has lambda = +-4i, '
      'so h |lambda| = 0.8; optimistic steps overshoot, and the consensus '
      'step maps lambda to 1 - h gamma |lambda|^2 + i h lambda = -2.2 +- 0.8i '
      '(modulus > 1), so both blow up where the smaller-|lambda| losses '
      'converge.',
      '* Far from (0, 0) most losses are not bilinear: alternating steps '
      'cycle for the piecewise-bilinear `wasserstein`, `hinge` and `rahinge` '
      '(as the linear analysis predicts) but drift slowly inwards for most '
      'curved losses (converging, not converged, after 500 steps); '
      'simultaneous steps on `non_saturating` '
      'settle on a limit cycle of radius ~0.6, and `minimax` first spirals '
      'out and then stalls where its gradient saturates.',
      '* `least_squares` has J(0, 0) = [[0, 1], [0, 0]] (nilpotent): D_psi(0) '
      '= 0 cannot reach the real target 1, and psi = 0 stops G anywhere, so '
      'every (theta, 0) is stationary and trajectories can stall at theta != 0.',
      '* Exponential conjugates (`fgan_kl`, `fgan_hellinger`) can overflow far '
      'from the equilibrium; such runs show as DIVERGED.',
      '',
      'Plots (grey: normalised field v; blue: trajectory from the green dot '
      'to the red cross; black star: (0, 0)):',
      '',
  ]
  for loss in plot_losses:
    lines += [f'![Dirac-GAN {loss}](dirac_{loss}.png)', '']
  return '\n'.join(lines)

