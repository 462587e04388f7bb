"""The training state: one pytree holding both players.

Because it is a pytree of arrays, a whole run's state can be jitted, scanned,
checkpointed, and vmapped over seeds.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from gan_jax.game import Game


@flax.struct.dataclass
class GANState:
  """Both players' parameters and optimizer states, the step and the run's key.

  Attributes:
    step: number of completed training steps (G updates), int32 scalar.
    rng: the run's seed key; the key of step t is `fold_in(rng, t)`, so a
      run's randomness does not depend on how its steps are chunked.
    g_params, d_params: the players' parameters.
    g_opt_state, d_opt_state: the players' optax states.
  """

  step: jax.Array
  rng: jax.Array
  g_params: Any
  d_params: Any
  g_opt_state: Any
  d_opt_state: Any


def init_state(game: Game, g_opt: optax.GradientTransformation,
               d_opt: optax.GradientTransformation, key: jax.Array,
               z_dim: int, data_shape: tuple[int, ...]) -> GANState:
  """Initialises both players from `key` (pure; jit- and vmap-safe)."""
  k_g, k_d, k_run = jax.random.split(key, 3)
  g_params = game.generator.init(k_g, jnp.zeros((1, z_dim), jnp.float32))['params']
  d_params = game.discriminator.init(
      k_d, jnp.zeros((1,) + tuple(data_shape), jnp.float32))['params']
  return GANState(
      step=jnp.zeros((), jnp.int32), rng=k_run,
      g_params=g_params, d_params=d_params,
      g_opt_state=g_opt.init(g_params), d_opt_state=d_opt.init(d_params))
