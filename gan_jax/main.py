"""Command line: `python -m gan_jax.main --flagfile=experiments/NAME.cfg [--flag=value ...]`.

Flags later on the command line override the flagfile. A bad flag, value or
flagfile prints one line naming the problem (and the valid choices) and exits
with status 2 before anything is written.

`--num_seeds=S` trains seeds --seed .. --seed+S-1 as one vmapped program
(`gan_jax.seeds`), split over the devices (on a CPU host `--cpu_devices`,
default one per core); its artifacts have a leading seed axis.

Exit status (`gan_jax.cli`; README, "Exit statuses"): 0 done, or stopped by
SIGTERM/Ctrl-C after writing a checkpoint (the last line says how to resume);
1 a loss or parameter became NaN/Inf (the last good checkpoint is kept); 2 bad
input, including a workdir another run holds or whose checkpoint belongs to a
different configuration (nothing written); 74 an I/O failure (disk full, the
workdir removed, unreadable data), one line naming the path and the cause; 70
an internal error, its traceback in WORKDIR/crash.log.

Multi-host: `--multihost` runs `jax.distributed.initialize()` before anything
else; the coordinator is found from the cluster environment (SLURM, Open MPI,
Kubernetes, Cloud TPU) or given by `--coordinator_address`,
`--num_processes` and `--process_id`.
"""

from __future__ import annotations

from gan_jax import preemption  # pylint: disable=g-bad-import-order
if __name__ == '__main__':  # first, before the imports that take seconds
  preemption.install()  # a SIGTERM from now on stops cleanly (exit 0)

import shlex
import sys

from absl import app
from absl import flags
from absl import logging

from gan_jax import cli
from gan_jax import config as config_lib
from gan_jax import parallel
from gan_jax import seeds as seeds_lib

config_lib.define_flags()
seeds_lib.define_flags()
flags.DEFINE_string('coordinator_address', None, 'With --multihost: '
                    'host:port of process 0 (default: from the cluster).')
flags.DEFINE_integer('num_processes', None, 'With --multihost: number of '
                     'processes (default: from the cluster).')
flags.DEFINE_integer('process_id', None, 'With --multihost: this process\'s '
                     'index (default: from the cluster).')


def main(argv: list[str]) -> None:
  # Library logs (orbax's notes on its options, its own report of a failed
  # write) are not for the user: every failure is one line of this program's.
  logging.set_verbosity(logging.FATAL)
  cli.no_positional_arguments(argv)
  with cli.Failures() as failures:
    parallel.configure_cpu_devices(flags.FLAGS.cpu_devices,
                                   flags.FLAGS.num_seeds > 1)
    config = config_lib.from_flags()
    seeds_lib.check(config, flags.FLAGS.num_seeds)
    failures.workdir = config.workdir
    # JAX is imported only now: bad flags fail fast, before backends start.
    from gan_jax import train  # pylint: disable=g-import-not-at-top
    if config.multihost:
      parallel.initialize(flags.FLAGS.coordinator_address,
                          flags.FLAGS.num_processes, flags.FLAGS.process_id)
    if flags.FLAGS.num_seeds > 1:
      finals = seeds_lib.run(config, flags.FLAGS.num_seeds)
      print(seeds_lib.summary(config, finals), flush=True)
      return
    try:
      final = train.run(config)
    except train.TrainingDiverged as e:
      cli.fail(str(e), cli.EXIT_DIVERGED)
    except train.Preempted as e:
      if parallel.is_primary():
        command = shlex.join([sys.executable, '-m', 'gan_jax.main',
                              *sys.argv[1:]])
        print(f'{e}; resume with the same command: {command}', flush=True)
      sys.exit(cli.EXIT_DONE)
    if parallel.is_primary():
      print(train.summary(config, final), flush=True)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
