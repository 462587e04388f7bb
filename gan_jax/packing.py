"""PacGAN: the discriminator judges m samples at once (Lin et al. 2018).

With packing degree m (`--pack=m`), D's input is m samples of one kind
concatenated into one: m real samples x_1..m ~ p_data, or m fakes
G(z_1), ..., G(z_m) from m independent latents. For flat samples (d,) the
packed input is the vector [x_1; ...; x_m] of m d entries; for images
(H, W, C) the m images are stacked along the channel axis, (H, W, m C), as
the PacGAN authors' code does. Only D's input changes: its loss is the loss
of the unpacked game on the packed inputs, so for the minimax loss D plays

    V(D, G) = E_{x_1..m ~ p_data}[log D(x_1, ..., x_m)]
            + E_{z_1..m ~ p_z}[log(1 - D(G(z_1), ..., G(z_m)))],

the GAN game between the product distributions p_data^m and p_g^m, whose
total variation grows with m when G drops modes (Lin et al. 2018, Sec. 4):
a mode collapse is penalised more the more samples D sees together.

Batch size: `--batch_size` counts D's packed inputs, as in the authors'
code (batch 100 with packing m reads 100 packed examples and m batches of
100 latents), so each player's step draws batch_size * m real samples and
latents. Generation and evaluation are unpacked (G is unchanged).

In gan_jax the packing is a wrapper around D (`packed(discriminator, m)`):
it takes a batch of B m samples, shape (B m, ...), reshapes it to B packed
inputs, consecutive rows forming one pack, and runs D on them, giving B
outputs. Everything that calls D (the game, the players' steps, the update
schemes, several seeds, checkpoints) sees a discriminator of unpacked
samples whose batch is m times its output; the wrapper's parameters are D's
own (no extra level in the tree). Gradient penalties are taken on the packed
inputs D judges (`penalty_view`): WGAN-GP interpolates packed real and
packed fake inputs, one eps per pack, and every gradient norm is over a
whole packed input.

With m = 1 `packed` returns D itself: nothing changes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def pack(x: Array, m: int) -> Array:
  """(B m, ...) samples -> (B, ...) packed inputs: rows i m, ..., i m + m - 1
  form pack i, concatenated along the last (feature or channel) axis.

  Flat samples (B m, d) -> (B, m d), the pack [x_{im}; ...; x_{im+m-1}];
  images (B m, H, W, C) -> (B, H, W, m C), the m images' channels one after
  another.
  """
  if m == 1:
    return x
  n = x.shape[0]
  if n % m:
    raise ValueError(f'cannot pack {n} samples in packs of {m}')
  packs = x.reshape((n // m, m) + x.shape[1:])      # (B, m, ..., C)
  packs = jnp.moveaxis(packs, 1, -2)                 # (B, ..., m, C)
  return packs.reshape(packs.shape[:-2] + (m * x.shape[-1],))


@dataclasses.dataclass(frozen=True)
class PackedDiscriminator:
  """D of packed inputs as a discriminator of (B m, ...) samples.

  Offers what the game asks of a Linen module, `init` and `apply`, with D's
  own variables: `apply(variables, x_{Bm x ...}, ...)` runs
  `discriminator.apply(variables, pack(x, m), ...)`, giving (B,) outputs.

  Attributes:
    discriminator: the Linen module D, which sees packed inputs.
    m: the packing degree, at least 2.
  """

  discriminator: nn.Module
  m: int

  def init(self, key: Array, x: Array, *args, **kwargs) -> Any:
    """D's variables for packs of x's samples; x's rows are repeated m
    times (init reads shapes only), so a batch of one sample will do."""
    return self.discriminator.init(
        key, pack(jnp.repeat(x, self.m, axis=0), self.m), *args, **kwargs)

  def apply(self, variables: Any, x: Array, *args, **kwargs) -> Any:
    """D on the packs of x: (B m, ...) samples -> (B,) outputs."""
    return self.discriminator.apply(variables, pack(x, self.m), *args,
                                    **kwargs)


def packed(discriminator: nn.Module, m: int):
  """D judging packs of m samples; D itself when m == 1."""
  if m < 1:
    raise ValueError(f'packing degree must be at least 1, got {m}')
  return discriminator if m == 1 else PackedDiscriminator(discriminator, m)


def degree(discriminator: Any) -> int:
  """The packing degree m of a (possibly packed) discriminator."""
  return discriminator.m if isinstance(discriminator,
                                       PackedDiscriminator) else 1


def penalty_view(discriminator: Any
                 ) -> tuple[Any, Callable[[Array], Array]]:
  """(the module that judges packed inputs, the packing function): a
  gradient penalty is computed on `pack(real)`, `pack(fake)` with that
  module, so its points and norms are D's packed inputs. For an unpacked D:
  (D, identity)."""
  if isinstance(discriminator, PackedDiscriminator):
    m = discriminator.m
    return discriminator.discriminator, lambda x: pack(x, m)
  return discriminator, lambda x: x

