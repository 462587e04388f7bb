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

absl's own flag errors (an unknown flag, a value of the wrong type) take the
usage form through `parse_flags`.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from absl import flags

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


def no_positional_arguments(argv: list[str]) -> None:
  """Refuses anything on the command line that is not a --flag."""
  if len(argv) > 1:
    usage_error(f'unexpected arguments {" ".join(argv[1:])}; pass settings as '
                '--flag=value (see --helpfull)')
