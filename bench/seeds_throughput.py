"""S seeds vmapped into one program against S sequential runs of the same
configuration.

Settings (`--setting`):
  ring8   MLP 128x3 for both players, batch 256, z_dim 64, non-saturating
          loss, Adam, one D step per G step (bench/toy_throughput.py's);
  digits  the DCGAN of the report's digits sweeps (16x16, features 32/32,
          batch norm in G, G's EMA, batch 64, z_dim 64, non-saturating).

    python bench/seeds_throughput.py [--setting=ring8] [--seeds=16]
        [--steps=500] [--repeats=3] [--cpu_devices=0]

All schedules run the same compiled scan of `--steps` steps (compilation
excluded, best of `--repeats`):
  - sequential: one single-seed program called S times, one seed after
    another, on one device (every core works on each operation);
  - vmapped, 1 device: `gan_jax.seeds`' program over all S on one device;
  - vmapped, split: the same program with its seed axis split over the
    host's devices (`shard_map`; what `gan_jax.main --num_seeds` and
    `gan_jax.sweep` run). On a CPU host these are `--cpu_devices` virtual
    devices (0: one per core), each executing its seeds on its own thread.
Prints run-steps per second of each and the ratios to sequential (target:
>= 1.5x on a 2-core CPU, >= 10x on a GPU).
"""

from __future__ import annotations

import argparse
import time

from gan_jax import parallel
from gan_jax import seeds

import jax  # pylint: disable=g-bad-import-order

from gan_jax import loop
from gan_jax import train
from gan_jax.config import Config

SETTINGS = {
    'ring8': Config(workdir='/tmp/unused', dataset='ring8',
                    loss='non_saturating', model='mlp', batch_size=256,
                    z_dim=64, g_hidden=(128, 128, 128),
                    d_hidden=(128, 128, 128)),
    'digits': Config(workdir='/tmp/unused', dataset='digits',
                     loss='non_saturating', model='dcgan', g_features=32,
                     d_features=32, g_batch_norm=True, g_ema_decay=0.999,
                     batch_size=64, z_dim=64, g_lr=2e-4, d_lr=2e-4,
                     beta1=0.5),
}
CONFIG = SETTINGS['ring8']


def sequential_rate(num_seeds: int, steps: int, repeats: int) -> float:
  states = []
  for s in range(num_seeds):
    _, step_fns, state = train.build(CONFIG.replace(seed=s))
    states.append(state)
  runner = loop.ChunkRunner(step_fns.train_step)
  program = lambda state: runner(state, steps)
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


def vmapped_rate(num_seeds: int, steps: int, repeats: int,
                 split: bool) -> tuple[float, int]:
  """Run-steps/s of the vmapped program, and the devices it ran on."""
  configs = seeds.member_configs(CONFIG, num_seeds)
  layout = parallel.Layout.over_members(
      num_seeds, None if split else jax.local_devices()[:1])
  _, step_fns, state = seeds.build(layout.pad(configs))
  state = layout.place(state)
  runner = loop.ChunkRunner(step_fns.train_step, layout.state_sharding,
                            layout.transform)
  program = lambda state: runner(state, steps)
  state, metrics = program(state)  # warm-up
  jax.block_until_ready(metrics)
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    state, metrics = program(state)
    jax.block_until_ready(metrics)
    best = min(best, time.perf_counter() - start)
  return (num_seeds * steps / best,
          1 if layout.mesh is None else layout.mesh.size)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--setting', choices=sorted(SETTINGS), default='ring8')
  parser.add_argument('--seeds', type=int, default=16)
  parser.add_argument('--steps', type=int, default=500)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--cpu_devices', type=int, default=0,
                      help='CPU devices to split the seeds over (0: one per '
                      'core)')
  args = parser.parse_args()
  global CONFIG
  CONFIG = SETTINGS[args.setting]
  parallel.configure_cpu_devices(args.cpu_devices, multi_member=True)
  seq = sequential_rate(args.seeds, args.steps, args.repeats)
  one, _ = vmapped_rate(args.seeds, args.steps, args.repeats, split=False)
  split, used = vmapped_rate(args.seeds, args.steps, args.repeats, split=True)
  device = jax.devices()[0]
  print(f'{args.setting}: {args.seeds} seeds x {args.steps} steps on {device.platform} '
        f'({device.device_kind}, {jax.device_count()} device(s)), best of '
        f'{args.repeats}:')
  print(f'| {"schedule":<34} | {"run-steps/s":>12} | {"vs sequential":>13} |')
  print(f'|{"-" * 36}|{"-" * 14}|{"-" * 15}|')
  for label, rate in [('sequential (1 device)', seq),
                      ('vmapped (1 device)', one),
                      (f'vmapped, split over {used} device(s)', split)]:
    print(f'| {label:<34} | {rate:>12.0f} | {rate / seq:>12.2f}x |')
  print(f'vmapped / sequential throughput ratio: {split / seq:.2f}x '
        f'({used} device(s)); in one device: {one / seq:.2f}x')


if __name__ == '__main__':
  main()
