"""Helpers for gan_jax's tests: tiny configurations and the pieces of a run.

Like optax's `test_utils`, this module is imported by the tests only
(`import testing`; tests/ is on the path). It gives

- named tiny configurations, `tiny_toy_config(**overrides)` and
  `tiny_image_config(**overrides)`, small enough to compile and train in a
  few seconds on a CPU, and their command lines (`argv`, `flag_values`);
- the game of a configuration built directly from the library's registries
  (`build_steps`, `build`): data set, (G, D), loss -> `Game` -> `Steps` ->
  initial `GANState`, as `gan_jax.train.build` builds them, without importing
  `gan_jax.train` and so without orbax, evaluation or plotting (the test
  `testing_test.py` holds the two to the same state and the same step);
- small assertions on pytrees that chex does not have (`assert_trees_differ`)
  and the slice of one member out of a vmapped state (`member`).
"""

from __future__ import annotations

import dataclasses
import functools
import types
from typing import Any, Callable, Optional

import chex
import jax
import numpy as np
import optax

from gan_jax import conditional
from gan_jax import config_fields
from gan_jax import data as data_lib
from gan_jax import losses as losses_lib
from gan_jax import models as models_lib
from gan_jax import packing
from gan_jax import regularizers
from gan_jax import schedules
from gan_jax import steps as steps_lib
from gan_jax import unrolled
from gan_jax.config import Config
from gan_jax.data.images import StreamingImages
from gan_jax.game import Game
from gan_jax.state import GANState, init_state

# A toy GAN on ring8: two hidden layers of 16 units a player, 4 latent
# dimensions, batches of 32, two log chunks of 10 steps.
TOY = dict(workdir='/unused', dataset='ring8', model='mlp', z_dim=4,
           g_hidden=(16, 16), d_hidden=(16, 16), batch_size=32, num_steps=20,
           log_every=10, num_eval_samples=100)

# A DCGAN on the 16x16 digits (in memory, no download): 4 feature maps, 8
# latent dimensions, batches of 8, two log chunks of 3 steps.
IMAGE = dict(workdir='/unused', dataset='digits', model='dcgan', z_dim=8,
             g_features=4, d_features=4, batch_size=8, num_steps=6,
             log_every=3, num_eval_samples=20)


def tiny_toy_config(**overrides: Any) -> Config:
  """`TOY` with `overrides`: the tiny configuration of a toy GAN."""
  return Config(**{**TOY, **overrides})


def tiny_image_config(**overrides: Any) -> Config:
  """`IMAGE` with `overrides`: the tiny configuration of an image GAN."""
  return Config(**{**IMAGE, **overrides})


def flag_values(config: Config) -> dict[str, Any]:
  """{flag: value} of the fields of `config` that differ from `Config()`'s,
  workdir excepted, as absl holds them (a tuple as its comma-separated
  text): the keyword arguments of `flagsaver.flagsaver` that give `config`."""
  default = Config()
  values = {}
  for f in dataclasses.fields(Config):
    value = getattr(config, f.name)
    if f.name != 'workdir' and value != getattr(default, f.name):
      values[f.name] = (config_fields.text(value) if isinstance(value, tuple)
                        else value)
  return values


def argv(config: Config) -> list[str]:
  """The command-line flags that give `config` (`flag_values`, in field
  order), for `python -m gan_jax.main --workdir=DIR *argv(config)`."""
  return [(f'--{name}' if value else f'--no{name}') if isinstance(value, bool)
          else f'--{name}={value}'
          for name, value in flag_values(config).items()]


Optimizer = Callable[[float, float, float], optax.GradientTransformation]


def _configured(config: Config) -> Optimizer:
  """`config`'s --optimizer (and --momentum) as `optimizer(lr, b1, b2)`."""
  return lambda lr, b1, b2, **options: steps_lib.player_optimizer(
      config.optimizer, lr, b1, b2, config.momentum,
      **(options if config.optimizer == 'adam' else {}))


def build_steps(config: Config, optimizer: Optional[Optimizer] = None):
  """`(data, steps)`: the data set and the `Steps` of the configured game.

  Built as `gan_jax.train.build_steps` builds them: the data set and models
  from their registries, the loss by name, each player's
  `optimizer(learning_rate, beta1, beta2)` (by default `config`'s
  --optimizer: Adam unless set) scheduled and wrapped for the update scheme,
  the penalty by name, and every other field of `Steps` from
  the field of `config` of the same name. Only data sampled on the device:
  a streamed data set is fed by `gan_jax.train.run`.
  """
  data = data_lib.build(config)
  if isinstance(data, StreamingImages):
    raise ValueError(f'data set {config.dataset} is streamed from the host; '
                     'testing builds data sampled on the device only')
  generator, discriminator = models_lib.build(config, data)
  optimizer = optimizer or _configured(config)

  def player_optimizer(learning_rate, player, **options):
    return schedules.player_optimizer(
        config, optimizer(learning_rate, config.beta1, config.beta2,
                          **options), player)

  # A class-conditional game: labelled batches and latents, ACGAN's weight.
  sample_data, labelled, class_loss_weight = data.sample, {}, 0.0
  if config.conditional != 'none':
    sample_data = data.sample_with_labels
    labelled['num_classes'] = data_lib.spec(config).num_classes
    if config.fake_labels == 'data':
      labelled['fake_label_probs'] = tuple(float(p) for p in (
          conditional.class_frequencies(data, labelled['num_classes'])))
    if config.conditional == 'acgan':
      class_loss_weight = config.acgan_weight
  same_name = {f.name: getattr(config, f.name)
               for f in dataclasses.fields(steps_lib.Steps)
               if hasattr(config, f.name) and f.name != 'reg'}
  steps = steps_lib.Steps(
      game=Game(generator, packing.packed(discriminator, config.pack),
                losses_lib.get(config.loss),
                class_loss_weight=class_loss_weight),
      g_opt=player_optimizer(config.g_lr, 'g'),
      d_opt=player_optimizer(config.d_lr, 'd',
                             **unrolled.d_adam_options(config.unroll_steps)),
      sample_data=sample_data, reg=regularizers.get_or_none(config.reg),
      **same_name, **labelled)
  return data, steps


def init(config: Config, data, steps: steps_lib.Steps, key: jax.Array
         ) -> GANState:
  """The initial state of the configured game from `key` (pure)."""
  return init_state(steps.game, steps.g_opt, steps.d_opt, key, config.z_dim,
                    data.shape, g_ema=config.g_ema_decay > 0,
                    num_classes=(data_lib.spec(config).num_classes
                                 if config.conditional != 'none' else 0),
                    lecam=config.lecam_weight > 0)


def build(config: Config, optimizer: Optional[Optimizer] = None):
  """`(data, steps, state)`: `build_steps` and the initial state from
  `PRNGKey(config.seed)`, initialised under `jit` as training does."""
  data, steps = build_steps(config, optimizer)
  state = jax.jit(functools.partial(init, config, data, steps))(
      jax.random.PRNGKey(config.seed))
  return data, steps, state


def batch_and_latents(steps: steps_lib.Steps) -> tuple[jax.Array, jax.Array]:
  """A real batch (key 1) and a batch of latents (key 2) of `steps`'s batch
  size (times its packing degree), for calling `d_step(state, batch, z)` or
  `g_step(state, z)` by hand."""
  return (steps.sample_batch(jax.random.PRNGKey(1)),
          steps.sample_z(jax.random.PRNGKey(2)))


def build_models(config: Config, shape: tuple[int, ...]):
  """`(generator, discriminator)` of `config.model` for samples of `shape`."""
  return models_lib.build(config, types.SimpleNamespace(shape=shape))


def member(tree: Any, m: int) -> Any:
  """Member `m` of `tree`, whose leaves have a leading member axis (the state
  or samples of several seeds trained as one program)."""
  return jax.tree.map(lambda leaf: np.asarray(leaf)[m], tree)


def assert_trees_differ(a: Any, b: Any) -> None:
  """`a` and `b` have the same structure and at least one leaf differs (a
  player's parameters moved)."""
  chex.assert_trees_all_equal_structs(a, b)
  if all(np.array_equal(x, y)
         for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))):
    raise AssertionError('the trees are equal: no leaf differs')


def assert_members_equal_alone(configs, fields: tuple[str, ...]):
  """Trains `configs` as one vmapped program (`gan_jax.seeds`) and each alone
  (`gan_jax.train`), asserts the state `fields` of every member equal its
  run alone to 1e-5; returns (the members' result, [(member, config,
  steps, state alone)])."""
  from gan_jax import loop  # pylint: disable=g-import-not-at-top
  from gan_jax import seeds  # pylint: disable=g-import-not-at-top
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  result = seeds.train_members(configs)
  alone = []
  for m, config in enumerate(configs):
    _, steps, state = train.build(config)
    state = loop.train(state, steps.train_step, config.num_steps,
                       config.log_every, out=None)
    for name in fields:
      for a, b in zip(jax.tree.leaves(getattr(result.state, name)),
                      jax.tree.leaves(getattr(state, name))):
        np.testing.assert_allclose(np.asarray(a)[m], b, atol=1e-5,
                                   err_msg=f'member {m} {name}')
    alone.append((m, config, steps, state))
  return result, alone

