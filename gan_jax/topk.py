"""Top-k generator updates.

Sinha et al. 2020, "Top-k Training of GANs: Improving GAN Performance by
Throwing Away Bad Samples": G's loss is averaged over only the k samples
of its batch that D rates most real (largest raw output), so G is not
pulled towards the samples D already rejects. With l(f) G's loss on one
output f and m_i = 1 for the k highest of D(G(z_1)), ..., D(G(z_B)),

    L_G^k = (1/k) sum_i m_i l(D(G(z_i))),

which for k = B is the usual loss. k starts at the batch size B and is
annealed, by a factor gamma per period (the paper's period is an epoch,
its gamma 0.99), down to a floor nu B (the paper's nu 0.5):

    k(t) = max(floor(B max(gamma^e, nu)), 1),   e = floor(t / every),

with t the training step (G updates). The mask is a rank comparison on a
sort of the static batch, so shapes stay static whatever k is; ties go to
the earlier sample. The loss must be a mean of per-sample terms (every loss
whose G objective does not compare with real outputs); `topk_loss` builds
it from the registered loss's `g_loss` applied to each sample alone.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Union

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.losses import Loss

Array = jax.Array

GAMMA = 0.99
MIN_FRACTION = 0.5


def schedule(batch_size: int, gamma: float, min_fraction: float
             ) -> np.ndarray:
  """k of periods e = 0, 1, ... until it stops changing (the last entry
  holds from then on), computed in float64: int32 of length >= 1."""
  floor = max(math.floor(batch_size * min_fraction), 1)
  ks = []
  e = 0
  while True:
    k = max(math.floor(batch_size * max(gamma**e, min_fraction)), 1)
    ks.append(k)
    if k <= floor or gamma >= 1.0:
      return np.asarray(ks, np.int32)
    e += 1


def k_at(step: Array, batch_size: int, gamma: float = GAMMA,
         every: int = 1, min_fraction: float = MIN_FRACTION) -> Array:
  """k(t) of the module docstring, int32, for a (traced) step t."""
  table = jnp.asarray(schedule(batch_size, gamma, min_fraction))
  period = jnp.asarray(step, jnp.int32) // every
  return table[jnp.minimum(period, table.shape[0] - 1)]


def mask(outputs: Array, k: Array) -> Array:
  """1.0 for the k largest of `outputs` (B,), 0.0 elsewhere; ties to the
  earlier index. `k` may be traced."""
  order = jnp.argsort(-outputs, stable=True)
  ranks = jnp.zeros(outputs.shape[0], jnp.int32).at[order].set(
      jnp.arange(outputs.shape[0], dtype=jnp.int32))
  return (ranks < k).astype(outputs.dtype)


def topk_loss(loss: Loss, k: Union[int, Array, Callable[[int], Array]]
              ) -> Loss:
  """`loss` with G's objective averaged over the k fakes D rates highest;
  `k` may be a function of the number of D's outputs on the fakes."""
  if loss.g_needs_real:
    raise ValueError(f'top-k G updates need a loss whose G objective is a '
                     f'mean over samples; {loss.name} compares them with '
                     'real outputs')

  def g_loss(fake_out, real_out=None):
    del real_out
    n = k(fake_out.shape[0]) if callable(k) else k
    per_sample = jax.vmap(lambda f: loss.g_loss(f[None], None))(fake_out)
    m = jax.lax.stop_gradient(mask(fake_out, n))
    return jnp.sum(m * per_sample) / jnp.asarray(n, per_sample.dtype)

  return dataclasses.replace(loss, g_loss=g_loss)
