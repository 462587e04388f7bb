"""DCGAN (Radford et al. 2016) for 16, 28, 32 and 64 pixel images.

G: z -> dense -> (s0, s0, c0) -> [BN] ReLU -> n - 1 transposed convolutions
4x4 stride 2 (channels halving, [BN] ReLU) -> a last 4x4 stride-2 transposed
convolution to the image's channels -> tanh, with n up-samplings from
s0 = size / 2^n:

    size 16: 4 -> 8 -> 16          size 28: 7 -> 14 -> 28
    size 32: 4 -> 8 -> 16 -> 32    size 64: 4 -> 8 -> 16 -> 32 -> 64

and c0 = features 2^(n-1). D mirrors it: n convolutions 4x4 stride 2 with
features, 2 features, ... channels, each followed by leaky ReLU(0.2), then a
dense layer to one raw output per sample, shape (B,).

Options: batch norm in G (`batch_norm`, Ioffe & Szegedy 2015; running
statistics in the 'batch_stats' collection, batch statistics when
`train=True`), spectral norm on every D layer (`spectral_norm`; its
power-iteration vectors live in 'batch_stats' and are updated when
`train=True`). `layers='fast'` builds the convolutions from
`gan_jax.layers` (matrix products on CPU), `layers='flax'` from
`flax.linen`; the parameter trees are identical.

The benchmark architecture of `bench/dcgan_throughput.py` is
`bench_models()`: G dense -> 7x7x128, ReLU, convT -> 14x14x64, ReLU,
convT -> 28x28x1, tanh; D conv -> 14x14x64, lReLU, conv -> 7x7x128, lReLU,
dense -> 1; no normalisation.

Class-conditional (`--conditional`, `gan_jax.models.conditioning`): G
reads (z, y), appends a class embedding to z and, with batch norm, uses
conditional batch norm (a gain and bias per class); D reads (x, y) and puts
a projection or auxiliary-classifier head on its flattened last features.

Registered as model `dcgan`: square images of a size in SIZES, widths
`--g_features` / `--d_features`, `--g_batch_norm`, `--d_spectral_norm`,
`--conditional`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import layers as fast_layers
from gan_jax import models
from gan_jax.models import conditioning
from gan_jax.models import precision
from gan_jax.models.precision import as_float32

SIZES = (16, 28, 32, 64)
LAYERS = ('fast', 'flax')


def num_upsamplings(size: int) -> int:
  """n with size / 2^n the starting resolution (4 for powers of two, 7 for 28)."""
  if size not in SIZES:
    raise ValueError(f'dcgan supports image sizes {", ".join(map(str, SIZES))}; '
                     f'got {size}')
  n = 0
  while size % 2 ** (n + 1) == 0 and size // 2 ** (n + 1) >= 4:
    n += 1
  return n


def conv_classes(layers: str):
  """(Conv, ConvTranspose) for `layers` in LAYERS."""
  if layers == 'fast':
    return fast_layers.Conv, fast_layers.ConvTranspose
  if layers == 'flax':
    return nn.Conv, nn.ConvTranspose
  raise ValueError(f'unknown layers {layers!r}; valid layers: '
                   f'{", ".join(LAYERS)}')


class Generator(nn.Module):
  """G(z): DCGAN generator to images of `out_shape` (H, W, C), values in (-1, 1).

  Attributes:
    out_shape: (H, W, C) with H = W in SIZES.
    features: channels before the last layer; the first has
      features 2^(n-1).
    batch_norm: batch norm after the dense layer and every hidden
      transposed convolution (then those layers have no bias).
    layers: 'fast' or 'flax' convolutions.
    dtype: computation dtype of every layer (e.g. jnp.bfloat16; parameters
      stay float32, and the images are returned as float32); None computes
      in the inputs' dtype.
    num_classes: K > 0: G((z, y)), class-conditional (module docstring).
  """

  out_shape: Sequence[int]
  features: int = 64
  batch_norm: bool = False
  layers: str = 'fast'
  dtype: Optional[Any] = None
  num_classes: int = 0

  @nn.compact
  def __call__(self, z_BxZ: jax.Array, train: bool = True) -> jax.Array:
    z_BxZ, y = conditioning.split(z_BxZ)
    if y is not None:
      z_BxZ = conditioning.embed_join(z_BxZ, y, self.num_classes, self.dtype)
    h_out, w_out, c_out = self.out_shape
    if h_out != w_out:
      raise ValueError(f'dcgan needs square images, got {tuple(self.out_shape)}')
    n = num_upsamplings(h_out)
    _, conv_t = conv_classes(self.layers)
    s0 = h_out // 2 ** n
    c = self.features * 2 ** (n - 1)

    def norm_relu(h):
      if self.batch_norm:
        h = conditioning.batch_norm(y, self.num_classes, train,
                                    self.dtype)(h)
      return nn.relu(h)

    h = nn.Dense(s0 * s0 * c, use_bias=not self.batch_norm,
                 dtype=self.dtype)(z_BxZ)
    h = norm_relu(h.reshape(z_BxZ.shape[0], s0, s0, c))
    for _ in range(n - 1):
      c //= 2
      h = conv_t(c, (4, 4), (2, 2), 'SAME', use_bias=not self.batch_norm,
                 dtype=self.dtype)(h)
      h = norm_relu(h)
    out = jnp.tanh(conv_t(c_out, (4, 4), (2, 2), 'SAME', dtype=self.dtype)(h))
    return as_float32(out, self.dtype)


class Discriminator(nn.Module):
  """D(x): DCGAN discriminator, one raw output per image, shape (B,).

  Attributes:
    features: channels of the first convolution, doubling at each.
    spectral_norm: spectrally normalise every layer (convolutions and dense).
    layers: 'fast' or 'flax' convolutions.
    dtype: computation dtype of every layer (parameters stay float32, and
      the outputs are returned as float32); None computes in the inputs'
      dtype.
    conditional, num_classes: the head of a class-conditional D((x, y))
      ('projection' or 'acgan', `conditioning.d_head`) and K.
  """

  features: int = 64
  spectral_norm: bool = False
  layers: str = 'fast'
  dtype: Optional[Any] = None
  conditional: str = 'none'
  num_classes: int = 0

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array, train: bool = True) -> jax.Array:
    x_BxHxWxC, y = conditioning.split(x_BxHxWxC)
    n = num_upsamplings(x_BxHxWxC.shape[1])
    conv, _ = conv_classes(self.layers)
    sn = lambda layer: fast_layers.spectral_norm(layer, self.spectral_norm)
    h = x_BxHxWxC
    for i in range(n):
      h = sn(conv(self.features * 2 ** i, (4, 4), (2, 2), 'SAME',
                  dtype=self.dtype))(h, train)
      h = nn.leaky_relu(h, 0.2)
    h = h.reshape(h.shape[0], -1)
    out = sn(nn.Dense(1, dtype=self.dtype))(h, train)[..., 0]
    if y is None:
      return as_float32(out, self.dtype)
    out = conditioning.d_head(out, h, y, self.conditional, self.num_classes,
                              self.dtype, self.spectral_norm, train)
    return conditioning.as_float32(out, self.dtype)


def bench_models(layers: str = 'fast', dtype: Optional[Any] = None
                 ) -> tuple[Generator, Discriminator]:
  """The benchmark pair: 28x28x1, 64 base features, no normalisation."""
  return (Generator(out_shape=(28, 28, 1), features=64, layers=layers,
                    dtype=dtype),
          Discriminator(features=64, layers=layers, dtype=dtype))


def build(config, data) -> tuple[Generator, Discriminator]:
  """The DCGAN pair for `config` on images of shape `data.shape`."""
  dtype = precision.compute_dtype(config.compute_dtype)
  return (Generator(out_shape=tuple(data.shape),
                    batch_norm=config.g_batch_norm, dtype=dtype,
                    **models.feature_width(config.g_features),
                    **models.conditional_g(config)),
          Discriminator(spectral_norm=config.d_spectral_norm, dtype=dtype,
                        **models.feature_width(config.d_features),
                        **models.conditional_d(config)))


models.register(models.ModelSpec(
    name='dcgan', build=build,
    needs=f'square images of size {", ".join(map(str, SIZES))}',
    fits=lambda shape: len(shape) == 3 and shape[0] == shape[1]
    and shape[0] in SIZES,
    options=('g_batch_norm', 'd_spectral_norm'),
    conditional=conditioning.CONDITIONAL_FORMS))
