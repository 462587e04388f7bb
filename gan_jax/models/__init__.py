"""Generator/discriminator pairs by name.

A model builder takes the resolved `Config` and the data's `DataSpec` and
returns `(generator, discriminator)`, two Flax Linen modules called as
`module.apply(variables, x, train=...)`. The discriminator returns one raw
output per sample, shape (B,).

    mlp            ReLU MLPs for toy data (--g_hidden, --d_hidden;
                   --d_spectral_norm)
    dcgan          DCGAN for 16/28/32/64 px images (--g_features,
                   --d_features, default 64; --g_batch_norm,
                   --d_spectral_norm)
    sngan_resnet   the SN-GAN CIFAR-10 ResNet (spectral norm in D always;
                   --g_features, --d_features, default 256 and 128)

Every model computes in `--compute_dtype` (`gan_jax.models.precision`):
float32 parameters, float32 outputs.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn

from gan_jax.models import dcgan
from gan_jax.models import mlp
from gan_jax.models import precision
from gan_jax.models import sngan_resnet

ModelBuilder = Callable[..., tuple[nn.Module, nn.Module]]


def _dtype(config):
  return precision.compute_dtype(config.compute_dtype)


def _build_mlp(config, data_spec) -> tuple[nn.Module, nn.Module]:
  return (mlp.Generator(hidden=tuple(config.g_hidden),
                        out_dim=data_spec.shape[0], dtype=_dtype(config)),
          mlp.Discriminator(hidden=tuple(config.d_hidden),
                            spectral_norm=config.d_spectral_norm,
                            dtype=_dtype(config)))


def _features(features: int) -> dict:
  """The model's own default width when `features` is 0."""
  return {'features': features} if features else {}


def _build_dcgan(config, data_spec) -> tuple[nn.Module, nn.Module]:
  return (dcgan.Generator(out_shape=tuple(data_spec.shape),
                          batch_norm=config.g_batch_norm,
                          dtype=_dtype(config),
                          **_features(config.g_features)),
          dcgan.Discriminator(spectral_norm=config.d_spectral_norm,
                              dtype=_dtype(config),
                              **_features(config.d_features)))


def _build_sngan_resnet(config, data_spec) -> tuple[nn.Module, nn.Module]:
  return (sngan_resnet.Generator(channels=data_spec.shape[2],
                                 dtype=_dtype(config),
                                 **_features(config.g_features)),
          sngan_resnet.Discriminator(dtype=_dtype(config),
                                     **_features(config.d_features)))


# What each built-in model needs of one sample's shape: (words, test).
_NEEDS: dict[str, tuple[str, Callable[[tuple[int, ...]], bool]]] = {
    'mlp': ('flat data', lambda s: len(s) == 1),
    'dcgan': (f'square images of size {", ".join(map(str, dcgan.SIZES))}',
              lambda s: len(s) == 3 and s[0] == s[1] and s[0] in dcgan.SIZES),
    'sngan_resnet': ('32x32 images', lambda s: len(s) == 3 and s[:2] == (32, 32)),
}


def compatible(model: str, data_shape: tuple[int, ...]) -> bool:
  """Whether `model` can be built for samples of `data_shape` (registered
  models without a stated need are assumed to fit)."""
  need = _NEEDS.get(model)
  return need is None or need[1](tuple(data_shape))


_REGISTRY: dict[str, ModelBuilder] = {'mlp': _build_mlp,
                                      'dcgan': _build_dcgan,
                                      'sngan_resnet': _build_sngan_resnet}


def names() -> list[str]:
  """The registered model names, sorted."""
  return sorted(_REGISTRY)


def register(name: str, builder: ModelBuilder) -> None:
  """Registers `builder(config, data_spec) -> (G, D)` as model `name`.

  The builder should honour `config.compute_dtype`
  (`precision.compute_dtype`) as the built-in models do."""
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
  if not compatible(config.model, data_spec.shape):
    raise ValueError(f'model {config.model} needs {_NEEDS[config.model][0]}, '
                     f'but {config.dataset} has shape '
                     f'{tuple(data_spec.shape)}')
  return get(config.model)(config, data_spec)
