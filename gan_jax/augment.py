"""Differentiable augmentation of the images D sees (DiffAugment).

Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training": every image the discriminator sees, real or generated, in D's
step and in G's, is transformed by a random augmentation T that is
differentiable in the image, so G's gradient flows through T(G(z)). D then
learns on T(x) and T(G(z)); as the same T is applied to both, the
generator still matches p_data, not T's image of it.

`augment(key, images, policy)` follows the authors' reference
implementation, `DiffAugment_pytorch.py` of mit-han-lab/data-efficient-gans
(at commit 3a5ba9f, "Fixed bug of non-contiguous"), on NHWC images in
[-1, 1]. A policy is a sequence of names, applied in the order given (the
reference splits its policy string on commas and applies each in turn; its
README recommends `color,translation,cutout`):

* `color`: brightness, then saturation, then contrast, each with one
  uniform draw u ~ U[0, 1) per image:
    brightness  x + (u - 1/2)                          shift in [-1/2, 1/2)
    saturation  (x - m_c) 2u + m_c,  m_c = mean over channels, factor [0, 2)
    contrast    (x - m) (u + 1/2) + m,  m = mean over H, W, C, factor [1/2, 3/2)
* `translation`: each image shifted by integers (t_h, t_w), uniform in
  [-s, s] with s = int(ratio * side + 1/2) per axis, ratio 1/8; pixels
  shifted in from outside are zero: out[i, j] = x[i + t_h, j + t_w], or 0
  where (i + t_h, j + t_w) lies outside the image.
* `cutout`: a rectangle of sides c = int(ratio * side + 1/2), ratio 1/2, set
  to zero, centred at offsets o uniform in [0, side - (c mod 2)] per axis:
  the rows (columns) o - c//2, ..., o - c//2 + c - 1 that lie in the image.

The strengths are arguments with the reference's values as defaults
(`BRIGHTNESS`, `SATURATION`, `CONTRAST`, `TRANSLATION_RATIO`,
`CUTOUT_RATIO`): brightness b shifts by 2b(u - 1/2), saturation s and
contrast c scale by 1 + s(2u - 1), 1 + c(2u - 1) (written 2su + (1 - s),
which at the defaults is the reference's arithmetic bit for bit). A
strength or ratio of 0 leaves the images exactly as they are.

The randomness is drawn apart from its use: `draws(key, policy, shape)`
gives each operation's random numbers (integer offsets, uniform u), from
`fold_in(key, j)` for the j-th operation, and `apply(images, draws)` the
augmented images, so a test can compute the same augmentation from the
same numbers. Everything is pure and shape-static (jit, vmap, grad).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array

# The reference's constants (DiffAugment_pytorch.py): the brightness shift
# is u - 0.5, the saturation factor 2u, the contrast factor u + 0.5; shifts
# up to 1/8 of a side, a cutout of half the side.
BRIGHTNESS = 0.5
SATURATION = 1.0
CONTRAST = 0.5
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5

# Each policy name and the operations it stands for, in order.
POLICY_OPS = {
    'color': ('brightness', 'saturation', 'contrast'),
    'translation': ('translation',),
    'cutout': ('cutout',),
}
POLICIES = tuple(POLICY_OPS)


@dataclasses.dataclass(frozen=True)
class Strengths:
  """How strong each operation is; the defaults are the reference's."""
  brightness: float = BRIGHTNESS
  saturation: float = SATURATION
  contrast: float = CONTRAST
  translation_ratio: float = TRANSLATION_RATIO
  cutout_ratio: float = CUTOUT_RATIO


def _side(ratio: float, side: int) -> int:
  """int(ratio * side + 1/2): the reference's rounding of a ratio of a side."""
  return int(ratio * side + 0.5)


def operations(policy: Sequence[str]) -> tuple[str, ...]:
  """The operations of `policy`, in order; a ValueError names a bad one."""
  ops = []
  for name in policy:
    if name not in POLICY_OPS:
      raise ValueError(f'unknown augmentation {name!r}; valid: '
                       f'{", ".join(POLICIES)}')
    ops.extend(POLICY_OPS[name])
  return tuple(ops)


def translation_offsets(key: Array, batch: int, height: int, width: int,
                        ratio: float = TRANSLATION_RATIO
                        ) -> tuple[Array, Array]:
  """(t_h, t_w), int32 of shape (batch,), uniform in [-s, s] per axis."""
  k_h, k_w = jax.random.split(key)
  s_h, s_w = _side(ratio, height), _side(ratio, width)
  return (jax.random.randint(k_h, (batch,), -s_h, s_h + 1),
          jax.random.randint(k_w, (batch,), -s_w, s_w + 1))


def cutout_offsets(key: Array, batch: int, height: int, width: int,
                   ratio: float = CUTOUT_RATIO) -> tuple[Array, Array]:
  """(o_h, o_w), int32 of shape (batch,): the cutout's centres, uniform in
  [0, side - (c mod 2)] per axis."""
  k_h, k_w = jax.random.split(key)
  c_h, c_w = _side(ratio, height), _side(ratio, width)
  return (jax.random.randint(k_h, (batch,), 0, height + 1 - c_h % 2),
          jax.random.randint(k_w, (batch,), 0, width + 1 - c_w % 2))


def draws(key: Array, policy: Sequence[str], shape: Sequence[int],
          strengths: Strengths = Strengths(), dtype=jnp.float32
          ) -> list[tuple[str, tuple[Array, ...]]]:
  """[(operation, its random numbers)] of `policy` for images of `shape`
  (B, H, W, C): the j-th operation draws from `fold_in(key, j)`; color
  operations one u ~ U[0, 1) per image (of `dtype`), translation and cutout
  their integer offsets."""
  batch, height, width = shape[0], shape[1], shape[2]
  out = []
  for j, op in enumerate(operations(policy)):
    k = jax.random.fold_in(key, j)
    if op == 'translation':
      numbers = translation_offsets(k, batch, height, width,
                                    strengths.translation_ratio)
    elif op == 'cutout':
      numbers = cutout_offsets(k, batch, height, width, strengths.cutout_ratio)
    else:
      numbers = (jax.random.uniform(k, (batch,), dtype),)
    out.append((op, numbers))
  return out


def _per_image(v: Array) -> Array:
  return v[:, None, None, None]


def _factor(u: Array, strength: float) -> Array:
  """1 + strength (2u - 1), written 2 strength u + (1 - strength)."""
  return _per_image(u * (2.0 * strength) + (1.0 - strength))


def _shift(x: Array, t: Array, axis: int) -> Array:
  """out[.., i, ..] = x[.., i + t_b, ..] along `axis`, 0 outside the image."""
  n = x.shape[axis]
  index = jnp.arange(n)[None, :] + t[:, None]  # (B, n)
  inside = (index >= 0) & (index < n)
  shape = [x.shape[0], 1, 1, 1]
  shape[axis] = n
  index = jnp.broadcast_to(jnp.clip(index, 0, n - 1).reshape(shape), x.shape)
  return (jnp.take_along_axis(x, index, axis=axis)
          * inside.reshape(shape).astype(x.dtype))


def _in_band(offset: Array, size: int, n: int) -> Array:
  """(B, n): positions o - size//2 <= i < o - size//2 + size."""
  start = (offset - size // 2)[:, None]
  i = jnp.arange(n)[None, :]
  return (i >= start) & (i < start + size)


def apply(images: Array, drawn: list[tuple[str, tuple[Array, ...]]],
          strengths: Strengths = Strengths()) -> Array:
  """`images` (B, H, W, C) augmented by the operations and numbers of
  `drawn` (from `draws`), in order."""
  x = images
  _, height, width, _ = x.shape
  for op, numbers in drawn:
    if op == 'brightness' and strengths.brightness:
      (u,) = numbers
      b = strengths.brightness
      x = x + _per_image(u * (2.0 * b) - b)
    elif op == 'saturation' and strengths.saturation:
      (u,) = numbers
      mean = jnp.mean(x, axis=3, keepdims=True)
      x = (x - mean) * _factor(u, strengths.saturation) + mean
    elif op == 'contrast' and strengths.contrast:
      (u,) = numbers
      mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
      x = (x - mean) * _factor(u, strengths.contrast) + mean
    elif op == 'translation' and strengths.translation_ratio:
      t_h, t_w = numbers
      x = _shift(_shift(x, t_h, 1), t_w, 2)
    elif op == 'cutout' and strengths.cutout_ratio:
      o_h, o_w = numbers
      c_h = _side(strengths.cutout_ratio, height)
      c_w = _side(strengths.cutout_ratio, width)
      cut = (_in_band(o_h, c_h, height)[:, :, None]
             & _in_band(o_w, c_w, width)[:, None, :])
      x = x * (~cut)[..., None].astype(x.dtype)
  return x


def augment(key: Array, images: Array, policy: Sequence[str],
            strengths: Strengths = Strengths()) -> Array:
  """DiffAugment: `images` (B, H, W, C) transformed by `policy` (names of
  `POLICIES`, applied in order) with randomness from `key`; the identity
  for an empty policy. Differentiable in `images`."""
  if not policy:
    return images
  return apply(images, draws(key, policy, images.shape, strengths,
                             images.dtype), strengths)
