"""Dataclass fields declared once, with everything derived from them.

A field made by `field(default, help, choices=..., check=...)` carries its
flag help, its valid choices and its own check in its metadata. From a
frozen dataclass of such fields (`gan_jax.config.Config`) come:

  * `define_flags`: one absl flag `--NAME` per field. str, int, float and bool
    are flags of their own type; tuple[int, ...] and tuple[str, ...] are
    comma-separated lists (`--g_hidden=128,128`, `--eval_metrics=fid,kid`).
  * `from_flags`: the field values of parsed flags.
  * `from_json`: the field values of a saved config.json, each checked
    against its field's type (JSON lists become tuples).
  * `check_fields`: each field's choices, what its type requires (a float
    is finite; an integer is below its `Limit`, by default `INT32`: step
    counters and array sizes are int32 in JAX) and its own check, with
    one-line errors that read `--NAME=VALUE must ...` or `--NAME='x' is not a
    known NOUN; valid: ...`.

Choices are a function, called only when they are needed (help text,
validation), so a registry filled after import is seen.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from typing import Any, Callable, Optional

from absl import flags


class ConfigError(ValueError):
  """A bad configuration value; the message is one line for a person."""


@dataclasses.dataclass(frozen=True)
class Check:
  """A condition on a field's value; failing reads --NAME=VALUE requirement."""
  holds: Callable[[Any], bool]
  requirement: str


POSITIVE = Check(lambda v: v > 0, 'must be positive')
NON_NEGATIVE = Check(lambda v: v >= 0, 'must be >= 0')
AT_LEAST_ONE = Check(lambda v: v >= 1, 'must be at least 1')
IN_UNIT_RANGE = Check(lambda v: 0.0 <= v < 1.0, 'must lie in [0, 1)')


@dataclasses.dataclass(frozen=True)
class Limit:
  """The bound an integer field (each item of a list) must stay below."""
  bound: int
  reason: str

  def __str__(self) -> str:
    exponent = self.bound.bit_length() - 1
    shown = (f'2**{exponent} = {self.bound}' if self.bound == 1 << exponent
             else str(self.bound))
    return f'must be below {shown} ({self.reason})'


INT32 = Limit(2**31, 'step counters and array sizes are int32 in JAX')

CHOICES = '{choices}'  # in help text: replaced by the valid choices
_AS_FIELD = object()  # the flag's default is the field's


def field(default: Any, help: str, *,  # pylint: disable=redefined-builtin
          choices: Optional[Callable[[], Any]] = None,
          noun: Optional[str] = None, check: Optional[Check] = None,
          flag_default: Any = _AS_FIELD, limit: Limit = INT32) -> Any:
  """A dataclass field with its flag help, choices and check.

  Args:
    default: the value when neither a flag nor config.json sets it.
    help: the flag's help; `{choices}` in it becomes the valid choices.
    choices: returns the valid values (of each item, for a tuple field).
    noun: what one choice is called in errors (default: the field's name).
    check: a condition the value must meet.
    flag_default: the flag's default, when it is not the field's (None: the
      flag shows no default and, left unset, gives the field's).
    limit: what an integer field (each item of a list of them) must stay
      below; float fields must be finite, whatever their check.
  """
  return dataclasses.field(default=default, metadata={
      'help': help, 'choices': choices, 'noun': noun, 'check': check,
      'flag_default': flag_default, 'limit': limit})


def text(value: Any) -> str:
  """A value as it is written on the command line: tuples comma-separated."""
  if isinstance(value, (tuple, list)):
    return ','.join(map(str, value))
  return str(value)


@dataclasses.dataclass(frozen=True)
class _Kind:
  """How fields of one type become flags and are read from flags and JSON."""
  define: Callable[..., Any]  # absl's DEFINE_* for the flag
  item: type  # the value's type, or each item's for a tuple
  description: str  # what config.json must hold, for errors
  is_tuple: bool = False

  def from_flag(self, name: str, value: Any) -> Any:
    if not self.is_tuple:
      return value
    try:
      return tuple(self.item(t) for t in value.split(',') if t.strip())
    except ValueError:
      raise ConfigError(f'--{name}={value} is not a comma-separated list of '
                        'integers') from None

  def from_json(self, name: str, value: Any) -> Any:
    if self.is_tuple:
      if isinstance(value, list) and all(map(self._holds, value)):
        return tuple(value)
    elif self._holds(value):
      return self.item(value)
    raise ConfigError(f'{name}: {json.dumps(value)} is not '
                      f'{self.description}')

  def _holds(self, value: Any) -> bool:
    if isinstance(value, bool):
      return self.item is bool
    return isinstance(value, (int, float) if self.item is float else self.item)


_KINDS = {
    str: _Kind(flags.DEFINE_string, str, 'a string'),
    int: _Kind(flags.DEFINE_integer, int, 'an integer'),
    float: _Kind(flags.DEFINE_float, float, 'a number'),
    bool: _Kind(flags.DEFINE_bool, bool, 'true or false'),
    tuple[int, ...]: _Kind(flags.DEFINE_string, int, 'a list of integers',
                           is_tuple=True),
    tuple[str, ...]: _Kind(flags.DEFINE_string, str, 'a list of strings',
                           is_tuple=True),
}


@functools.cache
def _kinds(cls: type) -> dict[str, _Kind]:
  """{field name: its _Kind} of dataclass `cls`; TypeError for another type."""
  hints = typing.get_type_hints(cls)
  out = {}
  for f in dataclasses.fields(cls):
    if hints[f.name] not in _KINDS:
      raise TypeError(f'{cls.__name__}.{f.name}: {hints[f.name]} is not a '
                      'flag type; valid: str, int, float, bool, '
                      'tuple[int, ...], tuple[str, ...]')
    out[f.name] = _KINDS[hints[f.name]]
  return out


def _help(f: dataclasses.Field) -> str:
  help_text = f.metadata.get('help') or f.name
  choices = f.metadata.get('choices')
  if choices is not None:
    help_text = help_text.replace(CHOICES, ', '.join(choices()))
  return help_text


def define_flags(cls: type, flag_values: flags.FlagValues) -> None:
  """Defines a flag per field of `cls`; a name already defined is left as is."""
  kinds = _kinds(cls)
  for f in dataclasses.fields(cls):
    if f.name in flag_values:
      continue
    default = f.metadata.get('flag_default', _AS_FIELD)
    if default is _AS_FIELD:
      default = text(f.default) if kinds[f.name].is_tuple else f.default
    kinds[f.name].define(f.name, default, _help(f), flag_values=flag_values,
                         module_name=cls.__module__)


def from_flags(cls: type, flag_values: flags.FlagValues) -> dict[str, Any]:
  """{field name: value} of the parsed flags; unset flags without a default
  give the field's default."""
  values = {}
  for f in dataclasses.fields(cls):
    value = flag_values[f.name].value
    values[f.name] = (f.default if value is None
                      else _kinds(cls)[f.name].from_flag(f.name, value))
  return values


def from_json(cls: type, saved: dict[str, Any]) -> dict[str, Any]:
  """{field name: value} of the fields of `cls` in `saved` (other keys are
  skipped); a value of the wrong type is a one-line ConfigError."""
  kinds = _kinds(cls)
  return {name: kinds[name].from_json(name, value)
          for name, value in saved.items() if name in kinds}


def _check_number(name: str, value: Any, kind: _Kind, limit: Limit) -> None:
  """A float must be finite, an integer below `limit` (each item of a list)."""
  items = value if kind.is_tuple else (value,)
  if kind.item is float and not all(map(math.isfinite, items)):
    raise ConfigError(f'--{name}={text(value)} must be a finite number')
  if kind.item is int and any(v >= limit.bound for v in items):
    raise ConfigError(f'--{name}={text(value)} {limit}')


def check_fields(instance: Any) -> None:
  """Each field's choices (each item's, for a tuple), what its type requires
  (`_check_number`) and its check, in order."""
  kinds = _kinds(type(instance))
  for f in dataclasses.fields(instance):
    name, meta, value = f.name, f.metadata, getattr(instance, f.name)
    if meta.get('choices') is not None:
      valid = meta['choices']()  # its own `in`: it may accept patterns
      many = isinstance(value, tuple)
      for item in value if many else (value,):
        if item not in valid:
          where = f'--{name}: {item!r}' if many else f'--{name}={item!r}'
          raise ConfigError(f'{where} is not a known '
                            f'{meta.get("noun") or name}; valid: '
                            f'{", ".join(valid)}')
    _check_number(name, value, kinds[name], meta.get('limit') or INT32)
    check = meta.get('check')
    if check is not None and not check.holds(value):
      raise ConfigError(f'--{name}={text(value)} {check.requirement}')
