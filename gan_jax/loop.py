"""The training loop: jitted chunks of steps; the host only logs, checks and
checkpoints between chunks.

A chunk is one compiled program that runs `n` steps, `n` an argument, up to
its capacity (`log_every`), writing each step's metrics into a row:

    run_chunk = jit(lambda s, n: fori_loop(0, n, train_step on s, rows))

The host is touched once per chunk: to read its metrics, check that every
loss and parameter is finite, measure throughput, draw progress, and hand the
state to `on_chunk` (which checkpoints). Step t's randomness is
`fold_in(state.rng, t)`, so the result does not depend on how the steps are
split into calls; and every chunk, whatever its length, runs the same
compiled program, so a run resumed at any step executes the same program on
the same inputs as an uninterrupted one: resuming is bit-identical. With a
stop deadline (`gan_jax.preemption`) a chunk runs as several calls, pieces
sized from the measured pace, and a stop request is honoured between them.
Programs are compiled ahead of time, so steps/s never includes compilation.

One run and M runs trained together (seeds, float hyperparameters;
`gan_jax.seeds`) go through the same loop; only the program transform
differs: the identity for one run, `vmap` over the states' leading member
axis, split over devices with `shard_map`, for members
(`gan_jax.parallel.Layout`).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import parallel
from gan_jax import preemption
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


def run_steps(train_step: Callable, state: GANState, num_steps, capacity: int,
              xs=None, first=0):
  """Runs `num_steps` (traced, at most `capacity`) of `train_step` in one
  `lax.fori_loop`.

  Returns the state and the per-step metrics, each an array of `capacity`
  rows of which the first `num_steps` are filled (the rest are zero). With
  `xs` (streamed data), step i of the call is `train_step(state,
  xs[first + i])`. The same bits as `scan_steps` over the same steps.
  """
  args = () if xs is None else (jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype),)
  _, shapes = jax.eval_shape(train_step, state, *args)
  # zeros_like a leaf of the state: under shard_map, as varying as the state.
  like = jax.tree.leaves(state)[0]
  rows = jax.tree.map(lambda m: jnp.zeros_like(
      like, shape=(capacity,) + m.shape, dtype=m.dtype), shapes)

  def step(i, carry):
    s, rows = carry
    if xs is None:
      s, metrics = train_step(s)
    else:
      s, metrics = train_step(s, jax.lax.dynamic_index_in_dim(
          xs, first + i, keepdims=False))
    rows = jax.tree.map(
        lambda r, m: jax.lax.dynamic_update_index_in_dim(r, m, i, 0), rows,
        metrics)
    return s, rows

  return jax.lax.fori_loop(0, num_steps, step, (state, rows))


def pad_steps(xs: jax.Array, capacity: int) -> jax.Array:
  """Streamed batches (leading axis: the chunk's steps) zero-padded to
  `capacity` steps and placed as they were, so that chunks of every length
  run the same compiled program."""
  missing = capacity - xs.shape[0]
  if not missing:
    return xs
  pad = lambda x: jnp.concatenate(
      [x, jnp.zeros((missing,) + x.shape[1:], x.dtype)])
  return jax.jit(pad, out_shardings=xs.sharding)(xs)


class ChunkRunner:
  """Compiles and caches one jitted program per chunk capacity.

  The program for capacity C runs any number n <= C of steps, n an
  argument: `(state, n) -> (state, metrics)`, or `(state, xs, first, n)` for
  streamed data (`run_steps`); metrics have C rows. `transform` maps the
  chunk to the program that runs it: the identity for one run, `vmap` (and
  `shard_map`) over a member axis for several
  (`gan_jax.parallel.Layout.transform`). With `state_sharding` (e.g.
  replicated over a device mesh), the program's input and output state
  carry that sharding, so call after call reuses the same compiled program
  without resharding.
  """

  def __init__(self, train_step: Callable, state_sharding=None,
               transform: Callable[[Callable], Callable] = lambda f: f):
    self._train_step = train_step
    self._state_sharding = state_sharding
    self._transform = transform
    self._compiled: dict[tuple[int, bool], Callable] = {}
    self.compile_seconds = 0.0
    self.compilations = 0

  def compiled(self, state: GANState, capacity: int, xs=None) -> Callable:
    """The program running up to `capacity` steps (`xs`: `capacity` steps
    of streamed batches)."""
    key = (capacity, xs is not None)
    if key not in self._compiled:
      start = time.perf_counter()
      run = functools.partial(run_steps, self._train_step, capacity=capacity)
      if xs is None:
        program = lambda s, n: self._transform(lambda s: run(s, n))(s)
        args = (state, np.int32(0))
      else:
        program = lambda s, x, first, n: self._transform(
            lambda s, x: run(s, n, xs=x, first=first))(s, x)
        args = (state, xs, np.int32(0), np.int32(0))
      kwargs = {}
      if self._state_sharding is not None:
        shardings = [self._state_sharding] + [jax.sharding.NamedSharding(
            self._state_sharding.mesh, jax.sharding.PartitionSpec())] * 3
        if xs is not None:
          shardings[1] = xs.sharding
        kwargs = dict(in_shardings=tuple(shardings[:len(args)]),
                      out_shardings=(self._state_sharding,) * 2)
      fn = jax.jit(program, donate_argnums=0, **kwargs)
      self._compiled[key] = fn.lower(*args).compile()
      self.compile_seconds += time.perf_counter() - start
      self.compilations += 1
    return self._compiled[key]

  def __call__(self, state: GANState, length: int, xs=None,
               capacity: Optional[int] = None, first: int = 0):
    """Runs `length` steps (of `xs` from row `first`) with the program of
    `capacity` (default: `length`, or the rows of `xs`); metrics have
    `capacity` rows."""
    if capacity is None:
      capacity = length if xs is None else xs.shape[0]
    program = self.compiled(state, capacity, xs)
    if xs is None:
      return program(state, np.int32(length))
    return program(state, xs, np.int32(first), np.int32(length))


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


def _rows(metrics: dict, n: int, axis: int) -> dict[str, np.ndarray]:
  """The first `n` steps of per-step metrics (steps on `axis`)."""
  return {k: np.asarray(v)[(slice(None),) * axis + (slice(0, n),)]
          for k, v in metrics.items()}


def _joined(pieces: list[dict], axis: int) -> tuple[dict[str, np.ndarray], int]:
  """Per-step metrics of consecutive pieces as one, and their step count."""
  if not pieces:
    return {}, 0
  joined = {k: np.concatenate([p[k] for p in pieces], axis=axis)
            for k in pieces[0]}
  return joined, next(iter(joined.values())).shape[axis]


def train(state: GANState, train_step: Callable, num_steps: int,
          log_every: int,
          on_log: Optional[Callable[[list[Metrics]], None]] = None,
          out=sys.stdout,
          on_chunk: Optional[Callable[[GANState], bool]] = None,
          layout: Optional[parallel.Layout] = None, data_chunks=None,
          stats: Optional[Stats] = None,
          on_stop: Optional[Callable[[GANState, dict], None]] = None,
          grace_s: float = 0.0,
          earlier: Optional[dict[str, np.ndarray]] = None) -> GANState:
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

  Stopping (`gan_jax.preemption`): with `on_stop`, a chunk runs in pieces
  that `preemption.Pacer` sizes to `grace_s`, and before each piece, when
  any process has been asked to stop, the steps of the chunk done so far
  are checked like a chunk's and `on_stop(state, metrics)` runs with their
  per-step metrics (for the checkpoint), and training returns. `earlier`
  holds those metrics of the steps before `state.step` of a chunk a stopped
  run began (restored with its checkpoint), so the chunk's record is the one
  an uninterrupted run writes. Without `on_stop` the signals are given back
  (`preemption.release`) and a chunk is one call.

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
  if on_stop is None:
    preemption.release()
  pacer = preemption.Pacer(grace_s if on_stop is not None else 0.0)
  axis = int(layout.member_axis)
  step = int(np.ravel(jax.device_get(state.step))[0])
  try:
    while step < num_steps:
      length = next_chunk(step, num_steps, log_every)
      xs = (None if data_chunks is None
            else pad_steps(next(data_chunks), log_every))
      program = runner.compiled(state, log_every, xs)
      stats.compile_seconds = runner.compile_seconds
      stats.compilations = runner.compilations
      pieces, earlier = ([earlier] if earlier else []), None
      done, seconds = 0, 0.0
      while done < length:
        n = pacer.length(length - done)
        if on_stop is not None:
          stop, n = preemption.agree(preemption.requested() is not None, n)
          if stop:
            so_far, count = _joined(pieces, axis)
            if count and not layout.member_axis:
              check_finite(state, so_far, step - count + 1)
            on_stop(state, so_far)
            return state
        start = time.perf_counter()
        if xs is None:
          state, metrics = program(state, np.int32(n))
        else:
          state, metrics = program(state, xs, np.int32(done), np.int32(n))
        pieces.append(_rows(jax.device_get(metrics), n, axis))
        took = time.perf_counter() - start
        pacer.record(n, took)
        seconds += took
        done += n
        step += n
      stats.train_seconds += seconds
      metrics, count = _joined(pieces, axis)
      first = step - count + 1
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


__all__ = ['ChunkRunner', 'MembersProgress', 'Stats', 'TrainingDiverged',
           'check_finite', 'first_non_finite', 'format_eta', 'next_chunk',
           'pad_steps', 'player_of', 'run_steps', 'scan_steps', 'train']
