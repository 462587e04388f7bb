"""The PacGAN synthetic-data training step in PyTorch eager, for comparison.

The protocol of Lin et al. (2018, fjxmlzn/PacGAN, synthetic_data_experiments)
as `experiments/pacgan_grid_gan.cfg` sets it: G maps z in R^2 through 4
hidden layers of 400 units (Linear, batch norm, ReLU) to a linear 2-d
output; D has 3 maxout layers of 200 units x 5 pieces and a linear output;
weights N(0, 0.02^2); non-saturating loss; simultaneous updates (both
players' gradients at the same point, then both Adam steps); Adam lr 1e-4,
beta1 0.8; a batch of 100 packed inputs, each of `--pack` samples. Real data
is the 25-mode grid (spacing 2, std 0.05), sampled with torch on the fly.
PyTorch is not a dependency of gan_jax; run this in an environment that has
it:

    python bench/pytorch_pacgan.py [--steps=300] [--repeats=3] [--pack=1]
        [--threads=0]

It prints seed-steps per second (one seed, best of `--repeats`) with the
threads torch uses (`torch.get_num_threads()`, every core by default).
`bench/pacgan_step.py` prints gan_jax's rates for the same step, vmapped over
10 seeds and one seed at a time; the ratio is per seed-step.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.nn import functional as F


class Maxout(nn.Module):

  def __init__(self, d_in: int, units: int, pieces: int):
    super().__init__()
    self.units, self.pieces = units, pieces
    self.linear = nn.Linear(d_in, units * pieces)

  def forward(self, x):
    return self.linear(x).view(-1, self.units, self.pieces).max(-1).values


def generator(z_dim=2, width=400, depth=4):
  layers, d = [], z_dim
  for _ in range(depth):
    layers += [nn.Linear(d, width), nn.BatchNorm1d(width), nn.ReLU()]
    d = width
  return nn.Sequential(*layers, nn.Linear(d, 2))


def discriminator(pack=1, units=200, pieces=5, depth=3):
  layers, d = [], 2 * pack
  for _ in range(depth):
    layers.append(Maxout(d, units, pieces))
    d = units
  return nn.Sequential(*layers, nn.Linear(d, 1))


def init_normal(module, std=0.02):
  for m in module.modules():
    if isinstance(m, nn.Linear):
      nn.init.normal_(m.weight, 0.0, std)
      nn.init.zeros_(m.bias)


def grid_batch(n):
  coords = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
  means = torch.stack(torch.meshgrid(coords, coords, indexing='ij'),
                      -1).reshape(-1, 2)
  return means[torch.randint(0, 25, (n,))] + 0.05 * torch.randn(n, 2)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', type=int, default=300)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--pack', type=int, default=1)
  parser.add_argument('--batch', type=int, default=100)
  parser.add_argument('--threads', type=int, default=0,
                      help='torch.set_num_threads (0: torch\'s default)')
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  g, d = generator(), discriminator(args.pack)
  init_normal(g)
  init_normal(d)
  g_opt = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.8, 0.999))
  d_opt = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.8, 0.999))
  n = args.batch * args.pack

  def step():
    real = grid_batch(n).view(args.batch, -1)
    fake = g(torch.randn(n, 2)).view(args.batch, -1)
    real_logit, fake_logit = d(real), d(fake)
    d_loss = F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()
    g_loss = F.softplus(-fake_logit).mean()
    # Simultaneous: both gradients at the same parameters (one D pass; each
    # gradient only w.r.t. its own player), then both steps.
    d_grads = torch.autograd.grad(d_loss, list(d.parameters()),
                                  retain_graph=True)
    g_grads = torch.autograd.grad(g_loss, list(g.parameters()))
    for p, gr in zip(d.parameters(), d_grads):
      p.grad = gr
    for p, gr in zip(g.parameters(), g_grads):
      p.grad = gr
    d_opt.step()
    g_opt.step()

  for _ in range(10):
    step()
  best = 0.0
  for _ in range(args.repeats):
    start = time.perf_counter()
    for _ in range(args.steps):
      step()
    best = max(best, args.steps / (time.perf_counter() - start))
  print(f'pytorch {torch.__version__} eager, {torch.get_num_threads()} '
        f'threads, pack {args.pack}, batch {args.batch}: '
        f'{best:.1f} seed-steps/s')


if __name__ == '__main__':
  main()
