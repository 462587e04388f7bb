"""Toy GAN throughput: scan loop vs a Python loop of jitted steps, against the
machine's measured float32 matmul rate.

Setting (fixed): ring8, MLP 128x3 for both players, batch 256, z_dim 64,
non-saturating loss, Adam, one D step per G step.

    python bench/toy_throughput.py [--steps=2000] [--repeats=3]

Prints a table: steps/s for each loop, the FLOPs of one training step (XLA's
cost analysis of the compiled step), the achieved GFLOP/s and its percentage
of the measured matmul rate.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from gan_jax import loop
from gan_jax import train
from gan_jax.config import Config

CONFIG = Config(workdir='/tmp/unused', dataset='ring8', loss='non_saturating',
                model='mlp', batch_size=256, z_dim=64,
                g_hidden=(128, 128, 128), d_hidden=(128, 128, 128))


def matmul_gflops(n: int = 2048, repeats: int = 20) -> float:
  """Best-of float32 matmul rate (GFLOP/s) of an n x n x n product."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
  f = jax.jit(jnp.dot)
  f(a, b).block_until_ready()
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    f(a, b).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 / best / 1e9


def step_flops(steps, state) -> float:
  """FLOPs of one compiled training step, from XLA's cost analysis."""
  compiled = jax.jit(steps.train_step).lower(state).compile()
  analysis = compiled.cost_analysis()
  if isinstance(analysis, list):
    analysis = analysis[0]
  return float(analysis['flops'])


def scan_rate(steps, state, num_steps: int, repeats: int) -> float:
  runner = loop.ChunkRunner(steps.train_step)
  state, _ = runner(state, num_steps)  # warm-up (compiles)
  best = 0.0
  for _ in range(repeats):
    start = time.perf_counter()
    state, metrics = runner(state, num_steps)
    jax.block_until_ready(metrics)
    best = max(best, num_steps / (time.perf_counter() - start))
  return best


def python_loop_rate(steps, state, num_steps: int, repeats: int) -> float:
  step_fn = jax.jit(steps.train_step, donate_argnums=0)
  state, metrics = step_fn(state)
  jax.block_until_ready(metrics)
  best = 0.0
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(num_steps):
      state, metrics = step_fn(state)
    jax.block_until_ready(metrics)
    best = max(best, num_steps / (time.perf_counter() - start))
  return best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=2000)
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()

  _, steps, state = train.build(CONFIG)
  flops = step_flops(steps, state)
  peak = matmul_gflops()
  rows = [('scan loop (lax.scan chunk)',
           scan_rate(steps, state, args.steps, args.repeats)),
          ('python loop of jitted steps',
           python_loop_rate(steps, state, args.steps, args.repeats))]
  print(f'device: {jax.devices()[0].device_kind} x{jax.device_count()}  '
        f'jax {jax.__version__}')
  print(f'measured f32 matmul rate (2048^3): {peak:.1f} GFLOP/s')
  print(f'FLOPs per training step (XLA cost analysis): {flops / 1e6:.2f} MFLOP')
  print()
  print(f'| {"loop":<30} | {"steps/s":>9} | {"GFLOP/s":>8} | {"% of matmul":>11} |')
  print(f'|{"-" * 32}|{"-" * 11}|{"-" * 10}|{"-" * 13}|')
  for name, rate in rows:
    gflops = rate * flops / 1e9
    print(f'| {name:<30} | {rate:9.1f} | {gflops:8.1f} | {100 * gflops / peak:10.1f}% |')


if __name__ == '__main__':
  main()
