"""Data sets by name.

Each entry builds, from the resolved config, a data object with `.name`,
`.shape` (one sample's shape) and `.sample(key, n)`, a pure function that
draws a batch on the device so that it can run inside the jitted training
scan. `SHAPES` gives every set's sample shape without loading it, so a
config can be checked before anything is read.

    ring8, grid25, mix1d        toy Gaussian mixtures (gan_jax.data.toy)
    digits                      scikit-learn's 8x8 digits at 16x16, offline
    mnist, fashion_mnist,       TFDS through tfds.data_source
    cifar10, celeb_a            (--data_dir: a prepared TFDS directory;
                                 held on the device when they fit in 1 GiB,
                                 else, or with --stream_data, streamed)
"""

from __future__ import annotations

from typing import Callable

from gan_jax.data import images
from gan_jax.data import toy

DIGITS_SIZE = 16
TFDS_NAMES = tuple(sorted(images.TFDS_SETS))

_REGISTRY: dict[str, Callable] = {
    'ring8': lambda config: toy.ring8(),
    'grid25': lambda config: toy.grid25(),
    'mix1d': lambda config: toy.mix1d(),
    'digits': lambda config: images.digits(DIGITS_SIZE),
}


def _tfds_builder(name: str) -> Callable:
  def build(config):
    return images.tfds_images(
        name, data_dir=config.data_dir or None,
        **({'max_device_bytes': 0} if config.stream_data else {}))
  return build


for _name in TFDS_NAMES:
  _REGISTRY[_name] = _tfds_builder(_name)

SHAPES: dict[str, tuple[int, ...]] = {
    'ring8': (2,), 'grid25': (2,), 'mix1d': (1,),
    'digits': (DIGITS_SIZE, DIGITS_SIZE, 1),
    **{name: shape for name, (shape, _) in images.TFDS_SETS.items()},
}


def names() -> list[str]:
  """The registered data set names, sorted."""
  return sorted(_REGISTRY)


def is_image(name: str) -> bool:
  """Whether data set `name` holds images (H, W, C)."""
  return len(SHAPES[name]) == 3


def register(name: str, builder: Callable,
             shape: tuple[int, ...]) -> None:
  """Registers `builder(config) -> data` as data set `name` of sample `shape`."""
  if name in _REGISTRY:
    raise ValueError(f'a data set named {name!r} is already registered')
  _REGISTRY[name] = builder
  SHAPES[name] = tuple(shape)


def get(name: str):
  """The builder for data set `name`; unknown names list the valid ones."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(f'unknown dataset {name!r}; valid datasets: '
                   f'{", ".join(names())}') from None


def build(config):
  """The data set named by `config.dataset`."""
  return get(config.dataset)(config)
