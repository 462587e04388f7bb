"""The CIFAR-10 ResNet GAN of Miyato et al. 2018 (SN-GAN, Appendix B.4).

G (32x32x3): z (128) -> dense -> 4x4x256 -> 3 up-sampling residual blocks of
256 channels (4 -> 8 -> 16 -> 32) -> BN, ReLU -> 3x3 convolution to 3
channels -> tanh.

    G block:  h = conv3x3(ReLU(BN(conv3x3(up(ReLU(BN(x)))))))
              shortcut = conv1x1(up(x));        out = h + shortcut

D: 4 residual blocks of 128 channels with spectral norm on every layer:
an optimised first block and a second block that both down-sample
(32 -> 16 -> 8), two blocks without down-sampling, then ReLU, global sum
pooling over space and a spectrally normalised dense layer to one output.

    optimised block: h = avgpool(conv3x3(ReLU(conv3x3(x))))
                     shortcut = conv1x1(avgpool(x))
    D block:         h = conv3x3(ReLU(conv3x3(ReLU(x)))), then avgpool if
                     down-sampling
                     shortcut = avgpool(conv1x1(x)) if down-sampling (or the
                     channels change), else x

up is 2x nearest-neighbour up-sampling and avgpool 2x2 average pooling.
Initialisation as in the authors' code: Glorot uniform with gain sqrt(2) for
the 3x3 convolutions of the residual paths, gain 1 for shortcuts, dense
layers and G's last convolution.

Parameters ('params'): G 4,276,739, D 1,053,825 (`tests/image_models_test.py`
counts them layer by layer). Batch-norm statistics and spectral-norm vectors
live in 'batch_stats'. Every module takes `dtype`, the computation dtype
(jnp.bfloat16, say; None computes in the inputs' dtype): parameters stay
float32 and G's images and D's outputs are returned as float32.

Class-conditional (`--conditional`, Miyato & Koyama 2018): every batch
norm of G is conditional (a gain and bias per class, `gan_jax.models.
conditioning.ConditionalBatchNorm`) on G((z, y)); D((x, y)) puts a
projection (or auxiliary-classifier) head on the sum-pooled features.

Registered as model `sngan_resnet`: 32x32 images, widths `--g_features` /
`--d_features`, `--conditional`.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import layers as fast_layers
from gan_jax import models
from gan_jax.models import conditioning
from gan_jax.models import precision
from gan_jax.models.precision import as_float32

RESIDUAL_INIT = nn.initializers.variance_scaling(2.0, 'fan_avg', 'uniform')
GLOROT = nn.initializers.xavier_uniform()


def upsample(x: jax.Array) -> jax.Array:
  """2x nearest-neighbour up-sampling of NHWC x."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def avgpool(x: jax.Array) -> jax.Array:
  """2x2 average pooling with stride 2 of NHWC x."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _conv(features: int, size: int, init: Callable, implementation: str,
          dtype: Optional[Any] = None):
  return fast_layers.Conv(features, (size, size), 1, 'SAME',
                          kernel_init=init, implementation=implementation,
                          dtype=dtype)


class _ResidualBlock(nn.Module):
  """Fields every residual block has: its width, the convolution
  implementation (`gan_jax.layers`) and the computation dtype."""

  features: int
  implementation: str = 'auto'
  dtype: Optional[Any] = None


class GeneratorBlock(_ResidualBlock):
  """Up-sampling residual block with batch norm (conditional on labels
  `y`, K = `num_classes`, when given)."""

  num_classes: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool,
               y: Optional[jax.Array] = None) -> jax.Array:
    bn = lambda: conditioning.batch_norm(y, self.num_classes, train,
                                         self.dtype)
    conv = lambda f, size, init: _conv(f, size, init, self.implementation,
                                       self.dtype)
    h = upsample(nn.relu(bn()(x)))
    h = conv(self.features, 3, RESIDUAL_INIT)(h)
    h = nn.relu(bn()(h))
    h = conv(self.features, 3, RESIDUAL_INIT)(h)
    shortcut = conv(self.features, 1, GLOROT)(upsample(x))
    return h + shortcut


class Generator(nn.Module):
  """G(z): 4x4x256 -> three up-sampling blocks -> 32x32x3 in (-1, 1)."""

  features: int = 256
  channels: int = 3
  implementation: str = 'auto'
  dtype: Optional[Any] = None
  num_classes: int = 0

  @nn.compact
  def __call__(self, z_BxZ: jax.Array, train: bool = True) -> jax.Array:
    z_BxZ, y = conditioning.split(z_BxZ)
    h = nn.Dense(4 * 4 * self.features, kernel_init=GLOROT,
                 dtype=self.dtype)(z_BxZ)
    h = h.reshape(z_BxZ.shape[0], 4, 4, self.features)
    for _ in range(3):
      block = GeneratorBlock(self.features, self.implementation, self.dtype,
                             self.num_classes)
      h = block(h, train) if y is None else block(h, train, y)
    h = nn.relu(conditioning.batch_norm(y, self.num_classes, train,
                                        self.dtype)(h))
    out = jnp.tanh(_conv(self.channels, 3, GLOROT, self.implementation,
                         self.dtype)(h))
    return as_float32(out, self.dtype)


class OptimizedBlock(_ResidualBlock):
  """D's first block: conv, ReLU, conv, avgpool; shortcut avgpool, conv1x1."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    sn_conv = lambda size, init: fast_layers.spectral_norm(
        _conv(self.features, size, init, self.implementation, self.dtype))
    h = sn_conv(3, RESIDUAL_INIT)(x, train)
    h = sn_conv(3, RESIDUAL_INIT)(nn.relu(h), train)
    shortcut = sn_conv(1, GLOROT)(avgpool(x), train)
    return avgpool(h) + shortcut


class DiscriminatorBlock(nn.Module):
  """D's residual block: ReLU, conv, ReLU, conv, [avgpool]; learned shortcut
  when it down-samples or changes the channels."""

  features: int
  downsample: bool
  implementation: str = 'auto'
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    sn_conv = lambda size, init: fast_layers.spectral_norm(
        _conv(self.features, size, init, self.implementation, self.dtype))
    h = sn_conv(3, RESIDUAL_INIT)(nn.relu(x), train)
    h = sn_conv(3, RESIDUAL_INIT)(nn.relu(h), train)
    shortcut = x
    if self.downsample or x.shape[-1] != self.features:
      shortcut = sn_conv(1, GLOROT)(x, train)
    if self.downsample:
      h, shortcut = avgpool(h), avgpool(shortcut)
    return h + shortcut


class Discriminator(nn.Module):
  """D(x): spectrally normalised ResNet, one raw output per image, shape (B,)."""

  features: int = 128
  implementation: str = 'auto'
  dtype: Optional[Any] = None
  conditional: str = 'none'
  num_classes: int = 0

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array, train: bool = True) -> jax.Array:
    x_BxHxWxC, y = conditioning.split(x_BxHxWxC)
    f, impl, dtype = self.features, self.implementation, self.dtype
    h = OptimizedBlock(f, impl, dtype)(x_BxHxWxC, train)
    h = DiscriminatorBlock(f, True, impl, dtype)(h, train)
    h = DiscriminatorBlock(f, False, impl, dtype)(h, train)
    h = DiscriminatorBlock(f, False, impl, dtype)(h, train)
    h = jnp.sum(nn.relu(h), axis=(1, 2))
    dense = fast_layers.spectral_norm(nn.Dense(1, kernel_init=GLOROT,
                                               dtype=dtype))
    if y is None:
      return as_float32(dense(h, train)[..., 0], dtype)
    out = conditioning.d_head(dense(h, train)[..., 0], h, y,
                              self.conditional, self.num_classes, dtype,
                              spectral_norm=True, train=train)
    return conditioning.as_float32(out, dtype)


def build(config, data) -> tuple[Generator, Discriminator]:
  """The SN-GAN ResNet pair for `config` on 32x32 images of `data.shape`."""
  dtype = precision.compute_dtype(config.compute_dtype)
  return (Generator(channels=data.shape[2], dtype=dtype,
                    **models.feature_width(config.g_features),
                    **models.conditional_g(config)),
          Discriminator(dtype=dtype, **models.feature_width(config.d_features),
                        **models.conditional_d(config)))


models.register(models.ModelSpec(
    name='sngan_resnet', build=build, needs='32x32 images',
    fits=lambda shape: len(shape) == 3 and shape[:2] == (32, 32),
    conditional=conditioning.CONDITIONAL_FORMS))
