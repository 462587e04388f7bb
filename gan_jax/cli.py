"""What every gan_jax command shares: exit statuses, one-line errors, flags.

Every failure is one line, `error: ...`, on stderr, and an exit status that
means one thing, so that a scheduler can decide whether to retry:

    0   EXIT_DONE       finished, or stopped cleanly when preempted (resume
                        with the same command)
    1   EXIT_DIVERGED   training produced NaN/Inf (retrying will not help)
    2   EXIT_USAGE      bad input or a refused resume; nothing was written
    70  EXIT_INTERNAL   a bug in gan_jax (sysexits' EX_SOFTWARE)
    74  EXIT_IO         an I/O or infrastructure failure: disk full, workdir
                        gone, unreadable data (sysexits' EX_IOERR; retry)

absl's own flag errors (an unknown flag, a value of the wrong type, a
flagfile that is not UTF-8 text) take the usage form through `parse_flags`;
`Failures` maps what a command raises to the other statuses.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import sys
import tempfile
import traceback
from typing import Iterable, NoReturn, Optional

from absl import flags

from gan_jax import fileio
from gan_jax.config_fields import ConfigError

EXIT_DONE = 0
EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_IO = 74
USAGE_ERROR = EXIT_USAGE


def fail(message: str, status: int) -> NoReturn:
  """Prints `error: message` (its first line) on stderr and exits."""
  first_line = str(message).splitlines()[0] if str(message) else 'failed'
  print(f'error: {first_line}', file=sys.stderr, flush=True)
  sys.exit(status)


def usage_error(message: str) -> NoReturn:
  """Prints `error: message` on stderr and exits with status 2."""
  fail(message, EXIT_USAGE)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with one-line errors and exit status 2.

  Pass as `app.run(main, flags_parser=cli.parse_flags)`.
  """
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    usage_error(str(e).splitlines()[0])
  except UnicodeDecodeError as e:  # absl reads flagfiles as text
    usage_error(_undecodable_flagfile(argv[1:])
                or f'a flagfile is not UTF-8 text ({e.reason})')


def _flagfile_names(args: Iterable[str]) -> Iterable[str]:
  """The files named by absl's flagfile directives among `args`."""
  args = iter(args)
  for arg in args:
    if arg in ('--flagfile', '-flagfile'):
      yield next(args, '')
    elif arg.startswith(('--flagfile=', '-flagfile=')):
      yield arg.split('=', 1)[1]


def _undecodable_flagfile(args: Iterable[str], seen: tuple[str, ...] = ()
                          ) -> Optional[str]:
  """Names the first flagfile in `args` (or nested in one) that is not UTF-8."""
  for name in _flagfile_names(args):
    path = os.path.expanduser(name.strip())
    if not path or path in seen:
      continue
    try:
      with open(path, 'rb') as f:
        raw = f.read()
    except OSError:
      continue
    try:
      lines = raw.decode('utf-8').splitlines()
    except UnicodeDecodeError as e:
      return (f'--flagfile={path} is not UTF-8 text: byte '
              f'0x{raw[e.start]:02x} at offset {e.start}')
    nested = _undecodable_flagfile(lines, seen + (path,))
    if nested:
      return nested
  return None


def no_positional_arguments(argv: list[str]) -> None:
  """Refuses anything on the command line that is not a --flag."""
  if len(argv) > 1:
    usage_error(f'unexpected arguments {" ".join(argv[1:])}; pass settings as '
                '--flag=value (see --helpfull)')


# tensorstore (orbax's array storage) raises a ValueError that starts with
# the failure's status code, and carries the errno of a failed system call:
# `NOT_FOUND: Error writing local file ...: [os_error_code='2']`.
_OS_ERROR_CODE = re.compile(r"\[os_error_code='?(\d+)'?\]")
_IO_STATUS = {'NOT_FOUND': errno.ENOENT, 'PERMISSION_DENIED': errno.EACCES,
              'DATA_LOSS': errno.EIO}


def _errno_of(error: BaseException) -> Optional[int]:
  """The errno a tensorstore error reports, if it is an I/O failure."""
  if not isinstance(error, ValueError):
    return None
  text = str(error)
  code = _OS_ERROR_CODE.search(text)
  if code:
    return int(code.group(1))
  return _IO_STATUS.get(text.split(':', 1)[0])


def _os_error(error: BaseException) -> Optional[OSError]:
  """The first I/O failure in `error`'s chain: itself, or what it was raised
  from or while handling (a library that wraps an OSError, or reports a
  failed system call in its own exception, still reports an I/O failure)."""
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, OSError):
      return error
    code = _errno_of(error)
    if code is not None:
      return OSError(code, os.strerror(code))
    seen.add(id(error))
    error = error.__cause__ or (None if error.__suppress_context__
                                else error.__context__)
  return None


def io_message(error: OSError, path: Optional[str] = None) -> str:
  """`PATH: CAUSE (ERRNO)` for an I/O failure; `path` when it names none."""
  where = error.filename if error.filename is not None else path
  cause = error.strerror or str(error) or type(error).__name__
  code = errno.errorcode.get(error.errno) if error.errno else None
  return (f'{where}: ' if where else '') + cause + (f' ({code})' if code
                                                    else '')


def crash_report(error: BaseException, workdir: Optional[str] = None) -> str:
  """Writes `error`'s traceback to WORKDIR/crash.log (without a workdir, or
  if that fails, to a temporary file); returns the line that says so."""
  text = (f'{shlex.join(sys.argv)}\n\n'
          + ''.join(traceback.format_exception(error)))
  places = [os.path.join(workdir, 'crash.log')] if (
      workdir and os.path.isdir(workdir)) else []
  places.append(os.path.join(tempfile.gettempdir(),
                             f'gan_jax-crash-{os.getpid()}.log'))
  written = None
  for path in places:
    try:
      fileio.atomic_write(path, text)
    except OSError:
      continue
    written = path
    break
  what = str(error).strip().splitlines()
  what = f'{type(error).__name__}: {what[0]}' if what else type(error).__name__
  where = (f'the traceback is in {written}' if written
           else 'the traceback could not be written')
  return f'internal error ({what}); {where}; please report it'


class Failures:
  """Ends a command with one line and the exit status that means its failure.

      with cli.Failures() as failures:
        config = ...
        failures.workdir = config.workdir  # where crash.log goes
        ...

  Around a command's body, what it raises becomes:

    ConfigError            `error: ...`, EXIT_USAGE (bad input, a refused
                           resume, a workdir in use);
    an OSError (itself or  `error: PATH: CAUSE (ERRNO)`, EXIT_IO (disk full,
    at its root)           file too large, workdir gone, unreadable data);
    anything else          `error: internal error (...); the traceback is in
                           WORKDIR/crash.log ...`, EXIT_INTERNAL.

  SystemExit (the commands' own exits) and KeyboardInterrupt pass through.
  Within the block, Python's reports of orphaned asynchronous writes ("Event
  loop is closed", after a failed checkpoint) are dropped.
  Statuses that need the command's knowledge (EXIT_DIVERGED, a clean stop on
  SIGTERM) are decided by the command inside the block.
  """

  def __init__(self, workdir: Optional[str] = None):
    self.workdir = workdir

  def __enter__(self) -> 'Failures':
    self._previous_hook = sys.unraisablehook
    sys.unraisablehook = self._unraisable
    return self

  def _unraisable(self, unraisable) -> None:
    # tensorstore reads and writes still in flight when orbax gives up on a
    # failed checkpoint complete into its closed event loop, each reporting
    # this RuntimeError with a traceback; the failure itself is reported.
    if not (isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == 'Event loop is closed'):
      self._previous_hook(unraisable)

  def __exit__(self, kind, error, tb) -> None:
    del kind, tb
    if error is None:
      sys.unraisablehook = self._previous_hook
    if not isinstance(error, Exception):
      return  # the hook stays: late reports of a failed write are as noisy
    if isinstance(error, ConfigError):
      usage_error(str(error))
    cause = _os_error(error)
    if cause is not None:
      fail(io_message(cause, self.workdir), EXIT_IO)
    fail(crash_report(error, self.workdir), EXIT_INTERNAL)
