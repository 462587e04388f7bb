"""The PacGAN-protocol training step: 10 seeds vmapped against 10 sequential
runs against PyTorch eager, per seed-step, measured side by side.

Setting: `experiments/pacgan_grid_gan.cfg` (Lin et al. 2018's 2D-grid
protocol: batch 100, MLP G 4x400 with batch norm, maxout D 3x200x5,
simultaneous updates, Adam 1e-4 / beta1 0.8), `--pack` as given.

    python bench/pacgan_step.py [--seeds=10] [--steps=200] [--rounds=3]
        [--pack=1] [--torch_python=PYTHON]

Schedules, every one the same number of steps per seed (compilation
excluded), in interleaved rounds so a machine shared with other jobs biases
all alike; the best round of each is kept:
  - gan_jax, vmapped: `gan_jax.seeds`' program over all seeds, split over
    the host's CPU devices (what `--num_seeds` and the report's sweeps run);
  - gan_jax, sequential: one single-seed program run once per seed;
  - PyTorch eager (`bench/pytorch_pacgan.py`, the same step by hand, one
    seed with every core), in a subprocess of `--torch_python` (default:
    this interpreter) when it has torch; otherwise the row says so.
PyTorch runs with one intra-op thread and with one per core (on a loaded
machine the second oversubscribes the cores). Prints seed-steps per second
and the ratios to PyTorch's faster setting (target: vmapped >= 2x PyTorch
per seed-step on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from gan_jax import parallel
from gan_jax import seeds

import jax  # pylint: disable=g-bad-import-order

from gan_jax import config as config_lib
from gan_jax import loop
from gan_jax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILE = os.path.join(ROOT, 'experiments', 'pacgan_grid_gan.cfg')


def protocol_config(pack: int):
  """The flagfile's Config (its flags parsed as `gan_jax.main` parses them)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  config_lib.define_flags()
  flags.FLAGS([sys.argv[0], f'--flagfile={FLAGFILE}', '--workdir=/tmp/unused',
               f'--pack={pack}'], known_only=True)
  return config_lib.from_flags()


class Vmapped:

  def __init__(self, config, num_seeds, steps):
    configs = seeds.member_configs(config, num_seeds)
    self.layout = parallel.Layout.over_members(num_seeds)
    _, fns, state = seeds.build(self.layout.pad(configs))
    self.state = self.layout.place(state)
    runner = loop.ChunkRunner(fns.train_step, self.layout.state_sharding,
                              self.layout.transform)
    self.program = lambda state: runner(state, steps)
    self.seed_steps = num_seeds * steps
    self.round()  # warm-up

  def round(self) -> float:
    start = time.perf_counter()
    self.state, metrics = self.program(self.state)
    jax.block_until_ready(metrics)
    return self.seed_steps / (time.perf_counter() - start)


class Sequential:

  def __init__(self, config, num_seeds, steps):
    self.states = []
    for s in range(num_seeds):
      _, fns, state = train.build(config.replace(seed=s))
      self.states.append(state)
    runner = loop.ChunkRunner(fns.train_step)
    self.program = lambda state: runner(state, steps)
    self.seed_steps = num_seeds * steps
    self.round()

  def round(self) -> float:
    start = time.perf_counter()
    out = []
    for state in self.states:
      state, metrics = self.program(state)
      jax.block_until_ready(metrics)
      out.append(state)
    self.states = out
    return self.seed_steps / (time.perf_counter() - start)


def torch_round(python: str, steps: int, pack: int, threads: int
                ) -> float | None:
  """PyTorch eager seed-steps/s (one round of `steps`) with `threads` intra-op
  threads (0: torch's default, every core), or None without torch."""
  proc = subprocess.run(
      [python, os.path.join(ROOT, 'bench', 'pytorch_pacgan.py'),
       f'--steps={steps}', '--repeats=1', f'--pack={pack}',
       f'--threads={threads}'], capture_output=True, text=True, check=False)
  match = re.search(r'([\d.]+) seed-steps/s', proc.stdout)
  return float(match.group(1)) if match else None


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seeds', type=int, default=10)
  parser.add_argument('--steps', type=int, default=200)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--pack', type=int, default=1)
  parser.add_argument('--torch_python', default=sys.executable)
  args = parser.parse_args()
  parallel.configure_cpu_devices(0, multi_member=True)
  config = protocol_config(args.pack)
  vmapped = Vmapped(config, args.seeds, args.steps)
  sequential = Sequential(config, args.seeds, args.steps)
  cores = os.cpu_count() or 1
  best = {'vmapped': 0.0, 'sequential': 0.0, 1: None, cores: None}
  for _ in range(args.rounds):
    best['vmapped'] = max(best['vmapped'], vmapped.round())
    best['sequential'] = max(best['sequential'], sequential.round())
    for threads in sorted({1, cores}):
      rate = torch_round(args.torch_python, args.steps, args.pack, threads)
      if rate is not None:
        best[threads] = max(best[threads] or 0.0, rate)
  device = jax.devices()[0]
  used = 1 if vmapped.layout.mesh is None else vmapped.layout.mesh.size
  print(f'PacGAN protocol step (pack {args.pack}, batch {config.batch_size}),'
        f' {args.seeds} seeds x {args.steps} steps on {device.platform} '
        f'({os.cpu_count()} cores, {jax.device_count()} device(s)), best of '
        f'{args.rounds} interleaved rounds:')
  print('| schedule | seed-steps/s | vs PyTorch eager |')
  print('|---|---|---|')
  # The ratio is to PyTorch's faster thread setting.
  torch_rate = max((best[t] for t in {1, cores} if best[t] is not None),
                   default=None)
  rows = [(f'gan_jax, {args.seeds} seeds vmapped, split over {used} '
           'device(s)', best['vmapped']),
          (f'gan_jax, {args.seeds} sequential single-seed runs',
           best['sequential'])]
  rows += [(f'PyTorch eager, one seed, {t} thread(s) '
            '(bench/pytorch_pacgan.py)', best[t]) for t in sorted({1, cores})]
  for label, rate in rows:
    if rate is None:
      print(f'| {label} | (no torch in {args.torch_python}) | |')
      continue
    ratio = f'{rate / torch_rate:.2f}x' if torch_rate else ''
    print(f'| {label} | {rate:.1f} | {ratio} |')


if __name__ == '__main__':
  main()
