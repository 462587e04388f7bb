"""Multilayer perceptrons for low-dimensional (toy) data.

G: z -> x with `hidden` ReLU layers and a linear output of the data dimension.
D: x -> one raw output (a logit for probabilistic losses, a critic value
otherwise) with `hidden` ReLU layers and a linear output.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax


class Generator(nn.Module):
  """G(z): ReLU MLP from the latent space to `out_dim` data dimensions."""

  hidden: Sequence[int]
  out_dim: int

  @nn.compact
  def __call__(self, z_BxZ: jax.Array, train: bool = True) -> jax.Array:
    del train
    h = z_BxZ
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    return nn.Dense(self.out_dim)(h)


class Discriminator(nn.Module):
  """D(x): ReLU MLP from data to one raw output per sample, shape (B,)."""

  hidden: Sequence[int]

  @nn.compact
  def __call__(self, x_BxX: jax.Array, train: bool = True) -> jax.Array:
    del train
    h = x_BxX
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    return nn.Dense(1)(h)[..., 0]
