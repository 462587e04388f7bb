"""Class-conditional GANs: labels beside samples and latents.

With `--conditional` other than 'none', a labelled data set's real batch is
the pair (x, y), images or points with their int32 class labels, and G's
input is the pair (z, y_fake), latents with the classes G is asked for.
Both are plain pytrees, so the training scan, vmapped seeds and checkpoints
carry them unchanged; an unconditional run keeps bare arrays, bit for bit.

    real batch   (x_BxD..., y_B)      drawn with the same indices from
                                      (seed, step) inside the scan
    G's input    (z_BxZ, y_fake_B)    y_fake ~ uniform over the K classes,
                                      or the data's class frequencies
                                      (`--fake_labels=data`)
    G            (z, y) -> x
    D            (x, y) -> out_B               projection (Miyato & Koyama
                                               2018)
                 (x, y) -> (out_B, logits_BxK) acgan (Odena et al. 2017)

`split` and `join` are the one place the pair convention is spelt out:
every consumer (the game, the gradient penalties, the models) reads a
batch through them, so a bare array is the unconditional case.

ACGAN's auxiliary classifier adds a cross-entropy on D's class logits,

    L_D += w [CE(c(x), y) + CE(c(G(z, y')), y')],   L_G += w CE(c(G(z, y')), y'),

w = `--acgan_weight` (`class_loss`).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array

CONDITIONINGS = ('none', 'projection', 'acgan')
FAKE_LABELS = ('uniform', 'data')


def split(batch: Any) -> tuple[Any, Optional[Array]]:
  """(x, y) of a labelled pair, (batch, None) of a bare array."""
  if isinstance(batch, tuple):
    x, y = batch
    return x, y
  return batch, None


def join(x: Any, y: Optional[Array]) -> Any:
  """The pair (x, y), or x itself when `y` is None (unconditional)."""
  return x if y is None else (x, y)


def labels_of(batch: Any) -> Optional[Array]:
  """The labels of a labelled pair, None for a bare array."""
  return split(batch)[1]


def sample_labels(key: Array, n: int, num_classes: int,
                  probs: Optional[np.ndarray] = None) -> Array:
  """n class labels (int32): uniform over `num_classes`, or drawn with
  probabilities `probs` (K,) when given. Pure and scan-safe."""
  if probs is None:
    return jax.random.randint(key, (n,), 0, num_classes, jnp.int32)
  return jax.random.choice(key, num_classes, (n,),
                           p=jnp.asarray(probs, jnp.float32)).astype(jnp.int32)


def class_frequencies(data, num_classes: int) -> np.ndarray:
  """The data set's class frequencies (K,), float64 summing to 1: a
  mixture's weights, or the label counts of a labelled set."""
  weights = getattr(data, 'weights', None)
  if weights is not None:
    return np.asarray(weights, np.float64)
  labels = getattr(data, 'labels', None)
  if labels is None:
    raise ValueError(f'data set {data.name} holds no labels')
  counts = np.bincount(np.asarray(labels), minlength=num_classes)
  return counts / counts.sum()


def eval_labels(n: int, num_classes: int) -> np.ndarray:
  """The labels of the n evaluation samples: 0, 1, ..., K - 1, 0, 1, ...
  (every class equally often, up to one)."""
  return (np.arange(n) % num_classes).astype(np.int32)


def class_loss(logits_BxK: Array, labels_B: Array) -> Array:
  """Mean softmax cross-entropy of class logits against integer labels:
  -1/B sum_i log softmax(logits_i)[y_i]."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
      logits_BxK.astype(jnp.float32), labels_B))
