"""LeCam regularisation of the discriminator.

Tseng et al. 2021, "Regularizing Generative Adversarial Networks under
Limited Data" (Eq. 3): D's raw outputs on real data are pulled towards a
moving anchor of its outputs on fake data, and vice versa,

    R_LC = E_x[(D(x) - alpha_F)^2] + E_z[(D(G(z)) - alpha_R)^2],

with alpha_R, alpha_F exponential moving averages of D's mean outputs on
real and on fake batches (constants of the derivative). D minimises
L_D + lambda R_LC (`--lecam_weight` = lambda). Under the paper's
assumptions this turns D's objective into a weighted LeCam divergence
between the data and the generator, and it keeps D's predictions on a
small training set from drifting apart.

The moving averages follow the authors' StyleGAN2 code
(google/lecam-gan, stylegan2/lecam_loss.py): decay 0.99, started at 0
and zero-debiased (TensorFlow's `assign_moving_average(...,
zero_debias=True)`): after the t-th update with batch mean m_t,

    a_t = beta a_{t-1} + (1 - beta) m_t,   a_0 = 0,
    alpha_t = a_t / (1 - beta^t),

and each D update first folds its own batch means in, then penalises
against the updated anchors (as both of the authors' implementations do).
Their code differs from Eq. 3 in one respect, which is left out here: it
penalises one side only, relu(D(x) - alpha_F)^2 + relu(alpha_R -
D(G(z)))^2. Their BigGAN code (biggan_cifar) uses decay 0.9 instead, with
the average pinned to the batch mean for the first 1000 iterations.

The averages are D's state: a collection `COLLECTION` of `d_state`
({'real': a, 'fake': a, 'updates': t}, float32 scalars), carried by
checkpoints and resumed bit for bit; flax passes a collection its
modules do not use through unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

DECAY = 0.99
COLLECTION = 'lecam'


def init() -> dict:
  """The averages before any update: a = 0, t = 0."""
  zero = jnp.zeros((), jnp.float32)
  return {'real': zero, 'fake': zero, 'updates': zero}


def update(averages: dict, real_out: Array, fake_out: Array,
           decay: float = DECAY) -> dict:
  """The averages with this batch's mean outputs folded in (no gradient)."""
  m_real = jax.lax.stop_gradient(jnp.mean(real_out)).astype(jnp.float32)
  m_fake = jax.lax.stop_gradient(jnp.mean(fake_out)).astype(jnp.float32)
  return {'real': decay * averages['real'] + (1.0 - decay) * m_real,
          'fake': decay * averages['fake'] + (1.0 - decay) * m_fake,
          'updates': averages['updates'] + 1.0}


def anchors(averages: dict, decay: float = DECAY) -> tuple[Array, Array]:
  """(alpha_R, alpha_F): the zero-debiased averages a / (1 - beta^t); 0
  before the first update."""
  t = averages['updates']
  debias = 1.0 - jnp.power(jnp.float32(decay), t)
  safe = jnp.where(t > 0, debias, 1.0)
  return averages['real'] / safe, averages['fake'] / safe


def regularizer(real_out: Array, fake_out: Array, alpha_real: Array,
                alpha_fake: Array) -> Array:
  """R_LC = mean((D(x) - alpha_F)^2) + mean((D(G(z)) - alpha_R)^2), the
  anchors constants."""
  alpha_real = jax.lax.stop_gradient(alpha_real)
  alpha_fake = jax.lax.stop_gradient(alpha_fake)
  return (jnp.mean(jnp.square(real_out - alpha_fake))
          + jnp.mean(jnp.square(fake_out - alpha_real)))


def penalty(averages: dict, real_out: Array, fake_out: Array,
            decay: float = DECAY) -> tuple[Array, dict]:
  """(R_LC against the updated anchors, the updated averages) for one D
  update on D's outputs `real_out`, `fake_out`."""
  averages = update(averages, real_out, fake_out, decay)
  alpha_real, alpha_fake = anchors(averages, decay)
  return regularizer(real_out, fake_out, alpha_real, alpha_fake), averages
