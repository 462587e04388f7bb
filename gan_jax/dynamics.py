"""The game as a dynamical system: the joint gradient field, its Jacobian and
its eigenvalues.

Write x = (theta, psi) for G's and D's parameters and L_G, L_D for the
players' objectives (D's including any penalty). Both players following their
gradients is the flow x' = v(x) with

    v(x) = -(grad_theta L_G(x), grad_psi L_D(x))        (`Steps.joint_grads`).

Near a stationary point x*, v(x) ~ J (x - x*) with J = dv/dx(x*). The flow is
locally attracting iff every eigenvalue of J has a negative real part;
eigenvalues on the imaginary axis mean rotation (the players circle the
equilibrium), eigenvalues with positive real part mean divergence. A discrete
scheme adds its own factor: simultaneous gradient steps x + h v(x) map an
eigenvalue lambda to 1 + h lambda, which has modulus > 1 for every purely
imaginary lambda (Mescheder et al. 2017, Prop. 3), so they spiral out of an
equilibrium that the continuous flow merely circles.

`flat_field` gives v as a function of one flat parameter vector;
`dense_jacobian` forms J by `jax.jacfwd` (small games: the Dirac-GAN of
`gan_jax.dirac` has two parameters). For real networks `leading_eigenvalues`
finds the eigenvalues of J of largest modulus and of largest real part by
Arnoldi iteration (ARPACK via `scipy.sparse.linalg.eigs`) on the matrix-free
product u -> J u, one forward-over-reverse `jax.jvp` of the field, so J
(P x P for P parameters) is never formed. This is the diagnostic of Berard et
al. (2020): large imaginary parts against small real parts mean the players
rotate; positive real parts mean the iterates are pushed away from the
current point. `checkpoint_eigenvalues` applies it at a run's newest
checkpoint.

Command line:

    python -m gan_jax.dynamics --workdir=runs/ring8      # eigenvalues at the
                                                         # run's checkpoint
    python -m gan_jax.dynamics --report_dir=experiments/dynamics  # Dirac table
                                                         # (gan_jax.dirac_report)

References:
  Mescheder, Nowozin & Geiger. The Numerics of GANs. NeurIPS 2017.
  Berard, Gidel, Almahairi, Vincent & Lacoste-Julien. A Closer Look at the
    Optimization Landscapes of Generative Adversarial Networks. ICLR 2020.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Optional

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np

from gan_jax import cli
from gan_jax import config as config_lib
from gan_jax import fileio
from gan_jax.steps import Steps

Array = jax.Array


# ----------------------------------------------------------------------------
# The joint gradient field, its Jacobian and its eigenvalues.
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
# Eigenvalues at a training checkpoint.
# ----------------------------------------------------------------------------


class DynamicsError(ValueError):
  """Bad input to the command line; the message is one line for a person."""


def load_run(workdir: str):
  """(config, steps, state) of the newest checkpoint in `workdir`.

  Raises:
    config.ConfigError: `workdir` holds no readable, valid config.json.
    DynamicsError: it holds no usable checkpoint, or the run was trained
      with a gradient penalty (`Steps` holds G(z) constant inside D's
      penalised objective, so the field's D-by-G block would be missing).
  """
  config = config_lib.Config.load(workdir)
  if config.reg != 'none':
    raise DynamicsError(f'--workdir={workdir} was trained with '
                        f'--reg={config.reg}; eigenvalues of a penalised game '
                        'are not supported (only runs with --reg=none)')
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
  """`--report_dir`: the Dirac-GAN report; `--workdir`: eigenvalues at a
  checkpoint. Bad input is one line on stderr with exit status 2."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  cli.no_positional_arguments(argv)
  if bool(f.workdir) == bool(f.report_dir):
    cli.usage_error('pass exactly one of --workdir=RUN_DIR (eigenvalues at a '
                    'checkpoint) and --report_dir=DIR (the Dirac-GAN report)')
  if f.report_dir:
    if os.path.exists(f.report_dir) and not os.path.isdir(f.report_dir):
      cli.usage_error(f'--report_dir={f.report_dir} is a file, not a '
                      'directory')
    from gan_jax import dirac_report  # pylint: disable=g-import-not-at-top
    dirac_report.write_report(f.report_dir, log=lambda m: print(m, flush=True))
    print(f'wrote {os.path.join(f.report_dir, "RESULTS.md")}')
    return
  if f.num_eigenvalues <= 0:
    cli.usage_error(f'--num_eigenvalues={f.num_eigenvalues} must be positive')
  if f.eig_batch_size < 0:
    cli.usage_error(f'--eig_batch_size={f.eig_batch_size} must be >= 0 (0 = '
                    'the run\'s)')
  try:
    result = checkpoint_eigenvalues(f.workdir, f.num_eigenvalues,
                                    f.eig_batch_size or None, f.eig_seed)
  except (config_lib.ConfigError, DynamicsError) as e:
    cli.usage_error(str(e))
  print(format_eigenvalues(result))
  path = os.path.join(f.workdir, 'eigenvalues.json')
  fileio.atomic_write(path, json.dumps(result, indent=1))
  print(f'wrote {path}')


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags as absl_flags  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)
  _define_flags(absl_flags)
  app.run(main, flags_parser=cli.parse_flags)
