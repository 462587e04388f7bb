"""Pure training steps: `d_step`, `g_step` and the `train_step` that composes them.

The article's alternating scheme: D ascends V with G held fixed, then G
descends its objective with D held fixed. Each step differentiates only its
own player's objective with respect to its own parameters, so a D step leaves
G's parameters (and optimizer state) bit-identical, and vice versa.

    d_step(state, batch, z) -> (state, metrics)   # one update of D
    g_step(state, z, batch=None) -> (state, metrics)   # one update of G
    train_step(state) -> (state, metrics)   # d_steps D updates, then one G update

`train_step` draws everything it needs from `fold_in(state.rng, state.step)`,
including the real batch (sampled on the device), so it can be the body of a
`lax.scan` and whole chunks of training compile to one program.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from gan_jax.game import Game
from gan_jax.state import GANState

Array = jax.Array
Metrics = dict[str, Array]


def adam(learning_rate: float, beta1: float, beta2: float
         ) -> optax.GradientTransformation:
  """One player's optimizer: Adam with its own learning rate."""
  return optax.adam(learning_rate, b1=beta1, b2=beta2)


@dataclasses.dataclass(frozen=True, eq=False)
class Steps:
  """The pure step functions of one game, closed over its static pieces.

  Attributes:
    game: the `Game` (models and loss).
    g_opt, d_opt: the players' optax transformations.
    sample_data: `sample_data(key, n) -> batch`, pure, runs on the device.
    batch_size: samples per batch for both players.
    z_dim: latent dimension; z ~ N(0, I).
    d_steps: D updates per G update.
    d_weight_clip: if > 0, D's parameters are clipped to [-c, c] after each D
      update (WGAN weight clipping).
  """

  game: Game
  g_opt: optax.GradientTransformation
  d_opt: optax.GradientTransformation
  sample_data: Callable[[Array, int], Array]
  batch_size: int
  z_dim: int
  d_steps: int = 1
  d_weight_clip: float = 0.0

  def sample_z(self, key: Array) -> Array:
    """A batch of latents z ~ N(0, I), shape (batch_size, z_dim)."""
    return jax.random.normal(key, (self.batch_size, self.z_dim), jnp.float32)

  def d_step(self, state: GANState, batch: Array, z: Array
             ) -> tuple[GANState, Metrics]:
    """One D update on grad_D of D's loss; G is a constant here."""
    (d_loss, value), grads = jax.value_and_grad(
        self.game.d_objective, has_aux=True)(state.d_params, state.g_params,
                                             batch, z)
    updates, d_opt_state = self.d_opt.update(grads, state.d_opt_state,
                                             state.d_params)
    d_params = optax.apply_updates(state.d_params, updates)
    if self.d_weight_clip > 0:
      c = self.d_weight_clip
      d_params = jax.tree.map(lambda p: jnp.clip(p, -c, c), d_params)
    metrics = {'d_loss': d_loss, 'value': value,
               'd_grad_norm': optax.tree.norm(grads)}
    return state.replace(d_params=d_params, d_opt_state=d_opt_state), metrics

  def g_step(self, state: GANState, z: Array, batch: Optional[Array] = None
             ) -> tuple[GANState, Metrics]:
    """One G update on grad_G of G's loss; D is a constant here."""
    g_loss, grads = jax.value_and_grad(self.game.g_objective)(
        state.g_params, state.d_params, z, batch)
    updates, g_opt_state = self.g_opt.update(grads, state.g_opt_state,
                                             state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    metrics = {'g_loss': g_loss, 'g_grad_norm': optax.tree.norm(grads)}
    return state.replace(g_params=g_params, g_opt_state=g_opt_state), metrics

  def train_step(self, state: GANState) -> tuple[GANState, Metrics]:
    """`d_steps` D updates with G fixed, then one G update with D fixed.

    All randomness comes from `fold_in(state.rng, state.step)`. The metrics
    are those of the last D update and of the G update.
    """
    key = jax.random.fold_in(state.rng, state.step)
    d_metrics: Metrics = {}
    for i in range(self.d_steps):
      k_data, k_z = jax.random.split(jax.random.fold_in(key, i))
      state, d_metrics = self.d_step(
          state, self.sample_data(k_data, self.batch_size), self.sample_z(k_z))
    k_data, k_z = jax.random.split(jax.random.fold_in(key, self.d_steps))
    batch = (self.sample_data(k_data, self.batch_size)
             if self.game.loss.g_needs_real else None)
    state, g_metrics = self.g_step(state, self.sample_z(k_z), batch)
    return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}
