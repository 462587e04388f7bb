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

from gan_jax import lecam as lecam_lib
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
    g_state, d_state: the players' non-parameter Flax collections (batch-norm
      statistics, spectral-norm vectors), `{}` for stateless models.
    g_ema: exponential moving average of G's parameters when
      `--g_ema_decay` is set, else `{}`.
  """

  step: jax.Array
  rng: jax.Array
  g_params: Any
  d_params: Any
  g_opt_state: Any
  d_opt_state: Any
  g_state: Any = flax.struct.field(default_factory=dict)
  d_state: Any = flax.struct.field(default_factory=dict)
  g_ema: Any = flax.struct.field(default_factory=dict)


def init_state(game: Game, g_opt: optax.GradientTransformation,
               d_opt: optax.GradientTransformation, key: jax.Array,
               z_dim: int, data_shape: tuple[int, ...],
               g_ema: bool = False, num_classes: int = 0,
               lecam: bool = False) -> GANState:
  """Initialises both players from `key` (pure; jit- and vmap-safe).

  With `g_ema`, the moving average of G's parameters starts at G's initial
  parameters. With `num_classes` > 0 the models are class-conditional and
  are initialised on labelled inputs (z, y) and (x, y). With `lecam`, D's
  state holds the LeCam averages (`gan_jax.lecam`), at zero.
  """
  k_g, k_d, k_run = jax.random.split(key, 3)
  z = jnp.zeros((1, z_dim), jnp.float32)
  x = jnp.zeros((1,) + tuple(data_shape), jnp.float32)
  if num_classes:
    y = jnp.zeros((1,), jnp.int32)
    z, x = (z, y), (x, y)
  g_state = dict(game.generator.init(k_g, z))
  d_state = dict(game.discriminator.init(k_d, x))
  g_params, d_params = g_state.pop('params'), d_state.pop('params')
  if lecam:
    d_state[lecam_lib.COLLECTION] = lecam_lib.init()
  return GANState(
      step=jnp.zeros((), jnp.int32), rng=k_run,
      g_params=g_params, d_params=d_params,
      g_opt_state=g_opt.init(g_params), d_opt_state=d_opt.init(d_params),
      g_state=g_state, d_state=d_state,
      g_ema=jax.tree.map(jnp.copy, g_params) if g_ema else {})
