"""S seeds vmapped into one program against S sequential runs of the same
configuration.

Setting (fixed): ring8, MLP 128x3 for both players, batch 256, z_dim 64,
non-saturating loss, Adam, one D step per G step (bench/toy_throughput.py's).

    python bench/seeds_throughput.py [--seeds=16] [--steps=500] [--repeats=3]

Both sides run the same compiled scan of `--steps` steps (compilation
excluded, best of `--repeats`): sequential = one single-seed program called S
times, one seed after another; vmapped = `gan_jax.seeds`' program over all S.
Prints run-steps per second of each and their ratio (target: >= 1.5x on a
2-core CPU, >= 10x on a GPU).
"""

from __future__ import annotations

import argparse
import time

import jax

from gan_jax import loop
from gan_jax import seeds
from gan_jax import train
from gan_jax.config import Config

CONFIG = Config(workdir='/tmp/unused', dataset='ring8', loss='non_saturating',
                model='mlp', batch_size=256, z_dim=64,
                g_hidden=(128, 128, 128), d_hidden=(128, 128, 128))


def sequential_rate(num_seeds: int, steps: int, repeats: int) -> float:
  states = []
  for s in range(num_seeds):
    _, step_fns, state = train.build(CONFIG.replace(seed=s))
    states.append(state)
  runner = loop.ChunkRunner(step_fns.train_step)
  program = runner.compiled(states[0], steps)
  states = [program(s)[0] for s in states]  # warm-up
  jax.block_until_ready(states)
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    out = []
    for s in states:
      state, metrics = program(s)
      jax.block_until_ready(metrics)
      out.append(state)
    best = min(best, time.perf_counter() - start)
    states = out
  return num_seeds * steps / best


def vmapped_rate(num_seeds: int, steps: int, repeats: int) -> float:
  configs = seeds.member_configs(CONFIG, num_seeds)
  _, step_fns, state = seeds.build(configs)
  runner = seeds.ChunkRunner(step_fns.train_step)
  program = runner.compiled(state, steps)
  state, metrics = program(state)  # warm-up
  jax.block_until_ready(metrics)
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    state, metrics = program(state)
    jax.block_until_ready(metrics)
    best = min(best, time.perf_counter() - start)
  return num_seeds * steps / best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seeds', type=int, default=16)
  parser.add_argument('--steps', type=int, default=500)
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  seq = sequential_rate(args.seeds, args.steps, args.repeats)
  vm = vmapped_rate(args.seeds, args.steps, args.repeats)
  device = jax.devices()[0]
  print(f'{args.seeds} seeds x {args.steps} steps on {device.platform} '
        f'({device.device_kind}), best of {args.repeats}:')
  print(f'| {"schedule":<24} | {"run-steps/s":>12} |')
  print(f'|{"-" * 26}|{"-" * 14}|')
  print(f'| {"sequential (1 program)":<24} | {seq:>12.0f} |')
  print(f'| {"vmapped (1 program)":<24} | {vm:>12.0f} |')
  print(f'vmapped / sequential throughput ratio: {vm / seq:.2f}x')


if __name__ == '__main__':
  main()
