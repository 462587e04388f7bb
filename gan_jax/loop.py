"""The training loop: jitted `lax.scan` over chunks of steps; the host only logs.

A chunk of `n` steps is one compiled program,

    run_chunk = jit(lambda s: lax.scan(lambda s, _: train_step(s), s, None, n))

so the host is touched once per chunk, to read that chunk's mean metrics,
measure throughput and draw progress. Per-step keys come from
`fold_in(state.rng, state.step)`, so the result does not depend on `n`.
Programs are compiled ahead of time (`.lower().compile()`) so the reported
steps/s never includes compilation.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional

import jax
import numpy as np

from gan_jax.state import GANState

Metrics = dict[str, float]


def scan_steps(train_step: Callable, state: GANState, num_steps: int):
  """Runs `num_steps` of `train_step` in one `lax.scan`; per-step metrics stacked."""
  return jax.lax.scan(lambda s, _: train_step(s), state, None, length=num_steps)


class ChunkRunner:
  """Compiles and caches one jitted scan program per chunk length."""

  def __init__(self, train_step: Callable):
    self._train_step = train_step
    self._compiled: dict[int, Callable] = {}
    self.compile_seconds = 0.0

  def compiled(self, state: GANState, length: int) -> Callable:
    if length not in self._compiled:
      start = time.perf_counter()
      fn = jax.jit(lambda s: scan_steps(self._train_step, s, length),
                   donate_argnums=0)
      self._compiled[length] = fn.lower(state).compile()
      self.compile_seconds += time.perf_counter() - start
    return self._compiled[length]

  def __call__(self, state: GANState, length: int):
    return self.compiled(state, length)(state)


def format_eta(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rem = divmod(seconds, 3600)
  minutes, secs = divmod(rem, 60)
  return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


def train(state: GANState, train_step: Callable, num_steps: int,
          log_every: int,
          on_log: Optional[Callable[[Metrics], None]] = None,
          out=sys.stdout) -> GANState:
  """Trains from `state.step` to `num_steps` in chunks of `log_every` steps.

  After each chunk, `on_log` receives a dict with `step`, the chunk's mean of
  every step metric, `steps_per_sec` (measured on the compiled program, so
  without compilation) and `elapsed_sec`; a progress line goes to `out`.
  """
  runner = ChunkRunner(train_step)
  step = int(state.step)
  run_seconds = 0.0
  while step < num_steps:
    length = min(log_every, num_steps - step)
    program = runner.compiled(state, length)
    start = time.perf_counter()
    state, metrics = program(state)
    metrics = jax.device_get(metrics)
    seconds = time.perf_counter() - start
    run_seconds += seconds
    step += length
    record = {'step': step}
    record.update({k: float(np.mean(v)) for k, v in metrics.items()})
    record['steps_per_sec'] = length / seconds
    record['elapsed_sec'] = run_seconds + runner.compile_seconds
    if on_log is not None:
      on_log(record)
    rate = record['steps_per_sec']
    if out is not None:
      eta = format_eta((num_steps - step) / rate)
      print(f'step {step:>7d}/{num_steps}  d_loss {record["d_loss"]:+.4f}  '
            f'g_loss {record["g_loss"]:+.4f}  V {record["value"]:+.4f}  '
            f'{rate:7.1f} steps/s  ETA {eta}', file=out, flush=True)
  return state
