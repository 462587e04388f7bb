"""Multilayer perceptrons for low-dimensional (toy) data.

G: z -> x with `hidden` ReLU layers and a linear output of the data dimension.
D: x -> one raw output (a logit for probabilistic losses, a critic value
otherwise) with `hidden` ReLU layers and a linear output.

`dense='fast'` builds the layers from `gan_jax.layers.Dense` (the same
parameters and function as `flax.linen.Dense`, with a weight gradient XLA:CPU
runs as a plain matrix product), `dense='flax'` from `flax.linen.Dense`.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from gan_jax import layers

DENSE = ('fast', 'flax')


def dense_class(dense: str):
  """The Dense layer class for `dense` in DENSE."""
  if dense == 'fast':
    return layers.Dense
  if dense == 'flax':
    return nn.Dense
  raise ValueError(f'unknown dense {dense!r}; valid: {", ".join(DENSE)}')


class Generator(nn.Module):
  """G(z): ReLU MLP from the latent space to `out_dim` data dimensions."""

  hidden: Sequence[int]
  out_dim: int
  dense: str = 'fast'

  @nn.compact
  def __call__(self, z_BxZ: jax.Array, train: bool = True) -> jax.Array:
    del train
    dense = dense_class(self.dense)
    h = z_BxZ
    for width in self.hidden:
      h = nn.relu(dense(width)(h))
    return dense(self.out_dim)(h)


class Discriminator(nn.Module):
  """D(x): ReLU MLP from data to one raw output per sample, shape (B,)."""

  hidden: Sequence[int]
  dense: str = 'fast'

  @nn.compact
  def __call__(self, x_BxX: jax.Array, train: bool = True) -> jax.Array:
    del train
    dense = dense_class(self.dense)
    h = x_BxX
    for width in self.hidden:
      h = nn.relu(dense(width)(h))
    return dense(1)(h)[..., 0]
