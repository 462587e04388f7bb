"""Class conditioning layers shared by the models (`--conditional`).

Inputs of a conditional model are the pairs of `gan_jax.conditional`:
G((z, y)) and D((x, y)), y int32 labels in 0..K-1.

Generator:

* `embed_join(z, y)`: [z, E_G(y)], a learned class embedding of z's width
  concatenated to z (Mirza & Osindero 2014, with an embedding for the
  one-hot code).
* `ConditionalBatchNorm` (de Vries et al. 2017; Miyato & Koyama 2018): batch
  norm whose gain and bias are the class's,

      BN(h | y)_c = gamma_{y,c} (h_c - mu_c) / sqrt(sigma^2_c + eps)
                    + beta_{y,c},

  mu, sigma^2 the batch's statistics in training, the running ones
  otherwise; gamma starts at 1, beta at 0 for every class.

Discriminator heads on phi(x), D's last features (B, F), with psi its
existing output layer:

* projection (Miyato & Koyama 2018):  D(x, y) = psi(phi(x)) + <V(y), phi(x)>,
  V a K x F class embedding;
* acgan (Odena et al. 2017): D(x, y) = (psi(phi(x)), W phi(x) + b), a second
  dense head of K class logits (the label is not an input of D).

In a spectrally normalised D (`--d_spectral_norm`, sngan_resnet) the head's
matrix is normalised too, as in Miyato & Koyama's code (its `SNEmbedID`):
V / sigma(V) for the projection, W / sigma(W) for ACGAN's classifier, sigma
the largest singular value by power iteration (`layers.spectral_norm`), so
D stays 1-Lipschitz in x for every label.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import conditional

Array = jax.Array

split = conditional.split
PROJECTION = 'class_projection'
CLASS_LOGITS = 'class_logits'
G_EMBEDDING = 'class_embedding'


def embed_join(z_BxZ: Array, y_B: Array, num_classes: int,
               dtype: Optional[Any] = None) -> Array:
  """[z, E(y)]: z with a learned class embedding of z's width appended
  (inside a compact module; the embedding is named `G_EMBEDDING`)."""
  e = nn.Embed(num_classes, z_BxZ.shape[-1], dtype=dtype,
               name=G_EMBEDDING)(y_B)
  return jnp.concatenate([z_BxZ, e.astype(z_BxZ.dtype)], axis=-1)


class ConditionalBatchNorm(nn.Module):
  """Batch norm with a per-class gain and bias (see the module docstring).

  Attributes:
    num_classes: K.
    momentum, epsilon: as `flax.linen.BatchNorm` (running statistics in
      'batch_stats').
    dtype: computation dtype.
  """

  num_classes: int
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, h: Array, y_B: Array, train: bool) -> Array:
    normed = nn.BatchNorm(use_running_average=not train,
                          momentum=self.momentum, epsilon=self.epsilon,
                          use_scale=False, use_bias=False, dtype=self.dtype)(h)
    c = h.shape[-1]
    shape = (h.shape[0],) + (1,) * (h.ndim - 2) + (c,)
    gamma = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.ones,
                     dtype=self.dtype, name='gain')(y_B).reshape(shape)
    beta = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.zeros,
                    dtype=self.dtype, name='bias')(y_B).reshape(shape)
    return gamma.astype(normed.dtype) * normed + beta.astype(normed.dtype)


def batch_norm(y_B: Optional[Array], num_classes: int, train: bool,
               dtype: Optional[Any] = None, momentum: float = 0.9):
  """`h -> BN(h)`: conditional batch norm when `y_B` is given, else the
  plain `nn.BatchNorm` (created as before, so an unconditional model's
  parameter tree is unchanged). Call inside a compact module."""
  if y_B is None:
    return nn.BatchNorm(use_running_average=not train, momentum=momentum,
                        dtype=dtype)
  cbn = ConditionalBatchNorm(num_classes, momentum=momentum, dtype=dtype)
  return lambda h: cbn(h, y_B, train)


def d_head(out_B: Array, phi_BxF: Array, y_B: Optional[Array], form: str,
           num_classes: int, dtype: Optional[Any] = None,
           spectral_norm: bool = False, train: bool = True):
  """D's output with the conditional head `form` on features phi(x):
  `out_B` (= psi(phi(x))) unchanged for 'none' (or without labels), plus
  the projection <V(y), phi(x)> for 'projection', or the pair (out_B,
  class logits (B, K)) for 'acgan'; with `spectral_norm`, V (or W)
  spectrally normalised, its power-iteration vector updated when `train`.
  Call inside a compact module."""
  if form == 'none' or y_B is None:
    return out_B
  if form == 'projection':
    embed = lambda name: nn.Embed(num_classes, phi_BxF.shape[-1],
                                  dtype=dtype, name=name)
    v = _normalised(embed, PROJECTION, spectral_norm)(y_B, train)
    return out_B + jnp.sum(v.astype(phi_BxF.dtype) * phi_BxF,
                           axis=-1).astype(out_B.dtype)
  if form == 'acgan':
    dense = lambda name: nn.Dense(num_classes, dtype=dtype, name=name)
    return out_B, _normalised(dense, CLASS_LOGITS, spectral_norm)(phi_BxF,
                                                                 train)
  raise ValueError(f'unknown conditional form {form!r}; valid: '
                   f'{", ".join(conditional.CONDITIONINGS)}')


def _normalised(layer, name: str, enabled: bool):
  """The layer `layer(name=name)` makes, as f(x, train); spectrally
  normalised when `enabled` (its parameters keep their name either way; the
  power-iteration state goes to 'batch_stats')."""
  module = layer(name=name)
  if not enabled:
    return lambda x, train: module(x)
  wrapped = nn.SpectralNorm(module)
  return lambda x, train: wrapped(x, update_stats=train)


def as_float32(out, dtype: Optional[Any]):
  """`precision.as_float32` of D's output or of each of (out, logits)."""
  from gan_jax.models import precision  # pylint: disable=g-import-not-at-top
  return jax.tree.map(lambda a: precision.as_float32(a, dtype), out)


CONDITIONAL_FORMS = ('projection', 'acgan')
