"""One writer per workdir: an advisory lock the OS releases with its holder.

A run that writes a workdir (`gan_jax.train.run`, `gan_jax.seeds.run`, a
sweep's directory in `gan_jax.sweep`) holds `WORKDIR/.gan_jax.lock` locked
with flock(2) for as long as it may write there:

    with workdir_lock.hold(config.workdir):
      ...  # read the checkpoints, train, write the artifacts

The lock belongs to the open file, so the kernel drops it when the process
ends for any reason, SIGKILL included: a killed run never blocks its own
resume, and no guess about stale locks (is that pid still alive? on which
host?) is ever made. The file holds the holder's pid and host as text, for
the message a second run gets.

A second run on a locked workdir raises `WorkdirInUse` (a `ConfigError`: one
line naming the holder, exit status 2) having written nothing: it opens the
existing lock file, fails to lock it and reads it. Taking the lock is the
first thing a run does in its workdir; before it, a run only reads.

Protocol. Take: open (create) the file, flock(LOCK_EX | LOCK_NB), then check
that the path still names the file just locked (a holder that is letting go
unlinks it first; locking such an orphan locks nothing, so try again), and
write `PID HOST`. Let go: unlink the file while still holding it, then close.
A workdir with no run in progress therefore holds no lock file (unless its
run was killed, and the file it left is taken over by the next run). The
directories a run created only to hold its lock (a fresh workdir of a run
refused before it wrote anything) are removed again when it lets go.

The lock file is also the workdir's identity while a run holds it: if it is
gone, the workdir was removed (or moved) under the run. `check` raises
FileNotFoundError then (the artifact writer calls it before each chunk's
writes), and so does letting go, in place of whatever the run raised on
finding its files gone: one I/O failure that names the workdir.

On a network file system flock is as good as the file system's locks (Linux
NFS clients map it to NFS byte-range locks); a file system without locks
makes taking the lock an OSError, which the commands report as an I/O failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import socket
from typing import Iterator

from gan_jax.config_fields import ConfigError

LOCK_NAME = '.gan_jax.lock'



@dataclasses.dataclass
class _Hold:
  """A workdir this process holds: its lock file, open and locked."""
  path: str
  fd: int
  count: int = 1  # `hold`s open on it (code holding it may call code that
                  # takes it again)

  def intact(self) -> bool:
    """Whether the lock file is still in place: not removed with the workdir
    (nor the workdir moved or replaced)."""
    try:
      return os.path.samestat(os.fstat(self.fd), os.stat(self.path))
    except FileNotFoundError:
      return False


_held: dict[str, _Hold] = {}


class WorkdirInUse(ConfigError):
  """Another process holds the workdir's lock."""


def lock_path(workdir: str) -> str:
  return os.path.join(workdir, LOCK_NAME)


def _removed(workdir: str) -> FileNotFoundError:
  return FileNotFoundError(errno.ENOENT, 'the workdir was removed while the '
                           'run was writing to it', workdir)


def check(workdir: str) -> None:
  """Raises FileNotFoundError if this process holds `workdir` and it was
  removed (or moved away) since: writing on would lose what went to the
  removed files, and recreate only parts of it. A directory inside a held
  one (a sweep's points inside the sweep directory) is checked through the
  held one. Does nothing for a workdir this process does not hold."""
  path = os.path.realpath(workdir)
  while True:
    held = _held.get(path)
    if held is not None:
      if not held.intact():
        raise _removed(workdir)
      return
    parent = os.path.dirname(path)
    if parent == path:
      return
    path = parent


def _make_dirs(path: str) -> list[str]:
  """Creates `path` and its missing parents; returns the ones it created."""
  missing = []
  path = os.path.abspath(path)
  while not os.path.isdir(path):
    missing.append(path)
    path = os.path.dirname(path)
  created = []
  for directory in reversed(missing):
    try:
      os.mkdir(directory)
    except FileExistsError:
      continue  # made meanwhile by someone else: theirs, not ours to remove
    created.append(directory)
  return created


def _holder(fd: int) -> str:
  """`pid N on HOST` as the lock file says, or what is known of it."""
  text = os.pread(fd, 256, 0).decode('utf-8', errors='replace').split()
  if not text:
    return 'pid unknown: it has just started'
  pid, host = text[0], ' '.join(text[1:])
  return (f'pid {pid}' if not host or host == socket.gethostname()
          else f'pid {pid} on host {host}')


def _take(workdir: str) -> _Hold:
  """Locks `workdir`'s lock file."""
  path = lock_path(workdir)
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _holder(fd)
      os.close(fd)
      raise WorkdirInUse(
          f'--workdir={workdir} is in use by another gan_jax run ({holder}, '
          f'holding {path}); wait for it to end or stop it, or use another '
          '--workdir') from None
    except BaseException:
      os.close(fd)
      raise
    held = _Hold(path, fd)
    if held.intact():
      break
    os.close(fd)  # its holder unlinked it while letting go: take the new one
  try:
    os.ftruncate(fd, 0)
    os.write(fd, f'{os.getpid()} {socket.gethostname()}\n'.encode())
  except BaseException:
    _let_go(held)
    raise
  return held


def _let_go(held: _Hold) -> None:
  if held.intact():
    with contextlib.suppress(OSError):
      os.remove(held.path)
  os.close(held.fd)


@contextlib.contextmanager
def hold(workdir: str, enabled: bool = True) -> Iterator[None]:
  """Holds `workdir` (created if missing) for the body; see the module doc.

  Args:
    workdir: the directory to hold.
    enabled: False makes it a no-op (the processes of a multi-process run but
      the first, which write nothing).

  Raises:
    WorkdirInUse: another process holds it; nothing was written.
    FileNotFoundError: the workdir was removed while the body ran (whatever
      else the body raised on finding its files gone).
    OSError: the workdir or its lock file cannot be created or locked.
  """
  if not enabled:
    yield
    return
  key = os.path.realpath(workdir)
  if key in _held:
    _held[key].count += 1
    try:
      yield
    finally:
      _held[key].count -= 1
    return
  created = _make_dirs(workdir)
  try:
    held = _held[key] = _take(workdir)
  except BaseException:
    _remove_empty(created)
    raise
  try:
    yield
  finally:
    del _held[key]
    removed = not held.intact()
    _let_go(held)
    _remove_empty(created)
    if removed:
      raise _removed(workdir)  # pylint: disable=lost-exception


def _remove_empty(directories: list[str]) -> None:
  """Removes the `directories` (innermost last in the list) left empty."""
  for directory in reversed(directories):
    try:
      os.rmdir(directory)
    except OSError:
      return  # not empty (the run wrote there) or gone
