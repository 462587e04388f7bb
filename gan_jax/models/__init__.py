"""Generator/discriminator pairs by name.

A model builder takes the resolved `Config` and the data's `DataSpec` and
returns `(generator, discriminator)`, two Flax Linen modules called as
`module.apply(variables, x, train=...)`. The discriminator returns one raw
output per sample, shape (B,).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn

from gan_jax.models import mlp

ModelBuilder = Callable[..., tuple[nn.Module, nn.Module]]


def _build_mlp(config, data_spec) -> tuple[nn.Module, nn.Module]:
  if len(data_spec.shape) != 1:
    raise ValueError(
        f'model mlp needs flat data, but {config.dataset} has shape '
        f'{data_spec.shape}')
  return (mlp.Generator(hidden=tuple(config.g_hidden),
                        out_dim=data_spec.shape[0]),
          mlp.Discriminator(hidden=tuple(config.d_hidden)))


_REGISTRY: dict[str, ModelBuilder] = {'mlp': _build_mlp}


def names() -> list[str]:
  """The registered model names, sorted."""
  return sorted(_REGISTRY)


def register(name: str, builder: ModelBuilder) -> None:
  """Registers `builder(config, data_spec) -> (G, D)` as model `name`."""
  if name in _REGISTRY:
    raise ValueError(f'a model named {name!r} is already registered')
  _REGISTRY[name] = builder


def get(name: str) -> ModelBuilder:
  """The builder registered as `name`; unknown names list the valid ones."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(
        f'unknown model {name!r}; valid models: {", ".join(names())}') from None


def build(config, data_spec) -> tuple[nn.Module, nn.Module]:
  """Builds `(generator, discriminator)` for `config.model` on `data_spec`."""
  return get(config.model)(config, data_spec)
