"""The GAN game: one value function V of both players' parameters.

For the seed's minimax loss,

    V(D, G) = E_{x ~ p_data}[log D(x)] + E_{z ~ p_z}[log(1 - D(G(z)))],

    min_G max_D V(D, G).

`Game.value(g_params, d_params, batch, z)` is the Monte-Carlo estimate of V on
a real batch and a batch of latents, differentiable in both parameter trees.
Each player's objective is a function of its *own* parameters first, so its
gradient is plain `jax.grad` with respect to argument 0 and the other player's
parameters are constants of that derivative:

    grad_D = jax.grad(game.d_objective)(d_params, g_params, batch, z)
    grad_G = jax.grad(game.g_objective)(g_params, d_params, z)

For a fixed G the maximiser of V over all functions D is
D*(x) = p_data(x) / (p_data(x) + p_g(x)), at which
V(D*, G) = -log 4 + 2 JSD(p_data || p_g) (Goodfellow et al. 2014, Thm. 1);
`tests/game_test.py` checks both.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.losses import Loss

Array = jax.Array
Params = dict


@dataclasses.dataclass(frozen=True, eq=False)
class Game:
  """A generator, a discriminator and the loss that pits them against each other.

  Attributes:
    generator: Linen module, `G(z_BxZ) -> x_Bx...`.
    discriminator: Linen module, `D(x_Bx...) -> out_B` (logits or critic values).
    loss: the `Loss` giving V and the two players' objectives.
  """

  generator: nn.Module
  discriminator: nn.Module
  loss: Loss

  def generate(self, g_params: Params, z: Array) -> Array:
    """G(z): generator samples for latents z."""
    return self.generator.apply({'params': g_params}, z)

  def discriminate(self, d_params: Params, x: Array) -> Array:
    """D's raw outputs (logits / critic values) on x, shape (B,)."""
    return self.discriminator.apply({'params': d_params}, x)

  def outputs(self, g_params: Params, d_params: Params, batch: Array,
              z: Array) -> tuple[Array, Array]:
    """D's raw outputs on the real batch and on G(z), in one pass of D.

    Real and fake samples are concatenated so D runs once on 2B rows (larger,
    better-shaped matrix products) instead of twice on B rows; D here has no
    batch-coupled layers, so the outputs are identical.
    """
    fake = self.generate(g_params, z)
    both = self.discriminate(d_params, jnp.concatenate([batch, fake], axis=0))
    return both[:batch.shape[0]], both[batch.shape[0]:]

  def value(self, g_params: Params, d_params: Params, batch: Array,
            z: Array) -> Array:
    """V(D, G) estimated on `batch` and `z`: the quantity D ascends."""
    return self.loss.value(*self.outputs(g_params, d_params, batch, z))

  def d_objective(self, d_params: Params, g_params: Params, batch: Array,
                  z: Array) -> tuple[Array, Array]:
    """D's loss (to minimise) as a function of D's parameters; aux: V."""
    real_out, fake_out = self.outputs(g_params, d_params, batch, z)
    return (self.loss.d_loss(real_out, fake_out),
            self.loss.value(real_out, fake_out))

  def g_objective(self, g_params: Params, d_params: Params, z: Array,
                  batch: Optional[Array] = None) -> Array:
    """G's loss (to minimise) as a function of G's parameters.

    D is only evaluated on the real batch when the loss compares real and fake
    outputs (`loss.g_needs_real`).
    """
    if self.loss.g_needs_real:
      if batch is None:
        raise ValueError(f'loss {self.loss.name} needs a real batch in g_step')
      real_out, fake_out = self.outputs(g_params, d_params, batch, z)
    else:
      real_out, fake_out = None, self.discriminate(
          d_params, self.generate(g_params, z))
    return self.loss.g_loss(fake_out, real_out)
