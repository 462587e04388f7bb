"""Data sets by name.

Each entry builds a data object with `.name`, `.shape` (one sample's shape)
and `.sample(key, n)`, a pure function that draws a batch on the device so
that it can run inside the jitted training scan.
"""

from __future__ import annotations

from typing import Callable

from gan_jax.data import toy

_REGISTRY: dict[str, Callable] = {
    'ring8': toy.ring8,
    'grid25': toy.grid25,
    'mix1d': toy.mix1d,
}


def names() -> list[str]:
  """The registered data set names, sorted."""
  return sorted(_REGISTRY)


def register(name: str, builder: Callable) -> None:
  """Registers `builder(config) -> data` as data set `name`."""
  if name in _REGISTRY:
    raise ValueError(f'a data set named {name!r} is already registered')
  _REGISTRY[name] = builder


def get(name: str):
  """The builder for data set `name`; unknown names list the valid ones."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(f'unknown dataset {name!r}; valid datasets: '
                   f'{", ".join(names())}') from None


def build(config):
  """The data set named by `config.dataset`."""
  return get(config.dataset)()
