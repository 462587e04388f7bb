"""`--dataset=folder:PATH`: a directory of PNG or JPEG images.

Layout: either image files directly in PATH (no labels, num_classes 0), or
one subfolder per class holding its images (labels 0..K-1 in the sorted
order of the subfolder names, num_classes K; a folder with both is refused).
Files ending in .png, .jpg or .jpeg (any case) are read, in sorted order;
other files are ignored.

Each image becomes `--image_size` x `--image_size` pixels: its central
square crop (side min(H, W)) resized bilinearly (antialiased when
shrinking), as uint8. Channels: the first file (in sorted order) decides;
a greyscale image (PIL modes 1, L, LA, I, I;16, F) gives 1 channel, any
other (RGB, RGBA, P, CMYK, ...) 3 (RGB; alpha is dropped). Every other file
must agree: mixed greyscale and colour files are refused, naming a file of
each. A set whose uint8 pixels fit in 1 GiB is read once into device memory
(`InMemoryImages`, with its labels); a larger one, or any with
`--stream_data`, is read from the files chunk by chunk (`StreamingImages`).

Errors are one line (exit status 2, nothing written): a missing folder or
one without images when the config is validated; a file that cannot be
decoded, or of the other channel count, when the set is read, before
training starts.

Metrics: a folder set has no reference split yet (no extractor features of
its images are prepared), so in-training evaluation and `gan_jax.evaluate`
refuse it with one line.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Optional

import jax.numpy as jnp
import numpy as np
from PIL import Image

from gan_jax.config_fields import ConfigError

PREFIX = 'folder:'
EXTENSIONS = ('.png', '.jpg', '.jpeg')
GREY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'F')
MAX_DEVICE_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class Listing:
  """The image files of a folder set, their labels and class names."""
  files: tuple[str, ...]
  labels: Optional[np.ndarray]
  classes: tuple[str, ...]
  channels: int


def _images_in(directory: str) -> list[str]:
  return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                if f.lower().endswith(EXTENSIONS)
                and os.path.isfile(os.path.join(directory, f)))


def _channels(path: str) -> int:
  try:
    with Image.open(path) as image:
      mode = image.mode
  except (OSError, ValueError) as e:
    raise ConfigError(f'{path} is not a readable image ({type(e).__name__}: '
                      f'{str(e).splitlines()[0] if str(e) else ""})') from None
  return 1 if mode in GREY_MODES else 3


@functools.lru_cache(maxsize=16)
def listing(path: str) -> Listing:
  """The files of folder set `path`; ConfigError for a missing folder, one
  without images, or one with both images and class subfolders."""
  name = f'--dataset={PREFIX}{path}'
  if not path:
    raise ConfigError(f'{name} must name a directory of images')
  if not os.path.isdir(path):
    raise ConfigError(f'{name}: {path} is not a directory')
  top = _images_in(path)
  classes = tuple(sorted(d for d in os.listdir(path)
                         if os.path.isdir(os.path.join(path, d))))
  if top and classes:
    raise ConfigError(f'{name}: {path} holds both images and subfolders; '
                      'use images only, or one subfolder per class')
  if classes:
    per_class = [_images_in(os.path.join(path, c)) for c in classes]
    empty = [c for c, files in zip(classes, per_class) if not files]
    if empty:
      raise ConfigError(f'{name}: class folder {empty[0]} holds no '
                        f'{"/".join(EXTENSIONS)} images')
    files = tuple(f for fs in per_class for f in fs)
    labels = np.concatenate([np.full(len(fs), k, np.int32)
                             for k, fs in enumerate(per_class)])
  else:
    if not top:
      raise ConfigError(f'{name}: {path} holds no {"/".join(EXTENSIONS)} '
                        'images')
    files, labels = tuple(top), None
  return Listing(files, labels, classes, _channels(files[0]))


def read_image(path: str, size: int, channels: int) -> np.ndarray:
  """One file as a (size, size, channels) uint8 image: central square crop,
  bilinear resize; ValueError (one line) for an unreadable file or one of
  the other channel count."""
  try:
    with Image.open(path) as image:
      image.load()
      mode = image.mode
      got = 1 if mode in GREY_MODES else 3
      if got != channels:
        raise ValueError(f'{path} has {got} channel(s) ({mode}) but the set '
                         f'has {channels} (from its first file); mixed '
                         'greyscale and colour images are not supported')
      image = image.convert('L' if channels == 1 else 'RGB')
      w, h = image.size
      side = min(w, h)
      left, top = (w - side) // 2, (h - side) // 2
      image = image.crop((left, top, left + side, top + side)).resize(
          (size, size), Image.Resampling.BILINEAR)
      pixels = np.asarray(image, np.uint8)
  except OSError as e:
    raise ValueError(f'{path} is not a readable image ({type(e).__name__}: '
                     f'{str(e).splitlines()[0] if str(e) else ""})') from None
  return pixels.reshape(size, size, channels)


class _Files:
  """The files as a random-access source of `{'image': path}` records."""

  def __init__(self, files):
    self._files = files

  def __len__(self):
    return len(self._files)

  def __getitem__(self, i):
    return {'image': self._files[int(i)]}


def load(path: str, size: int, stream: bool = False,
         max_device_bytes: int = MAX_DEVICE_BYTES):
  """Folder set `path` at `size`: `InMemoryImages` (with labels) when it fits
  in `max_device_bytes` and not `stream`, else `StreamingImages`."""
  from gan_jax.data import images  # pylint: disable=g-import-not-at-top
  found = listing(path)
  name = PREFIX + path
  shape = (size, size, found.channels)
  nbytes = len(found.files) * size * size * found.channels
  if stream or nbytes > max_device_bytes:
    return images.StreamingImages(
        name=name, source=_Files(found.files), shape=shape,
        preprocess=lambda p: read_image(p, size, found.channels))
  pixels = np.stack([read_image(f, size, found.channels)
                     for f in found.files])
  return images.InMemoryImages(name=name, images=jnp.asarray(pixels),
                               labels=found.labels)


def spec(path: str, image_size: int):
  """The `DatasetSpec` of `folder:PATH` at `image_size` (ConfigError for a
  folder that cannot be a set)."""
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  found = listing(path)
  return data_lib.DatasetSpec(
      name=PREFIX + path,
      shape=(image_size, image_size, found.channels),
      build=lambda config: load(path, config.image_size, config.stream_data),
      num_classes=len(found.classes), reference_splits=(),
      streamable=True)
