"""Toy GAN throughput: scan loop vs a Python loop of jitted steps, against the
machine's measured float32 matmul rate.

Setting: ring8, MLP `--width`x3 for both players (256, as in
experiments/ring8_*.cfg), batch 256, non-saturating loss, Adam, one D step
per G step, z_dim 2 (the experiments').

    python bench/toy_throughput.py [--steps=1000] [--rounds=3] [--width=256]

Prints a table: steps/s for each loop, the FLOPs of one training step (XLA's
cost analysis of the compiled step), the achieved GFLOP/s and its percentage
of the measured matmul rate. The matmul rate and both loops are measured in
interleaved rounds and the best round of each is kept, so a machine shared
with other jobs biases all three alike.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from gan_jax import loop
from gan_jax import train
from gan_jax.config import Config


def toy_config(z_dim: int, width: int) -> Config:
  return Config(workdir='/tmp/unused', dataset='ring8', loss='non_saturating',
                model='mlp', batch_size=256, z_dim=z_dim,
                g_hidden=(width,) * 3, d_hidden=(width,) * 3)


class MatmulRate:
  """Float32 matmul rate (GFLOP/s) of an n x n x n product, one timing per call."""

  def __init__(self, n: int = 2048):
    self.n = n
    self.a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    self.b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    self.f = jax.jit(jnp.dot)
    self.f(self.a, self.b).block_until_ready()

  def __call__(self, repeats: int = 5) -> float:
    best = float('inf')
    for _ in range(repeats):
      start = time.perf_counter()
      self.f(self.a, self.b).block_until_ready()
      best = min(best, time.perf_counter() - start)
    return 2 * self.n**3 / best / 1e9


def step_flops(steps, state) -> float:
  """FLOPs of one compiled training step, from XLA's cost analysis."""
  analysis = jax.jit(steps.train_step).lower(state).compile().cost_analysis()
  if isinstance(analysis, list):
    analysis = analysis[0]
  return float(analysis['flops'])


class ScanLoop:
  """`num_steps` steps as one jitted lax.scan program (the training loop)."""

  def __init__(self, steps, state, num_steps: int):
    self.runner = loop.ChunkRunner(steps.train_step)
    self.num_steps = num_steps
    self.state, _ = self.runner(state, num_steps)  # compiles

  def __call__(self) -> float:
    start = time.perf_counter()
    self.state, metrics = self.runner(self.state, self.num_steps)
    jax.block_until_ready(metrics)
    return self.num_steps / (time.perf_counter() - start)


class PythonLoop:
  """`num_steps` calls of a jitted train_step from Python."""

  def __init__(self, steps, state, num_steps: int):
    self.step_fn = jax.jit(steps.train_step, donate_argnums=0)
    self.num_steps = num_steps
    self.state, metrics = self.step_fn(state)
    jax.block_until_ready(metrics)

  def __call__(self) -> float:
    start = time.perf_counter()
    for _ in range(self.num_steps):
      self.state, metrics = self.step_fn(self.state)
    jax.block_until_ready(metrics)
    return self.num_steps / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=1000)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--z_dim', type=int, default=2)
  parser.add_argument('--width', type=int, default=256)
  args = parser.parse_args()

  config = toy_config(args.z_dim, args.width)
  _, steps, state = train.build(config)
  flops = step_flops(steps, state)
  matmul = MatmulRate()
  _, steps2, state2 = train.build(config)
  loops = {'scan loop (lax.scan chunk)': ScanLoop(steps, state, args.steps),
           'python loop of jitted steps': PythonLoop(steps2, state2, args.steps)}
  best = {name: 0.0 for name in loops}
  peak = 0.0
  for _ in range(args.rounds):
    peak = max(peak, matmul())
    for name, fn in loops.items():
      best[name] = max(best[name], fn())

  print(f'device: {jax.devices()[0].device_kind} x{jax.device_count()}  '
        f'jax {jax.__version__}  (best of {args.rounds} interleaved rounds of '
        f'{args.steps} steps)')
  print(f'toy: ring8, MLP {args.width}x3 both players, batch 256, z_dim '
        f'{args.z_dim}, non_saturating, Adam')
  print(f'measured f32 matmul rate (2048^3): {peak:.1f} GFLOP/s')
  print(f'FLOPs per training step (XLA cost analysis): {flops / 1e6:.1f} MFLOP')
  print()
  print(f'| {"loop":<30} | {"steps/s":>9} | {"GFLOP/s":>8} | {"% of matmul":>11} |')
  print(f'|{"-" * 32}|{"-" * 11}|{"-" * 10}|{"-" * 13}|')
  for name, rate in best.items():
    gflops = rate * flops / 1e9
    print(f'| {name:<30} | {rate:9.1f} | {gflops:8.1f} | {100 * gflops / peak:10.1f}% |')


if __name__ == '__main__':
  main()
