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
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import dirac_findings
from gan_jax import fileio
from gan_jax.dirac import DiracSetup, classify, dirac_field, dirac_jacobian
from gan_jax.dirac import simulate
from gan_jax.steps import UPDATES

@dataclasses.dataclass(frozen=True)
class Variant:
  """A labelled change to a `DiracSetup`: a row, a section or a column."""

  label: str
  changes: tuple[tuple[str, Any], ...] = ()

  def apply(self, setup: DiracSetup) -> DiracSetup:
    return dataclasses.replace(setup, **dict(self.changes))


def _variant(label: str, **changes) -> Variant:
  return Variant(label, tuple(sorted(changes.items())))


# Rows: every loss, plus the WGAN of the paper (clipped critic) beside the
# unconstrained linear critic that `wasserstein` alone is.
REPORT_LOSSES = ('minimax', 'non_saturating', 'wasserstein', 'hinge',
                 'least_squares', 'fgan_kl', 'fgan_reverse_kl', 'fgan_js',
                 'fgan_pearson', 'fgan_hellinger', 'rasgan', 'ralsgan',
                 'rahinge')
CLIPPED_WGAN = _variant('wasserstein, psi clipped to [-1, 1] (WGAN)',
                        loss='wasserstein', weight_clip=1.0)


def loss_rows(losses: Sequence[str] = REPORT_LOSSES) -> list[Variant]:
  rows = []
  for loss in losses:
    label = ('wasserstein (unconstrained linear critic)'
             if loss == 'wasserstein' else loss)
    rows.append(_variant(label, loss=loss))
    if loss == 'wasserstein':
      rows.append(CLIPPED_WGAN)
  return rows


# Sections: the stabilisers of Mescheder et al.'s DiracGAN notebook
# (LMescheder/GAN_stability, notebooks/DiracGAN.ipynb), at its weights. Its
# GAN_GradPenalty(reg) subtracts reg * psi from D's velocity, the gradient of
# our r1 = gamma/2 psi^2 with gamma = reg (0.3, and 1.0, its "critical"
# case); its WGAN_GP(0.7, 1.) subtracts 0.7 (|psi| - 1) sign(psi), the
# gradient of our wgan_gp = gamma (|psi| - 1)^2 with gamma = 0.35; its
# GAN_InstNoise(0.7) blurs both points with N(0, 0.7^2).
REPORT_REGULARIZERS = (
    _variant('none'),
    _variant('r1, gamma 0.3', regularizer='r1', gamma=0.3),
    _variant('r1, gamma 1', regularizer='r1', gamma=1.0),
    _variant('wgan_gp, gamma 0.35', regularizer='wgan_gp', gamma=0.35),
    _variant('instance noise, sigma 0.7', instance_noise=0.7),
)

# Columns: every update scheme, and alternating steps with 5 D steps per G
# step.
def scheme_columns(updates: Sequence[str] = UPDATES) -> list[Variant]:
  columns = []
  for update in updates:
    columns.append(_variant(update, update=update))
    if update == 'alternating':
      columns.append(_variant('alternating, 5 D steps', update=update,
                              d_steps=5))
  return columns


PLOT_LOSSES = ('non_saturating', 'wasserstein', 'least_squares', 'fgan_kl')


def dirac_table(base: DiracSetup = DiracSetup(),
                losses: Sequence[str] = REPORT_LOSSES,
                sections: Sequence[Variant] = REPORT_REGULARIZERS,
                updates: Sequence[str] = UPDATES,
                log: Optional[Callable[[str], None]] = None) -> list[dict]:
  """Simulates every (loss row, section, column) and returns one row each."""
  rows = []
  columns = scheme_columns(updates)
  for row in loss_rows(losses):
    for section in sections:
      setup = section.apply(row.apply(base))
      eig = np.linalg.eigvals(dirac_jacobian(setup))
      for column in columns:
        run = column.apply(setup)
        path = simulate(run)
        rows.append(dict(
            row=row.label, section=section.label, column=column.label,
            loss=run.loss, regularizer=run.regularizer, gamma=run.gamma,
            update=run.update, d_steps=run.d_steps,
            weight_clip=run.weight_clip, instance_noise=run.instance_noise,
            verdict=classify(path), theta=float(path[-1, 0]),
            psi=float(path[-1, 1]), distance=float(np.linalg.norm(path[-1])),
            eigenvalues=[[float(e.real), float(e.imag)] for e in eig],
            path=path))
      if log is not None:
        log(f'{row.label[:24]:>24s} {section.label[:14]:>14s}: ' + ' '.join(
            f'{r["column"]}={r["verdict"]}' for r in rows[-len(columns):]))
  return rows


def _plot_loss(path: str, rows: list[dict], row: Variant, base: DiracSetup,
               sections: Sequence[Variant], columns: Sequence[Variant]
               ) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  grid = np.linspace(-2.0, 2.0, 17)
  tt, pp = np.meshgrid(grid, grid, indexing='xy')
  points = jnp.asarray(np.stack([tt.ravel(), pp.ravel()], -1), jnp.float32)
  fig, axes = plt.subplots(len(sections), len(columns),
                           figsize=(2.6 * len(columns), 2.6 * len(sections)),
                           squeeze=False)
  for i, section in enumerate(sections):
    field = jax.jit(jax.vmap(dirac_field(section.apply(row.apply(base)))))
    v = np.asarray(field(points))
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.maximum(norm, 1e-12)
    for j, column in enumerate(columns):
      r = _find(rows, row.label, section.label, column.label)
      ax = axes[i, j]
      ax.quiver(tt, pp, v[:, 0].reshape(tt.shape), v[:, 1].reshape(tt.shape),
                color='0.7', width=0.004, scale=22)
      track = r['path'][np.all(np.isfinite(r['path']), axis=1)]
      ax.plot(track[:, 0], track[:, 1], color='tab:blue', lw=1.0)
      ax.plot(track[:1, 0], track[:1, 1], 'o', color='tab:green', ms=4)
      ax.plot(track[-1:, 0], track[-1:, 1], 'x', color='tab:red', ms=6)
      ax.plot([0], [0], '*', color='black', ms=7)
      ax.set_xlim(-2, 2)
      ax.set_ylim(-2, 2)
      ax.set_aspect('equal')
      ax.set_title(f'{section.label} / {column.label}\n{r["verdict"]}, '
                   f'|x_T| = {r["distance"]:.2g}', fontsize=7)
      ax.tick_params(labelsize=6)
      if i == len(sections) - 1:
        ax.set_xlabel('theta', fontsize=7)
      if j == 0:
        ax.set_ylabel('psi', fontsize=7)
  fig.suptitle(f'Dirac-GAN, {row.label}: normalised field v(theta, psi) and '
               f'{base.num_steps} steps of size {base.learning_rate} from '
               f'({base.theta0:g}, {base.psi0:g})', fontsize=10)
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=50)
  plt.close(fig)


def _find(rows: list[dict], row: str, section: str, column: str) -> dict:
  return next(r for r in rows
              if (r['row'], r['section'], r['column']) == (row, section, column))


def write_report(out_dir: str, base: DiracSetup = DiracSetup(),
                 losses: Sequence[str] = REPORT_LOSSES,
                 plot_losses: Sequence[str] = PLOT_LOSSES,
                 sections: Sequence[Variant] = REPORT_REGULARIZERS,
                 log: Optional[Callable[[str], None]] = None) -> list[dict]:
  """Writes `out_dir/RESULTS.md`, `out_dir/dirac_table.json` and one
  `out_dir/dirac_<loss>.png` per plotted loss; returns the table rows."""
  start = time.perf_counter()
  rows = dirac_table(base, losses, sections, UPDATES, log=log)
  os.makedirs(out_dir, exist_ok=True)
  columns = scheme_columns(UPDATES)
  for row in loss_rows(losses):
    if row.label in plot_losses or dict(row.changes)['loss'] in plot_losses:
      name = 'wgan_clipped' if row == CLIPPED_WGAN else dict(row.changes)['loss']
      _plot_loss(os.path.join(out_dir, f'dirac_{name}.png'), rows, row, base,
                 sections, columns)
  seconds = time.perf_counter() - start
  fileio.atomic_write(
      os.path.join(out_dir, 'dirac_table.json'),
      json.dumps([{k: v for k, v in r.items() if k != 'path'} for r in rows],
                 indent=1))
  fileio.atomic_write(
      os.path.join(out_dir, 'RESULTS.md'),
      dirac_findings.report_markdown(rows, base, loss_rows(losses), sections,
                                     columns, plot_losses, seconds))
  return rows
