"""The game as a dynamical system: the joint gradient field, its Jacobian, and
the Dirac-GAN of Mescheder, Geiger & Nowozin (2018).

The joint gradient field. Write x = (theta, psi) for G's and D's parameters
and L_G, L_D for the players' objectives (D's including any penalty). Both
players following their gradients is the flow x' = v(x) with

    v(x) = -(grad_theta L_G(x), grad_psi L_D(x))        (`Steps.joint_grads`).

Near a stationary point x*, v(x) ~ J (x - x*) with J = dv/dx(x*). The flow is
locally attracting iff every eigenvalue of J has a negative real part;
eigenvalues on the imaginary axis mean rotation (the players circle the
equilibrium), eigenvalues with positive real part mean divergence. A discrete
scheme adds its own factor: simultaneous gradient steps x + h v(x) map an
eigenvalue lambda to 1 + h lambda, which has modulus > 1 for every purely
imaginary lambda (Mescheder et al. 2017, Prop. 3), so they spiral out of an
equilibrium that the continuous flow merely circles.

Dirac-GAN (Mescheder et al. 2018, Sec. 2.2). The data is a point mass at 0,
G is a point mass at theta (G(z) = theta for every z) and D is linear,
D_psi(x) = psi x. Every loss in `gan_jax.losses` evaluates D on real outputs
D(0) = 0 and fake outputs t = psi theta, so with h(t) the fake-output part of
the value (what D ascends) and g(t) G's loss,

    v(theta, psi) = (-psi g'(psi theta), theta h'(psi theta)),
    J(0, 0) = [[0, -g'(0)], [h'(0), 0]],   eigenvalues +-sqrt(-g'(0) h'(0)).

For the seed's game g'(0) = h'(0) = -1/2 up to sign (h(t) = log(1 - sigmoid
t), -h'(0) = f'(0) = 1/2 in the paper's notation), so the eigenvalues are
+-i f'(0): purely imaginary, with no damping. The zero-centred gradient
penalty R1 = gamma/2 E_x |grad_x D_psi(x)|^2 = gamma/2 psi^2 adds -gamma to
J[1, 1], giving -gamma/2 +- sqrt(gamma^2/4 - f'(0)^2): a negative real part
for every gamma > 0 (the paper's Theorem 4.1 in the Dirac case).
`tests/dynamics_test.py` checks both against `jax.jacfwd` for every loss.

`dirac_report(out_dir)` reproduces the paper's experiment (theta0 = psi0 = 1,
step size 0.2, 500 steps, plain SGD) for every loss, regulariser and update
scheme and writes `RESULTS.md` and trajectory/vector-field plots.

Real networks. `leading_eigenvalues` finds the eigenvalues of J of largest
modulus and of largest real part by Arnoldi iteration (ARPACK via
`scipy.sparse.linalg.eigs`) on the matrix-free product u -> J u, one
forward-over-reverse `jax.jvp` of the field, so J (P x P for P parameters) is
never formed. This is the diagnostic of Berard et al. (2020): large imaginary
parts against small real parts mean the players rotate; positive real parts
mean the iterates are pushed away from the current point.

Command line:

    python -m gan_jax.dynamics --workdir=runs/ring8      # eigenvalues at the
                                                         # run's checkpoint
    python -m gan_jax.dynamics --report_dir=experiments/dynamics  # Dirac table

References:
  Mescheder, Nowozin & Geiger. The Numerics of GANs. NeurIPS 2017.
  Mescheder, Geiger & Nowozin. Which Training Methods for GANs do actually
    Converge? ICML 2018.
  Berard, Gidel, Almahairi, Vincent & Lacoste-Julien. A Closer Look at the
    Optimization Landscapes of Generative Adversarial Networks. ICLR 2020.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import losses as losses_lib
from gan_jax.game import Game
from gan_jax.state import GANState, init_state
from gan_jax.steps import Steps, UPDATES, scheme_optimizer

Array = jax.Array

REGULARIZERS = ('none', 'r1', 'wgan_gp')


# ----------------------------------------------------------------------------
# Gradient penalties on D, from jax.grad of D with respect to its input.
# ----------------------------------------------------------------------------


def _input_grads(game: Game, d_params: Any, x: Array) -> Array:
  """grad_x D(x_i) for every row i (D acts on rows independently)."""
  return jax.grad(lambda x: jnp.sum(game.discriminate(d_params, x)))(x)


def zero_centered_penalty(game: Game, gamma: float) -> Callable:
  """R1 (Mescheder et al. 2018, eq. 9): gamma/2 E_x |grad_x D(x)|^2 on real x.

  Returns `penalty(d_params, g_params, batch, z)` for `Steps.d_penalty`.
  """

  def penalty(d_params, g_params, batch, z):
    del g_params, z
    grads = _input_grads(game, d_params, batch)
    return 0.5 * gamma * jnp.mean(jnp.sum(jnp.square(grads.reshape(
        grads.shape[0], -1)), axis=-1))

  return penalty


def one_centered_penalty(game: Game, gamma: float) -> Callable:
  """WGAN-GP (Gulrajani et al. 2017): gamma E (|grad_x D(x_hat)| - 1)^2.

  x_hat_i = a_i x_i + (1 - a_i) G(z_i) with the stratified, deterministic
  a_i = (i + 1/2) / B, so the penalty is a pure function of its arguments.
  The norm is sqrt(|g|^2 + 1e-12), finite in value and gradient at g = 0.
  """

  def penalty(d_params, g_params, batch, z):
    fake = game.generate(g_params, z)
    n = batch.shape[0]
    a = ((jnp.arange(n) + 0.5) / n).reshape((n,) + (1,) * (batch.ndim - 1))
    grads = _input_grads(game, d_params, a * batch + (1.0 - a) * fake)
    norm = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(n, -1)), axis=-1) + 1e-12)
    return gamma * jnp.mean(jnp.square(norm - 1.0))

  return penalty


def penalty(name: str, game: Game, gamma: float) -> Optional[Callable]:
  """The D penalty called `name` (one of `REGULARIZERS`), or None for 'none'."""
  if name == 'none':
    return None
  if name == 'r1':
    return zero_centered_penalty(game, gamma)
  if name == 'wgan_gp':
    return one_centered_penalty(game, gamma)
  raise ValueError(f'unknown regularizer {name!r}; valid regularizers: '
                   f'{", ".join(REGULARIZERS)}')


# ----------------------------------------------------------------------------
# The joint gradient field and its Jacobian for any game.
# ----------------------------------------------------------------------------


def flat_field(steps: Steps, g_params: Any, d_params: Any, batch: Array,
               z: Array, g_state: Any = None, d_state: Any = None
               ) -> tuple[Array, Callable[[Array], Array]]:
  """(x0, v): both players' parameters as one flat vector, and the field
  v(x) = -(grad_G L_G, grad_D L_D) on a fixed batch and z as a function of it.
  A model's state (batch-norm statistics, spectral-norm vectors) is held
  fixed at `g_state` / `d_state`: it is not a coordinate of the field.
  """
  x0, unravel = ravel_pytree((g_params, d_params))

  def field(x):
    w, _ = steps.joint_grads(*unravel(x), batch, z, g_state, d_state)
    return -ravel_pytree(w)[0]

  return x0, field


def dense_jacobian(field: Callable[[Array], Array], x0: Array) -> np.ndarray:
  """J = dv/dx at x0 by `jax.jacfwd` (P forward passes; for small P only)."""
  return np.asarray(jax.jit(jax.jacfwd(field))(x0), np.float64)


def leading_eigenvalues(field: Callable[[Array], Array], x0: Array, k: int,
                        which: str = 'LM', tol: float = 1e-6,
                        maxiter: Optional[int] = None) -> np.ndarray:
  """The k eigenvalues of J = dv/dx(x0) that are largest by `which`.

  `which` is ARPACK's: 'LM' (largest modulus), 'LR' (largest real part).
  J is applied matrix-free: u -> jax.jvp(v, (x0,), (u,))[1], compiled once.
  Returns complex eigenvalues sorted by decreasing modulus ('LM') or real
  part ('LR').
  """
  from scipy.sparse import linalg as sparse_linalg  # pylint: disable=g-import-not-at-top
  n = int(x0.size)
  if not 0 < k < n - 1:
    raise ValueError(f'k={k} eigenvalues need 0 < k < P - 1 = {n - 1}')
  jvp = jax.jit(lambda u: jax.jvp(field, (x0,), (u,))[1])
  dtype = np.dtype(x0.dtype)
  op = sparse_linalg.LinearOperator(
      (n, n), dtype=np.float64,
      matvec=lambda u: np.asarray(jvp(jnp.asarray(
          np.ravel(u).astype(dtype))), np.float64))
  values = sparse_linalg.eigs(op, k=k, which=which, tol=tol, maxiter=maxiter,
                              return_eigenvectors=False,
                              v0=np.ones(n) / np.sqrt(n))
  key = np.abs(values) if which == 'LM' else values.real
  return values[np.argsort(-key, kind='stable')]


# ----------------------------------------------------------------------------
# Dirac-GAN.
# ----------------------------------------------------------------------------


class DiracGenerator(nn.Module):
  """G(z) = theta for every z: the point mass delta_theta, shape (B, 1)."""

  theta0: float = 1.0

  @nn.compact
  def __call__(self, z: Array, train: bool = True) -> Array:
    del train
    theta = self.param('theta', lambda k: jnp.asarray(self.theta0, jnp.float32))
    return jnp.broadcast_to(theta, (z.shape[0], 1))


class DiracDiscriminator(nn.Module):
  """D_psi(x) = psi x on 1-D inputs, shape (B,)."""

  psi0: float = 1.0

  @nn.compact
  def __call__(self, x: Array, train: bool = True) -> Array:
    del train
    psi = self.param('psi', lambda k: jnp.asarray(self.psi0, jnp.float32))
    return psi * x[:, 0]


def _dirac_data(key: Array, n: int) -> Array:
  """The data distribution delta_0: n zeros, shape (n, 1)."""
  del key
  return jnp.zeros((n, 1), jnp.float32)


@dataclasses.dataclass(frozen=True)
class DiracSetup:
  """One Dirac-GAN experiment: a loss, a regulariser and an update scheme.

  Defaults are Mescheder et al. 2018's: theta0 = psi0 = 1, plain gradient
  steps of size 0.2, 500 steps; gamma is the penalty weight.
  """

  loss: str = 'non_saturating'
  regularizer: str = 'none'
  update: str = 'simultaneous'
  gamma: float = 1.0
  consensus_weight: float = 1.0
  learning_rate: float = 0.2
  theta0: float = 1.0
  psi0: float = 1.0
  num_steps: int = 500


def dirac_steps(setup: DiracSetup) -> tuple[Steps, GANState]:
  """The `Steps` (SGD for both players) and initial state of a Dirac-GAN."""
  game = Game(DiracGenerator(setup.theta0), DiracDiscriminator(setup.psi0),
              losses_lib.get(setup.loss))
  opt = scheme_optimizer(setup.update, optax.sgd(setup.learning_rate))
  steps = Steps(game=game, g_opt=opt, d_opt=opt, sample_data=_dirac_data,
                batch_size=1, z_dim=1, update=setup.update,
                consensus_weight=setup.consensus_weight,
                d_penalty=penalty(setup.regularizer, game, setup.gamma))
  state = init_state(game, steps.g_opt, steps.d_opt, jax.random.PRNGKey(0),
                     z_dim=1, data_shape=(1,))
  return steps, state


def theta_psi(state: GANState) -> Array:
  """(theta, psi) of a Dirac-GAN state."""
  return jnp.stack([state.g_params['theta'], state.d_params['psi']])


def simulate(setup: DiracSetup) -> np.ndarray:
  """The trajectory (theta_t, psi_t), t = 0..num_steps, shape (T + 1, 2),
  run by the library's own `train_step` in one `lax.scan`."""
  steps, state = dirac_steps(setup)

  def body(state, _):
    state, _ = steps.train_step(state)
    return state, theta_psi(state)

  _, path = jax.jit(lambda s: jax.lax.scan(body, s, None,
                                           length=setup.num_steps))(state)
  return np.concatenate([np.asarray(theta_psi(state))[None],
                         np.asarray(path)], axis=0)


def dirac_field(setup: DiracSetup) -> Callable[[Array], Array]:
  """v(theta, psi) of the Dirac-GAN of `setup` (its loss and penalty)."""
  steps, state = dirac_steps(setup)
  zero = jnp.zeros((1, 1), jnp.float32)
  _, field = flat_field(steps, state.g_params, state.d_params, zero, zero)
  return field


def dirac_jacobian(setup: DiracSetup, at: Sequence[float] = (0.0, 0.0)
                   ) -> np.ndarray:
  """J = dv/d(theta, psi) at `at` (the equilibrium by default), by jacfwd."""
  return dense_jacobian(dirac_field(setup), jnp.asarray(at, jnp.float32))


def classify(path: np.ndarray, tol: float = 1e-2) -> str:
  """What a Dirac-GAN trajectory did, from its distance to (0, 0).

  'converged': |theta_T|, |psi_T| < tol; 'diverged': non-finite, or ended
  farther out than it started and still moving outwards; 'stalled': stopped
  moving (< 1e-4 over the last 50 steps) away from (0, 0); 'converging':
  closer than at the start and still shrinking (by > 10% over the second
  half); 'cycling': anything else (bounded, not approaching).
  """
  if not np.all(np.isfinite(path)):
    return 'diverged'
  dist = np.linalg.norm(path, axis=1)
  end, mid, start = dist[-1], dist[len(dist) // 2], dist[0]
  if np.all(np.abs(path[-1]) < tol):
    return 'converged'
  if np.linalg.norm(path[-1] - path[-51]) < 1e-4:
    return 'stalled'
  if end > start and end > 1.05 * mid:
    return 'diverged'
  if end < start and end < 0.9 * mid:
    return 'converging'
  return 'cycling'


# ----------------------------------------------------------------------------
# The Dirac-GAN report.
# ----------------------------------------------------------------------------

REPORT_LOSSES = ('minimax', 'non_saturating', 'wasserstein', 'hinge',
                 'least_squares', 'fgan_kl', 'fgan_reverse_kl', 'fgan_js',
                 'fgan_pearson', 'fgan_hellinger', 'rasgan', 'ralsgan',
                 'rahinge')
PLOT_LOSSES = ('non_saturating', 'wasserstein', 'least_squares', 'fgan_kl')
_SYMBOL = {'converged': 'converged', 'converging': 'converging',
           'cycling': 'cycling', 'stalled': 'stalled', 'diverged': 'DIVERGED'}


def dirac_table(base: DiracSetup = DiracSetup(),
                losses: Sequence[str] = REPORT_LOSSES,
                regularizers: Sequence[str] = REGULARIZERS,
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
  fig.savefig(path, dpi=60)
  plt.close(fig)


def dirac_report(out_dir: str, base: DiracSetup = DiracSetup(),
                 losses: Sequence[str] = REPORT_LOSSES,
                 plot_losses: Sequence[str] = PLOT_LOSSES,
                 log: Optional[Callable[[str], None]] = None) -> list[dict]:
  """Writes `out_dir/RESULTS.md`, `out_dir/dirac_table.json` and one
  `out_dir/dirac_<loss>.png` per plotted loss; returns the table rows."""
  start = time.perf_counter()
  rows = dirac_table(base, losses, REGULARIZERS, UPDATES, log=log)
  os.makedirs(out_dir, exist_ok=True)
  for loss in plot_losses:
    _plot_loss(os.path.join(out_dir, f'dirac_{loss}.png'), rows, loss, base,
               REGULARIZERS, UPDATES)
  seconds = time.perf_counter() - start
  with open(os.path.join(out_dir, 'dirac_table.json'), 'w') as f:
    json.dump([{k: v for k, v in r.items() if k != 'path'} for r in rows], f,
              indent=1)
  with open(os.path.join(out_dir, 'RESULTS.md'), 'w') as f:
    f.write(_report_markdown(rows, base, losses, plot_losses, seconds))
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
      '`Steps.train_step` (`gan_jax.dynamics.simulate`). The unique '
      'equilibrium is (0, 0) (for `least_squares` every (theta, 0) is '
      'stationary, see below). Regularisers: `r1` = gamma/2 |grad_x D(x)|^2 on '
      f'real data (zero-centred, gamma = {base.gamma:g}); `wgan_gp` = gamma '
      '(|grad_x D(x_hat)| - 1)^2 (one-centred). Consensus weight '
      f'{base.consensus_weight:g}.',
      '',
      'Verdicts (`gan_jax.dynamics.classify`): **converged** |theta_T|, '
      '|psi_T| < 0.01; converging: closer than at the start and still '
      'shrinking; cycling: bounded but not approaching; stalled: stopped away '
      'from (0, 0); DIVERGED: ended farther out and still moving out, or '
      'non-finite. Each cell gives the verdict and |x_T| = |(theta_T, psi_T)|. '
      'The last column is the spectrum of the Jacobian of the field at (0, 0) '
      '(`jax.jacfwd`).',
      '',
  ]
  for reg in REGULARIZERS:
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
  for reg in REGULARIZERS:
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
      'the 1e-12 inside the norm turns the kink into a huge positive '
      'curvature), so nothing converges, as in the paper.',
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


# ----------------------------------------------------------------------------
# Eigenvalues at a training checkpoint.
# ----------------------------------------------------------------------------


class DynamicsError(ValueError):
  """Bad input to the command line; the message is one line for a person."""


def load_config(workdir: str):
  """The `Config` of the run in `workdir`, from its `config.json`."""
  from gan_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    raise DynamicsError(f'--workdir={workdir} holds no config.json; point it '
                        'at the workdir of a training run')
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:
    raise DynamicsError(f'{path} is not readable JSON: {e}') from None
  fields = {f.name: f for f in dataclasses.fields(config_lib.Config)}
  unknown = sorted(set(saved) - set(fields))
  if unknown:
    raise DynamicsError(f'{path} has fields this version does not know: '
                        f'{", ".join(unknown)}')
  values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
  values['workdir'] = workdir
  try:
    return config_lib.validate(config_lib.Config(**values))
  except config_lib.ConfigError as e:
    raise DynamicsError(f'{path}: {e}') from None


def load_run(workdir: str):
  """(config, steps, state) of the newest checkpoint in `workdir`."""
  config = load_config(workdir)
  from gan_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  _, steps, template = train.build(config)
  restored = checkpoint.latest(config, checkpoint.to_host(template))
  if restored is None or restored.state is None:
    raise DynamicsError(f'--workdir={workdir} holds no usable checkpoint in '
                        f'{checkpoint.directory(workdir)}')
  state = jax.tree.map(jnp.asarray, restored.state)
  return config, steps, state


def checkpoint_eigenvalues(workdir: str, k: int = 6,
                           batch_size: Optional[int] = None, seed: int = 0
                           ) -> dict:
  """Leading eigenvalues of the game Jacobian at the newest checkpoint.

  The field is evaluated on one fixed real batch and one z (both players on
  the same samples) of `batch_size` (default: the run's) drawn with `seed`.
  Returns a JSON-ready dict with the step, the parameter count, the largest-
  modulus and largest-real-part eigenvalues, and summary numbers: the largest
  real part, the largest modulus and the rotation ratio max|Im| / max|Re| of
  the largest-modulus set.
  """
  config, steps, state = load_run(workdir)
  n = batch_size or config.batch_size
  k_data, k_z = jax.random.split(jax.random.PRNGKey(seed))
  batch = steps.sample_data(k_data, n)
  z = jax.random.normal(k_z, (n, steps.z_dim), jnp.float32)
  x0, field = flat_field(steps, state.g_params, state.d_params, batch, z,
                         state.g_state, state.d_state)
  if not 0 < k < x0.size - 1:
    raise DynamicsError(f'--num_eigenvalues={k} must lie in [1, '
                        f'{x0.size - 2}] for {x0.size} parameters')
  largest = leading_eigenvalues(field, x0, k, 'LM', tol=1e-4)
  rightmost = leading_eigenvalues(field, x0, k, 'LR', tol=1e-4)
  pairs = lambda e: [[float(v.real), float(v.imag)] for v in e]
  return {
      'step': int(state.step), 'num_params': int(x0.size),
      'batch_size': n, 'seed': seed,
      'largest_modulus': pairs(largest),
      'largest_real_part': pairs(rightmost),
      'max_real_part': float(rightmost.real.max()),
      'max_modulus': float(np.abs(largest).max()),
      'rotation_ratio': float(np.abs(largest.imag).max()
                              / max(np.abs(largest.real).max(), 1e-30)),
  }


def format_eigenvalues(result: dict) -> str:
  """A few lines for the terminal."""
  lines = [f'game Jacobian J = dv/dx at step {result["step"]} '
           f'({result["num_params"]} parameters, batch {result["batch_size"]})',
           '  largest |lambda|:    ' + ', '.join(
               f'{re:+.4g}{im:+.4g}i' for re, im in result['largest_modulus']),
           '  largest Re(lambda):  ' + ', '.join(
               f'{re:+.4g}{im:+.4g}i' for re, im in result['largest_real_part']),
           f'  max Re = {result["max_real_part"]:+.4g} '
           '(> 0: locally divergent directions), max |lambda| = '
           f'{result["max_modulus"]:.4g}, rotation max|Im|/max|Re| = '
           f'{result["rotation_ratio"]:.3g} (>> 1: rotation dominates)']
  return '\n'.join(lines)


def _define_flags(flags) -> None:
  flags.DEFINE_string('workdir', None, 'A training run\'s workdir: report the '
                      'leading eigenvalues of the game Jacobian at its newest '
                      'checkpoint (writes WORKDIR/eigenvalues.json).')
  flags.DEFINE_string('report_dir', None, 'Write the Dirac-GAN table and '
                      'plots (RESULTS.md, dirac_*.png) to this directory.')
  flags.DEFINE_integer('num_eigenvalues', 6, 'Eigenvalues per set (largest '
                       'modulus, largest real part).')
  flags.DEFINE_integer('eig_batch_size', 0, 'Samples for the field; 0 = the '
                       'run\'s --batch_size.')
  flags.DEFINE_integer('eig_seed', 0, 'Seed of the batch and z of the field.')


def main(argv: list[str]) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS

  def usage(message: str) -> None:
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)

  if len(argv) > 1:
    usage(f'unexpected arguments {" ".join(argv[1:])}; pass --workdir=DIR or '
          '--report_dir=DIR')
  if bool(f.workdir) == bool(f.report_dir):
    usage('pass exactly one of --workdir=RUN_DIR (eigenvalues at a '
          'checkpoint) and --report_dir=DIR (the Dirac-GAN report)')
  if f.report_dir:
    if os.path.exists(f.report_dir) and not os.path.isdir(f.report_dir):
      usage(f'--report_dir={f.report_dir} is a file, not a directory')
    dirac_report(f.report_dir, log=lambda m: print(m, flush=True))
    print(f'wrote {os.path.join(f.report_dir, "RESULTS.md")}')
    return
  if f.num_eigenvalues <= 0:
    usage(f'--num_eigenvalues={f.num_eigenvalues} must be positive')
  if f.eig_batch_size < 0:
    usage(f'--eig_batch_size={f.eig_batch_size} must be >= 0 (0 = the run\'s)')
  try:
    result = checkpoint_eigenvalues(f.workdir, f.num_eigenvalues,
                                    f.eig_batch_size or None, f.eig_seed)
  except DynamicsError as e:
    usage(str(e))
  print(format_eigenvalues(result))
  path = os.path.join(f.workdir, 'eigenvalues.json')
  with open(path, 'w') as out:
    json.dump(result, out, indent=1)
  print(f'wrote {path}')


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags as absl_flags  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)
  _define_flags(absl_flags)

  def _parse(argv):
    try:
      return absl_flags.FLAGS(argv)
    except absl_flags.Error as e:
      print(f'error: {str(e).splitlines()[0]}', file=sys.stderr)
      sys.exit(2)

  app.run(main, flags_parser=_parse)
