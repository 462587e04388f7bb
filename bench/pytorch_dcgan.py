"""The DCGAN-MNIST benchmark step in PyTorch eager, for comparison.

Same architecture, batch, optimiser and loss as `bench/dcgan_throughput.py`
(G dense -> 7x7x128, ReLU, transposed conv 4x4/2 -> 64, ReLU, transposed conv
4x4/2 -> 1, tanh; D conv 4x4/2 -> 64, leaky ReLU 0.2, conv 4x4/2 -> 128,
leaky ReLU 0.2, dense -> 1; batch 64, z 100, Adam 2e-4/0.5/0.999,
non-saturating loss, one D step then one G step). The real batch is drawn
from a fixed random tensor of MNIST's shape: the arithmetic, and so the time,
does not depend on the pixel values. PyTorch is not a dependency of gan_jax;
run this in an environment that has it:

    python bench/pytorch_dcgan.py [--steps=50] [--repeats=3] [--batch=64]
        [--model_gflops=9.06]

It prints steps/s (best of `--repeats`) and the rate as a percentage of the
float32 matmul rate measured in the same process (best of torch.mm 2048^3).
The FLOPs per step are the model's count from `bench/dcgan_throughput.py`
(XLA's cost analysis of the flax step: 9.06 GFLOP at batch 64, scaled
linearly with the batch), so the percentage compares with its
"% matmul (flax FLOPs)" column.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.nn import functional as F

Z_DIM = 100


class Generator(nn.Module):

  def __init__(self):
    super().__init__()
    self.dense = nn.Linear(Z_DIM, 7 * 7 * 128)
    self.up1 = nn.ConvTranspose2d(128, 64, 4, 2, 1)
    self.up2 = nn.ConvTranspose2d(64, 1, 4, 2, 1)

  def forward(self, z):
    h = F.relu(self.dense(z)).view(-1, 128, 7, 7)
    return torch.tanh(self.up2(F.relu(self.up1(h))))


class Discriminator(nn.Module):

  def __init__(self):
    super().__init__()
    self.conv1 = nn.Conv2d(1, 64, 4, 2, 1)
    self.conv2 = nn.Conv2d(64, 128, 4, 2, 1)
    self.dense = nn.Linear(7 * 7 * 128, 1)

  def forward(self, x):
    h = F.leaky_relu(self.conv1(x), 0.2)
    h = F.leaky_relu(self.conv2(h), 0.2)
    return self.dense(h.flatten(1))[:, 0]


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
  a, b = torch.randn(n, n), torch.randn(n, n)
  torch.mm(a, b)
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    torch.mm(a, b)
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 / best / 1e9


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=50)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--model_gflops', type=float, default=9.06,
                      help='the model\'s GFLOP per step at batch 64')
  args = parser.parse_args()
  torch.manual_seed(0)
  g, d = Generator(), Discriminator()
  g_opt = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
  d_opt = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
  data = torch.rand(1024, 1, 28, 28) * 2 - 1

  def step():
    # Each player's backward pass computes only its own parameter gradients,
    # as the JAX step does: G's forward for D's step records no graph, and
    # D's parameters are frozen during G's step.
    real = data[torch.randint(0, len(data), (args.batch,))]
    with torch.no_grad():
      fake = g(torch.randn(args.batch, Z_DIM))
    d_loss = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    d_opt.step()
    d.requires_grad_(False)
    g_loss = F.softplus(-d(g(torch.randn(args.batch, Z_DIM)))).mean()
    g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_opt.step()
    d.requires_grad_(True)
    return g_loss

  for _ in range(5):
    step()
  best = 0.0
  for _ in range(args.repeats):
    start = time.perf_counter()
    for _ in range(args.steps):
      loss = step()
    loss.item()
    best = max(best, args.steps / (time.perf_counter() - start))
  peak = max(matmul_gflops(), matmul_gflops())
  flops = args.model_gflops * args.batch / 64
  print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; batch '
        f'{args.batch}, z {Z_DIM}; best of {args.repeats} x {args.steps} steps')
  print(f'measured float32 matmul rate (best of torch.mm 2048^3): '
        f'{peak:.1f} GFLOP/s; the model\'s FLOPs per step: {flops:.2f} GFLOP')
  print()
  print('| framework | loop | steps/s | GFLOP/s | % matmul (model FLOPs) |')
  print('|---|---|---|---|---|')
  print(f'| PyTorch eager | Python loop | {best:.2f} | {best * flops:.1f} | '
        f'{100 * best * flops / peak:.1f}% |')


if __name__ == '__main__':
  main()
