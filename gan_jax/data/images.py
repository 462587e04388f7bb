"""Image data: containers, scikit-learn's digits offline, streaming.

All images are NHWC float32 in [-1, 1] when they reach a model (uint8 pixels
p map to p / 127.5 - 1).

* `digits(size)`: scikit-learn's bundled 8x8 handwritten digits (1,797
  images, grey levels 0..16), bilinearly resized (or zero-padded, centred) to
  size x size, scaled to [-1, 1]. Needs no download: the offline default,
  registered as data set `digits` at 16x16 with 10 classes, the
  `digits_classifier` extractor and the fixed reference splits of
  `digits_split` (360 test images, 1,437 train, 'all' both).
* The TFDS sets (mnist, fashion_mnist, cifar10, celeb_a) are in
  `gan_jax.data.tfds_sets`, built from the pieces here.

Two data objects, both with `.name` and `.shape` (H, W, C):

* `InMemoryImages`: the whole set as one device array (uint8 when it came from
  uint8 pixels, so MNIST's 60,000 images take 47 MB); `.sample(key, n)` draws
  n uniform random indices on the device, a pure function that can run inside
  the jitted training scan.
* `StreamingImages`: for sets that do not fit in device memory. `.chunks(...)`
  yields one device array of shape (steps, B, H, W, C) per scan call, read and
  decoded by a background thread that keeps `prefetch` chunks ready. The
  batch of step t depends only on (seed, t), so a run resumed at any chunk
  boundary reads the same batches as an uninterrupted one.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import queue
import threading
from typing import Any, Callable, Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from gan_jax import data as data_lib

Array = jax.Array

DIGITS_SIZE = 16
DIGITS_COUNT = 1797
DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0
DIGITS_SPLITS = ('train', 'test', 'all')


def to_unit_range(pixels: np.ndarray) -> np.ndarray:
  """uint8 pixels p in [0, 255] -> p / 127.5 - 1 in [-1, 1], float32."""
  return np.asarray(pixels, np.float32) / 127.5 - 1.0


def resize(image_HxWxC: np.ndarray, size: int) -> np.ndarray:
  """Bilinear (antialiased when shrinking) resize of one float image, per channel."""
  channels = [
      np.asarray(Image.fromarray(image_HxWxC[..., c].astype(np.float32),
                                 mode='F').resize((size, size),
                                                  Image.Resampling.BILINEAR))
      for c in range(image_HxWxC.shape[-1])]
  return np.stack(channels, axis=-1)


def center_crop(image_HxWxC: np.ndarray, crop: int) -> np.ndarray:
  """The central crop x crop window (offsets floor((H - crop) / 2), ...)."""
  h, w = image_HxWxC.shape[:2]
  if h < crop or w < crop:
    raise ValueError(f'cannot crop {crop}x{crop} from a {h}x{w} image')
  top, left = (h - crop) // 2, (w - crop) // 2
  return image_HxWxC[top:top + crop, left:left + crop]


@dataclasses.dataclass(frozen=True, eq=False)
class InMemoryImages:
  """An image set held on the device; batches are drawn inside jitted code.

  Attributes:
    name: data set name.
    images: (N, H, W, C) device array, uint8 pixels or float32 in [-1, 1].
    labels: (N,) int32 class labels (a device or host array), None without
      labels.
  """

  name: str
  images: Array
  labels: Optional[Array] = None

  @property
  def shape(self) -> tuple[int, int, int]:
    """One image's shape (H, W, C)."""
    return tuple(self.images.shape[1:])

  def subset(self, indices: np.ndarray) -> 'InMemoryImages':
    """The images (and labels) at `indices`."""
    indices = np.asarray(indices)
    return dataclasses.replace(
        self, images=jnp.take(self.images, jnp.asarray(indices), axis=0),
        labels=None if self.labels is None else self.labels[indices])

  def __len__(self) -> int:
    return self.images.shape[0]

  def as_float(self, x: Array) -> Array:
    """Stored images -> float32 in [-1, 1]."""
    if x.dtype == jnp.uint8:
      return x.astype(jnp.float32) / 127.5 - 1.0
    return x.astype(jnp.float32)

  def sample(self, key: Array, n: int) -> Array:
    """n images drawn uniformly with replacement, (n, H, W, C) float32.

    Pure and jit/scan-safe: the indices come from `key`, the gather runs on
    the device. Inside `jax.jit` the closed-over `images` become a constant
    of the compiled program; for large sets pass them as an argument with
    `sample_from` instead.
    """
    return self.sample_from(self.images, key, n)

  def sample_from(self, images: Array, key: Array, n: int) -> Array:
    """`sample` with the image array passed in (e.g. as a jit argument)."""
    idx = jax.random.randint(key, (n,), 0, images.shape[0])
    return self.as_float(jnp.take(images, idx, axis=0))

  def sample_with_labels(self, key: Array, n: int) -> tuple[Array, Array]:
    """`sample(key, n)` and the labels (n,) int32 of the same indices."""
    if self.labels is None:
      raise ValueError(f'data set {self.name} was built without labels')
    idx = jax.random.randint(key, (n,), 0, self.images.shape[0])
    return (self.as_float(jnp.take(self.images, idx, axis=0)),
            jnp.take(self.labels, idx, axis=0))


def digits(size: int = DIGITS_SIZE, mode: str = 'resize') -> InMemoryImages:
  """scikit-learn's 8x8 digits as size x size x 1 images in [-1, 1], with
  their labels 0..9.

  Grey levels v in 0..16 map to v / 8 - 1. `mode='resize'` resizes
  bilinearly; `mode='pad'` centres the 8x8 image on a background of -1.
  """
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  if size < 8:
    raise ValueError(f'digits size must be at least 8, got {size}')
  bunch = load_digits()
  raw = bunch.images.astype(np.float32)  # (1797, 8, 8), 0..16
  if mode == 'resize':
    images = np.stack([resize(im[..., None], size) for im in raw])
  elif mode == 'pad':
    lo = (size - 8) // 2
    images = np.zeros((raw.shape[0], size, size, 1), np.float32)
    images[:, lo:lo + 8, lo:lo + 8, 0] = raw
  else:
    raise ValueError(f'unknown digits mode {mode!r}; valid modes: pad, resize')
  images = np.clip(images / 8.0 - 1.0, -1.0, 1.0).astype(np.float32)
  return InMemoryImages(name='digits', images=jnp.asarray(images),
                        labels=jnp.asarray(bunch.target.astype(np.int32)))


def digits_split_indices() -> dict[str, np.ndarray]:
  """Indices into load_digits() of the fixed splits: a permutation by
  numpy's default_rng(DIGITS_SPLIT_SEED) puts its first 360 in 'test', the
  other 1,437 in 'train'; 'all' is both."""
  order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(DIGITS_COUNT)
  return {'test': np.sort(order[:DIGITS_TEST_SIZE]),
          'train': np.sort(order[DIGITS_TEST_SIZE:]),
          'all': np.arange(DIGITS_COUNT)}


def digits_split(split: str = 'train', size: int = DIGITS_SIZE
                 ) -> tuple[np.ndarray, np.ndarray]:
  """The digits of `split` exactly as `digits(size)` gives them to the GANs
  ((n, size, size, 1) float32 in [-1, 1]; size 8: the raw v / 8 - 1), and
  their labels (n,) int32."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  if split not in DIGITS_SPLITS:
    raise ValueError(f'unknown digits split {split!r}; valid: '
                     f'{", ".join(DIGITS_SPLITS)}')
  idx = digits_split_indices()[split]
  raw = load_digits()
  if size == 8:
    images = raw.images.astype(np.float32)[..., None] / 8 - 1
  else:
    images = np.asarray(digits(size).images, np.float32)
  return images[idx], raw.target[idx].astype(np.int32)


def read_labels(source: Sequence[Any], indices: Sequence[int]) -> np.ndarray:
  """The 'label' of records `indices` of a data source, (n,) int32."""
  return np.array([source[int(i)]['label'] for i in indices], np.int32)


def read_images(source: Sequence[Any], indices: Sequence[int],
                preprocess: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
  """Records `indices` of a data source, preprocessed, stacked: (n, H, W, C) uint8."""
  return np.stack([preprocess(source[int(i)]['image']) for i in indices])


class Prefetcher:
  """Runs an iterator on a background thread, keeping up to `size` items ready.

  Iterating yields the items in order; an exception raised by the producer is
  re-raised on the consumer's side. `close()` stops the thread.
  """

  _DONE = object()

  def __init__(self, iterator: Iterator[Any], size: int = 2):
    if size < 1:
      raise ValueError(f'prefetch size must be at least 1, got {size}')
    self._queue: queue.Queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, args=(iterator,),
                                    daemon=True)
    self._thread.start()

  def _put(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _run(self, iterator):
    try:
      for item in iterator:
        if not self._put((item, None)):
          return
    except Exception as e:  # pylint: disable=broad-except
      self._put((None, e))
      return
    self._put((self._DONE, None))

  def __iter__(self):
    return self

  def __next__(self):
    item, error = self._queue.get()
    if error is not None:
      raise error
    if item is self._DONE:
      raise StopIteration
    return item

  def close(self) -> None:
    self._stop.set()
    self._thread.join(timeout=5)


class _Records(collections.abc.Sequence):
  """Records `indices` of a random-access source, as a source."""

  def __init__(self, source: Sequence[Any], indices: np.ndarray):
    self._source = source
    self._indices = np.asarray(indices)

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, i):
    return self._source[int(self._indices[i])]


@dataclasses.dataclass(frozen=True, eq=False)
class StreamingImages:
  """An image set read from a random-access source one chunk at a time.

  Attributes:
    name: data set name.
    source: random-access records (`len(source)`, `source[i]['image']`), e.g.
      a `tfds.data_source`.
    shape: one preprocessed image's shape (H, W, C).
    preprocess: record image -> uint8 image of `shape`.
  """

  name: str
  source: Sequence[Any]
  shape: tuple[int, int, int]
  preprocess: Callable[[np.ndarray], np.ndarray]

  def __len__(self) -> int:
    return len(self.source)

  def subset(self, indices: np.ndarray) -> 'StreamingImages':
    """The records at `indices` (read from the same source)."""
    return dataclasses.replace(self, source=_Records(self.source, indices))

  def indices(self, seed: int, step: int, batch_size: int) -> np.ndarray:
    """The record indices of step `step`'s batch: a function of (seed, step)."""
    rng = np.random.default_rng((seed, step))
    return rng.integers(0, len(self.source), size=batch_size)

  def chunk(self, seed: int, first_step: int, num_steps: int,
            batch_size: int, batches_per_step: Optional[int] = None
            ) -> np.ndarray:
    """Batches of steps first_step .. first_step + num_steps - 1, stacked:
    (num_steps, B, H, W, C) float32 in [-1, 1] on the host, or
    (num_steps, k, B, H, W, C) with k = `batches_per_step` when given."""
    k = batches_per_step or 1
    batches = [read_images(self.source,
                           self.indices(seed, first_step + t, k * batch_size),
                           self.preprocess)
               for t in range(num_steps)]
    out = to_unit_range(np.stack(batches))
    if batches_per_step is not None:
      out = out.reshape((num_steps, k, batch_size) + out.shape[2:])
    return out

  def chunks(self, seed: int, batch_size: int, chunk_steps: int,
             start_step: int = 0, num_steps: Optional[int] = None,
             prefetch: int = 2, batches_per_step: Optional[int] = None,
             sharding: Any = None) -> Prefetcher:
    """Device arrays (steps, [k,] B, H, W, C), one per scan call, read ahead.

    Chunks end on multiples of `chunk_steps` (the training loop's rule, so a
    run resumed at any chunk end reads the chunks an uninterrupted run
    would) and at `num_steps`; without `num_steps` they go on forever. A
    background thread reads, decodes and transfers up to `prefetch` chunks
    (placed with `sharding` when given) while the device trains on the
    current one.
    """

    def produce():
      step = start_step
      while num_steps is None or step < num_steps:
        length = chunk_steps - step % chunk_steps
        if num_steps is not None:
          length = min(length, num_steps - step)
        host = self.chunk(seed, step, length, batch_size, batches_per_step)
        yield (jax.device_put(host) if sharding is None
               else jax.device_put(host, sharding))
        step += length

    return Prefetcher(produce(), prefetch)

  def sample(self, key: Array, n: int) -> np.ndarray:
    """n records drawn uniformly with replacement, on the host (for
    pictures and reference sets; training reads `chunks`): (n, H, W, C)
    float32 in [-1, 1]. Not traceable: the indices are read from `key`."""
    idx = np.asarray(jax.random.randint(key, (n,), 0, len(self.source)))
    return to_unit_range(read_images(self.source, idx, self.preprocess))


data_lib.register(data_lib.DatasetSpec(
    name='digits', shape=(DIGITS_SIZE, DIGITS_SIZE, 1),
    build=lambda config: digits(DIGITS_SIZE),
    feature_extractor='digits_classifier', num_classes=10,
    reference_splits=DIGITS_SPLITS, load_reference=digits_split))
