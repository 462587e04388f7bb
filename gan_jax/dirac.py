"""The Dirac-GAN of Mescheder, Geiger & Nowozin (2018, Sec. 2.2).

The data is a point mass at 0, G is a point mass at theta (G(z) = theta for
every z) and D is linear, D_psi(x) = psi x. Every loss in `gan_jax.losses`
evaluates D on real outputs D(0) = 0 and fake outputs t = psi theta, so with
h(t) the fake-output part of the value (what D ascends) and g(t) G's loss,
the field x' = v(x) of `gan_jax.dynamics` is

    v(theta, psi) = (-psi g'(psi theta), theta h'(psi theta)),
    J(0, 0) = [[0, -g'(0)], [h'(0), 0]],   eigenvalues +-sqrt(-g'(0) h'(0)).

For the seed's game g'(0) = h'(0) = -1/2 (h(t) = log(1 - sigmoid t),
-h'(0) = f'(0) = 1/2 in the paper's notation), so the eigenvalues are
+-i f'(0): purely imaginary, with no damping.

Gradient penalties are `gan_jax.regularizers`' own, by name, the functions
training uses. D's input gradient is psi at every point, so

    r1:      gamma R1 = gamma/2 E_x |grad_x D_psi(x)|^2 = gamma/2 psi^2,
    wgan_gp: gamma (|grad_x D_psi(x_hat)| - 1)^2 = gamma (|psi| - 1)^2

whatever the points (and whatever key draws the interpolates). R1 adds
-gamma to J[1, 1], giving -gamma/2 +- sqrt(gamma^2/4 - f'(0)^2): a negative
real part for every gamma > 0 (the paper's Theorem 4.1 in the Dirac case).
WGAN-GP's |psi| has a kink at the equilibrium, so J(0, 0) does not exist.
`tests/dirac_test.py` checks both spectra against `jax.jacfwd` for every
loss.

Two more stabilisers of the paper's Sec. 3 are set-up options here:

* WGAN weight clipping (`weight_clip` = c): psi is clipped to [-c, c] after
  every D update, the `d_weight_clip` of training (Arjovsky et al. 2017).
* Instance noise (`instance_noise` = sigma; Sonderby et al. 2017): D sees
  the real point and G's point blurred by N(0, sigma^2), x + eps and
  theta + eps'. Each step draws `noise_draws` of each, so the step follows
  a Monte-Carlo estimate of the expected field; its Jacobian is taken on
  the expected field itself, the average over `noise_draws` normal
  quantiles. For the minimax loss E[eps^2] = sigma^2 adds -sigma^2/2 to
  J[1, 1] (h''(0) = g''(0) = -1/4 on both blurred points), so the
  rotation is damped.

`simulate` runs the library's own `Steps.train_step`, so every update scheme
of `gan_jax.steps` is exercised on the game; `gan_jax.dirac_report` writes
the table of every loss, penalty and scheme.

References:
  Mescheder, Geiger & Nowozin. Which Training Methods for GANs do actually
    Converge? ICML 2018.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import dynamics
from gan_jax import losses as losses_lib
from gan_jax import regularizers
from gan_jax.game import Game
from gan_jax.state import GANState, init_state
from gan_jax.steps import Steps, scheme_optimizer

Array = jax.Array


def _scalar(module: nn.Module, name: str, value: float) -> Array:
  """The float32 scalar parameter `name` of `module`, initialised to `value`."""
  return module.param(name, lambda key: jnp.asarray(value, jnp.float32))


class DiracGenerator(nn.Module):
  """G(z) = theta + noise_std z_1: the point mass delta_theta (noise_std = 0),
  or G's point as D sees it under instance noise; shape (B, 1)."""

  theta0: float = 1.0
  noise_std: float = 0.0

  @nn.compact
  def __call__(self, z: Array, train: bool = True) -> Array:
    del train
    theta = _scalar(self, 'theta', self.theta0)
    if self.noise_std:
      return theta + self.noise_std * z[:, :1]
    return jnp.broadcast_to(theta, (z.shape[0], 1))


class DiracDiscriminator(nn.Module):
  """D_psi(x) = psi x on 1-D inputs, shape (B,)."""

  psi0: float = 1.0

  @nn.compact
  def __call__(self, x: Array, train: bool = True) -> Array:
    del train
    return _scalar(self, 'psi', self.psi0) * x[:, 0]


def dirac_data(key: Array, n: int) -> Array:
  """The data distribution delta_0: n zeros, shape (n, 1)."""
  del key
  return jnp.zeros((n, 1), jnp.float32)


def noisy_dirac_data(noise_std: float) -> Callable[[Array, int], Array]:
  """delta_0 as D sees it under instance noise: n draws of N(0, sigma^2)."""
  return lambda key, n: noise_std * jax.random.normal(key, (n, 1),
                                                      jnp.float32)


def normal_quantiles(n: int) -> np.ndarray:
  """The n quantiles Phi^-1((i + 1/2) / n) of N(0, 1): equal-weight points
  whose averages approximate expectations under N(0, 1) deterministically."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  return stats.norm.ppf((np.arange(n) + 0.5) / n)


@dataclasses.dataclass(frozen=True, eq=False)
class PenalizedGame(Game):
  """A `Game` whose D objective is d_loss + weight * penalty.

  The penalty is a `gan_jax.regularizers.Regularizer` called with D's apply
  function, the real batch and G(z). G(z) is differentiable in G's
  parameters here, so the joint field's G-D block includes the loss's
  dependence on theta, as the Jacobian needs. The penalty's randomness (the
  WGAN-GP interpolates) comes from a fixed key: the Dirac D's input
  gradient is the same at every point, so the points do not matter.

  Attributes:
    penalty: the regulariser, or None for the unpenalised game.
    weight: its weight gamma.
  """

  penalty: Optional[regularizers.Regularizer] = None
  weight: float = 0.0

  def d_objective(self, d_params: Any, g_params: Any, batch: Array, z: Array,
                  g_state: Any = None, d_state: Any = None,
                  fake: Optional[Array] = None):
    if self.penalty is None:
      return super().d_objective(d_params, g_params, batch, z, g_state,
                                 d_state, fake)
    if fake is None:
      fake = self.generate(g_params, z, g_state, train=True)
    d_loss, aux = super().d_objective(d_params, g_params, batch, z, g_state,
                                      d_state, fake)
    d_apply = lambda p, x: self.discriminate(p, x, d_state)
    penalty = self.penalty(d_apply, d_params, batch, fake,
                           jax.random.PRNGKey(0))
    return d_loss + self.weight * penalty, aux


@dataclasses.dataclass(frozen=True)
class DiracSetup:
  """One Dirac-GAN experiment: a loss, a regulariser and an update scheme.

  Defaults are Mescheder et al. 2018's: theta0 = psi0 = 1, plain gradient
  steps of size 0.2, 500 steps. `regularizer` is 'none' or a name in
  `gan_jax.regularizers`; gamma is its weight. `d_steps` D updates per G
  update (alternating only); `weight_clip` > 0 clips psi to [-c, c] after
  each D update; `instance_noise` > 0 blurs both points with
  N(0, instance_noise^2), `noise_draws` draws each per step.
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
  d_steps: int = 1
  weight_clip: float = 0.0
  instance_noise: float = 0.0
  noise_draws: int = 1000


def dirac_steps(setup: DiracSetup) -> tuple[Steps, GANState]:
  """The `Steps` (SGD for both players) and initial state of a Dirac-GAN."""
  game = PenalizedGame(DiracGenerator(setup.theta0, setup.instance_noise),
                       DiracDiscriminator(setup.psi0),
                       losses_lib.get(setup.loss),
                       penalty=regularizers.get_or_none(setup.regularizer),
                       weight=setup.gamma)
  opt = scheme_optimizer(setup.update, optax.sgd(setup.learning_rate))
  noisy = setup.instance_noise > 0
  steps = Steps(game=game, g_opt=opt, d_opt=opt,
                sample_data=(noisy_dirac_data(setup.instance_noise) if noisy
                             else dirac_data),
                batch_size=setup.noise_draws if noisy else 1, z_dim=1,
                update=setup.update, d_steps=setup.d_steps,
                d_weight_clip=setup.weight_clip,
                consensus_weight=setup.consensus_weight)
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
  """v(theta, psi) of the Dirac-GAN of `setup` (its loss and penalty); under
  instance noise, the expected field (the average over `noise_draws` normal
  quantiles for both points' noise)."""
  steps, state = dirac_steps(setup)
  if setup.instance_noise > 0:
    eps = jnp.asarray(normal_quantiles(setup.noise_draws)[:, None],
                      jnp.float32)
    batch, z = setup.instance_noise * eps, eps
  else:
    batch = z = jnp.zeros((1, 1), jnp.float32)
  _, field = dynamics.flat_field(steps, state.g_params, state.d_params, batch,
                                 z)
  return field


def dirac_jacobian(setup: DiracSetup, at: Sequence[float] = (0.0, 0.0)
                   ) -> np.ndarray:
  """J = dv/d(theta, psi) at `at` (the equilibrium by default), by jacfwd."""
  return dynamics.dense_jacobian(dirac_field(setup),
                                 jnp.asarray(at, jnp.float32))


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
