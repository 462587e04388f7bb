"""TFDS image sets, read through `tfds.data_source` without TensorFlow.

`mnist`, `fashion_mnist` (28x28x1), `cifar10` (32x32x3) and `celeb_a`
(218x178x3, centre-cropped to 140x140 and resized to 64x64 as in DCGAN-style
CelebA set-ups) are read with `tfds.data_source(name, split, data_dir)` from
a prepared ArrayRecord directory; nothing is downloaded, and a set that is
not prepared stops with the command that prepares it. A set that fits in
`max_device_bytes` (1 GiB) as uint8 is held on the device
(`InMemoryImages`); a larger one, or any with `--stream_data`, is read chunk
by chunk (`StreamingImages`). Each is registered with its TFDS 'train' and
'test' splits as metric references (the images in [-1, 1] as the GANs see
them, and the labels where the set has them) and, for MNIST, the
`mnist_classifier` feature extractor.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from gan_jax import data as data_lib
from gan_jax.data import images

CELEB_A_CROP = 140
CELEB_A_SIZE = 64
REFERENCE_SPLITS = ('train', 'test')


class TfdsSet(NamedTuple):
  """shape: one image after preprocessing; crop: whether it needs the CelebA
  crop; num_classes: 0 without labels; feature_extractor: '' for the
  registry's default (inception_v3)."""
  shape: tuple[int, int, int]
  crop: bool
  num_classes: int
  feature_extractor: str = ''


SETS: dict[str, TfdsSet] = {
    'mnist': TfdsSet((28, 28, 1), False, 10, 'mnist_classifier'),
    'fashion_mnist': TfdsSet((28, 28, 1), False, 10),
    'cifar10': TfdsSet((32, 32, 3), False, 10),
    'celeb_a': TfdsSet((CELEB_A_SIZE, CELEB_A_SIZE, 3), True, 0),
}


def celeb_a_preprocess(image_HxWxC: np.ndarray) -> np.ndarray:
  """CelebA uint8 image -> centre 140x140 crop -> 64x64, rounded back to uint8."""
  cropped = images.center_crop(image_HxWxC, CELEB_A_CROP).astype(np.float32)
  resized = images.resize(cropped, CELEB_A_SIZE)
  return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def prepare_command(name: str, data_dir: Optional[str]) -> str:
  """The shell command that prepares TFDS set `name` (needs internet)."""
  target = f", data_dir='{data_dir}'" if data_dir else ''
  return ('python -c "import tensorflow_datasets as tfds; '
          f"tfds.builder('{name}'{target}, file_format='array_record')"
          '.download_and_prepare()"')


class Records(Sequence):
  """A prepared split's records, whose read failures are I/O errors.

  ArrayRecord reports a damaged shard (truncated, or bytes changed) as a
  RuntimeError when a record is read, which a command would take for a bug
  in gan_jax. Here it is an OSError (EIO) naming the split's directory, so
  the commands report it as unreadable data: `error: PATH: CAUSE (EIO)`,
  exit status 74 (`gan_jax.cli`). OSErrors pass through as they are.
  """

  def __init__(self, records: Sequence[Any], name: str, split: str,
               where: str):
    self._records, self._name, self._split = records, name, split
    self._where = where

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int) -> Any:
    try:
      return self._records[index]
    except OSError:
      raise
    except (RuntimeError, ValueError) as e:
      cause = str(e).strip().splitlines()[0] if str(e).strip() else ''
      raise OSError(
          errno.EIO, f'record {index} of TFDS {self._name!r} split '
          f'{self._split!r} is unreadable ({type(e).__name__}: {cause}); the '
          'prepared files are damaged: prepare the set again',
          self._where) from e


def source(name: str, split: str = 'train',
           data_dir: Optional[str] = None) -> Sequence[Any]:
  """The random-access `tfds.data_source` of a prepared set (no download),
  as `Records`.

  Raises:
    KeyError: `name` is not one of `SETS` (the message lists them).
    ImportError: tensorflow-datasets is not installed (one line).
    FileNotFoundError: the set is not prepared in `data_dir`; the message is
      the command that prepares it.
  Reading a record of a damaged shard raises OSError (EIO), see `Records`.
  """
  if name not in SETS:
    raise KeyError(f'unknown TFDS image set {name!r}; valid sets: '
                   f'{", ".join(sorted(SETS))}')
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(f'data set {name} needs tensorflow-datasets: '
                      "pip install 'tensorflow-datasets>=4.9'") from None
  try:
    records = tfds.data_source(name, split=split, data_dir=data_dir,
                               download=False)
  except Exception as e:  # pylint: disable=broad-except
    where = data_dir or 'the default TFDS directory (~/tensorflow_datasets)'
    raise FileNotFoundError(
        f'TFDS data set {name!r} (split {split!r}) is not prepared in {where} '
        f'({type(e).__name__}); prepare it on a machine with internet: '
        f'{prepare_command(name, data_dir)}') from None
  info = getattr(records, 'dataset_info', None)
  where = getattr(info, 'data_dir', None) or os.path.join(
      data_dir or os.path.join('~', 'tensorflow_datasets'), name)
  return Records(records, name, split, str(where))


def preprocess_fn(name: str) -> Callable[[np.ndarray], np.ndarray]:
  """Per-record uint8 image -> uint8 image of shape `SETS[name].shape`."""
  shape, crop = SETS[name].shape, SETS[name].crop

  def preprocess(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
      image = image[..., None]
    if crop:
      image = celeb_a_preprocess(image)
    if image.shape != shape:
      raise ValueError(f'{name} image has shape {image.shape}, expected {shape}')
    return image.astype(np.uint8)

  return preprocess


def _in_memory(name: str, records: Sequence[Any], n: int,
               with_labels: bool = True) -> images.InMemoryImages:
  preprocess = preprocess_fn(name)
  items = [records[i] for i in range(n)]  # each record read once
  pixels = np.stack([preprocess(item['image']) for item in items])
  labels = (jnp.asarray(np.array([item['label'] for item in items], np.int32))
            if SETS[name].num_classes and with_labels else None)
  return images.InMemoryImages(name=name, images=jnp.asarray(pixels),
                               labels=labels)


def _streaming(name: str, records: Sequence[Any]) -> images.StreamingImages:
  return images.StreamingImages(name=name, source=records,
                                shape=SETS[name].shape,
                                preprocess=preprocess_fn(name))


def in_memory(name: str, split: str = 'train', data_dir: Optional[str] = None,
              limit: Optional[int] = None) -> images.InMemoryImages:
  """A whole TFDS image set (or its first `limit` records) on the device, uint8."""
  records = source(name, split, data_dir)
  return _in_memory(name, records,
                    len(records) if limit is None else min(limit, len(records)))


def streaming(name: str, split: str = 'train',
              data_dir: Optional[str] = None) -> images.StreamingImages:
  """A TFDS image set read from its prepared directory chunk by chunk."""
  return _streaming(name, source(name, split, data_dir))


def in_memory_bytes(name: str, num_examples: int) -> int:
  """Bytes of a set held as uint8 on the device (to choose in-memory vs streaming)."""
  return num_examples * int(np.prod(SETS[name].shape))


def load(name: str, split: str = 'train', data_dir: Optional[str] = None,
         max_device_bytes: int = 1 << 30, with_labels: bool = False):
  """`InMemoryImages` when the uint8 set fits in `max_device_bytes`, else
  `StreamingImages`. `with_labels` (a conditional run) holds the labels
  beside the images on the device."""
  records = source(name, split, data_dir)
  if in_memory_bytes(name, len(records)) <= max_device_bytes:
    return _in_memory(name, records, len(records), with_labels)
  return _streaming(name, records)


def split_with_labels(name: str, split: str = 'train',
                      data_dir: Optional[str] = None
                      ) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """Every image of `split` as the GANs see it ((n, H, W, C) float32 in
  [-1, 1]) and its labels (n,) int32, None for a set without labels."""
  records = source(name, split, data_dir)
  items = [records[i] for i in range(len(records))]
  preprocess = preprocess_fn(name)
  pixels = images.to_unit_range(np.stack([preprocess(it['image'])
                                          for it in items]))
  labels = (np.array([it['label'] for it in items], np.int32)
            if SETS[name].num_classes else None)
  return pixels, labels


def _register(name: str) -> None:
  def build(config):
    return load(name, data_dir=config.data_dir or None,
                # Labels: for conditional runs, and to stratify a
                # --train_fraction subset by class.
                with_labels=(config.conditional != 'none'
                             or config.train_fraction < 1),
                **({'max_device_bytes': 0} if config.stream_data else {}))

  data_lib.register(data_lib.DatasetSpec(
      name=name, shape=SETS[name].shape, build=build,
      feature_extractor=SETS[name].feature_extractor,
      num_classes=SETS[name].num_classes, reference_splits=REFERENCE_SPLITS,
      load_reference=lambda split: split_with_labels(name, split),
      streamable=True))


for _name in SETS:
  _register(_name)
