"""Command line: `python -m gan_jax.main --flagfile=experiments/NAME.cfg [--flag=value ...]`.

Flags later on the command line override the flagfile. A bad flag, value or
flagfile prints one line naming the problem (and the valid choices) and exits
with status 2 before anything is written.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags
from absl import logging

from gan_jax import config as config_lib

config_lib.define_flags()


def _usage_error(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one-line errors and exit status 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _usage_error(str(e).splitlines()[0])


def main(argv: list[str]) -> None:
  logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    _usage_error(f'unexpected arguments {" ".join(argv[1:])}; pass settings as '
                 '--flag=value (see --helpfull)')
  try:
    config = config_lib.from_flags()
  except config_lib.ConfigError as e:
    _usage_error(str(e))
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  try:
    final = train.run(config)
  except train.TrainingDiverged as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  print(train.summary(config, final), flush=True)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
