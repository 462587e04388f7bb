"""What every gan_jax command shares: one-line usage errors and flag parsing.

A command's bad input is reported as one line, `error: ...`, on stderr with
exit status 2, before anything is written. absl's own flag errors (an unknown
flag, a value of the wrong type) take the same form through `parse_flags`.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from absl import flags

USAGE_ERROR = 2


def usage_error(message: str) -> NoReturn:
  """Prints `error: message` on stderr and exits with status 2."""
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(USAGE_ERROR)


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
