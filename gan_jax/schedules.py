"""Learning-rate schedules of both players (`--lr_schedule`).

A schedule multiplies each update u_t of a player's optimizer by a factor
f(t) of the player's update count t = 0, 1, ... (optax's
`scale_by_schedule`), decaying to 0 over the player's T updates of a run:
T = `--num_steps` for G, `--num_steps` x `--d_steps` for D.

    constant       f(t) = 1 (the optimizer is returned unchanged: the same
                   program and optimizer state as without a schedule)
    linear_decay   f(t) = 1 - t / T
    cosine         f(t) = 1/2 (1 + cos(pi t / T))     (Loshchilov & Hutter
                   2017, SGDR, without restarts)

with t / T clipped to [0, 1], so f stays 0 past T (a run trained longer).
Scaling the update rather than passing a schedule as the learning rate keeps
the learning rate where the optimizer holds it, so the schedule composes
with any optimizer and with hyperparameters held in the optimizer state
(`gan_jax.seeds`). It is applied before the update scheme's own wrapper
(`updates.scheme_optimizer`): under `--update=optimistic` the scheduled
updates u_t are the ones extrapolated, 2 u_t - u_{t-1}.
"""

from __future__ import annotations

from typing import Callable, Optional

import optax

from gan_jax import updates

# name -> factor schedule for T updates, or None for no schedule.
_FACTORS: dict[str, Optional[Callable[[int], optax.Schedule]]] = {
    'constant': None,
    'linear_decay': lambda total: optax.linear_schedule(1.0, 0.0, total),
    'cosine': lambda total: optax.cosine_decay_schedule(1.0, total),
}

NAMES = tuple(_FACTORS)


def scheduled(opt: optax.GradientTransformation, name: str, total_updates: int
              ) -> optax.GradientTransformation:
  """`opt` with its updates scaled by schedule `name` over `total_updates`.

  'constant' returns `opt` itself.
  """
  if name not in _FACTORS:
    raise ValueError(f'unknown learning-rate schedule {name!r}; valid: '
                     f'{", ".join(NAMES)}')
  factor = _FACTORS[name]
  if factor is None:
    return opt
  return optax.chain(opt, optax.scale_by_schedule(factor(total_updates)))


def player_optimizer(config, opt: optax.GradientTransformation, player: str
                     ) -> optax.GradientTransformation:
  """Player `player`'s ('g' or 'd') optimizer `opt` as a run of `config`
  uses it: scheduled by `--lr_schedule` over its updates of the run, then
  wrapped by the update scheme (`updates.scheme_optimizer`)."""
  if player not in ('g', 'd'):
    raise ValueError(f"player must be 'g' or 'd', got {player!r}")
  total = config.num_steps * (config.d_steps if player == 'd' else 1)
  return updates.scheme_optimizer(
      config.update, scheduled(opt, config.lr_schedule, total))
