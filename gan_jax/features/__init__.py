"""Feature extractors by name, for FID, KID, IS and precision/recall.

An `Extractor` maps images (N, H, W, C) float32 in [-1, 1] (the layout and
range of gan_jax's image data and generators) to features (N, d) and, where
the network is a classifier, logits (N, K). Extraction is jitted and runs in
fixed-size batches (the last one padded), so any N compiles once.

    name               features                    logits   weights
    digits_classifier  128-d, penultimate layer    10       gan_jax/features/weights/digits_classifier.msgpack (in the repo)
    mnist_classifier   128-d, penultimate layer    10       gan_jax/features/weights/mnist_classifier.msgpack (python -m gan_jax.train_classifier --dataset=mnist)
    inception_v3       2048-d pool3 (FID network)  1008     a converted local file, see inception_v3.py
    identity           the samples, flattened      -        none (for low-dimensional data)

Every extractor carries `weights_sha256`, the SHA-256 of its weights file,
which every metric result records beside the extractor's name. Nothing is
ever downloaded.

Weights are checked when loaded: a weights file that gan_jax ships (in
`WEIGHTS_DIR`) against the SHA-256 pinned here, in `SHIPPED_SHA256`, so a
changed or damaged copy cannot pass with a JSON rewritten beside it; any
weights file against the SHA-256 in the JSON beside it. A mismatch is a
`FeatureError` naming the file, the expected and the found hash (the
commands print it as one line and exit with status 2).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable, Optional

import numpy as np

WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), 'weights')

# The SHA-256 of every weights file shipped in `WEIGHTS_DIR`, by file name.
SHIPPED_SHA256 = {
    'digits_classifier.msgpack':
        '91b698e55da486e51182cc16944af3c751b577e96549e1c89d74e13c8d38c7bd',
}


class FeatureError(ValueError):
  """Unknown extractor, or weights that are missing or do not match."""


def sha256_file(path: str) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def pinned_sha256(path: str) -> Optional[str]:
  """The SHA-256 pinned for `path` if it is a weights file gan_jax ships
  (`SHIPPED_SHA256`, in `WEIGHTS_DIR`), else None."""
  shipped = os.path.realpath(os.path.join(WEIGHTS_DIR, os.path.basename(path)))
  if os.path.realpath(path) != shipped:
    return None
  return SHIPPED_SHA256.get(os.path.basename(path))


def verify_weights(name: str, path: str, recorded: Optional[str]) -> str:
  """The SHA-256 of the weights file `path` of extractor `name`, checked
  against the pinned one (`pinned_sha256`) and against `recorded` (the one
  in its metadata); FeatureError naming the file, the expected and the found
  hash if either differs."""
  found = sha256_file(path)
  for expected, source in ((pinned_sha256(path), 'gan_jax pins'),
                           (recorded, 'its metadata records')):
    if expected is not None and found != expected:
      raise FeatureError(
          f'{name}: {path} has SHA-256 {found}, but {source} {expected}; '
          'the weights were changed or corrupted')
  return found


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A named, jitted feature extractor with the hash of its weights.

  Attributes:
    name: registry name.
    weights_sha256: SHA-256 of the weights file ('none' without weights).
    feature_dim: d.
    num_classes: K, or 0 when there are no logits.
    apply: jitted (images_BxHxWxC) -> (features_BxD, logits_BxK or None).
    input_size: (H, W) the network expects; other sizes are resized to it
      (bilinear, no antialiasing, as F.interpolate(align_corners=False)).
      None: any shape is accepted as it is.
    batch_size: images per jitted call.
  """

  name: str
  weights_sha256: str
  feature_dim: int
  num_classes: int
  apply: Callable
  input_size: Optional[tuple[int, int]] = None
  batch_size: int = 256

  def extract(self, images: np.ndarray,
              batch_size: int | None = None) -> tuple[np.ndarray,
                                                      Optional[np.ndarray]]:
    """Features (N, d) float32 and logits (N, K) float32 (or None)."""
    images = np.asarray(images, np.float32)
    if len(images) == 0:
      raise FeatureError(f'{self.name}: no images to extract features from')
    bs = min(batch_size or self.batch_size, len(images))
    feats, logits = [], []
    for i in range(0, len(images), bs):
      batch = images[i:i + bs]
      n = len(batch)
      if n < bs:
        batch = np.concatenate([batch, np.repeat(batch[-1:], bs - n, 0)])
      f, l = self.apply(batch)
      feats.append(np.asarray(f)[:n])
      if l is not None:
        logits.append(np.asarray(l)[:n])
    return (np.concatenate(feats).astype(np.float32),
            np.concatenate(logits).astype(np.float32) if logits else None)


def _resize(images, size):
  import jax  # pylint: disable=g-import-not-at-top
  if size is None or images.shape[1:3] == tuple(size):
    return images
  return jax.image.resize(images, (images.shape[0], *size, images.shape[3]),
                          'bilinear', antialias=False)


def _identity(weights_path: Optional[str]) -> Extractor:
  import jax  # pylint: disable=g-import-not-at-top
  if weights_path:
    raise FeatureError('extractor identity has no weights; drop the weights '
                       'path')
  apply = jax.jit(lambda x: (x.reshape(x.shape[0], -1), None))
  return Extractor('identity', 'none', 0, 0, apply)


def _classifier(dataset: str) -> Callable[[Optional[str]], Extractor]:
  def build(weights_path: Optional[str]) -> Extractor:
    from gan_jax.features import classifier  # pylint: disable=g-import-not-at-top
    return classifier.load_extractor(
        f'{dataset}_classifier',
        weights_path or os.path.join(WEIGHTS_DIR,
                                     f'{dataset}_classifier.msgpack'))
  return build


def _inception(weights_path: Optional[str]) -> Extractor:
  from gan_jax.features import inception_v3  # pylint: disable=g-import-not-at-top
  return inception_v3.load_extractor(weights_path)


_REGISTRY: dict[str, Callable[[Optional[str]], Extractor]] = {
    'digits_classifier': _classifier('digits'),
    'mnist_classifier': _classifier('mnist'),
    'inception_v3': _inception,
    'identity': _identity,
}


def names() -> list[str]:
  """The registered extractor names, sorted."""
  return sorted(_REGISTRY)


def default_for(dataset: str) -> str:
  """The extractor `dataset` is evaluated with when none is named, as its
  registration declares (`gan_jax.data.DatasetSpec.feature_extractor`);
  inception_v3 for a name no data set is registered under."""
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  if dataset not in data_lib.names():
    return 'inception_v3'
  return data_lib.get(dataset).feature_extractor


def check_name(name: str) -> None:
  if name not in _REGISTRY:
    raise FeatureError(f'unknown feature extractor {name!r}; valid: '
                       f'{", ".join(names())}')


def get(name: str, weights_path: Optional[str] = None) -> Extractor:
  """The extractor `name`, its weights loaded and hash-checked."""
  check_name(name)
  return _REGISTRY[name](weights_path)


def read_metadata(weights_path: str) -> dict:
  """The JSON written next to a weights file (same stem, .json), or {}."""
  path = os.path.splitext(weights_path)[0] + '.json'
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)
