"""Reference images by (data set, split), and their cached feature statistics.

A generated-sample metric is only comparable with another when both used the
same reference images, the same feature extractor and the same weights, so
the cache key is all of them:

    (data set, split, number of reference images, extractor, weights SHA-256)

and each cache file records them beside the features (float32, (n, d)), their
mean and covariance (float64). Files live in `cache_dir`, by default
`$GAN_JAX_CACHE/reference` or `~/.cache/gan_jax/reference`, and are written
atomically, so concurrent evaluations never read a partial file.

Splits are what each data set's registration declares
(`gan_jax.data.DatasetSpec.reference_splits`, read by its `load_reference`):
  digits  scikit-learn's 1,797 8x8 digits as gan_jax.data.images.digits
          gives them to the GANs (v / 8 - 1, bilinear to 16x16); a fixed
          permutation (numpy default_rng(0)) puts 360 images in 'test' and
          1,437 in 'train'; 'all' is both.
  mnist, fashion_mnist, cifar10, celeb_a
          TFDS 'train' and 'test', [-1, 1], preprocessed as for training;
          the set must already be prepared (nothing is downloaded here).
  a set registered without a loader (the toys ring8, grid25, mix1d): 'train'
          is 10,000 draws from the data set with the fixed key
          PRNGKey(REFERENCE_SEED), built as the run's config builds it
          (ring8 and grid25 in its --toy_layout); the images' hash in the
          cache key keeps layouts apart.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional

import numpy as np

from gan_jax import data as data_lib
from gan_jax import fileio
from gan_jax.data import images as images_lib

REFERENCE_SEED = 0x5EF
SAMPLED_REFERENCE_SIZE = 10_000

# The fixed digits split, as gan_jax.data.images defines it.
digits_split_indices = images_lib.digits_split_indices


class ReferenceError(ValueError):
  """Unknown data set or split, or reference data that cannot be loaded."""


def splits(dataset: str) -> tuple[str, ...]:
  """The reference splits of `dataset`, as its registration declares them."""
  valid = [name for name in data_lib.names()
           if data_lib.get(name).reference_splits]
  if dataset not in valid:
    raise ReferenceError(f'no reference images for dataset {dataset!r}; '
                         f'valid: {", ".join(valid)}')
  return data_lib.get(dataset).reference_splits


def _check_split(dataset: str, split: str) -> None:
  if split not in splits(dataset):
    raise ReferenceError(f'unknown {dataset} split {split!r}; valid: '
                         f'{", ".join(splits(dataset))}')


def load_with_labels(dataset: str, split: str, config=None
                     ) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """The reference samples of (dataset, split), float32, and their labels
  (int32, or None for a set without labels or drawn from the data set).
  A set drawn from its builder is built from `config` (a run's `Config` of
  this data set, for its toy layout), by default from the defaults."""
  _check_split(dataset, split)
  spec = data_lib.get(dataset)
  if spec.load_reference is None:
    import jax  # pylint: disable=g-import-not-at-top
    from gan_jax.config import Config  # pylint: disable=g-import-not-at-top
    if config is None or config.dataset != dataset:
      config = Config(dataset=dataset)
    data = spec.build(config)
    return np.asarray(data.sample(jax.random.PRNGKey(REFERENCE_SEED),
                                  SAMPLED_REFERENCE_SIZE), np.float32), None
  try:
    samples, labels = spec.load_reference(split)
  except (ImportError, FileNotFoundError) as e:
    raise ReferenceError(str(e)) from None
  return np.asarray(samples, np.float32), labels


def load(dataset: str, split: str, config=None) -> np.ndarray:
  """The reference samples of (dataset, split) as a float32 array (drawn
  sets built from `config`, as in `load_with_labels`)."""
  return load_with_labels(dataset, split, config)[0]


def digits(split: str = 'train', size: int = images_lib.DIGITS_SIZE
           ) -> tuple[np.ndarray, np.ndarray]:
  """Digits images (n, size, size, 1) float32 in [-1, 1] and labels (n,)."""
  _check_split('digits', split)
  return images_lib.digits_split(split, size)


def mnist(split: str = 'train') -> tuple[np.ndarray, np.ndarray]:
  """MNIST images (n, 28, 28, 1) float32 in [-1, 1] and labels from TFDS."""
  return load_with_labels('mnist', split)


def default_cache_dir() -> str:
  root = os.environ.get('GAN_JAX_CACHE') or os.path.join(
      os.path.expanduser('~'), '.cache', 'gan_jax')
  return os.path.join(root, 'reference')


def cache_key(dataset: str, split: str, extractor) -> str:
  return (f'{dataset}-{split}-{extractor.name}-'
          f'{extractor.weights_sha256[:16]}')


def statistics(dataset: str, split: str, extractor,
               cache_dir: str | None = None, config=None) -> dict:
  """Reference features and their statistics, from the cache or computed.

  Returns {'features' (n, d) float32, 'mu' (d,) float64, 'sigma' (d, d)
  float64, 'info': {dataset, split, num_reference, extractor,
  weights_sha256, images_sha256, sample_shape}, 'cached': bool}. `images_sha256` hashes the
  reference images themselves, so a changed loader never hits an old entry
  (nor another toy layout: drawn sets are built from `config`, as in
  `load_with_labels`).
  """
  from gan_jax.metrics import frechet  # pylint: disable=g-import-not-at-top
  images = load(dataset, split, config)
  images_sha = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
  cache_dir = cache_dir or default_cache_dir()
  path = os.path.join(cache_dir, f'{cache_key(dataset, split, extractor)}-'
                      f'{images_sha[:16]}.npz')
  info = {'dataset': dataset, 'split': split, 'num_reference': len(images),
          'extractor': extractor.name,
          'weights_sha256': extractor.weights_sha256,
          'images_sha256': images_sha,
          'sample_shape': list(images.shape[1:])}
  if os.path.exists(path):
    with np.load(path) as f:
      stored = json.loads(str(f['info']))
      if stored == info:
        return {'features': f['features'], 'mu': f['mu'], 'sigma': f['sigma'],
                'info': info, 'cached': True}
  features, _ = extractor.extract(images)
  mu, sigma = frechet.feature_statistics(features)
  os.makedirs(cache_dir, exist_ok=True)
  with fileio.atomic_path(path) as tmp:
    np.savez(tmp, features=features, mu=mu, sigma=sigma,
             info=np.array(json.dumps(info, sort_keys=True)))
  return {'features': features, 'mu': mu, 'sigma': sigma, 'info': info,
          'cached': False}
