"""Pure training steps: `d_step`, `g_step` and the `train_step` that composes them.

The article's alternating scheme: D ascends V with G held fixed, then G
descends its objective with D held fixed. Each step differentiates only its
own player's objective with respect to its own parameters, so a D step leaves
G's parameters (and optimizer state) bit-identical, and vice versa.

    d_step(state, batch, z) -> (state, metrics)   # one update of D
    g_step(state, z, batch=None) -> (state, metrics)   # one update of G
    train_step(state) -> (state, metrics)   # one step of the update scheme

`train_step` draws everything it needs from `fold_in(state.rng, state.step)`,
including the real batch (sampled on the device), so it can be the body of a
`lax.scan` and whole chunks of training compile to one program.

Update schemes (`Steps.update`). Write x = (theta_G, psi_D) for both players'
parameters, L_G and L_D for their objectives (L_D including any penalty), and

    w(x) = (grad_G L_G(x), grad_D L_D(x)),      v(x) = -w(x),

the joint gradient field (v is the vector field of Mescheder et al. 2017,
x' = v(x) in continuous time). With each player's optimizer written as
x <- x + u(w; s) (u = -lr * w for SGD):

* `alternating` (Goodfellow et al. 2014): `d_steps` D updates with G fixed,
  then one G update at the new D (Gauss-Seidel).
* `simultaneous`: both players update from w(x_t) on the same batch and z
  (Jacobi).
* `extragradient` (Korpelevich 1976; Gidel et al. 2019): a lookahead
  x_{t+1/2} = x_t + u(w(x_t); s_t) whose optimizer state is discarded, then
  x_{t+1} = x_t + u(w(x_{t+1/2}); s_t) from the same state and batch.
* `optimistic` (Daskalakis et al. 2018): simultaneous steps with each
  optimizer followed by optax's optimistic correction u'_t = 2 u_t - u_{t-1}
  (`optimistic(opt)`): optimistic gradient descent for SGD, optimistic Adam
  for Adam. The previous update lives in the optax state, so `GANState` is
  unchanged.
* `consensus` (Mescheder et al. 2017): both players add
  gamma/2 ||w(x)||^2 to their objectives and step simultaneously on
  w + gamma J_w^T w; J_w^T w is one vector-Jacobian product of the field
  with itself (`jax.vjp`), never a materialised Jacobian.

Regularisation: a named gradient penalty R (`gan_jax.regularizers`) joins D's
objective, L_D + lambda R. Lazily (Karras et al. 2020), with `reg_every` = k,
R is applied only at the D updates of every k-th training step, with weight
k lambda, so its expected contribution is unchanged and k - 1 of every k
steps skip its double backward pass.

Generator EMA: with `g_ema_decay` = beta, after every G update
theta_ema <- beta theta_ema + (1 - beta) theta_G (Yazici et al. 2019);
samples and evaluations use theta_ema, with G's running statistics.

Model state (batch norm, spectral norm): D's state advances in D's steps
and G's in G's steps; see `gan_jax.game`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from gan_jax import regularizers
from gan_jax.game import Game
from gan_jax.state import GANState

Array = jax.Array
Metrics = dict[str, Array]


UPDATES = ('alternating', 'simultaneous', 'extragradient', 'optimistic',
           'consensus')


def adam(learning_rate: float, beta1: float, beta2: float
         ) -> optax.GradientTransformation:
  """One player's optimizer: Adam with its own learning rate."""
  return optax.adam(learning_rate, b1=beta1, b2=beta2)


def optimistic(opt: optax.GradientTransformation
               ) -> optax.GradientTransformation:
  """`opt` followed by the optimistic correction u'_t = 2 u_t - u_{t-1}.

  With `optax.sgd(lr)` this is optimistic gradient descent,
  theta_{t+1} = theta_t - lr (2 g_t - g_{t-1}) (optax's
  `optimistic_gradient_descent(lr)`); with Adam it is the optimistic Adam of
  Daskalakis et al. 2018, theta_{t+1} = theta_t - lr (2 r_t - r_{t-1}) with
  r_t Adam's normalised step. The first step is a plain step (u_{-1} = u_0).
  """
  return optax.chain(opt, optax.scale_by_optimistic_gradient(alpha=1.0,
                                                             beta=1.0))


def scheme_optimizer(update: str, opt: optax.GradientTransformation
                     ) -> optax.GradientTransformation:
  """The optimizer a player needs under `update`: `optimistic(opt)` for the
  optimistic scheme, `opt` itself otherwise."""
  return optimistic(opt) if update == 'optimistic' else opt


def _has_optimism(opt_state) -> bool:
  nodes = jax.tree.leaves(
      opt_state, is_leaf=lambda n: hasattr(n, 'previous_gradient'))
  return any(hasattr(n, 'previous_gradient') for n in nodes)


@dataclasses.dataclass(frozen=True, eq=False)
class Steps:
  """The pure step functions of one game, closed over its static pieces.

  Attributes:
    game: the `Game` (models and loss).
    g_opt, d_opt: the players' optax transformations.
    sample_data: `sample_data(key, n) -> batch`, pure, runs on the device.
    batch_size: samples per batch for both players.
    z_dim: latent dimension; z ~ N(0, I).
    d_steps: D updates per G update (`alternating` only).
    d_weight_clip: if > 0, D's parameters are clipped to [-c, c] after each D
      update (WGAN weight clipping).
    update: the update scheme, one of `UPDATES` (see the module docstring).
    consensus_weight: gamma of the `consensus` scheme.
    d_penalty: optional `d_penalty(d_params, g_params, batch, z) -> scalar`
      added to D's loss (a gradient penalty, say); it is part of D's
      objective in every scheme and in the joint field.
    reg: optional named gradient penalty (`gan_jax.regularizers`), weighted
      by `reg_weight`, applied lazily every `reg_every` training steps.
    g_ema_decay: beta of G's parameter EMA; 0 keeps no average.
  """

  game: Game
  g_opt: optax.GradientTransformation
  d_opt: optax.GradientTransformation
  sample_data: Callable[[Array, int], Array]
  batch_size: int
  z_dim: int
  d_steps: int = 1
  d_weight_clip: float = 0.0
  update: str = 'alternating'
  consensus_weight: float = 0.0
  d_penalty: Optional[Callable[[Any, Any, Array, Array], Array]] = None
  reg: Optional[regularizers.Regularizer] = None
  reg_weight: float = 0.0
  reg_every: int = 1
  g_ema_decay: float = 0.0

  def __post_init__(self):
    if self.update not in UPDATES:
      raise ValueError(f'unknown update {self.update!r}; valid updates: '
                       f'{", ".join(UPDATES)}')
    if self.d_steps != 1 and self.update != 'alternating':
      raise ValueError(f'd_steps={self.d_steps} needs update=alternating; '
                       f'{self.update} updates both players once per step')

  def sample_z(self, key: Array) -> Array:
    """A batch of latents z ~ N(0, I), shape (batch_size, z_dim)."""
    return jax.random.normal(key, (self.batch_size, self.z_dim), jnp.float32)

  def _d_objective(self, d_params: Any, g_params: Any, batch: Array,
                   z: Array, g_state: Any, d_state: Any, key: Optional[Array],
                   reg_weight: float):
    fake = None
    if self.reg is not None and reg_weight:
      # G(z) once, for D's loss and for the penalty; G is a constant here.
      fake = jax.lax.stop_gradient(self.game.generate(g_params, z, g_state,
                                                      train=True))
    d_loss, (value, new_d_state) = self.game.d_objective(
        d_params, g_params, batch, z, g_state, d_state, fake)
    metrics = {'d_loss': d_loss, 'value': value}
    if self.d_penalty is None and self.reg is None:
      return d_loss, (metrics, new_d_state)
    penalty = jnp.zeros((), d_loss.dtype)
    if self.d_penalty is not None:
      penalty += self.d_penalty(d_params, g_params, batch, z)
    if fake is not None:
      d_apply = lambda p, x: self.game.discriminate(p, x, d_state)
      penalty += reg_weight * self.reg(d_apply, d_params, batch, fake, key)
    metrics['d_penalty'] = penalty
    return d_loss + penalty, (metrics, new_d_state)

  def d_grads_and_state(self, d_params: Any, g_params: Any, batch: Array,
                        z: Array, g_state: Any = None, d_state: Any = None,
                        key: Optional[Array] = None,
                        step: Optional[Array] = None
                        ) -> tuple[Any, Metrics, Any]:
    """grad_D of D's objective (loss plus penalties), its metrics and D's
    new state; G is a constant. `key` feeds the named penalty (required
    with one); `step` decides lazy regularisation: the penalty, weighted
    k lambda, enters at steps divisible by k = `reg_every` only."""
    if self.reg is not None and key is None:
      raise ValueError(f'the {self.reg.name} penalty needs a PRNG key')

    def grads(weight):
      (_, (metrics, new_d_state)), g = jax.value_and_grad(
          self._d_objective, has_aux=True)(d_params, g_params, batch, z,
                                           g_state, d_state, key, weight)
      return g, metrics, new_d_state

    if self.reg is None or self.reg_every == 1 or step is None:
      return grads(self.reg_weight)
    return jax.lax.cond(step % self.reg_every == 0,
                        lambda: grads(self.reg_every * self.reg_weight),
                        lambda: grads(0.0))

  def d_grads(self, d_params: Any, g_params: Any, batch: Array, z: Array,
              g_state: Any = None, d_state: Any = None,
              key: Optional[Array] = None) -> tuple[Any, Metrics]:
    """grad_D of D's objective (loss plus penalties); G is a constant."""
    return self.d_grads_and_state(d_params, g_params, batch, z, g_state,
                                  d_state, key)[:2]

  def g_grads_and_state(self, g_params: Any, d_params: Any, z: Array,
                        batch: Optional[Array] = None, g_state: Any = None,
                        d_state: Any = None) -> tuple[Any, Metrics, Any]:
    """grad_G of G's objective, its metrics and G's new state; D is a
    constant."""
    (g_loss, new_g_state), grads = jax.value_and_grad(
        self.game.g_objective, has_aux=True)(g_params, d_params, z, batch,
                                             g_state, d_state)
    return grads, {'g_loss': g_loss}, new_g_state

  def g_grads(self, g_params: Any, d_params: Any, z: Array,
              batch: Optional[Array] = None, g_state: Any = None,
              d_state: Any = None) -> tuple[Any, Metrics]:
    """grad_G of G's objective; D is a constant."""
    return self.g_grads_and_state(g_params, d_params, z, batch, g_state,
                                  d_state)[:2]

  def _joint(self, g_params: Any, d_params: Any, batch: Array, z: Array,
             g_state: Any, d_state: Any, key: Optional[Array],
             step: Optional[Array]):
    d_grads, d_metrics, new_d_state = self.d_grads_and_state(
        d_params, g_params, batch, z, g_state, d_state, key, step)
    g_grads, g_metrics, new_g_state = self.g_grads_and_state(
        g_params, d_params, z, batch if self.game.loss.g_needs_real else None,
        g_state, d_state)
    return ((g_grads, d_grads), {**d_metrics, **g_metrics},
            (new_g_state, new_d_state))

  def joint_grads(self, g_params: Any, d_params: Any, batch: Array, z: Array,
                  g_state: Any = None, d_state: Any = None,
                  key: Optional[Array] = None
                  ) -> tuple[tuple[Any, Any], Metrics]:
    """w(x) = (grad_G L_G, grad_D L_D), both at the same x, batch and z.

    The joint (simultaneous) gradient of the game; its negative is the vector
    field v(x) whose Jacobian at a stationary point decides local
    convergence (Mescheder et al. 2017).
    """
    return self._joint(g_params, d_params, batch, z, g_state, d_state, key,
                       None)[:2]

  def _apply_d(self, d_params: Any, d_opt_state: Any, grads: Any):
    updates, d_opt_state = self.d_opt.update(grads, d_opt_state, d_params)
    d_params = optax.apply_updates(d_params, updates)
    if self.d_weight_clip > 0:
      c = self.d_weight_clip
      d_params = jax.tree.map(lambda p: jnp.clip(p, -c, c), d_params)
    return d_params, d_opt_state

  def _apply_g(self, g_params: Any, g_opt_state: Any, grads: Any):
    updates, g_opt_state = self.g_opt.update(grads, g_opt_state, g_params)
    return optax.apply_updates(g_params, updates), g_opt_state

  def _average_g(self, state: GANState) -> GANState:
    if not self.g_ema_decay:
      return state
    beta = self.g_ema_decay
    return state.replace(g_ema=jax.tree.map(
        lambda e, p: beta * e + (1.0 - beta) * p, state.g_ema, state.g_params))

  def _apply_both(self, state: GANState, g_grads: Any, d_grads: Any
                  ) -> GANState:
    g_params, g_opt_state = self._apply_g(state.g_params, state.g_opt_state,
                                          g_grads)
    d_params, d_opt_state = self._apply_d(state.d_params, state.d_opt_state,
                                          d_grads)
    return state.replace(g_params=g_params, g_opt_state=g_opt_state,
                         d_params=d_params, d_opt_state=d_opt_state)

  def d_step(self, state: GANState, batch: Array, z: Array,
             key: Optional[Array] = None) -> tuple[GANState, Metrics]:
    """One D update on grad_D of D's loss; G is a constant here. `key` feeds
    a random gradient penalty (interpolation weights, say)."""
    grads, metrics, d_state = self.d_grads_and_state(
        state.d_params, state.g_params, batch, z, state.g_state,
        state.d_state, key, state.step)
    d_params, d_opt_state = self._apply_d(state.d_params, state.d_opt_state,
                                          grads)
    metrics['d_grad_norm'] = optax.tree.norm(grads)
    return state.replace(d_params=d_params, d_opt_state=d_opt_state,
                         d_state=d_state), metrics

  def g_step(self, state: GANState, z: Array, batch: Optional[Array] = None
             ) -> tuple[GANState, Metrics]:
    """One G update on grad_G of G's loss; D is a constant here."""
    grads, metrics, g_state = self.g_grads_and_state(
        state.g_params, state.d_params, z, batch, state.g_state, state.d_state)
    g_params, g_opt_state = self._apply_g(state.g_params, state.g_opt_state,
                                          grads)
    metrics['g_grad_norm'] = optax.tree.norm(grads)
    state = state.replace(g_params=g_params, g_opt_state=g_opt_state,
                          g_state=g_state)
    return self._average_g(state), metrics

  def joint_step(self, state: GANState, batch: Array, z: Array,
                 key: Optional[Array] = None) -> tuple[GANState, Metrics]:
    """One step of a non-alternating scheme (`simultaneous`, `extragradient`,
    `optimistic` or `consensus`) on one batch and one z for both players.

    The losses in the metrics are those at x_t; the gradient norms are those
    of the gradients the step applies. Model state advances once, from the
    pass at x_t.
    """
    (g_grads, d_grads), metrics, (g_state, d_state) = self._joint(
        state.g_params, state.d_params, batch, z, state.g_state,
        state.d_state, key, state.step)
    if self.update == 'optimistic':
      if not (_has_optimism(state.g_opt_state)
              and _has_optimism(state.d_opt_state)):
        raise ValueError('update=optimistic needs both optimizers wrapped by '
                         'steps.optimistic(...) (see scheme_optimizer)')
    elif self.update == 'extragradient':
      half = self._apply_both(state, g_grads, d_grads)
      (g_grads, d_grads), _, _ = self._joint(
          half.g_params, half.d_params, batch, z, state.g_state,
          state.d_state, key, state.step)
    elif self.update == 'consensus':
      field = lambda params: self._joint(*params, batch, z, state.g_state,
                                         state.d_state, key, state.step)[0]
      w, vjp = jax.vjp(field, (state.g_params, state.d_params))
      (g_reg, d_reg), = vjp(w)  # J_w^T w = grad of 1/2 ||w||^2
      gamma = self.consensus_weight
      g_grads = jax.tree.map(lambda a, b: a + gamma * b, g_grads, g_reg)
      d_grads = jax.tree.map(lambda a, b: a + gamma * b, d_grads, d_reg)
      metrics['field_sq_norm'] = optax.tree.norm(w, squared=True)
    elif self.update != 'simultaneous':
      raise ValueError(f'joint_step does not run update={self.update!r}')
    metrics['g_grad_norm'] = optax.tree.norm(g_grads)
    metrics['d_grad_norm'] = optax.tree.norm(d_grads)
    state = self._apply_both(state, g_grads, d_grads).replace(
        g_state=g_state, d_state=d_state)
    return self._average_g(state), metrics

  def batches_per_step(self) -> int:
    """Real batches one training step consumes: `d_steps` for D (one for
    the joint schemes), plus one for G when its loss compares real and fake
    outputs."""
    if self.update != 'alternating':
      return 1
    return self.d_steps + int(self.game.loss.g_needs_real)

  def train_step(self, state: GANState, batches: Optional[Array] = None
                 ) -> tuple[GANState, Metrics]:
    """One step of the update scheme; `step` counts G updates.

    `alternating`: `d_steps` D updates with G fixed, then one G update with D
    fixed; the metrics are those of the last D update and of the G update.
    The other schemes update both players from one batch and one z. All
    randomness comes from `fold_in(state.rng, state.step)`.

    Real batches are drawn on the device with `sample_data`, or, for data
    streamed from the host, taken in order from `batches`, shape
    (`batches_per_step()`, B, ...).
    """
    key = jax.random.fold_in(state.rng, state.step)
    # D update i draws its batch and z from split(fold_in(key, i)) and its
    # penalty's randomness from fold_in(fold_in(key, i), 2).
    k_reg = lambda i: jax.random.fold_in(jax.random.fold_in(key, i), 2)

    def real(i: int, k_data: Array) -> Array:
      if batches is not None:
        return batches[i]
      return self.sample_data(k_data, self.batch_size)

    if self.update != 'alternating':
      k_data, k_z = jax.random.split(jax.random.fold_in(key, 0))
      state, metrics = self.joint_step(state, real(0, k_data),
                                       self.sample_z(k_z), k_reg(0))
      return state.replace(step=state.step + 1), metrics
    d_metrics: Metrics = {}
    for i in range(self.d_steps):
      k_data, k_z = jax.random.split(jax.random.fold_in(key, i))
      state, d_metrics = self.d_step(state, real(i, k_data),
                                     self.sample_z(k_z), k_reg(i))
    k_data, k_z = jax.random.split(jax.random.fold_in(key, self.d_steps))
    batch = (real(self.d_steps, k_data) if self.game.loss.g_needs_real
             else None)
    state, g_metrics = self.g_step(state, self.sample_z(k_z), batch)
    return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}
