"""What a checkpoint records beside the state, and which runs may resume it.

Each checkpoint's meta item (JSON, `FORMAT` 2) holds

  format       2;
  step         its step;
  config       the resolved config of the run that wrote it;
  versions     of jax, jaxlib, flax, optax, orbax-checkpoint and gan_jax
               (`VERSIONED`) in that run;
  structure    one `[path, shape, dtype]` per leaf of the state, the path as
               `jax.tree_util.keystr` writes it (`.g_params['Dense_0']['kernel']`);
  fingerprint  a SHA-256 over every leaf's dtype, shape and bytes, in that
               order.

Structure is compared by key paths, shapes and dtypes, never by the printed
treedef, whose text names classes (`namedtuple[ScaleByAdamState]`) and may
change with any jax or optax release while the arrays stay the same: a leaf
added, removed, reshaped or retyped is a real incompatibility
(`structure_change`), other versions alone are not (`version_differences`).

A run resumes another's checkpoint only if their configs agree in every
field but `RESUMABLE_CHANGES`, the fields that do not change what is
computed (`config_differences`).

Format 1 (gan_jax before versions were recorded) holds only step, config
and a fingerprint that also hashed the printed treedef (`legacy_fingerprint`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
from typing import Optional

import jax
import numpy as np

from gan_jax.config import Config, ConfigError

FORMAT = 2
# The packages whose versions each checkpoint records (distribution names).
VERSIONED = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'gan_jax')

# Config fields that may differ between a checkpoint's run and the run
# resuming it, because they do not change what is computed: the run length,
# how often and how many checkpoints are written, the chunk length (chunks of
# any length give the same bits: tests/resume_test.py), where and how the
# process runs, and what it only observes (evaluations, pictures). A name
# that is not a Config field (one of a later version) is ignored.
RESUMABLE_CHANGES = ('num_steps', 'keep_checkpoints', 'checkpoint_every',
                     'log_every', 'workdir', 'data_dir', 'multihost',
                     'preempt_grace_s', 'eval_every', 'eval_metrics',
                     'num_eval_samples', 'image_every')


class ResumeRefused(ConfigError):
  """The workdir's checkpoint is intact but cannot continue this run (exit
  status 2, like every ConfigError; nothing is written)."""


@functools.cache
def versions() -> dict[str, str]:
  """The running version of each of `VERSIONED` ('unknown' if not installed)."""
  found = {}
  for name in VERSIONED:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      found[name] = 'unknown'
  return found


def structure(tree) -> list[list]:
  """`[key path, shape, dtype]` of every leaf of a host tree, in leaf order."""
  return [[jax.tree_util.keystr(path), list(np.shape(leaf)),
           np.dtype(leaf.dtype).name]
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def _digest(leaves, head: bytes = b'') -> str:
  digest = hashlib.sha256(head)
  for leaf in leaves:
    leaf = np.ascontiguousarray(leaf)
    digest.update(f'{leaf.dtype.str}{leaf.shape}'.encode())
    digest.update(leaf.tobytes())
  return digest.hexdigest()


def fingerprint(tree, paths: Optional[list[str]] = None) -> str:
  """SHA-256 over every leaf's dtype, shape and bytes, in leaf order, or in
  the order of `paths` (key paths as `structure` writes them)."""
  if paths is None:
    return _digest(jax.tree.leaves(tree))
  by_path = {jax.tree_util.keystr(p): leaf
             for p, leaf in jax.tree_util.tree_leaves_with_path(tree)}
  return _digest(by_path[path] for path in paths)


def legacy_fingerprint(tree) -> str:
  """The fingerprint of format 1, which also hashed the printed treedef."""
  return _digest(jax.tree.leaves(tree), str(jax.tree.structure(tree)).encode())


def structure_change(saved: list, here: list) -> Optional[str]:
  """The first leaf (in `here`'s order, then `saved`'s) whose shape or dtype
  differs between two `structure` lists, or that only one has, as a phrase;
  None if they hold the same leaves (in any order)."""
  there = {path: (shape, dtype) for path, shape, dtype in saved}
  ours = {path: (shape, dtype) for path, shape, dtype in here}
  if there == ours:
    return None
  show = lambda leaf: f'{leaf[1]}{leaf[0]}' if leaf else 'absent'
  changes = [f'{path} is {show(there.get(path))} there vs '
             f'{show(ours.get(path))} here'
             for path in [*ours, *(p for p in there if p not in ours)]
             if there.get(path) != ours.get(path)]
  more = len(changes) - 1
  return changes[0] + (f' (and {more} more leaves differ)' if more else '')


def version_differences(recorded: dict) -> list[str]:
  """`name recorded (here running)` for each package whose version differs."""
  return [f'{name} {recorded.get(name, "unknown")} (here {ours})'
          for name, ours in versions().items()
          if recorded.get(name, 'unknown') != ours]


def meta(host, config: Config) -> dict:
  """The meta item of a checkpoint of `host` (a host copy of the state)."""
  return {'format': FORMAT, 'step': int(host.step),
          'config': config_dict(config), 'versions': versions(),
          'structure': structure(host), 'fingerprint': fingerprint(host)}


_INT = lambda v: isinstance(v, int) and not isinstance(v, bool)
_STRUCTURE_ENTRY = lambda e: (
    isinstance(e, list) and len(e) == 3 and isinstance(e[0], str)
    and isinstance(e[1], list) and all(_INT(d) for d in e[1])
    and isinstance(e[2], str))
# Each field of the meta: (check, what a good value is).
META_FIELDS = {
    'format': (_INT, 'an integer'),
    'step': (_INT, 'an integer'),
    'config': (lambda v: isinstance(v, dict), 'an object of config fields'),
    'versions': (lambda v: isinstance(v, dict) and all(
        isinstance(x, str) for x in v.values()), 'an object of versions'),
    'structure': (lambda v: isinstance(v, list) and all(
        _STRUCTURE_ENTRY(e) for e in v), 'a list of [path, shape, dtype]'),
    'fingerprint': (lambda v: isinstance(v, str) and len(v) == 64,
                    'a SHA-256 hex digest'),
}
# The fields of format 1.
LEGACY_FIELDS = ('step', 'config', 'fingerprint')


def is_legacy(meta_item: dict) -> bool:
  """Whether a meta is of format 1 (exactly `LEGACY_FIELDS`)."""
  return sorted(meta_item) == sorted(LEGACY_FIELDS)


def meta_problem(meta_item, step: int) -> Optional[str]:
  """Why `meta_item` is not a sound meta of checkpoint `step` (a phrase that
  names the field), or None."""
  if not isinstance(meta_item, dict):
    return f'its meta is a JSON {type(meta_item).__name__}, not an object'
  for name in LEGACY_FIELDS if is_legacy(meta_item) else META_FIELDS:
    check, what = META_FIELDS[name]
    if name not in meta_item:
      return f"its meta lacks the field '{name}'"
    if not check(meta_item[name]):
      return f"its meta's '{name}' is not {what}"
  if meta_item['step'] != step:
    return f'its meta is that of step {meta_item["step"]}'
  return None


def config_dict(config: Config) -> dict:
  """The config as the JSON a checkpoint stores (tuples become lists)."""
  return json.loads(config.to_json())


def resumable_flags() -> list[str]:
  """`--name` of each Config field in `RESUMABLE_CHANGES`."""
  fields = {f.name for f in dataclasses.fields(Config)}
  return [f'--{name}' for name in RESUMABLE_CHANGES if name in fields]


def config_differences(saved: dict, config: Config) -> list[str]:
  """`--name=there vs here` for each field (but `RESUMABLE_CHANGES`) that
  differs; `--num_steps` too under a decaying `--lr_schedule`, which it
  sets the horizon of.

  A field the checkpoint lacks (it was written before the field existed)
  counts as having its default value, which is what that run computed with.
  """
  here = config_dict(config)
  defaults = config_dict(type(config)())
  missing = object()
  diffs = []
  # A decaying learning-rate schedule spans --num_steps: another value
  # changes every update after the checkpoint.
  scheduled = here.get('lr_schedule', 'constant') != 'constant'
  for name in sorted(set(saved) | set(here)):
    if name in RESUMABLE_CHANGES and not (scheduled and name == 'num_steps'):
      continue
    a = saved.get(name, defaults.get(name, missing))
    b = here.get(name, missing)
    if a != b:
      show = lambda v: 'unset' if v is missing else json.dumps(v)
      diffs.append(f'--{name}={show(a)} there vs {show(b)} here')
  return diffs


def refuse_newer_format(meta_item, where: str) -> None:
  """Raises ResumeRefused if the meta says it is of a format newer than this
  version reads, whatever fields that format has (checked before the fields,
  so a newer checkpoint is never taken for a damaged one)."""
  if not isinstance(meta_item, dict):
    return
  fmt = meta_item.get('format')
  if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > FORMAT:
    written = meta_item.get('versions')
    by = (written.get('gan_jax', 'unknown') if isinstance(written, dict)
          else 'unknown')
    raise ResumeRefused(
        f'{where} is of checkpoint format {fmt}, written by gan_jax {by}; '
        f'this gan_jax ({versions()["gan_jax"]}) reads format {FORMAT}: '
        'resume it with that version, or use a new --workdir')


def refuse_other_run(meta_item: dict, config: Config, where: str) -> None:
  """Raises ResumeRefused, naming what differs, unless the checkpoint at
  `where` (of sound meta) can continue `config`: its format is one this
  version reads, its config differs only in `RESUMABLE_CHANGES`."""
  refuse_newer_format(meta_item, where)
  diffs = config_differences(meta_item['config'], config)
  if diffs:
    raise ResumeRefused(
        f'--workdir={config.workdir} holds a checkpoint (step '
        f'{meta_item["step"]}) of a different run: {"; ".join(diffs)}; on '
        f'resume only {", ".join(resumable_flags())} may differ (they do not '
        'change what is computed), so use a new --workdir or the same flags')


def refuse_other_structure(meta_item: dict, target, where: str) -> None:
  """Raises ResumeRefused naming the first leaf that differs, unless the
  recorded structure is that of `target` (a host tree of this run's state)."""
  change = structure_change(meta_item['structure'], structure(target))
  if change:
    written = '; '.join(version_differences(meta_item['versions'])) or (
        'the same package versions')
    raise ResumeRefused(
        f'{where} holds a state of another structure than this run builds: '
        f'{change}; it was written with {written}; resume it with what wrote '
        'it, or use a new --workdir')
