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
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

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

  With `state_sharding` (e.g. replicated over a device mesh), the program's
  input and output state carry that sharding, so chunk after chunk reuses the
  same compiled program without resharding.
  """

  def __init__(self, train_step: Callable, state_sharding=None):
    self._train_step = train_step
    self._state_sharding = state_sharding
    self._compiled: dict[int, Callable] = {}
    self.compile_seconds = 0.0

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
        fn = jax.jit(lambda s: scan_steps(self._train_step, s, length),
                     donate_argnums=0, **kwargs)
        self._compiled[key] = fn.lower(state).compile()
      else:
        fn = jax.jit(lambda s, x: scan_steps(self._train_step, s, length, x),
                     donate_argnums=0, **kwargs)
        self._compiled[key] = fn.lower(state, xs).compile()
      self.compile_seconds += time.perf_counter() - start
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


def train(state: GANState, train_step: Callable, num_steps: int,
          log_every: int,
          on_log: Optional[Callable[[Metrics], None]] = None,
          out=sys.stdout,
          on_chunk: Optional[Callable[[GANState], bool]] = None,
          state_sharding=None, data_chunks=None) -> GANState:
  """Trains from `state.step` to `num_steps` in chunks ending on multiples of
  `log_every`.

  After each chunk, in order: the losses and parameters are checked
  (`TrainingDiverged` is raised on NaN/Inf, before anything sees the bad
  state); `on_log` receives a dict with `step`, the chunk's mean of every step
  metric, `steps_per_sec` (measured on the compiled program, so without
  compilation) and `elapsed_sec`; progress goes to `out`; and `on_chunk(state)`
  runs (checkpointing); if it returns True, training stops there.

  `data_chunks`, for data streamed from the host, yields each chunk's real
  batches (leading axis: the chunk's steps) in order; `train_step` then takes
  `(state, batches_of_one_step)`. The next chunk is read ahead (see
  `gan_jax.data.images.Prefetcher`) while this one trains.
  """
  runner = ChunkRunner(train_step, state_sharding)
  progress = Progress(num_steps, out)
  step = int(state.step)
  run_seconds = 0.0
  try:
    while step < num_steps:
      length = next_chunk(step, num_steps, log_every)
      xs = None if data_chunks is None else next(data_chunks)
      program = runner.compiled(state, length, xs)
      start = time.perf_counter()
      state, metrics = program(state) if xs is None else program(state, xs)
      metrics = jax.device_get(metrics)
      seconds = time.perf_counter() - start
      run_seconds += seconds
      first = step + 1
      step += length
      record = {'step': step}
      record.update({k: float(np.mean(v)) for k, v in metrics.items()})
      record['steps_per_sec'] = length / seconds
      record['elapsed_sec'] = run_seconds + runner.compile_seconds
      try:
        check_finite(state, metrics, first)
      except TrainingDiverged:
        if on_log is not None:
          on_log(record)
        raise
      if on_log is not None:
        on_log(record)
      progress.update(step, record)
      if on_chunk is not None and on_chunk(state):
        break
  finally:
    progress.close()
  return state


__all__ = ['ChunkRunner', 'StopRequest', 'TrainingDiverged', 'check_finite',
           'first_non_finite', 'format_eta', 'next_chunk', 'player_of',
           'scan_steps', 'train']
