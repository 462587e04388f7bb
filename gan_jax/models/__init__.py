"""Generator/discriminator pairs by name.

Each model module registers itself with a `ModelSpec`: its builder, which
takes the resolved `Config` and the data (anything with `.shape`, one
sample's shape) and returns `(generator, discriminator)`, two Flax Linen
modules called as `module.apply(variables, x, train=...)` whose
discriminator returns one raw output per sample, shape (B,); and what the
model needs of a sample's shape, so a config is checked before anything is
built.

    mlp            MLPs for toy data (--g_hidden, --d_hidden;
                   --g_batch_norm, --d_maxout, --init_std,
                   --d_spectral_norm)
    dcgan          DCGAN for 16/28/32/64 px images (--g_features,
                   --d_features, default 64; --g_batch_norm,
                   --d_spectral_norm)
    sngan_resnet   the SN-GAN CIFAR-10 ResNet (spectral norm in D always;
                   --g_features, --d_features, default 256 and 128)

Every model computes in `--compute_dtype` (`gan_jax.models.precision`):
float32 parameters, float32 outputs.

A new model is one module that ends with

    models.register(models.ModelSpec(
        name='my_model', build=build, needs='flat data',
        fits=lambda shape: len(shape) == 1))

and is imported before the config is validated.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import flax.linen as nn

from gan_jax import registry

ModelBuilder = Callable[..., tuple[nn.Module, nn.Module]]


def _fits_anything(shape: tuple[int, ...]) -> bool:
  del shape
  return True


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A registered model: how to build it and what data it can be built for.

  Attributes:
    name: the `--model` value.
    build: `(config, data) -> (generator, discriminator)`; it should honour
      `config.compute_dtype` (`precision.compute_dtype`) as the built-in
      models do.
    needs: what `fits` accepts, in words, for error messages
      ('flat data', '32x32 images').
    fits: one sample's shape -> whether the model can be built for it.
    options: the model-specific Config switches `build` reads (of
      `OPTIONS`); other models refuse them when set (`option_is_set`).
  """

  name: str
  build: ModelBuilder
  needs: str = 'any data'
  fits: Callable[[tuple[int, ...]], bool] = _fits_anything
  options: tuple[str, ...] = ()


_REGISTRY: registry.Registry[ModelSpec] = registry.Registry('model')

# register(spec) -> spec; names() -> sorted names; get(name) -> ModelSpec,
# unknown names listing the valid ones.
register = _REGISTRY.register
names = _REGISTRY.names
get = _REGISTRY.get


# The model-specific Config switches, and when each counts as set (a model
# that does not read it refuses it then): --d_maxout=1 is a plain ReLU layer.
OPTIONS = ('g_batch_norm', 'd_spectral_norm', 'd_maxout', 'init_std')
_SET_WHEN = {'d_maxout': lambda pieces: pieces > 1}


def option_is_set(option: str, value) -> bool:
  """Whether `value` of the Config switch `option` asks anything of a model."""
  return _SET_WHEN.get(option, bool)(value)


def compatible(model: str, data_shape: tuple[int, ...]) -> bool:
  """Whether `model` can be built for samples of `data_shape`."""
  return get(model).fits(tuple(data_shape))


def fitting(data_shape: tuple[int, ...]) -> list[str]:
  """The models that can be built for samples of `data_shape`, sorted."""
  return [name for name in names() if compatible(name, data_shape)]


def accepting(option: str) -> list[str]:
  """The models whose builder reads the Config switch `option`, sorted."""
  return [name for name in names() if option in get(name).options]


def feature_width(features: int) -> dict:
  """`{'features': features}`, or {} when `features` is 0 (the flag's "the
  model's own default width")."""
  return {'features': features} if features else {}


def build(config, data) -> tuple[nn.Module, nn.Module]:
  """Builds `(generator, discriminator)` for `config.model` on `data`."""
  spec = get(config.model)
  shape = tuple(data.shape)
  if not spec.fits(shape):
    raise ValueError(f'model {spec.name} needs {spec.needs}, but '
                     f'{config.dataset} has shape {shape}; models for it: '
                     f'{", ".join(fitting(shape)) or "none"}')
  return spec.build(config, data)


# The built-in models register themselves on import; they import this
# package, so they come after the registry is defined.
# pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.models import dcgan  # noqa: E402
from gan_jax.models import mlp  # noqa: E402
from gan_jax.models import sngan_resnet  # noqa: E402
