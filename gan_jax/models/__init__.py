"""Generator/discriminator pairs by name.

A model builder takes the resolved `Config` and the data's `DataSpec` and
returns `(generator, discriminator)`, two Flax Linen modules called as
`module.apply(variables, x, train=...)`. The discriminator returns one raw
output per sample, shape (B,).

    mlp            ReLU MLPs for toy data (--g_hidden, --d_hidden)
    dcgan          DCGAN for 16/28/32/64 px images (--g_features,
                   --d_features, default 64; --g_batch_norm,
                   --d_spectral_norm)
    sngan_resnet   the SN-GAN CIFAR-10 ResNet (spectral norm in D always;
                   --g_features, --d_features, default 256 and 128)
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn

from gan_jax.models import dcgan
from gan_jax.models import mlp
from gan_jax.models import sngan_resnet

ModelBuilder = Callable[..., tuple[nn.Module, nn.Module]]


def _build_mlp(config, data_spec) -> tuple[nn.Module, nn.Module]:
  if len(data_spec.shape) != 1:
    raise ValueError(
        f'model mlp needs flat data, but {config.dataset} has shape '
        f'{data_spec.shape}')
  return (mlp.Generator(hidden=tuple(config.g_hidden),
                        out_dim=data_spec.shape[0]),
          mlp.Discriminator(hidden=tuple(config.d_hidden)))


def _features(features: int) -> dict:
  """The model's own default width when `features` is 0."""
  return {'features': features} if features else {}


def _build_dcgan(config, data_spec) -> tuple[nn.Module, nn.Module]:
  shape = tuple(data_spec.shape)
  if len(shape) != 3 or shape[0] != shape[1] or shape[0] not in dcgan.SIZES:
    raise ValueError(
        f'model dcgan needs square images of size '
        f'{", ".join(map(str, dcgan.SIZES))}, but {config.dataset} has shape '
        f'{shape}')
  return (dcgan.Generator(out_shape=shape, batch_norm=config.g_batch_norm,
                          **_features(config.g_features)),
          dcgan.Discriminator(spectral_norm=config.d_spectral_norm,
                              **_features(config.d_features)))


def _build_sngan_resnet(config, data_spec) -> tuple[nn.Module, nn.Module]:
  shape = tuple(data_spec.shape)
  if shape[:2] != (32, 32) or len(shape) != 3:
    raise ValueError(f'model sngan_resnet needs 32x32 images, but '
                     f'{config.dataset} has shape {shape}')
  return (sngan_resnet.Generator(channels=shape[2],
                                 **_features(config.g_features)),
          sngan_resnet.Discriminator(**_features(config.d_features)))


def compatible(model: str, data_shape: tuple[int, ...]) -> bool:
  """Whether `model` can be built for samples of `data_shape`."""
  if model == 'mlp':
    return len(data_shape) == 1
  if model == 'dcgan':
    return (len(data_shape) == 3 and data_shape[0] == data_shape[1]
            and data_shape[0] in dcgan.SIZES)
  if model == 'sngan_resnet':
    return len(data_shape) == 3 and tuple(data_shape[:2]) == (32, 32)
  return True


_REGISTRY: dict[str, ModelBuilder] = {'mlp': _build_mlp,
                                      'dcgan': _build_dcgan,
                                      'sngan_resnet': _build_sngan_resnet}


def names() -> list[str]:
  """The registered model names, sorted."""
  return sorted(_REGISTRY)


def register(name: str, builder: ModelBuilder) -> None:
  """Registers `builder(config, data_spec) -> (G, D)` as model `name`."""
  if name in _REGISTRY:
    raise ValueError(f'a model named {name!r} is already registered')
  _REGISTRY[name] = builder


def get(name: str) -> ModelBuilder:
  """The builder registered as `name`; unknown names list the valid ones."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(
        f'unknown model {name!r}; valid models: {", ".join(names())}') from None


def build(config, data_spec) -> tuple[nn.Module, nn.Module]:
  """Builds `(generator, discriminator)` for `config.model` on `data_spec`."""
  return get(config.model)(config, data_spec)
