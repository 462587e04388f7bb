"""Reference images by (data set, split), and their cached feature statistics.

A generated-sample metric is only comparable with another when both used the
same reference images, the same feature extractor and the same weights, so
the cache key is all of them:

    (data set, split, number of reference images, extractor, weights SHA-256)

and each cache file records them beside the features (float32, (n, d)), their
mean and covariance (float64). Files live in `cache_dir`, by default
`$GAN_JAX_CACHE/reference` or `~/.cache/gan_jax/reference`, and are written
atomically, so concurrent evaluations never read a partial file.

Splits:
  digits  scikit-learn's 1,797 8x8 digits as gan_jax.data.images.digits
          gives them to the GANs (v / 8 - 1, bilinear to 16x16); a fixed
          permutation (numpy default_rng(0)) puts
          360 images in 'test' and 1,437 in 'train'; 'all' is both.
  mnist   TFDS 'train' (60,000) and 'test' (10,000), [-1, 1], 28x28x1; needs
          tensorflow_datasets with MNIST already prepared (nothing is
          downloaded here).
  toy data (ring8, grid25, mix1d): 'train' is 10,000 draws from the data
          distribution with the fixed key PRNGKey(REFERENCE_SEED).
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from gan_jax import fileio

DIGITS_SIZE = 16
DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0
REFERENCE_SEED = 0x5EF
TOY_REFERENCE_SIZE = 10_000
TOY_DATASETS = ('grid25', 'mix1d', 'ring8')


class ReferenceError(ValueError):
  """Unknown data set or split, or reference data that cannot be loaded."""


def splits(dataset: str) -> tuple[str, ...]:
  """The reference splits of `dataset`."""
  if dataset == 'digits':
    return ('train', 'test', 'all')
  if dataset == 'mnist':
    return ('train', 'test')
  if dataset in TOY_DATASETS:
    return ('train',)
  raise ReferenceError(f'no reference images for dataset {dataset!r}; valid: '
                       f'{", ".join(sorted(("digits", "mnist") + TOY_DATASETS))}')


def digits_split_indices() -> dict[str, np.ndarray]:
  """Indices into load_digits() of the fixed 'train' and 'test' splits."""
  order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(1797)
  return {'test': np.sort(order[:DIGITS_TEST_SIZE]),
          'train': np.sort(order[DIGITS_TEST_SIZE:]),
          'all': np.arange(1797)}


def digits(split: str = 'train',
           size: int = DIGITS_SIZE) -> tuple[np.ndarray, np.ndarray]:
  """Digits images (n, size, size, 1) float32 in [-1, 1] and labels (n,)."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  from gan_jax.data import images as images_lib  # pylint: disable=g-import-not-at-top
  if split not in splits('digits'):
    raise ReferenceError(f'unknown digits split {split!r}; valid: '
                         f'{", ".join(splits("digits"))}')
  idx = digits_split_indices()[split]
  # The pixels the GANs train on (gan_jax.data.images.digits), in
  # load_digits order, so the reference is exactly the training data.
  if size == 8:
    images = datasets.load_digits().images.astype(np.float32)[..., None] / 8 - 1
  else:
    images = np.asarray(images_lib.digits(size).images, np.float32)
  return images[idx], datasets.load_digits().target[idx].astype(np.int32)


def mnist(split: str = 'train') -> tuple[np.ndarray, np.ndarray]:
  """MNIST images (n, 28, 28, 1) float32 in [-1, 1] and labels from TFDS."""
  if split not in splits('mnist'):
    raise ReferenceError(f'unknown mnist split {split!r}; valid: '
                         f'{", ".join(splits("mnist"))}')
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ReferenceError('mnist needs tensorflow_datasets (pip install '
                         'tensorflow-datasets) with mnist prepared in its '
                         'data_dir') from None
  try:
    source = tfds.data_source('mnist', split=split, download=False)
  except Exception as e:  # pylint: disable=broad-except
    raise ReferenceError(f'cannot open TFDS mnist/{split} without downloading:'
                         f' {str(e).splitlines()[0] if str(e) else e!r}') from None
  items = [source[i] for i in range(len(source))]
  images = np.stack([it['image'] for it in items]).astype(np.float32)
  return images / 127.5 - 1.0, np.array([it['label'] for it in items], np.int32)


def load(dataset: str, split: str) -> np.ndarray:
  """The reference samples of (dataset, split) as a float32 array."""
  if split not in splits(dataset):
    raise ReferenceError(f'unknown {dataset} split {split!r}; valid: '
                         f'{", ".join(splits(dataset))}')
  if dataset == 'digits':
    return digits(split)[0]
  if dataset == 'mnist':
    return mnist(split)[0]
  import jax  # pylint: disable=g-import-not-at-top
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from gan_jax.config import Config  # pylint: disable=g-import-not-at-top
  data = data_lib.build(Config(dataset=dataset))
  return np.asarray(data.sample(jax.random.PRNGKey(REFERENCE_SEED),
                                TOY_REFERENCE_SIZE), np.float32)


def default_cache_dir() -> str:
  root = os.environ.get('GAN_JAX_CACHE') or os.path.join(
      os.path.expanduser('~'), '.cache', 'gan_jax')
  return os.path.join(root, 'reference')


def cache_key(dataset: str, split: str, extractor) -> str:
  return (f'{dataset}-{split}-{extractor.name}-'
          f'{extractor.weights_sha256[:16]}')


def statistics(dataset: str, split: str, extractor,
               cache_dir: str | None = None) -> dict:
  """Reference features and their statistics, from the cache or computed.

  Returns {'features' (n, d) float32, 'mu' (d,) float64, 'sigma' (d, d)
  float64, 'info': {dataset, split, num_reference, extractor,
  weights_sha256, images_sha256, sample_shape}, 'cached': bool}. `images_sha256` hashes the
  reference images themselves, so a changed loader never hits an old entry.
  """
  from gan_jax.metrics import frechet  # pylint: disable=g-import-not-at-top
  images = load(dataset, split)
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
