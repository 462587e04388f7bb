"""A small CNN classifier whose penultimate layer is a feature extractor.

The classifier-based Fréchet distance replaces Inception pool3 features with
the penultimate activations of a classifier trained on the data set itself,
the usual choice for MNIST-like data where ImageNet features say little.

Architecture (NHWC input in [-1, 1], H = W = 16 for digits, 28 for MNIST):

    conv3x3(32) relu  conv3x3(32) relu  avgpool2
    conv3x3(64) relu  conv3x3(64) relu  avgpool2
    flatten  dense(128) relu  ->  features (128-d)
    dense(num_classes)        ->  logits

`train` fits it with Adam on softmax cross-entropy, with random shifts of up
to one pixel as augmentation; `gan_jax.train_classifier` is its command line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import fileio

FEATURE_DIM = 128


class Classifier(nn.Module):
  """CNN: images (B, H, W, C) -> (features (B, 128), logits (B, classes))."""

  num_classes: int = 10

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = x_BxHxWxC
    for width in (32, 64):
      h = nn.relu(nn.Conv(width, (3, 3), padding='SAME')(h))
      h = nn.relu(nn.Conv(width, (3, 3), padding='SAME')(h))
      h = nn.avg_pool(h, (2, 2), strides=(2, 2))
    h = h.reshape(h.shape[0], -1)
    features = nn.relu(nn.Dense(FEATURE_DIM)(h))
    return features, nn.Dense(self.num_classes)(features)


@dataclasses.dataclass(frozen=True)
class TrainResult:
  params: dict
  test_accuracy: float
  train_accuracy: float
  steps: int
  seconds: float


def _shift(key, images):
  """Each image shifted by a random (dy, dx) in {-1, 0, 1}^2; the pixels
  shifted in take the background value -1."""
  n, h, w, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)),
                   constant_values=-1.0)
  offsets = jax.random.randint(key, (n, 2), 0, 3)
  return jax.vmap(lambda img, o: jax.lax.dynamic_slice(
      img, (o[0], o[1], 0), (h, w, img.shape[-1])))(padded, offsets)


def accuracy(apply: Callable, params, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 512) -> float:
  """Fraction of `images` whose arg-max logit is their label."""
  correct = 0
  fn = jax.jit(lambda p, x: jnp.argmax(apply(p, x)[1], axis=-1))
  for i in range(0, len(images), batch_size):
    pred = np.asarray(fn(params, images[i:i + batch_size]))
    correct += int(np.sum(pred == labels[i:i + batch_size]))
  return correct / len(images)


def train(train_images: np.ndarray, train_labels: np.ndarray,
          test_images: np.ndarray, test_labels: np.ndarray, *,
          num_classes: int = 10, steps: int = 600, batch_size: int = 64,
          learning_rate: float = 1e-3, seed: int = 0,
          log: Callable[[str], None] | None = None) -> TrainResult:
  """Adam on softmax cross-entropy; returns the parameters and accuracies."""
  model = Classifier(num_classes=num_classes)
  key = jax.random.PRNGKey(seed)
  params = model.init(key, jnp.zeros((1, *train_images.shape[1:])))['params']
  opt = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
  opt_state = opt.init(params)
  x_all = jnp.asarray(train_images, jnp.float32)
  y_all = jnp.asarray(train_labels, jnp.int32)

  def loss_fn(p, x, y):
    logits = model.apply({'params': p}, x)[1]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  @jax.jit
  def step(p, s, k):
    k_idx, k_shift = jax.random.split(k)
    idx = jax.random.randint(k_idx, (batch_size,), 0, x_all.shape[0])
    x = _shift(k_shift, x_all[idx])
    loss, g = jax.value_and_grad(loss_fn)(p, x, y_all[idx])
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s, loss

  start = time.perf_counter()
  for i in range(steps):
    params, opt_state, loss = step(params, opt_state,
                                   jax.random.fold_in(key, i + 1))
    if log is not None and (i + 1) % 500 == 0:
      log(f'step {i + 1}/{steps}: loss {float(loss):.4f}')
  seconds = time.perf_counter() - start
  apply = lambda p, x: model.apply({'params': p}, x)
  return TrainResult(
      params=jax.tree.map(np.asarray, params),
      test_accuracy=accuracy(apply, params, test_images, test_labels),
      train_accuracy=accuracy(apply, params, train_images, train_labels),
      steps=steps, seconds=seconds)


def save(path: str, params, metadata: dict) -> dict:
  """Writes params (msgpack) and metadata + the file's SHA-256 (JSON beside it).

  Returns the metadata as written.
  """
  from flax import serialization  # pylint: disable=g-import-not-at-top
  from gan_jax import features  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  blob = serialization.msgpack_serialize(
      jax.tree.map(lambda a: np.asarray(a, np.float32), params))
  fileio.atomic_write(path, blob)
  metadata = {**metadata, 'sha256': features.sha256_file(path),
              'file': os.path.basename(path)}
  fileio.atomic_write(os.path.splitext(path)[0] + '.json',
                      json.dumps(metadata, indent=2, sort_keys=True) + '\n')
  return metadata


def load_extractor(name: str, path: str):
  """The `Extractor` of classifier weights at `path`, hash-checked against
  the SHA-256 gan_jax pins for the weights it ships
  (`features.SHIPPED_SHA256`), and against the one in the JSON beside them."""
  from flax import serialization  # pylint: disable=g-import-not-at-top
  from gan_jax import features  # pylint: disable=g-import-not-at-top
  dataset = name.split('_')[0]
  if not os.path.exists(path):
    raise features.FeatureError(
        f'{name}: no weights at {path}; train them with python -m '
        f'gan_jax.train_classifier --dataset={dataset}')
  meta = features.read_metadata(path)
  if not meta:
    raise features.FeatureError(
        f'{name}: {os.path.splitext(path)[0]}.json (image size, classes, '
        'SHA-256) is missing beside the weights')
  digest = features.verify_weights(name, path, meta.get('sha256', ''))
  with open(path, 'rb') as f:
    params = serialization.msgpack_restore(f.read())
  model = Classifier(num_classes=meta['num_classes'])
  size = tuple(meta['image_size'][:2])
  resize = features._resize  # pylint: disable=protected-access

  jitted = jax.jit(lambda p, x: model.apply({'params': p}, resize(x, size)))
  apply = lambda images: jitted(params, images)

  return features.Extractor(name=name, weights_sha256=digest,
                            feature_dim=FEATURE_DIM,
                            num_classes=meta['num_classes'], apply=apply,
                            input_size=size, batch_size=500)
