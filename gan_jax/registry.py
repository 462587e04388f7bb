"""Entries by name, with errors that list the valid names.

The one registry behind `gan_jax.models` and `gan_jax.data`: each entry is a
record with a `.name` (a `ModelSpec`, a `DatasetSpec`), registered once by
the module that defines it.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar('T')


class Registry(Generic[T]):
  """Records keyed by their `.name`.

  Args:
    kind: what one entry is, for messages ('model', 'dataset').
  """

  def __init__(self, kind: str):
    self.kind = kind
    self.entries: dict[str, T] = {}

  def register(self, entry: T) -> T:
    """Adds `entry` under `entry.name` and returns it; a name is taken once."""
    if entry.name in self.entries:
      raise ValueError(f'a {self.kind} named {entry.name!r} is already '
                       'registered')
    self.entries[entry.name] = entry
    return entry

  def names(self) -> list[str]:
    """The registered names, sorted."""
    return sorted(self.entries)

  def get(self, name: str) -> T:
    """The entry registered as `name`; unknown names list the valid ones."""
    try:
      return self.entries[name]
    except KeyError:
      raise KeyError(f'unknown {self.kind} {name!r}; valid {self.kind}s: '
                     f'{", ".join(self.names())}') from None
