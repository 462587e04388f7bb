"""Multilayer perceptrons for low-dimensional (toy) data.

G: z -> x with `hidden` ReLU layers and a linear output of the data dimension.
D: x -> one raw output (a logit for probabilistic losses, a critic value
otherwise) with `hidden` ReLU layers and a linear output.

Both take `dtype`, the computation dtype (jnp.bfloat16, say; None computes in
the inputs' dtype): parameters stay float32 and outputs are returned as
float32.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax

from gan_jax.models.precision import as_float32


class Generator(nn.Module):
  """G(z): ReLU MLP from the latent space to `out_dim` data dimensions."""

  hidden: Sequence[int]
  out_dim: int
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, z_BxZ: jax.Array, train: bool = True) -> jax.Array:
    del train
    h = z_BxZ
    for width in self.hidden:
      h = nn.relu(nn.Dense(width, dtype=self.dtype)(h))
    return as_float32(nn.Dense(self.out_dim, dtype=self.dtype)(h), self.dtype)


class Discriminator(nn.Module):
  """D(x): ReLU MLP from data to one raw output per sample, shape (B,)."""

  hidden: Sequence[int]
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x_BxX: jax.Array, train: bool = True) -> jax.Array:
    del train
    h = x_BxX
    for width in self.hidden:
      h = nn.relu(nn.Dense(width, dtype=self.dtype)(h))
    return as_float32(nn.Dense(1, dtype=self.dtype)(h)[..., 0], self.dtype)
