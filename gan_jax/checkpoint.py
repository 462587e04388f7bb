"""Checkpoints of the whole `GANState`, with orbax, that a run resumes from exactly.

Layout: `WORKDIR/checkpoints/STEP/` holds two orbax items,

  state  the GANState pytree (both players' parameters and optax states, the
         step and the run's key), as host numpy arrays;
  meta   JSON: the step, the resolved config, and a SHA-256 fingerprint of
         every leaf's dtype, shape and bytes.

Why it is exact: a step's randomness is `fold_in(state.rng, state.step)` and
both are in the state, and checkpoints are written only between compiled
chunks (chunk ends are multiples of `--log_every`; `--checkpoint_every` is a
multiple of it), so a resumed run executes the same compiled programs on the
same inputs as an uninterrupted one.

Why nothing half-written is ever used: orbax writes a step into a temporary
directory and renames it to `STEP` only once every file is complete, so a
process killed mid-write leaves a temporary directory that is ignored (and
removed by the next run). A finalised checkpoint whose files were later
damaged is caught on restore, by orbax failing to read it or by the
fingerprint not matching what was read; it is moved to
`WORKDIR/corrupt_checkpoints/STEP` and the next older one is used, with a
warning.

Why the state is copied to host numpy before saving: saves are asynchronous
(orbax writes in a background thread while training continues), and the next
chunk donates the state's device buffers; an independent host copy is what the
background write reads, so a save can never observe a later step. The copy is
also what the fingerprint is computed from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from typing import Any, Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from gan_jax.config import Config, ConfigError

# Fields that may differ between a checkpoint's run and the run resuming it:
# the run length, where/how the process runs and what it only observes
# (evaluations, pictures), never what it computes.
RESUMABLE_CHANGES = ('num_steps', 'workdir', 'multihost', 'data_dir',
                     'eval_every', 'eval_metrics', 'image_every')


def directory(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def corrupt_directory(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'corrupt_checkpoints')


def to_host(tree):
  """An independent host (numpy) copy of every leaf of `tree`."""
  return jax.tree.map(lambda x: np.array(x, copy=True), jax.device_get(tree))


def fingerprint(tree) -> str:
  """SHA-256 over the tree structure and every leaf's dtype, shape and bytes."""
  digest = hashlib.sha256(str(jax.tree.structure(tree)).encode())
  for leaf in jax.tree.leaves(tree):
    leaf = np.ascontiguousarray(leaf)
    digest.update(f'{leaf.dtype.str}{leaf.shape}'.encode())
    digest.update(leaf.tobytes())
  return digest.hexdigest()


def config_dict(config: Config) -> dict:
  """The config as the JSON a checkpoint stores (tuples become lists)."""
  return json.loads(config.to_json())


def config_differences(saved: dict, config: Config) -> list[str]:
  """`--name=there vs here` for each field (but run length) that differs.

  A field the checkpoint lacks (it was written before the field existed)
  counts as having its default value, which is what that run computed with.
  """
  here = config_dict(config)
  defaults = config_dict(type(config)())
  missing = object()
  diffs = []
  for name in sorted(set(saved) | set(here)):
    if name in RESUMABLE_CHANGES:
      continue
    a = saved.get(name, defaults.get(name, missing))
    b = here.get(name, missing)
    if a != b:
      show = lambda v: 'unset' if v is missing else json.dumps(v)
      diffs.append(f'--{name}={show(a)} there vs {show(b)} here')
  return diffs


@dataclasses.dataclass
class Restored:
  """The latest good checkpoint of a workdir.

  Attributes:
    step: its step.
    state: the GANState as host numpy arrays.
    config: the config dict it was written with.
    skipped: (step, reason) for each newer checkpoint that could not be used.
  """

  step: int
  state: Any
  config: dict
  skipped: list[tuple[int, str]]


def _manager(workdir: str, keep: int = 1, read_only: bool = False
             ) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=None if read_only else keep,
      save_interval_steps=0 if read_only else 1,
      create=not read_only, read_only=read_only,
      cleanup_tmp_directories=not read_only,
      enable_async_checkpointing=not read_only)
  return ocp.CheckpointManager(directory(workdir), options=options,
                               item_names=('state', 'meta'))


def _one_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f'{type(error).__name__}: {text[0] if text else ""}'[:300]


@contextlib.contextmanager
def _quiet_aborted_reads():
  """Drops the 'Event loop is closed' reports of reads orphaned by a failed
  restore.

  When one array of a damaged checkpoint fails to read, orbax raises at once
  and closes its event loop while tensorstore's other reads are still in
  flight; each of their completions then reports an unraisable
  `RuntimeError('Event loop is closed')` with a traceback on stderr. The
  failure itself is handled (the checkpoint is skipped with a one-line
  warning), so those reports are noise; any other unraisable goes to the
  previous hook.
  """
  previous = sys.unraisablehook

  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == 'Event loop is closed'):
      previous(unraisable)

  sys.unraisablehook = hook
  try:
    yield
  finally:
    sys.unraisablehook = previous


def latest(config: Config, target) -> Optional[Restored]:
  """Reads the newest usable checkpoint of `config.workdir`; writes nothing.

  Args:
    config: the run about to start; a checkpoint written with a different
      config (in anything but `RESUMABLE_CHANGES`) raises ConfigError.
    target: a host pytree with the state's structure, dtypes and shapes.

  Returns:
    The newest checkpoint that reads back with a matching fingerprint, or
    None if there is none. Unreadable newer ones are listed in `skipped`.
  """
  if not os.path.isdir(directory(config.workdir)):
    return None
  with _quiet_aborted_reads():
    return _latest(config, target)


def _latest(config: Config, target) -> Optional[Restored]:
  manager = _manager(config.workdir, read_only=True)
  skipped = []
  try:
    for step in sorted(manager.all_steps(), reverse=True):
      try:
        meta = manager.restore(step, args=ocp.args.Composite(
            meta=ocp.args.JsonRestore())).meta
        saved_config = meta['config']
      except Exception as e:  # pylint: disable=broad-except
        skipped.append((step, _one_line(e)))
        continue
      diffs = config_differences(saved_config, config)
      if diffs:
        raise ConfigError(
            f'--workdir={config.workdir} holds a checkpoint (step {step}) of '
            f'a different run: {"; ".join(diffs)}; only --num_steps may '
            'change on resume, so use a new --workdir or the same flags')
      try:
        state = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target))).state
        state = jax.tree.map(np.asarray, state)
      except Exception as e:  # pylint: disable=broad-except
        skipped.append((step, _one_line(e)))
        continue
      if fingerprint(state) != meta['fingerprint']:
        skipped.append((step, 'its contents do not match the fingerprint '
                        'recorded when it was written'))
        continue
      if int(state.step) != step:
        skipped.append((step, f'it holds step {int(state.step)}'))
        continue
      return Restored(step, state, saved_config, skipped)
  finally:
    manager.close()
  return Restored(-1, None, {}, skipped) if skipped else None


class Checkpointer:
  """Writes checkpoints of one run (asynchronously), keeping the newest `keep`.

  Every process of a multi-process run must call `save` and `close` (orbax
  coordinates them); `primary` marks the one that moves damaged checkpoints.
  """

  def __init__(self, workdir: str, keep: int, primary: bool = True,
               corrupt_steps: tuple[int, ...] = ()):
    self.workdir = workdir
    if primary:
      for step in corrupt_steps:
        self._move_aside(step)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices('gan_jax_checkpoints_moved')
    self._manager = _manager(workdir, keep=keep)
    self.save_seconds: list[float] = []

  def _move_aside(self, step: int) -> None:
    source = os.path.join(directory(self.workdir), str(step))
    if not os.path.isdir(source):
      return
    target = os.path.join(corrupt_directory(self.workdir), str(step))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.exists(target):
      shutil.rmtree(target)
    os.replace(source, target)

  @property
  def steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, state, config: Config) -> float:
    """Starts writing `state` as checkpoint `state.step`; returns the seconds
    the caller was blocked (the host copy and the hand-off to orbax)."""
    start = time.perf_counter()
    host = to_host(state)
    step = int(host.step)
    if step in self._manager.all_steps():
      return 0.0
    meta = {'step': step, 'config': config_dict(config),
            'fingerprint': fingerprint(host)}
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(host), meta=ocp.args.JsonSave(meta)),
                       force=True)
    seconds = time.perf_counter() - start
    self.save_seconds.append(seconds)
    return seconds

  def wait(self) -> None:
    """Blocks until every started write is final on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def restore_or_none(config: Config, template, warn: Callable[[str], None]
                    ) -> Optional[Restored]:
  """`latest(...)`, warning once per damaged checkpoint it had to skip."""
  restored = latest(config, to_host(template))
  if restored is None:
    return None
  for step, reason in restored.skipped:
    fallback = (f'resuming from step {restored.step}' if restored.state is
                not None else 'starting from scratch')
    warn(f'warning: checkpoint {step} in {directory(config.workdir)} is '
         f'damaged ({reason}); it is moved to '
         f'{os.path.join(corrupt_directory(config.workdir), str(step))}, '
         f'{fallback}')
  return restored


def resume(config: Config, state, warn: Callable[[str], None]
           ) -> tuple[Any, int, tuple[int, ...]]:
  """Where a run starts: `(state, step, damaged steps)`.

  The newest good checkpoint's state and step, or `state` itself at step 0
  when there is none; the steps of the damaged checkpoints skipped on the way
  (for `Checkpointer` to move aside) are warned about once each. Raises
  ConfigError, before anything is written, for a checkpoint of a different
  config or one past `--num_steps`.
  """
  restored = restore_or_none(config, state, warn)
  damaged = tuple(step for step, _ in (restored.skipped if restored else ()))
  if restored is None or restored.state is None:
    return state, 0, damaged
  if restored.step > config.num_steps:
    raise ConfigError(
        f'--num_steps={config.num_steps} is less than step {restored.step} '
        f'of the checkpoint in --workdir={config.workdir}; pass '
        f'--num_steps>={restored.step} or use a new --workdir')
  return restored.state, restored.step, damaged
