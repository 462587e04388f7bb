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
    folder:PATH                 a directory of PNG/JPEG images, subfolders
                                as classes (gan_jax.data.folder)

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
  """Whether data set `name` holds images (H, W, C); a `folder:` set does."""
  return name.startswith(FOLDER_PREFIX) or get(name).is_image


# `folder:PATH` names a directory of images (gan_jax.data.folder), sized by
# the config's --image_size: the one data set named by a pattern, not a
# registration. `spec(config)` and `choices()` are where it is recognised.
FOLDER_PREFIX = 'folder:'


class _Choices(list):
  """The valid `--dataset` values: the registered names, shown with
  `folder:PATH`, and containing every `folder:` name."""

  def __contains__(self, name) -> bool:
    return (isinstance(name, str) and name.startswith(FOLDER_PREFIX)
            ) or list.__contains__(self, name)


def choices() -> list[str]:
  """`--dataset`'s choices: the registered sets and `folder:PATH`."""
  return _Choices(names() + [FOLDER_PREFIX + 'PATH'])


def spec(config) -> DatasetSpec:
  """The `DatasetSpec` of `config.dataset`: the registered one, or that of a
  `folder:PATH` set at `config.image_size` (a one-line ConfigError for a
  folder that cannot be one)."""
  if config.dataset.startswith(FOLDER_PREFIX):
    from gan_jax.data import folder  # pylint: disable=g-import-not-at-top
    return folder.spec(config.dataset[len(FOLDER_PREFIX):], config.image_size)
  return get(config.dataset)


def build(config):
  """The data set named by `config.dataset`: the part `subset_indices`
  keeps of it when `config.train_fraction` < 1."""
  data = spec(config).build(config)
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
