"""The FID Inception network (pool3 features, 1008-way logits) in Flax Linen.

This is the Inception-v3 graph of TensorFlow's 2015-12-05 release that the
original FID (Heusel et al. 2017, TTUR code) and Inception Score (Salimans et
al. 2016) were computed with, in the layout of pytorch-fid's
`fid_inception_v3`: torchvision's Inception3 with 1008 classes, no auxiliary
head, and the FID patches:

  * Mixed_5b-d (A), Mixed_6b-e (C), Mixed_7b (E_1): the branch average pool
    does not count padded zeros (TensorFlow's AVG pooling with SAME padding);
  * Mixed_7c (E_2): that branch pool is a 3x3 max pool.

Every BasicConv2d is conv (no bias) -> BatchNorm (inference, eps = 1e-3) ->
ReLU. Input: images (N, H, W, C) in [-1, 1]; C = 1 is repeated to RGB; images
are resized to 299x299 bilinearly without antialiasing (pytorch-fid's
`F.interpolate(..., mode='bilinear', align_corners=False)`). Output: pool3
(N, 2048), the global average of Mixed_7c, and logits (N, 1008) = fc(pool3).

Weights are never downloaded. Convert pytorch-fid's
`pt_inception-2015-12-05-6726825d.pth` once with
`tools/convert_inception_weights.py`; the result is looked up at
`$GAN_JAX_INCEPTION_WEIGHTS`, else `~/.cache/gan_jax/weights/
pt_inception-2015-12-05.msgpack`. Parameter names are the PyTorch module
names: `Mixed_5b/branch1x1/conv/kernel` (HWIO) and
`Mixed_5b/branch1x1/bn/{scale,bias,mean,var}`; `fc/kernel` (2048, 1008).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

INPUT_SIZE = (299, 299)
NUM_CLASSES = 1008
FEATURE_DIM = 2048
BN_EPS = 1e-3
WEIGHTS_ENV = 'GAN_JAX_INCEPTION_WEIGHTS'
DEFAULT_WEIGHTS = os.path.join('~', '.cache', 'gan_jax', 'weights',
                               'pt_inception-2015-12-05.msgpack')


class BatchNorm(nn.Module):
  """Inference batch norm: (x - mean) / sqrt(var + eps) * scale + bias."""

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (c,))
    bias = self.param('bias', nn.initializers.zeros, (c,))
    mean = self.param('mean', nn.initializers.zeros, (c,))
    var = self.param('var', nn.initializers.ones, (c,))
    return (x - mean) * (scale * jax.lax.rsqrt(var + BN_EPS)) + bias


class BasicConv(nn.Module):
  """torchvision's BasicConv2d: conv (no bias), batch norm, ReLU."""

  features: int
  kernel: Sequence[int]
  stride: int = 1
  padding: Sequence[int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    ph, pw = self.padding
    x = nn.Conv(self.features, tuple(self.kernel), strides=self.stride,
                padding=((ph, ph), (pw, pw)), use_bias=False, name='conv')(x)
    return nn.relu(BatchNorm(name='bn')(x))


def _avg_pool_same(x):
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max_pool(x, stride=2, pad=0):
  return nn.max_pool(x, (3, 3), strides=(stride, stride),
                     padding=((pad, pad), (pad, pad)))


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, (1, 1), name='branch1x1')(x)
    b5 = BasicConv(48, (1, 1), name='branch5x5_1')(x)
    b5 = BasicConv(64, (5, 5), padding=(2, 2), name='branch5x5_2')(b5)
    b3 = BasicConv(64, (1, 1), name='branch3x3dbl_1')(x)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(b3)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name='branch3x3dbl_3')(b3)
    bp = BasicConv(self.pool_features, (1, 1),
                   name='branch_pool')(_avg_pool_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, (3, 3), stride=2, name='branch3x3')(x)
    bd = BasicConv(64, (1, 1), name='branch3x3dbl_1')(x)
    bd = BasicConv(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = BasicConv(96, (3, 3), stride=2, name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max_pool(x)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = BasicConv(192, (1, 1), name='branch1x1')(x)
    b7 = BasicConv(c7, (1, 1), name='branch7x7_1')(x)
    b7 = BasicConv(c7, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
    bd = BasicConv(c7, (1, 1), name='branch7x7dbl_1')(x)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
    bd = BasicConv(c7, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
    bd = BasicConv(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
    bp = BasicConv(192, (1, 1), name='branch_pool')(_avg_pool_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(192, (1, 1), name='branch3x3_1')(x)
    b3 = BasicConv(320, (3, 3), stride=2, name='branch3x3_2')(b3)
    b7 = BasicConv(192, (1, 1), name='branch7x7x3_1')(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = BasicConv(192, (3, 3), stride=2, name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max_pool(x)], axis=-1)


class InceptionE(nn.Module):
  """E_1 (average pool without padded zeros) or E_2 (max pool)."""

  max_pool: bool

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(320, (1, 1), name='branch1x1')(x)
    b3 = BasicConv(384, (1, 1), name='branch3x3_1')(x)
    b3 = jnp.concatenate([
        BasicConv(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
        BasicConv(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3)], -1)
    bd = BasicConv(448, (1, 1), name='branch3x3dbl_1')(x)
    bd = BasicConv(384, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate([
        BasicConv(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(bd),
        BasicConv(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(bd)], -1)
    pooled = _max_pool(x, 1, 1) if self.max_pool else _avg_pool_same(x)
    bp = BasicConv(192, (1, 1), name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


def preprocess(images_BxHxWxC: jax.Array) -> jax.Array:
  """[-1, 1] images of any size and 1 or 3 channels -> (B, 299, 299, 3)."""
  x = images_BxHxWxC
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if x.shape[1:3] != INPUT_SIZE:
    x = jax.image.resize(x, (x.shape[0], *INPUT_SIZE, 3), 'bilinear',
                         antialias=False)
  return x


class FIDInceptionV3(nn.Module):
  """images (B, H, W, C) in [-1, 1] -> (pool3 (B, 2048), logits (B, 1008))."""

  @nn.compact
  def __call__(self, images_BxHxWxC):
    x = preprocess(images_BxHxWxC)
    x = BasicConv(32, (3, 3), stride=2, name='Conv2d_1a_3x3')(x)
    x = BasicConv(32, (3, 3), name='Conv2d_2a_3x3')(x)
    x = BasicConv(64, (3, 3), padding=(1, 1), name='Conv2d_2b_3x3')(x)
    x = _max_pool(x)
    x = BasicConv(80, (1, 1), name='Conv2d_3b_1x1')(x)
    x = BasicConv(192, (3, 3), name='Conv2d_4a_3x3')(x)
    x = _max_pool(x)
    x = InceptionA(32, name='Mixed_5b')(x)
    x = InceptionA(64, name='Mixed_5c')(x)
    x = InceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)
    x = InceptionC(128, name='Mixed_6b')(x)
    x = InceptionC(160, name='Mixed_6c')(x)
    x = InceptionC(160, name='Mixed_6d')(x)
    x = InceptionC(192, name='Mixed_6e')(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE(max_pool=False, name='Mixed_7b')(x)
    x = InceptionE(max_pool=True, name='Mixed_7c')(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    return pool3, nn.Dense(NUM_CLASSES, name='fc')(pool3)


def abstract_params() -> dict:
  """The parameter tree's shapes and dtypes, without computing anything."""
  shapes = jax.eval_shape(
      lambda: FIDInceptionV3().init(jax.random.PRNGKey(0),
                                    jnp.zeros((1, *INPUT_SIZE, 3))))
  return shapes['params']


def default_weights_path() -> str:
  return os.path.expanduser(os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS)


def load_params(path: str) -> dict:
  """Restores and shape-checks converted weights (msgpack) from `path`."""
  from flax import serialization  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from gan_jax import features  # pylint: disable=g-import-not-at-top
  with open(path, 'rb') as f:
    params = serialization.msgpack_restore(f.read())
  want = traverse_util.flatten_dict(abstract_params(), sep='/')
  have = traverse_util.flatten_dict(params, sep='/')
  missing = sorted(set(want) - set(have))
  extra = sorted(set(have) - set(want))
  if missing or extra:
    raise features.FeatureError(
        f'inception_v3: {path} does not hold the FID Inception parameters '
        f'({len(missing)} missing, e.g. {missing[:2]}; {len(extra)} '
        f'unexpected, e.g. {extra[:2]})')
  for key, spec in want.items():
    if have[key].shape != spec.shape:
      raise features.FeatureError(
          f'inception_v3: {path}: {key} has shape {have[key].shape}, '
          f'expected {spec.shape}')
  return params


def load_extractor(weights_path: Optional[str] = None, batch_size: int = 64):
  """The `inception_v3` Extractor with weights from `weights_path` (or the
  default location), hash-checked against the JSON beside them if present."""
  from gan_jax import features  # pylint: disable=g-import-not-at-top
  path = os.path.expanduser(weights_path or default_weights_path())
  if not os.path.exists(path):
    raise features.FeatureError(
        f'inception_v3: no weights at {path}; convert pytorch-fid\'s '
        'pt_inception-2015-12-05-6726825d.pth with python '
        'tools/convert_inception_weights.py SOURCE.pth --out=' + path +
        f' (or set ${WEIGHTS_ENV})')
  digest = features.sha256_file(path)
  meta = features.read_metadata(path)
  if meta and meta.get('sha256') != digest:
    raise features.FeatureError(
        f'inception_v3: {path} has SHA-256 {digest}, but its metadata records '
        f'{meta.get("sha256")}; the weights were changed or corrupted')
  params = jax.tree.map(jnp.asarray, load_params(path))
  model = FIDInceptionV3()
  jitted = jax.jit(lambda p, x: model.apply({'params': p}, x))
  return features.Extractor(
      name='inception_v3', weights_sha256=digest, feature_dim=FEATURE_DIM,
      num_classes=NUM_CLASSES, apply=lambda images: jitted(params, images),
      input_size=INPUT_SIZE, batch_size=batch_size)


def random_params(seed: int = 0) -> dict:
  """Randomly initialised parameters (for tests and benchmarks), as numpy."""
  variables = jax.jit(lambda k: FIDInceptionV3().init(
      k, jnp.zeros((1, *INPUT_SIZE, 3))))(jax.random.PRNGKey(seed))
  return jax.tree.map(np.asarray, variables['params'])
