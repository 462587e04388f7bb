"""Entries by name, with errors that list the valid names.

The one registry behind losses, regularizers, update schemes, models and
data sets: each entry is a record with a `.name` (a `Loss`, a `ModelSpec`,
a `DatasetSpec`, ...), registered once by the module that defines it. A
module exposes its registry's methods as its own functions:

    _REGISTRY = registry.Registry('loss', plural='losses')
    register, names, get = _REGISTRY.register, _REGISTRY.names, _REGISTRY.get
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar('T')


class Registry(Generic[T]):
  """Records keyed by their `.name`.

  Args:
    kind: what one entry is, for messages ('model', 'dataset').
    plural: the plural of `kind` (default: `kind` + 's').
  """

  def __init__(self, kind: str, plural: str | None = None):
    self.kind = kind
    self.plural = plural or f'{kind}s'
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
      raise KeyError(f'unknown {self.kind} {name!r}; valid {self.plural}: '
                     f'{", ".join(self.names())}') from None
