"""Checkpoints of the whole `GANState`, with orbax, that a run resumes from exactly.

Layout: `WORKDIR/checkpoints/STEP/` holds two orbax items,

  state  the GANState pytree (both players' parameters and optax states, the
         step and the run's key), as host numpy arrays;
  meta   JSON: the step, the resolved config, the versions of jax, flax,
         optax, orbax and gan_jax, the structure (key path, shape and dtype
         of every leaf) and a SHA-256 fingerprint of the leaves' bytes
         (`gan_jax.checkpoint_meta`).

Why it is exact: a step's randomness is `fold_in(state.rng, state.step)` and
both are in the state, and checkpoints are written only between compiled
chunks, so a resumed run computes the same steps on the same inputs as an
uninterrupted one.

A checkpoint that cannot be resumed from is either

  damaged   files unreadable, meta not JSON or lacking a field, arrays not
            matching the fingerprint: moved to `WORKDIR/corrupt_checkpoints/
            STEP` with a one-line warning; the next older one is used (if
            none is left, the run starts over); or
  refused   intact but not this run's: another config (beyond
            `RESUMABLE_CHANGES`), past `--num_steps`, or a state of another
            structure (a leaf added, removed, reshaped or retyped, say by an
            optax that keeps other statistics): `ResumeRefused`, a
            ConfigError (exit status 2) naming what differs; nothing moved.

Other recorded versions with the same structure restore, with a note.

Why nothing half-written is ever used: orbax writes a step into a temporary
directory and renames it to `STEP` only once every file is complete, so a
process killed mid-write leaves a temporary directory that is ignored (and
removed by the next run's writer).

Why the state is copied to host numpy before saving: saves are asynchronous
(orbax writes in a background thread while training continues), and the next
chunk donates the state's device buffers; an independent host copy is what the
background write reads, so a save can never observe a later step. The copy is
also what the fingerprint is computed from.

Several processes (`--multihost`): process 0 chooses the step (warning about
damaged checkpoints, refusing foreign ones) and broadcasts it
(`multihost_utils.broadcast_one_to_all`); every other process reads and checks
exactly that step, so no two processes resume from different steps, even if
their views of the workdir differ. Reads are local to each process; orbax
coordinates the writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import time
from typing import Any, Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from gan_jax import checkpoint_meta as cm
from gan_jax.config import Config, ConfigError
# Re-exported: what a checkpoint records and who may resume it.
from gan_jax.checkpoint_meta import (  # pylint: disable=unused-import
    FORMAT, RESUMABLE_CHANGES, ResumeRefused, config_differences, fingerprint)


class CheckpointUnreadable(OSError):
  """A process cannot use the checkpoint that process 0 chose for all."""


def directory(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def corrupt_directory(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'corrupt_checkpoints')


def to_host(tree):
  """An independent host (numpy) copy of every leaf of `tree`."""
  return jax.tree.map(lambda x: np.array(x, copy=True), jax.device_get(tree))


@dataclasses.dataclass
class Restored:
  """The latest good checkpoint of a workdir.

  Attributes:
    step: its step.
    state: the GANState as host numpy arrays.
    config: the config dict it was written with.
    skipped: (step, reason) for each newer checkpoint that could not be used.
    notes: lines to show (the versions it was written with, if not these).
  """

  step: int
  state: Any
  config: dict
  skipped: list[tuple[int, str]]
  notes: list[str] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def _reading(workdir: str):
  """Yields a read-only orbax manager of the workdir's checkpoints (None if
  there are none), local to this process: no barrier with the others, which
  may read other steps, or none."""
  if not os.path.isdir(directory(workdir)):
    yield None
    return
  me = jax.process_index()
  options = ocp.CheckpointManagerOptions(
      max_to_keep=None, save_interval_steps=0, create=False, read_only=True,
      cleanup_tmp_directories=False, enable_async_checkpointing=False,
      multiprocessing_options=ocp.options.MultiprocessingOptions(
          primary_host=me, active_processes={me}))
  manager = ocp.CheckpointManager(directory(workdir), options=options,
                                  item_names=('state', 'meta'))
  try:
    with _quiet_aborted_reads():
      yield manager
  finally:
    manager.close()


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


def _examine(manager, step: int, config: Config, target):
  """Checkpoint `step` as a `Restored`, or why it is damaged (a phrase).

  Raises ResumeRefused if it is intact but not this run's.
  """
  where = f'checkpoint {step} in {directory(config.workdir)}'
  try:
    meta = manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta
  except Exception as e:  # pylint: disable=broad-except
    return _one_line(e)
  cm.refuse_newer_format(meta, where)
  problem = cm.meta_problem(meta, step)
  if problem:
    return problem
  cm.refuse_other_run(meta, config, where)
  legacy = cm.is_legacy(meta)
  if not legacy:
    cm.refuse_other_structure(meta, target, where)
  try:
    state = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target))).state
    state = jax.tree.map(np.asarray, state)
  except Exception as e:  # pylint: disable=broad-except
    problem = _one_line(e)
  else:
    expected = (cm.legacy_fingerprint(state) if legacy else cm.fingerprint(
        state, [path for path, _, _ in meta['structure']]))
    if expected != meta['fingerprint']:
      problem = ('its contents do not match the fingerprint recorded when it '
                 'was written')
    elif int(state.step) != step:
      problem = f'it holds step {int(state.step)}'
  if problem and legacy:
    # Format 1's fingerprint also hashed jax's text for the tree structure,
    # which another jax or optax may print differently: damage and an
    # upgrade look alike, so nothing is moved aside or retrained.
    raise ResumeRefused(
        f'{where} was written by an earlier gan_jax (checkpoint format 1) and '
        f'does not read back here ({problem}): its files are damaged, or it '
        'was written under other jax/optax versions; resume with those, or '
        f'move it out of {directory(config.workdir)} to use an older one')
  if problem:
    return problem
  changed = [] if legacy else cm.version_differences(meta['versions'])
  notes = [f'note: {where} was written with {"; ".join(changed)}; its '
           'structure matches, so it is restored (later steps may differ in '
           'the last bits from a run that kept one set of versions)'
          ] if changed else []
  return Restored(step, state, meta['config'], [], notes)


def latest(config: Config, target) -> Optional[Restored]:
  """Reads the newest usable checkpoint of `config.workdir`; writes nothing.

  Args:
    config: the run about to start; a checkpoint written with a different
      config (in anything but `RESUMABLE_CHANGES`) or of a state of another
      structure raises ResumeRefused.
    target: a host pytree with the state's structure, dtypes and shapes.

  Returns:
    The newest checkpoint that reads back with a matching fingerprint, or
    None if there is none. Damaged newer ones are listed in `skipped`.
  """
  skipped = []
  with _reading(config.workdir) as manager:
    for step in sorted(manager.all_steps() if manager else (), reverse=True):
      found = _examine(manager, step, config, target)
      if isinstance(found, Restored):
        found.skipped = skipped
        return found
      skipped.append((step, found))
  return Restored(-1, None, {}, skipped) if skipped else None


def read_step(config: Config, target, step: int) -> Restored:
  """Checkpoint `step` of `config.workdir`, checked as `latest` checks it.

  Raises CheckpointUnreadable if it is missing or damaged here.
  """
  with _reading(config.workdir) as manager:
    found = (_examine(manager, step, config, target)
             if manager and step in manager.all_steps() else 'it is not there')
  if isinstance(found, Restored):
    return found
  raise CheckpointUnreadable(
      f'process {jax.process_index()} cannot use checkpoint {step} in '
      f'{directory(config.workdir)}, which process 0 chose: {found}; the '
      'workdir must be on storage that every process sees the same')


def read(config: Config, target, step: Optional[int] = None) -> Restored:
  """A checkpoint of `config.workdir` for reading the run, not resuming it
  (`gan_jax.generate`): `step`, or the newest good one. Nothing is moved or
  written.

  Raises ConfigError (one line) when the workdir holds no usable checkpoint,
  when `step` is not one of its checkpoints (naming those there) or is
  damaged.
  """
  where = directory(config.workdir)
  with _reading(config.workdir) as manager:
    steps = sorted(manager.all_steps()) if manager else []
    if not steps:
      raise ConfigError(f'{config.workdir} holds no checkpoint (in {where}); '
                        'runs of several seeds keep none')
    if step is not None and step not in steps:
      raise ConfigError(f'no checkpoint of step {step} in {where}; steps '
                        f'there: {", ".join(map(str, steps))}')
    problems = []
    for candidate in reversed(steps) if step is None else [step]:
      found = _examine(manager, candidate, config, target)
      if isinstance(found, Restored):
        return found
      problems.append(f'{candidate}: {found}')
  raise ConfigError(f'no usable checkpoint in {where} ({"; ".join(problems)})')


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
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, save_interval_steps=1, create=True,
        cleanup_tmp_directories=True, enable_async_checkpointing=True)
    self._manager = ocp.CheckpointManager(
        directory(workdir), options=options, item_names=('state', 'meta'))
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
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(host),
        meta=ocp.args.JsonSave(cm.meta(host, config))), force=True)
    seconds = time.perf_counter() - start
    self.save_seconds.append(seconds)
    return seconds

  def wait(self) -> None:
    """Blocks until every started write is final on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


NO_CHECKPOINT, REFUSED, FAILED = -1, -2, -3


def restore_or_none(config: Config, template, warn: Callable[[str], None]
                    ) -> Optional[Restored]:
  """`latest(...)`, warning once per damaged checkpoint it had to skip, and
  showing its notes."""
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
  for note in restored.notes:
    warn(note)
  return restored


def _choose_here(config: Config, template, warn) -> Optional[Restored]:
  restored = restore_or_none(config, template, warn)
  if restored is not None and restored.step > config.num_steps:
    raise ResumeRefused(
        f'--num_steps={config.num_steps} is less than step {restored.step} '
        f'of the checkpoint in --workdir={config.workdir}; pass '
        f'--num_steps>={restored.step} or use a new --workdir')
  return restored


def _broadcast_from_process_0(value: int) -> int:
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


def choose(config: Config, template, warn: Callable[[str], None],
           broadcast: Optional[Callable[[int], int]] = None
           ) -> Optional[Restored]:
  """The checkpoint this run resumes from; the same step in every process.

  Process 0 examines the checkpoints (warning about damaged ones, raising
  ResumeRefused for one of another run) and sends its verdict, the step or
  `NO_CHECKPOINT`, `REFUSED`, `FAILED`, with `broadcast` (value of process 0
  in, its value out in every process; default
  `multihost_utils.broadcast_one_to_all` when there are several processes).
  Every other process then reads exactly that step (`read_step`), whatever
  newer ones it may see.
  """
  if broadcast is None:
    if jax.process_count() == 1:
      return _choose_here(config, template, warn)
    broadcast = _broadcast_from_process_0
  if jax.process_index() == 0:
    try:
      restored = _choose_here(config, template, warn)
    except BaseException as e:
      broadcast(REFUSED if isinstance(e, ConfigError) else FAILED)
      raise
    usable = restored is not None and restored.state is not None
    broadcast(restored.step if usable else NO_CHECKPOINT)
    return restored
  step = broadcast(NO_CHECKPOINT)
  if step == REFUSED:
    raise ResumeRefused(f'process 0 refused the checkpoints in '
                        f'{directory(config.workdir)} (its error says why)')
  if step == FAILED:
    raise CheckpointUnreadable(f'process 0 failed to read the checkpoints in '
                               f'{directory(config.workdir)}')
  return None if step == NO_CHECKPOINT else read_step(config,
                                                      to_host(template), step)


def resume(config: Config, state, warn: Callable[[str], None],
           broadcast: Optional[Callable[[int], int]] = None
           ) -> tuple[Any, int, tuple[int, ...]]:
  """Where a run starts: `(state, step, damaged steps)`.

  The chosen checkpoint's state and step (`choose`), or `state` itself at
  step 0 when there is none; the steps of the damaged checkpoints skipped on
  the way (for `Checkpointer` to move aside) are warned about once each.
  Raises ResumeRefused, before anything is written, for a checkpoint of a
  different config or structure or one past `--num_steps`.
  """
  restored = choose(config, state, warn, broadcast)
  damaged = tuple(step for step, _ in (restored.skipped if restored else ()))
  if restored is None or restored.state is None:
    return state, 0, damaged
  return restored.state, restored.step, damaged
