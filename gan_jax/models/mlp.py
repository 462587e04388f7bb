"""Multilayer perceptrons for low-dimensional (toy) data.

G: z -> x with `hidden` ReLU layers and a linear output of the data dimension.
With `batch_norm` each hidden layer is Dense (no bias) -> BatchNorm -> ReLU
(Ioffe & Szegedy 2015): batch statistics when `train=True`, running
statistics (the 'batch_stats' collection) otherwise, updated as
r <- 0.95 r + 0.05 batch with epsilon 1e-4, the values of the PacGAN
synthetic-data code (Lin et al. 2018; its Blocks BatchNormalization and
population update `m * 0.05 + p * 0.95`).

D: x -> one raw output (a logit for probabilistic losses, a critic value
otherwise) with `hidden` hidden layers and a linear output. A hidden layer of
width w is ReLU(Dense(w)(h)) or, with `maxout_pieces` K > 1, a maxout layer
(Goodfellow et al. 2013):

    a = Dense(w K)(h),    out_j = max_{k < K} a_{j K + k},  j < w,

i.e. the w K pre-activations read as (w, K) and maximised over the last axis,
as Blocks' `LinearMaxout` groups them. With `spectral_norm` every layer of D
is spectrally normalised (Miyato et al. 2018; the power-iteration vectors
live in 'batch_stats' and advance when `train=True`).

Initialisation: `init_std` = 0 keeps Flax's defaults (LeCun-normal kernels,
zero biases); `init_std` = s > 0 draws every Dense kernel of the player from
N(0, s^2) and keeps biases at 0 (PacGAN: `IsotropicGaussian(0.02)` weights,
`Constant(0)` biases); batch-norm scales start at 1, shifts at 0.

Both take `dtype`, the computation dtype (jnp.bfloat16, say; None computes in
the inputs' dtype): parameters stay float32 and outputs are returned as
float32.

Class-conditional (`--conditional`, `gan_jax.models.conditioning`): G
reads (z, y) and appends a class embedding to z; D reads (x, y) and puts a
projection or auxiliary-classifier head on its last hidden layer.

Registered as model `mlp`: flat samples (d,), widths `--g_hidden` and
`--d_hidden`, `--g_batch_norm`, `--d_maxout`, `--init_std`,
`--d_spectral_norm`, `--conditional`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import layers
from gan_jax import models
from gan_jax.models import conditioning
from gan_jax.models import precision
from gan_jax.models.precision import as_float32

# Batch norm of G's hidden layers, as the PacGAN synthetic-data code has it.
BATCH_NORM_MOMENTUM = 0.95
BATCH_NORM_EPSILON = 1e-4


def _dense_kwargs(init_std: float) -> dict:
  """Dense's initialiser arguments: Flax's defaults for 0, else N(0, s^2)
  kernels (biases stay zero, Flax's default)."""
  if not init_std:
    return {}
  return {'kernel_init': nn.initializers.normal(stddev=init_std)}


def maxout(a_BxWK: jax.Array, pieces: int) -> jax.Array:
  """max over `pieces` consecutive units: (B, w K) -> (B, w)."""
  shape = a_BxWK.shape[:-1] + (a_BxWK.shape[-1] // pieces, pieces)
  return jnp.max(a_BxWK.reshape(shape), axis=-1)


class Generator(nn.Module):
  """G(z): ReLU MLP from the latent space to `out_dim` data dimensions;
  with `num_classes` K > 0, G((z, y)) with y's embedding appended to z."""

  hidden: Sequence[int]
  out_dim: int
  batch_norm: bool = False
  init_std: float = 0.0
  dtype: Optional[Any] = None
  num_classes: int = 0

  @nn.compact
  def __call__(self, z_BxZ: jax.Array, train: bool = True) -> jax.Array:
    init = _dense_kwargs(self.init_std)
    h, y = conditioning.split(z_BxZ)
    if y is not None:
      h = conditioning.embed_join(h, y, self.num_classes, self.dtype)
    for width in self.hidden:
      h = nn.Dense(width, use_bias=not self.batch_norm, dtype=self.dtype,
                   **init)(h)
      if self.batch_norm:
        h = nn.BatchNorm(use_running_average=not train,
                         momentum=BATCH_NORM_MOMENTUM,
                         epsilon=BATCH_NORM_EPSILON, dtype=self.dtype)(h)
      h = nn.relu(h)
    out = nn.Dense(self.out_dim, dtype=self.dtype, **init)(h)
    return as_float32(out, self.dtype)


class Discriminator(nn.Module):
  """D(x): ReLU or maxout MLP from data to one raw output per sample, (B,);
  with `conditional` 'projection' or 'acgan', D((x, y)) with that head on
  the last hidden layer (`conditioning.d_head`)."""

  hidden: Sequence[int]
  spectral_norm: bool = False
  maxout_pieces: int = 0
  init_std: float = 0.0
  dtype: Optional[Any] = None
  conditional: str = 'none'
  num_classes: int = 0

  @nn.compact
  def __call__(self, x_BxX: jax.Array, train: bool = True) -> jax.Array:
    init = _dense_kwargs(self.init_std)
    dense = lambda width: layers.spectral_norm(
        nn.Dense(width, dtype=self.dtype, **init), self.spectral_norm)
    pieces = self.maxout_pieces
    h, y = conditioning.split(x_BxX)
    for width in self.hidden:
      if pieces > 1:
        h = maxout(dense(width * pieces)(h, train), pieces)
      else:
        h = nn.relu(dense(width)(h, train))
    if y is None:
      return as_float32(dense(1)(h, train)[..., 0], self.dtype)
    out = conditioning.d_head(dense(1)(h, train)[..., 0], h, y,
                              self.conditional, self.num_classes, self.dtype,
                              self.spectral_norm, train)
    return conditioning.as_float32(out, self.dtype)


def build(config, data) -> tuple[Generator, Discriminator]:
  """The MLP pair for `config` on flat samples of shape `data.shape` = (d,)."""
  dtype = precision.compute_dtype(config.compute_dtype)
  return (Generator(hidden=tuple(config.g_hidden), out_dim=data.shape[0],
                    batch_norm=config.g_batch_norm, init_std=config.init_std,
                    dtype=dtype, **models.conditional_g(config)),
          Discriminator(hidden=tuple(config.d_hidden),
                        spectral_norm=config.d_spectral_norm,
                        maxout_pieces=config.d_maxout,
                        init_std=config.init_std, dtype=dtype,
                        **models.conditional_d(config)))


models.register(models.ModelSpec(
    name='mlp', build=build, needs='flat data',
    fits=lambda shape: len(shape) == 1,
    options=('g_batch_norm', 'd_maxout', 'init_std', 'd_spectral_norm'),
    conditional=conditioning.CONDITIONAL_FORMS))
