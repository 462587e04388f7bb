"""Data sets by name.

Each data set module registers its sets with a `DatasetSpec`: one sample's
shape (known without loading, so a config is checked before anything is
read), the builder, and what evaluation needs to know of the set (its
feature extractor, labels, reference splits, whether it is a mixture with
modes). A builder takes the resolved `Config` and returns a data object with
`.name`, `.shape` and `.sample(key, n)`, a pure function that draws a batch
on the device so that it can run inside the jitted training scan (or a
`StreamingImages`, whose batches come from the host).

    ring8, grid25, mix1d        toy Gaussian mixtures (gan_jax.data.toy)
    digits                      scikit-learn's 8x8 digits at 16x16, offline
                                (gan_jax.data.images)
    mnist, fashion_mnist,       TFDS through tfds.data_source
    cifar10, celeb_a            (gan_jax.data.tfds_sets; --data_dir: a
                                 prepared TFDS directory; held on the device
                                 when they fit in 1 GiB, else, or with
                                 --stream_data, streamed)

A new data set is one module that ends with

    data.register(data.DatasetSpec(
        name='my_set', shape=(2,), build=lambda config: MySet()))

and is imported before the config is validated.
"""

from __future__ import annotations

import collections.abc
import dataclasses
from typing import Any, Callable, Optional

import numpy as np

from gan_jax import registry

# split -> (samples float32, labels int32 or None)
ReferenceLoader = Callable[[str], tuple[np.ndarray, Optional[np.ndarray]]]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A registered data set and what gan_jax needs to know of it unloaded.

  Attributes:
    name: the `--dataset` value.
    shape: one sample's shape: (d,) for flat data, (H, W, C) for images.
    build: `config -> data` (see the module docstring); always called with a
      `Config`.
    feature_extractor: the `gan_jax.features` extractor its samples are
      compared in (FID, KID, precision/recall) when none is named; by
      default 'identity' for flat samples, 'inception_v3' for images.
    num_classes: classes of its labels, 0 when it has none (for
      class-conditional models; a mixture's label is its mode).
    reference_splits: the splits metrics can compare generated samples
      against, e.g. ('train', 'test').
    load_reference: `split -> (samples, labels or None)`, samples float32
      in the layout and range the models see; None: the one split 'train'
      is draws from the built data set with a fixed key
      (`gan_jax.metrics.reference`).
    has_modes: the built data is a mixture with `.means` (K, d), `.std` and,
      for 1-D data, `.density(x)`; the final evaluation reports its mode
      coverage.
    streamable: `build` honours `--stream_data` (reads batches from the host
      one chunk at a time).
  """

  name: str
  shape: tuple[int, ...]
  build: Callable[[Any], Any]
  feature_extractor: str = ''
  num_classes: int = 0
  reference_splits: tuple[str, ...] = ('train',)
  load_reference: Optional[ReferenceLoader] = None
  has_modes: bool = False
  streamable: bool = False

  def __post_init__(self):
    object.__setattr__(self, 'shape', tuple(self.shape))
    if not self.feature_extractor:
      object.__setattr__(self, 'feature_extractor',
                         'identity' if len(self.shape) == 1
                         else 'inception_v3')
    if self.load_reference is None and self.reference_splits not in (
        (), ('train',)):
      raise ValueError(f'data set {self.name}: reference splits '
                       f'{", ".join(self.reference_splits)} need '
                       'load_reference (without it the one split is train)')

  @property
  def is_image(self) -> bool:
    """Whether its samples are images (H, W, C)."""
    return len(self.shape) == 3


_REGISTRY: registry.Registry[DatasetSpec] = registry.Registry('dataset')

# register(spec) -> spec; names() -> sorted names; get(name) -> DatasetSpec,
# unknown names listing the valid ones.
register = _REGISTRY.register
names = _REGISTRY.names
get = _REGISTRY.get


def is_image(name: str) -> bool:
  """Whether data set `name` holds images (H, W, C)."""
  return get(name).is_image


def build(config):
  """The data set named by `config.dataset`: the part `subset_indices`
  keeps of it when `config.train_fraction` < 1."""
  data = get(config.dataset).build(config)
  fraction = getattr(config, 'train_fraction', 1.0)
  if fraction >= 1.0:
    return data
  return data.subset(subset_indices(
      len(data), fraction, getattr(data, 'labels', None),
      getattr(config, 'subset_seed', 0)))


def subset_indices(n: int, fraction: float,
                   labels: Optional[np.ndarray] = None, seed: int = 0
                   ) -> np.ndarray:
  """The sorted indices of a fixed `fraction` of n samples
  (`--train_fraction`, for data-efficiency experiments).

  Drawn by numpy's `default_rng(seed)` (`--subset_seed`, not the run's
  `--seed`, so every run and seed of an experiment trains on the same
  images). With `labels`, stratified: of each class c with n_c samples,
  max(1, round(fraction n_c)) are kept, so the classes keep their
  proportions; without, max(1, round(fraction n)) of all.
  """
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f'fraction must lie in (0, 1], got {fraction}')
  rng = np.random.default_rng(seed)
  keep = lambda count: max(1, int(round(fraction * count)))
  if labels is None:
    return np.sort(rng.permutation(n)[:keep(n)])
  labels = np.asarray(labels)
  if labels.shape != (n,):
    raise ValueError(f'labels of shape {labels.shape} for {n} samples')
  chosen = [rng.permutation(np.flatnonzero(labels == c))[
      :keep(np.sum(labels == c))] for c in np.unique(labels)]
  return np.sort(np.concatenate(chosen))


class _Shapes(collections.abc.Mapping):
  """name -> one sample's shape, read from the registrations."""

  def __getitem__(self, name: str) -> tuple[int, ...]:
    return get(name).shape

  def __iter__(self):
    return iter(names())

  def __len__(self) -> int:
    return len(_REGISTRY.entries)


# Every registered set's sample shape without loading it (`get(name).shape`).
SHAPES = _Shapes()

# The built-in modules register their sets on import; they import this
# package, so they come after the registry is defined.
# pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.data import images  # noqa: E402
from gan_jax.data import tfds_sets  # noqa: E402
from gan_jax.data import toy  # noqa: E402

# The sets that honour --stream_data (`get(name).streamable`).
TFDS_NAMES = tuple(name for name in names() if get(name).streamable)
