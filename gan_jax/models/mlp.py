"""Multilayer perceptrons for low-dimensional (toy) data.

G: z -> x with `hidden` ReLU layers and a linear output of the data dimension.
D: x -> one raw output (a logit for probabilistic losses, a critic value
otherwise) with `hidden` ReLU layers and a linear output; with
`spectral_norm` every layer of D is spectrally normalised (Miyato et al. 2018;
the power-iteration vectors live in 'batch_stats' and advance when
`train=True`).

Both take `dtype`, the computation dtype (jnp.bfloat16, say; None computes in
the inputs' dtype): parameters stay float32 and outputs are returned as
float32.

Class-conditional (`--conditional`, `gan_jax.models.conditioning`): G
reads (z, y) and appends a class embedding to z; D reads (x, y) and puts a
projection or auxiliary-classifier head on its last hidden layer.

Registered as model `mlp`: flat samples (d,), widths `--g_hidden` and
`--d_hidden`, `--d_spectral_norm`, `--conditional`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax

from gan_jax import layers
from gan_jax import models
from gan_jax.models import conditioning
from gan_jax.models import precision
from gan_jax.models.precision import as_float32


class Generator(nn.Module):
  """G(z): ReLU MLP from the latent space to `out_dim` data dimensions;
  with `num_classes` K > 0, G((z, y)) with y's embedding appended to z."""

  hidden: Sequence[int]
  out_dim: int
  dtype: Optional[Any] = None
  num_classes: int = 0

  @nn.compact
  def __call__(self, z_BxZ: jax.Array, train: bool = True) -> jax.Array:
    del train
    h, y = conditioning.split(z_BxZ)
    if y is not None:
      h = conditioning.embed_join(h, y, self.num_classes, self.dtype)
    for width in self.hidden:
      h = nn.relu(nn.Dense(width, dtype=self.dtype)(h))
    return as_float32(nn.Dense(self.out_dim, dtype=self.dtype)(h), self.dtype)


class Discriminator(nn.Module):
  """D(x): ReLU MLP from data to one raw output per sample, shape (B,);
  with `conditional` 'projection' or 'acgan', D((x, y)) with that head on
  the last hidden layer (`conditioning.d_head`)."""

  hidden: Sequence[int]
  spectral_norm: bool = False
  dtype: Optional[Any] = None
  conditional: str = 'none'
  num_classes: int = 0

  @nn.compact
  def __call__(self, x_BxX: jax.Array, train: bool = True) -> jax.Array:
    dense = lambda width: layers.spectral_norm(
        nn.Dense(width, dtype=self.dtype), self.spectral_norm)
    h, y = conditioning.split(x_BxX)
    for width in self.hidden:
      h = nn.relu(dense(width)(h, train))
    if y is None:
      return as_float32(dense(1)(h, train)[..., 0], self.dtype)
    out = conditioning.d_head(dense(1)(h, train)[..., 0], h, y,
                              self.conditional, self.num_classes, self.dtype)
    return conditioning.as_float32(out, self.dtype)


def build(config, data) -> tuple[Generator, Discriminator]:
  """The MLP pair for `config` on flat samples of shape `data.shape` = (d,)."""
  dtype = precision.compute_dtype(config.compute_dtype)
  return (Generator(hidden=tuple(config.g_hidden), out_dim=data.shape[0],
                    dtype=dtype, **models.conditional_g(config)),
          Discriminator(hidden=tuple(config.d_hidden),
                        spectral_norm=config.d_spectral_norm, dtype=dtype,
                        **models.conditional_d(config)))


models.register(models.ModelSpec(
    name='mlp', build=build, needs='flat data',
    fits=lambda shape: len(shape) == 1, options=('d_spectral_norm',),
    conditional=conditioning.CONDITIONAL_FORMS))
