"""The training loop: jitted `lax.scan` over chunks of steps; the host only
logs, checks and checkpoints between chunks.

A chunk of `n` steps is one compiled program,

    run_chunk = jit(lambda s: lax.scan(lambda s, _: train_step(s), s, None, n))

so the host is touched once per chunk: to read that chunk's metrics, check
that every loss and parameter is finite, measure throughput, draw progress,
and hand the state to `on_chunk` (which checkpoints). Per-step keys come from
`fold_in(state.rng, state.step)`, so the result does not depend on `n`.

Chunks end on multiples of `log_every` (and at `num_steps`): a run resumed
from a checkpoint at any chunk end runs exactly the chunks, hence exactly the
compiled programs, that the uninterrupted run would have, which is what makes
resuming bit-identical. Programs are compiled ahead of time
(`.lower().compile()`) so the reported steps/s never includes compilation.

One run and M runs trained together (seeds, float hyperparameters;
`gan_jax.seeds`) go through the same loop; only the program transform
differs: the identity for one run, `vmap` over the states' leading member
axis, split over devices with `shard_map`, for members

    run_chunk = jit(shard_map(vmap(lambda s: lax.scan(...)), P('seed')))

(`gan_jax.parallel.Layout`).
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import parallel
from gan_jax.logging_utils import Progress
from gan_jax.logging_utils import format_eta  # pylint: disable=unused-import
from gan_jax.state import GANState

Metrics = dict[str, float]


class TrainingDiverged(RuntimeError):
  """A loss or a parameter became NaN or infinite; the message names the step
  and the player."""


def scan_steps(train_step: Callable, state: GANState, num_steps: int,
               xs=None):
  """Runs `num_steps` of `train_step` in one `lax.scan`; per-step metrics
  stacked. With `xs` (streamed data, leading axis `num_steps`), step t is
  `train_step(state, xs[t])`."""
  if xs is None:
    return jax.lax.scan(lambda s, _: train_step(s), state, None,
                        length=num_steps)
  return jax.lax.scan(train_step, state, xs, length=num_steps)


class ChunkRunner:
  """Compiles and caches one jitted scan program per chunk length.

  `transform` maps the chunk `(state[, xs]) -> (state, metrics)` to the
  program that runs it: the identity for one run, `vmap` (and `shard_map`)
  over a member axis for several (`gan_jax.parallel.Layout.transform`). With
  `state_sharding` (e.g. replicated over a device mesh), the program's input
  and output state carry that sharding, so chunk after chunk reuses the same
  compiled program without resharding.
  """

  def __init__(self, train_step: Callable, state_sharding=None,
               transform: Callable[[Callable], Callable] = lambda f: f):
    self._train_step = train_step
    self._state_sharding = state_sharding
    self._transform = transform
    self._compiled: dict[tuple[int, bool], Callable] = {}
    self.compile_seconds = 0.0
    self.compilations = 0

  def compiled(self, state: GANState, length: int, xs=None) -> Callable:
    """The program `(state[, xs]) -> (state, metrics)` for `length` steps."""
    key = (length, xs is not None)
    if key not in self._compiled:
      start = time.perf_counter()
      kwargs = {}
      if self._state_sharding is not None:
        in_shardings = (self._state_sharding,)
        if xs is not None:
          in_shardings += (jax.tree.map(lambda x: x.sharding, xs),)
        kwargs = dict(in_shardings=in_shardings,
                      out_shardings=(self._state_sharding,
                                     self._state_sharding))
      if xs is None:
        chunk = lambda s: scan_steps(self._train_step, s, length)
        args = (state,)
      else:
        chunk = lambda s, x: scan_steps(self._train_step, s, length, x)
        args = (state, xs)
      fn = jax.jit(self._transform(chunk), donate_argnums=0, **kwargs)
      self._compiled[key] = fn.lower(*args).compile()
      self.compile_seconds += time.perf_counter() - start
      self.compilations += 1
    return self._compiled[key]

  def __call__(self, state: GANState, length: int, xs=None):
    program = self.compiled(state, length, xs)
    return program(state) if xs is None else program(state, xs)


def player_of(metric: str) -> str:
  """'G' for the generator's metrics (`g_*`), 'D' for the rest (D's loss,
  the value V it ascends, its gradient norm)."""
  return 'G' if metric.startswith('g_') else 'D'


def first_non_finite(metrics: dict[str, np.ndarray], first_step: int
                     ) -> Optional[tuple[int, str, float]]:
  """(step, metric, value) of the earliest non-finite per-step metric.

  `metrics[name][i]` belongs to step `first_step + i` (the step count after
  it). Within a step, D's metrics come first: D updates before G does.
  """
  found = None
  for name in sorted(metrics, key=lambda n: (player_of(n) == 'G', n)):
    values = np.asarray(metrics[name]).reshape(len(metrics[name]), -1)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
      i = int(np.argmax(bad))
      if found is None or i < found[0]:
        value = values[i][~np.isfinite(values[i])][0]
        found = (i, name, float(value))
  if found is None:
    return None
  return first_step + found[0], found[1], found[2]


@jax.jit
def _params_finite(state: GANState):
  finite = lambda tree: jnp.all(jnp.asarray(
      [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)] or [True]))
  return finite(state.d_params), finite(state.g_params)


def check_finite(state: GANState, metrics: dict[str, np.ndarray],
                 first_step: int) -> None:
  """Raises TrainingDiverged naming the step and player of the first NaN/Inf.

  Losses are checked at every step of the chunk (the scan stacks them);
  parameters at the chunk's end.
  """
  bad = first_non_finite(metrics, first_step)
  if bad is not None:
    step, name, value = bad
    raise TrainingDiverged(f'{name} is {value} at step {step} '
                           f'({player_of(name)}); training stopped')
  d_ok, g_ok = jax.device_get(_params_finite(state))
  step = int(state.step)
  for ok, player, name in ((d_ok, 'D', 'd_params'), (g_ok, 'G', 'g_params')):
    if not ok:
      raise TrainingDiverged(f'{name} are not finite at step {step} '
                             f'({player}); training stopped')


def next_chunk(step: int, num_steps: int, log_every: int) -> int:
  """Steps in the chunk starting at `step`: up to the next multiple of
  `log_every`, or to `num_steps`."""
  return min(log_every - step % log_every, num_steps - step)


class StopRequest:
  """SIGTERM and SIGINT (Ctrl-C) ask the loop to stop at the next chunk end.

  Used as a context manager around training: inside it, the first signal only
  sets `signal_name`; the loop then checkpoints and stops cleanly. A second
  Ctrl-C interrupts at once (KeyboardInterrupt). Outside the main thread
  (where Python cannot install handlers) it does nothing.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.signal_name: Optional[str] = None
    self._previous = {}

  def __bool__(self) -> bool:
    return self.signal_name is not None

  def _handle(self, signum, frame):
    del frame
    if self.signal_name is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.signal_name = signal.Signals(signum).name

  def __enter__(self) -> 'StopRequest':
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()


@dataclasses.dataclass
class Stats:
  """What `train` measured, for callers that report it.

  Attributes:
    train_seconds: wall time of the compiled chunks, without compilation.
    compile_seconds: time spent compiling.
    compilations: programs compiled (one per distinct chunk length).
    diverged: member index -> first step whose metrics were not finite (only
      members are recorded here; one run stops with `TrainingDiverged`).
  """

  train_seconds: float = 0.0
  compile_seconds: float = 0.0
  compilations: int = 0
  diverged: dict[int, int] = dataclasses.field(default_factory=dict)


class MembersProgress:
  """Progress of a program of several runs: one line per chunk, its pace."""

  def __init__(self, num_steps: int, members: int, out=sys.stdout):
    self.num_steps = num_steps
    self.members = members
    self.out = out

  def update(self, step: int, record: Metrics) -> None:
    if self.out is not None:
      print(f'step {step}/{self.num_steps}: {self.members} runs at '
            f'{record["steps_per_sec"]:.0f} steps/s each', file=self.out,
            flush=True)

  def close(self) -> None:
    pass


def train(state: GANState, train_step: Callable, num_steps: int,
          log_every: int,
          on_log: Optional[Callable[[list[Metrics]], None]] = None,
          out=sys.stdout,
          on_chunk: Optional[Callable[[GANState], bool]] = None,
          layout: Optional[parallel.Layout] = None, data_chunks=None,
          stats: Optional[Stats] = None) -> GANState:
  """Trains from `state.step` to `num_steps` in chunks ending on multiples of
  `log_every`.

  `layout` (default: one run on the default device) says whether `state` is
  one run or members stacked on a leading axis, and how the chunk program is
  transformed and placed (`gan_jax.parallel.Layout`); everything else is the
  same for both.

  After each chunk, in order: `on_log` receives one record per member (one
  for one run): `step`, the chunk's mean of every step metric,
  `steps_per_sec` (measured on the compiled program, so without compilation)
  and `elapsed_sec`; the losses and parameters are checked; progress goes to
  `out`; and `on_chunk(state)` runs (checkpointing); if it returns True,
  training stops there. On NaN/Inf one run raises `TrainingDiverged` (after
  `on_log`, before anything else sees the bad state); a member cannot stop
  the others (under vmap they cannot influence each other), so its first bad
  step goes to `stats.diverged` and training goes on.

  `data_chunks`, for data streamed from the host, yields each chunk's real
  batches (leading axis: the chunk's steps) in order; `train_step` then takes
  `(state, batches_of_one_step)`. The next chunk is read ahead (see
  `gan_jax.data.images.Prefetcher`) while this one trains.

  `stats`, if given, is filled with the timings and the diverged members.
  """
  layout = layout or parallel.Layout.one_run()
  stats = stats if stats is not None else Stats()
  runner = ChunkRunner(train_step, layout.state_sharding, layout.transform)
  progress = (MembersProgress(num_steps, layout.members, out)
              if layout.member_axis else Progress(num_steps, out))
  step = int(np.ravel(jax.device_get(state.step))[0])
  try:
    while step < num_steps:
      length = next_chunk(step, num_steps, log_every)
      xs = None if data_chunks is None else next(data_chunks)
      program = runner.compiled(state, length, xs)
      start = time.perf_counter()
      state, metrics = program(state) if xs is None else program(state, xs)
      metrics = jax.device_get(metrics)
      seconds = time.perf_counter() - start
      stats.train_seconds += seconds
      stats.compile_seconds = runner.compile_seconds
      stats.compilations = runner.compilations
      first = step + 1
      step += length
      members = layout.per_member(metrics)
      records = [{'step': step,
                  **{k: float(np.mean(v)) for k, v in mine.items()},
                  'steps_per_sec': length / seconds,
                  'elapsed_sec': stats.train_seconds + stats.compile_seconds}
                 for mine in members]
      if on_log is not None:
        on_log(records)
      if layout.member_axis:
        for m, mine in enumerate(members):
          bad = first_non_finite(mine, first)
          if bad is not None:
            stats.diverged.setdefault(m, bad[0])
      else:
        check_finite(state, metrics, first)
      progress.update(step, records[0])
      if on_chunk is not None and on_chunk(state):
        break
  finally:
    progress.close()
  return state


__all__ = ['ChunkRunner', 'MembersProgress', 'Stats', 'StopRequest',
           'TrainingDiverged', 'check_finite', 'first_non_finite',
           'format_eta', 'next_chunk', 'player_of', 'scan_steps', 'train']
