"""Conditional and data-efficient steps against the plain one, in the scan.

Setting: `experiments/digits_non_saturating.cfg`'s DCGAN on digits (batch 64,
batch norm in G, EMA), one training step per scan iteration. Variants:
plain; `--conditional=projection`; `--conditional=acgan`;
`--augment=translation,cutout,color`; `--augment=...` with
`--lecam_weight=0.3`; `--topk`; and, for reference, the plain step with
z_dim 128, the width of a conditional G's input [z, E(y)].

    python bench/conditional_throughput.py [--steps=100] [--rounds=3]

Every variant's compiled scan of `--steps` steps runs once per round, the
rounds interleaved so a machine shared with other jobs biases all alike; the
best round of each is kept. Prints steps/s and the ratio to the plain step
(target: >= 0.90 for the conditional and augmented steps).
"""

from __future__ import annotations

import argparse
import os
import time

import jax

from gan_jax import loop
from gan_jax import train
from gan_jax.config import Config

BASE = Config(workdir='/tmp/unused', dataset='digits', model='dcgan',
              loss='non_saturating', batch_size=64, z_dim=64,
              g_batch_norm=True, g_lr=2e-4, d_lr=2e-4, beta1=0.5,
              g_ema_decay=0.999)
AUGMENT = ('translation', 'cutout', 'color')
VARIANTS = {
    'plain': {},
    'conditional=projection': {'conditional': 'projection'},
    'conditional=acgan': {'conditional': 'acgan'},
    'augment=translation,cutout,color': {'augment': AUGMENT},
    'augment + lecam_weight=0.3': {'augment': AUGMENT, 'lecam_weight': 0.3},
    'topk': {'topk': True},
    # Not a target row: the unconditional G with a z of the width of a
    # conditional G's input [z, E(y)], to separate what the wider first
    # layer costs from what the conditioning itself does.
    'plain, z_dim=128': {'z_dim': 128},
}


class Variant:

  def __init__(self, changes: dict, steps: int):
    _, fns, self.state = train.build(BASE.replace(**changes))
    runner = loop.ChunkRunner(fns.train_step)
    self.run = lambda state: runner(state, steps)
    self.steps = steps
    self.round()  # compile and warm up

  def round(self) -> float:
    start = time.perf_counter()
    self.state, metrics = self.run(self.state)
    jax.block_until_ready(metrics)
    return self.steps / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=100)
  parser.add_argument('--rounds', type=int, default=3)
  args = parser.parse_args()
  variants = {name: Variant(changes, args.steps)
              for name, changes in VARIANTS.items()}
  best = dict.fromkeys(variants, 0.0)
  for _ in range(args.rounds):
    for name, variant in variants.items():
      best[name] = max(best[name], variant.round())
  device = jax.devices()[0]
  print(f'digits DCGAN, batch {BASE.batch_size}, {args.steps} steps per '
        f'round on {device.platform} ({os.cpu_count()} cores), best of '
        f'{args.rounds} interleaved rounds:')
  print('| step | steps/s | vs plain |')
  print('|---|---|---|')
  for name, rate in best.items():
    print(f'| {name} | {rate:.2f} | {rate / best["plain"]:.2f} |')


if __name__ == '__main__':
  main()
