"""Stopping cleanly when asked to (SIGTERM, Ctrl-C), within a deadline.

A scheduler that takes a machine back sends SIGTERM and, a grace period
later, SIGKILL (Kubernetes: `terminationGracePeriodSeconds`, 30 s by default;
SLURM: `KillWait`, 30 s by default). A run that stops within that period keeps
every step it trained: it writes a checkpoint at the step it reached, exits
with status 0, and the same command resumes it bit-identically.

`install()`, the first thing `gan_jax.main` does (before JAX is imported),
makes SIGTERM and SIGINT only record the request: the first signal's name and
when it came. Work then stops at the first point a run can resume from:

  * before training (parsing flags, building the state, reading the
    checkpoint): nothing is written, and the run stops where it would have
    started (`gan_jax.train`);
  * during training, when the piece of the chunk running at the signal ends
    (`gan_jax.loop.train`), with a checkpoint at that step;
  * after the last step, before the final evaluation.

A second Ctrl-C raises KeyboardInterrupt at once. Work that cannot stop
cleanly (several seeds trained as one program keep no checkpoints) gives the
signals back with `release()`, which delivers one already received.

The deadline: a chunk of `--log_every` steps is one compiled program that can
run any number of its steps (`gan_jax.loop.ChunkRunner`), and the loop runs it
in pieces that `Pacer` sizes from the measured pace to take at most a quarter
of `--preempt_grace_s` each, so that whenever the signal comes, the piece
running then ends with time left for the checkpoint and the exit. Where the
pieces end does not change the result: step t's randomness is
`fold_in(rng, t)` and every piece runs the same compiled program.

Only the standard library is imported here, so that `install()` costs
nothing before the heavy imports.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import signal
import threading
import time
from typing import Iterator, Optional

SIGNALS = (signal.SIGTERM, signal.SIGINT)

# Of the grace period, what one piece of a chunk may take: the rest is for a
# piece that runs slower than the last ones did, the checkpoint and the exit.
PIECE_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class Request:
  """A received stop signal: its name (`SIGTERM`) and `time.monotonic()`."""
  signal_name: str
  signum: int
  time: float


_request: Optional[Request] = None
_previous: dict[int, object] = {}


def _handle(signum, frame) -> None:
  del frame
  global _request
  if _request is None:
    _request = Request(signal.Signals(signum).name, signum, time.monotonic())
  elif signum == signal.SIGINT:
    raise KeyboardInterrupt


def install() -> bool:
  """From now on SIGTERM and SIGINT request a clean stop (idempotent).

  Returns whether the handlers are in place: Python lets only the main
  thread install them. A signal the process was started ignoring (SIGINT
  for a job started with `&` from a script) stays ignored.
  """
  if not _previous and threading.current_thread() is threading.main_thread():
    for sig in SIGNALS:
      if signal.getsignal(sig) is not signal.SIG_IGN:
        _previous[sig] = signal.signal(sig, _handle)
  return installed()


def installed() -> bool:
  return bool(_previous)


def requested() -> Optional[str]:
  """The name of the signal that asked to stop (`'SIGTERM'`), or None."""
  return None if _request is None else _request.signal_name


def seconds_since_request() -> Optional[float]:
  """Seconds since the stop was requested, or None."""
  return None if _request is None else time.monotonic() - _request.time


def _restore() -> Optional[Request]:
  global _request
  for sig, handler in _previous.items():
    signal.signal(sig, handler)
  _previous.clear()
  pending, _request = _request, None
  return pending


def release() -> None:
  """Gives SIGTERM and SIGINT back to their handlers from before `install`,
  delivering to them a signal already received (for work that has no clean
  stop: the process then ends as it would have without `install`)."""
  if installed():
    pending = _restore()
    if pending is not None:
      signal.raise_signal(pending.signum)


@contextlib.contextmanager
def handling() -> Iterator[None]:
  """Inside the block signals request a clean stop. If `install` was not
  called before (a library caller), the previous handlers come back after
  the block and a request not acted on is forgotten."""
  mine = not installed() and install()
  try:
    yield
  finally:
    if mine:
      _restore()


def agree(stop: bool, length: int) -> tuple[bool, int]:
  """`stop` or-ed and `length` minimised over every process of the run, so
  that all of them stop at the same step and run the same pieces."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() == 1:
    return stop, length
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  votes = np.asarray(multihost_utils.process_allgather(
      np.asarray([int(stop), length], np.int64))).reshape(-1, 2)
  return bool(votes[:, 0].any()), int(votes[:, 1].min())


class Pacer:
  """Sizes the pieces of a chunk: each takes at most `PIECE_SHARE` of the
  grace period, at the slowest pace (seconds per step) of the last few pieces.

  The first piece of a run is one step (nothing has been measured yet). With
  `grace_s` 0 there is no deadline: a chunk runs as one piece.
  """

  def __init__(self, grace_s: float, memory: int = 3):
    self.grace_s = grace_s
    self._paces: collections.deque[float] = collections.deque(maxlen=memory)

  def length(self, remaining: int) -> int:
    """Steps of the next piece, out of the chunk's `remaining` ones."""
    if not self.grace_s:
      return remaining
    if not self._paces:
      return 1
    budget = self.grace_s * PIECE_SHARE / max(max(self._paces), 1e-9)
    return max(1, int(min(remaining, budget)))

  def record(self, steps: int, seconds: float) -> None:
    """A piece of `steps` steps took `seconds`."""
    self._paces.append(seconds / steps)
