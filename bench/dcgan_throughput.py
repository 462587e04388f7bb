"""DCGAN-MNIST training throughput: flax's convolutions against gan_jax.layers.

Architecture (`gan_jax.models.dcgan.bench_models`, batch 64, z 100, Adam
2e-4/0.5/0.999, non-saturating loss, one D step then one G step, no
normalisation): G dense -> 7x7x128, ReLU, transposed conv 4x4/2 -> 64, ReLU,
transposed conv 4x4/2 -> 1, tanh; D conv 4x4/2 -> 64, leaky ReLU 0.2,
conv 4x4/2 -> 128, leaky ReLU 0.2, dense -> 1. Real images are scikit-learn's
digits resized to 28x28, held on the device and drawn inside the step.

    python bench/dcgan_throughput.py [--steps=20] [--repeats=3] [--batch=64]
        [--dtype=float32|bfloat16]

For each layer implementation it prints the FLOPs of one training step (XLA's
cost analysis of the lowered step), steps/s inside the `lax.scan` loop of
`gan_jax.loop` and in a Python loop of jitted steps (best of `--repeats`), and
the achieved rate as a percentage of the measured float32 matmul rate (best
of jnp.dot 2048^3). Two FLOP counts are used: the flax step's, 9.06 GFLOP
(XLA counts a convolution's kernel taps only where they fall inside the
input: no multiplications by the border padding or by the zeros that dilate
a transposed convolution's input; the model's arithmetic), and each step's
own count, 10.46 GFLOP for the matmul layers (their products also multiply
the border padding, about 14% more for the 4x4 stride-2 layers at 7 and 14
pixels). The flax-FLOPs column is the one that compares formulations. The
machine may be shared: best-of-N removes most, not all, of the interference.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Optional

import jax
import jax.numpy as jnp
import optax

from gan_jax import loop
from gan_jax import losses
from gan_jax.data import images
from gan_jax.game import Game
from gan_jax.models import dcgan
from gan_jax.state import init_state
from gan_jax.steps import Steps

BATCH = 64
Z_DIM = 100


def build(layers: str, data: images.InMemoryImages, batch: int = BATCH,
          dtype=None):
  g, d = dcgan.bench_models(layers, dtype)
  game = Game(g, d, losses.get('non_saturating'))
  opt = optax.adam(2e-4, b1=0.5, b2=0.999)
  steps = Steps(game=game, g_opt=opt, d_opt=opt, sample_data=data.sample,
                batch_size=batch, z_dim=Z_DIM)
  state = init_state(game, opt, opt, jax.random.PRNGKey(0), Z_DIM, data.shape)
  return steps, state


def matmul_gflops(n: int = 2048, repeats: int = 10,
                  dtype=jnp.float32) -> float:
  """Best-of matmul rate (GFLOP/s) of an n x n x n product in `dtype`."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
  f = jax.jit(jnp.dot)
  f(a, b).block_until_ready()
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    f(a, b).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 / best / 1e9


def step_flops(steps: Steps, state) -> Optional[float]:
  """FLOPs of one training step by XLA's cost analysis of the lowered
  program; None where the backend has no such analysis (GPU)."""
  analysis = jax.jit(steps.train_step).lower(state).cost_analysis()
  if isinstance(analysis, list):
    analysis = analysis[0]
  return float(analysis['flops']) if analysis else None


def model_flops(data: images.InMemoryImages, batch: int) -> float:
  """The model's FLOPs per step: the flax step's count. Off CPU it is
  counted by a CPU-only copy of this script (a compiled GPU program hides its
  convolutions in library calls that XLA does not count); the arithmetic is
  the same on every backend."""
  if jax.default_backend() == 'cpu':
    return step_flops(*build('flax', data, batch))
  done = subprocess.run(
      [sys.executable, __file__, '--model_flops', f'--batch={batch}'],
      env={**os.environ, 'JAX_PLATFORMS': 'cpu'}, capture_output=True,
      text=True, check=True)
  return float(done.stdout.split()[-1])


def fresh(state):
  """A copy of the state (the loops donate theirs)."""
  return jax.tree.map(jnp.copy, state)


def scan_rate(steps: Steps, state, num_steps: int, repeats: int) -> float:
  state = fresh(state)
  runner = loop.ChunkRunner(steps.train_step)
  state, _ = runner(state, num_steps)  # compiles, warms up
  best = 0.0
  for _ in range(repeats):
    start = time.perf_counter()
    state, metrics = runner(state, num_steps)
    jax.block_until_ready(metrics)
    best = max(best, num_steps / (time.perf_counter() - start))
  return best


def python_loop_rate(steps: Steps, state, num_steps: int, repeats: int
                     ) -> float:
  step_fn = jax.jit(steps.train_step, donate_argnums=0)
  state = fresh(state)
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
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--batch', type=int, default=BATCH)
  parser.add_argument('--layers', default='flax,fast',
                      help='comma-separated subset of: flax, fast')
  parser.add_argument('--dtype', default='float32',
                      choices=('float32', 'bfloat16'),
                      help='computation dtype of the models (parameters stay '
                      'float32); the matmul rate is measured in it too')
  parser.add_argument('--model_flops', action='store_true',
                      help='only print the model\'s FLOPs per step')
  args = parser.parse_args()
  data = images.digits(28)
  nominal = model_flops(data, args.batch)
  if args.model_flops:
    print(nominal)
    return
  dtype = jnp.dtype(args.dtype)
  built = {name: build(name, data, args.batch, dtype)
           for name in args.layers.split(',')}
  # As executed; off CPU both layer sets are XLA's convolutions, whose
  # arithmetic is the model's.
  flops = {name: step_flops(*built[name]) or nominal for name in built}
  flops.setdefault('flax', nominal)
  peak = matmul_gflops(dtype=dtype)
  rows = []
  for name, (steps, state) in built.items():
    rows.append((name, 'lax.scan chunk',
                 scan_rate(steps, state, args.steps, args.repeats)))
    rows.append((name, 'python loop of jit steps',
                 python_loop_rate(steps, state, args.steps, args.repeats)))
  peak = max(peak, matmul_gflops(dtype=dtype))  # best of before and after
  print(f'device: {jax.devices()[0].device_kind} x{jax.device_count()}  '
        f'jax {jax.__version__}; batch {args.batch}, z {Z_DIM}, {args.dtype}; '
        f'best of '
        f'{args.repeats} x {args.steps} steps')
  print(f'measured {args.dtype} matmul rate (best of jnp.dot 2048^3): '
        f'{peak:.1f} GFLOP/s')
  for name, f in flops.items():
    print(f'FLOPs per training step, {name} layers (XLA cost analysis): '
          f'{f / 1e9:.2f} GFLOP' + (' (the model\'s)' if name == 'flax' else
                                    ' (as executed)'))
  print()
  print(f'| {"layers":<6} | {"loop":<24} | {"steps/s":>8} | '
        f'{"GFLOP/s (own)":>13} | {"% matmul (own)":>14} | '
        f'{"% matmul (flax FLOPs)":>21} |')
  print(f'|{"-" * 8}|{"-" * 26}|{"-" * 10}|{"-" * 15}|{"-" * 16}|{"-" * 23}|')
  for name, label, rate in rows:
    own = rate * flops[name] / 1e9
    nominal_pct = f'{100 * rate * nominal / 1e9 / peak:20.1f}%'
    print(f'| {name:<6} | {label:<24} | {rate:8.2f} | {own:13.1f} '
          f'| {100 * own / peak:13.1f}% | {nominal_pct} |')


if __name__ == '__main__':
  main()
