"""Convolutions written as matrix products, for fast XLA code on CPU.

`Conv` and `ConvTranspose` are drop-in replacements for `flax.linen.Conv` and
`flax.linen.ConvTranspose` (2-D, NHWC, HWIO kernels): same parameter names,
shapes and initialisers, so weights are interchangeable, and the same
function of input and kernel. Only the formulation differs.

Why. XLA:CPU compiles the kernel gradient of a convolution, and every
convolution inside a `lax.scan`/`while` body, to slow generic loops
(jax-ml/jax#12868): at DCGAN-MNIST sizes a 4x4 stride-2 transposed
convolution's kernel gradient takes ~30x its input gradient, and a plain
convolution inside a scan ~10x what it takes outside. A matrix product
(`dot_general`) compiles to the same fast GEMM everywhere. So on CPU both
layers are written with one matmul and pure data movement (slices, pads,
reshapes); their derivatives are then again one matmul each plus the adjoint
data movement, and no convolution instruction remains in the program.

Notation: x is (B, H, W, C), the kernel K is (kh, kw, C, O), stride s, and
explicit padding (lo, hi) per spatial axis.

Convolution (`conv2d`), cross-correlation as in `lax.conv_general_dilated`:

    y[b, i, j, o] = sum_{u, v, c} x_pad[b, s i + u, s j + v, c] K[u, v, c, o],

i.e. y = P(x) K_mat with P(x) the (B Ho Wo, kh kw C) matrix of patches
("im2col") and K_mat = K reshaped to (kh kw C, O). Then

    dK_mat = P(x)^T dy,       dx = P^T(dy K_mat^T),

where P^T scatters patch rows back (sums of pads): the adjoint of slicing.
When s divides kh and kw (the 4x4 stride-2 layers of DCGAN) x_pad is first
rearranged space-to-depth into (B, H/s, W/s, s s C) and the convolution
becomes a stride-1 one with a (kh/s, kw/s) kernel over s s C channels, whose
patches are unstrided slices; with K rearranged the same way it is the same
sum, term for term. When each tap has at least `PER_TAP_CHANNELS` channels,
or the patch matrix would exceed `PATCHES_LIMIT` bytes, the sum over taps is
accumulated one tap at a time instead (kh kw matmuls with contraction C,
nothing duplicated in memory).

Transposed convolution (`conv2d_transpose`), as `lax.conv_transpose` with
`transpose_kernel=False` (what flax computes): the stride-1 convolution of the
s-dilated input with K and padding (pa, pb),

    y[o] = sum_t x_dil_pad[o + t] K[t],      x_dil_pad[pa + s m] = x[m],

so input pixel m and tap t add x[m] K[t] to output o = s m + pa - t. With
Z = x K_all, K_all = K as (C, kh kw O) (one matmul, no multiplications by the
dilation's zeros),

    y = sum_t  place_t(Z[..., t, :]),

where place_t spreads Z_t onto the output grid with stride s and offset
pa - t. Writing pa - t = s a_t + r_t with 0 <= r_t < s, tap t only reaches
the outputs of phase r_t (o = s q + r_t), at the input-resolution index
q = m + a_t. So each of the s x s phase images is a sum of shifted taps at
input resolution (`lax.pad` without interior padding, negative edges crop),
and y interleaves the phases (depth-to-space): no full-resolution buffer per
tap, no arithmetic on dilation zeros. Its derivatives are again one matmul
each, dK_all = x^T S(dy), dx = S(dy) K_all^T, with S the adjoint data
movement (space-to-depth and shifted slices). The taps Z_t are taken from Z
with `lax.split`, whose transpose assembles S(dy) by one concatenation of
the shifted slices; indexing Z instead would transpose into kh kw zero-padded
copies of Z summed, the slowest instruction of the DCGAN step on CPU.

On other back-ends (GPU, TPU) the vendor convolutions are fast, and
`implementation='auto'` uses `lax.conv_general_dilated`/`lax.conv_transpose`
there; `implementation='matmul'` or `'xla'` forces one formulation.
`tests/layers_test.py` checks outputs and input and kernel gradients against
flax's layers to 1e-5 relative; `bench/conv_formulations.py` times them.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, NamedTuple, Optional, Sequence, Union

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PaddingLike = Union[str, int, Sequence[Union[int, tuple[int, int]]]]
Pairs = tuple[tuple[int, int], tuple[int, int]]

DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')
PADDINGS = ('SAME', 'VALID')
IMPLEMENTATIONS = ('auto', 'matmul', 'xla')
# Patch matrices larger than this are not materialised; taps are accumulated.
PATCHES_LIMIT = 256 * 1024 * 1024
# With this many input channels per tap (after space-to-depth) each tap's
# matmul is large enough to run near the machine's matmul rate, and
# accumulating taps beats building the patch matrix (bench/conv_formulations.py:
# DCGAN's 14x14x64 -> 7x7x128 layer, 13.0 ms against 17.6 ms per forward and
# backward pass inside lax.scan).
PER_TAP_CHANNELS = 128


def _pair(value: Union[int, Sequence[int]], what: str) -> tuple[int, int]:
  if isinstance(value, int):
    return (value, value)
  value = tuple(int(v) for v in value)
  if len(value) != 2:
    raise ValueError(f'{what} must be an int or 2 ints (2-D), got {value}')
  return value


def _explicit(padding: PaddingLike) -> Optional[Pairs]:
  """Explicit padding as ((lo, hi), (lo, hi)); None for 'SAME'/'VALID'."""
  if isinstance(padding, str):
    if padding.upper() not in PADDINGS:
      raise ValueError(f'unsupported padding {padding!r}; valid paddings: '
                       f'{", ".join(PADDINGS)}, an int, or (lo, hi) pairs')
    return None
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  pads = tuple(padding)
  if len(pads) != 2:
    raise ValueError(f'padding needs 2 spatial entries, got {padding}')
  return tuple(_pair(p, 'padding') if not isinstance(p, int) else (p, p)
               for p in pads)


def conv_padding(padding: PaddingLike, in_hw: Sequence[int],
                 kernel_hw: Sequence[int], strides: Sequence[int]) -> Pairs:
  """Explicit (lo, hi) pads of a convolution, as `lax.padtype_to_pads`.

  'SAME': output ceil(n / s), total pad max((out - 1) s + k - n, 0), the
  smaller half first; 'VALID': no padding.
  """
  pairs = _explicit(padding)
  if pairs is not None:
    return pairs
  if padding.upper() == 'VALID':
    return ((0, 0), (0, 0))
  result = []
  for n, k, s in zip(in_hw, kernel_hw, strides):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    result.append((total // 2, total - total // 2))
  return tuple(result)


def conv_transpose_padding(padding: PaddingLike, kernel_hw: Sequence[int],
                           strides: Sequence[int]) -> Pairs:
  """(pa, pb) pads of the dilated convolution in `lax.conv_transpose`.

  'SAME': pa + pb = k + s - 2 with pa = k - 1 if s > k - 1 else
  ceil((k + s - 2) / 2); 'VALID': pa + pb = k + s - 2 + max(k - s, 0),
  pa = k - 1; explicit pairs are used as they are (flax's behaviour).
  """
  pairs = _explicit(padding)
  if pairs is not None:
    return pairs
  result = []
  for k, s in zip(kernel_hw, strides):
    if padding.upper() == 'SAME':
      total = k + s - 2
      lo = k - 1 if s > k - 1 else int(np.ceil(total / 2))
    else:
      total = k + s - 2 + max(k - s, 0)
      lo = k - 1
    result.append((lo, total - lo))
  return tuple(result)


def _pad_spatial(x: Array, pads: Sequence[tuple[int, int]]) -> Array:
  """Zero-pads (negative: crops) the two spatial axes of an NHWC array."""
  zero = jnp.zeros((), x.dtype)
  return lax.pad(x, zero, ((0, 0, 0),) + tuple((lo, hi, 0) for lo, hi in pads)
                 + ((0, 0, 0),))


def _out_size(n: int, k: int, s: int, pads: tuple[int, int]) -> int:
  return (n + pads[0] + pads[1] - k) // s + 1


def _space_to_depth(x: Array, s: tuple[int, int]) -> Array:
  """(B, H, W, C) -> (B, H/sh, W/sw, sh sw C), channel order (p, q, c)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // s[0], s[0], w // s[1], s[1], c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // s[0], w // s[1],
                                               s[0] * s[1] * c)


def _kernel_space_to_depth(kernel: Array, s: tuple[int, int]) -> Array:
  """(kh, kw, C, O) -> (kh/sh, kw/sw, sh sw C, O), matching `_space_to_depth`."""
  kh, kw, c, o = kernel.shape
  k = kernel.reshape(kh // s[0], s[0], kw // s[1], s[1], c, o)
  return k.transpose(0, 2, 1, 3, 4, 5).reshape(kh // s[0], kw // s[1],
                                               s[0] * s[1] * c, o)


def _taps(x_pad: Array, kh: int, kw: int, s: tuple[int, int], ho: int,
          wo: int) -> list[Array]:
  """The kh kw strided windows x_pad[:, u::s, v::s] of output size (ho, wo)."""
  b, _, _, c = x_pad.shape
  return [lax.slice(x_pad, (0, u, v, 0),
                    (b, u + s[0] * (ho - 1) + 1, v + s[1] * (wo - 1) + 1, c),
                    (1, s[0], s[1], 1))
          for u in range(kh) for v in range(kw)]


def conv2d(x: Array, kernel: Array, strides: Sequence[int],
           padding: Pairs, precision=None) -> Array:
  """Cross-correlation y = P(x) K_mat (see the module docstring), NHWC/HWIO.

  Same function as `lax.conv_general_dilated(x, kernel, strides, padding,
  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))`, built from slices and one
  matmul (or one per tap when the patch matrix would exceed PATCHES_LIMIT).
  """
  s = _pair(strides, 'strides')
  kh, kw, c, o = kernel.shape
  b, h, w, _ = x.shape
  ho = _out_size(h, kh, s[0], padding[0])
  wo = _out_size(w, kw, s[1], padding[1])
  if s != (1, 1) and kh % s[0] == 0 and kw % s[1] == 0:
    # Pad so the padded extent is exactly s * (out + k/s - 1), then
    # space-to-depth: a stride-1 convolution with a (kh/s, kw/s) kernel.
    hp, wp = s[0] * (ho + kh // s[0] - 1), s[1] * (wo + kw // s[1] - 1)
    pads = ((padding[0][0], hp - h - padding[0][0]),
            (padding[1][0], wp - w - padding[1][0]))
    x = _space_to_depth(_pad_spatial(x, pads), s)
    kernel = _kernel_space_to_depth(kernel, s)
    kh, kw, c = kh // s[0], kw // s[1], s[0] * s[1] * c
    s = (1, 1)
  else:
    x = _pad_spatial(x, padding)
  taps = _taps(x, kh, kw, s, ho, wo)
  if (c < PER_TAP_CHANNELS and
      b * ho * wo * kh * kw * c * x.dtype.itemsize <= PATCHES_LIMIT):
    patches = jnp.concatenate(taps, axis=-1).reshape(b * ho * wo, kh * kw * c)
    y = jnp.dot(patches, kernel.reshape(kh * kw * c, o), precision=precision)
  else:
    y = sum(jnp.dot(t.reshape(b * ho * wo, c), k_t, precision=precision)
            for t, k_t in zip(taps, kernel.reshape(kh * kw, c, o)))
  return y.reshape(b, ho, wo, o)


def conv2d_transpose(x: Array, kernel: Array, strides: Sequence[int],
                     padding: Pairs, precision=None) -> Array:
  """y = sum_t place_t(x K_t) (see the module docstring), NHWC/HWIO.

  Same function as `lax.conv_transpose(x, kernel, strides, padding,
  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))` with explicit (pa, pb) pads,
  built from one matmul and kh kw strided placements.
  """
  s = _pair(strides, 'strides')
  kh, kw, c, o = kernel.shape
  b, h, w, _ = x.shape
  (pah, pbh), (paw, pbw) = padding
  ho = (h - 1) * s[0] + 1 + pah + pbh - kh + 1
  wo = (w - 1) * s[1] + 1 + paw + pbw - kw + 1
  k_all = kernel.transpose(2, 0, 1, 3).reshape(c, kh * kw * o)
  z = jnp.dot(x.reshape(b * h * w, c), k_all, precision=precision)
  # `lax.split`, not indexing (see the module docstring).
  taps = lax.split(z.reshape(b, h, w, kh * kw * o), [o] * (kh * kw), axis=3)
  # Tap t adds Z_t[m] to output o = s m + pa - t. With pa - t = s a_t + r_t
  # (0 <= r_t < s) that is phase r_t of the output at the input-resolution
  # index q = m + a_t: each phase image is a sum of shifted (un-dilated)
  # taps, and the phases interleave into y by depth-to-space.
  qh, qw = -(-ho // s[0]), -(-wo // s[1])
  zero = jnp.zeros((), x.dtype)
  phases = {}
  for u in range(kh):
    a_u, r_u = divmod(pah - u, s[0])
    for v in range(kw):
      a_v, r_v = divmod(paw - v, s[1])
      shifted = lax.pad(taps[u * kw + v], zero,
                        ((0, 0, 0), (a_u, qh - h - a_u, 0),
                         (a_v, qw - w - a_v, 0), (0, 0, 0)))
      key = (r_u, r_v)
      phases[key] = shifted if key not in phases else phases[key] + shifted
  empty = jnp.zeros((b, qh, qw, o), x.dtype)
  y = jnp.stack([jnp.stack([phases.get((r_u, r_v), empty)
                            for r_v in range(s[1])], axis=3)
                 for r_u in range(s[0])], axis=2)  # (b, qh, s0, qw, s1, o)
  return y.reshape(b, qh * s[0], qw * s[1], o)[:, :ho, :wo, :]


def _use_matmul(implementation: str) -> bool:
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f'unknown convolution implementation {implementation!r}; '
                     f'valid implementations: {", ".join(IMPLEMENTATIONS)}')
  if implementation == 'auto':
    return jax.default_backend() == 'cpu'
  return implementation == 'matmul'


def _check_input(x: Array, name: str) -> None:
  if x.ndim != 4:
    raise ValueError(f'{name} takes NHWC inputs (4-D), got shape {x.shape}')


class _Formulation(NamedTuple):
  """How one kind of convolution is computed: its pads, its matmul form (CPU)
  and XLA's own convolution."""

  pads: Callable      # (padding, spatial (H, W), kernel size, strides) -> pads
  matmul: Callable    # (x, kernel, strides, pads, precision) -> y
  xla: Callable       # (x, kernel, strides, pads, precision) -> y


_CONV = _Formulation(
    pads=conv_padding,
    matmul=conv2d,
    xla=lambda x, k, s, p, precision: lax.conv_general_dilated(
        x, k, s, p, dimension_numbers=DIMENSION_NUMBERS, precision=precision))

_CONV_TRANSPOSE = _Formulation(
    # The transposed convolution's pads depend on the kernel only.
    pads=lambda padding, spatial, ks, s: conv_transpose_padding(padding, ks, s),
    matmul=conv2d_transpose,
    xla=lambda x, k, s, p, precision: lax.conv_transpose(
        x, k, s, p, dimension_numbers=DIMENSION_NUMBERS, precision=precision))


class _Convolution(nn.Module):
  """What `Conv` and `ConvTranspose` share: their fields, parameters and the
  choice between the matmul formulation (CPU) and XLA's convolution; each
  subclass names its `_Formulation`.

  Parameters `kernel` (kh, kw, C, features) and `bias` (features,), with
  flax's default initialisers, so flax's layers' variables apply unchanged.

  Attributes:
    features: output channels O.
    kernel_size: (kh, kw) or an int.
    strides: (sh, sw) or an int.
    padding: 'SAME', 'VALID', an int, or ((lo, hi), (lo, hi)).
    use_bias: whether to add a bias.
    implementation: 'auto' (matmul on CPU, XLA's convolution elsewhere),
      'matmul' or 'xla'.
  """

  formulation: ClassVar[_Formulation]

  features: int
  kernel_size: Union[int, Sequence[int]] = (3, 3)
  strides: Union[int, Sequence[int]] = 1
  padding: PaddingLike = 'SAME'
  use_bias: bool = True
  dtype: Optional[Any] = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  implementation: str = 'auto'

  @nn.compact
  def __call__(self, x: Array) -> Array:
    _check_input(x, type(self).__name__)
    ks = _pair(self.kernel_size, 'kernel_size')
    strides = _pair(self.strides, 'strides')
    kernel = self.param('kernel', self.kernel_init,
                        ks + (x.shape[-1], self.features), self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,),
                       self.param_dtype) if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias,
                                              dtype=self.dtype)
    form = self.formulation
    pads = form.pads(self.padding, x.shape[1:3], ks, strides)
    compute = form.matmul if _use_matmul(self.implementation) else form.xla
    y = compute(x, kernel, strides, pads, self.precision)
    if bias is not None:
      y = y + bias
    return y


class Conv(_Convolution):
  """`flax.linen.Conv` (2-D, NHWC) computed as a matmul over patches on CPU.

  Fields as `flax.linen.Conv` (see `_Convolution`).
  """

  formulation: ClassVar[_Formulation] = _CONV


class ConvTranspose(_Convolution):
  """`flax.linen.ConvTranspose` (2-D, NHWC, `transpose_kernel=False`) computed
  as one matmul and strided placements on CPU.

  Fields as `flax.linen.ConvTranspose` (see `_Convolution`); `padding` as an
  explicit pair gives the pads of the dilated convolution, as flax passes
  them to `lax.conv_transpose`. For a 4x4 stride-2 'SAME' layer the output is
  (2H, 2W), as in flax.
  """

  formulation: ClassVar[_Formulation] = _CONV_TRANSPOSE


def spectral_norm(layer: nn.Module, enabled: bool = True, n_steps: int = 1
                  ) -> Callable[[Array, bool], Array]:
  """`layer` as f(x, train), spectrally normalised when `enabled`.

  Spectral normalisation (Miyato et al. 2018) divides the layer's kernel,
  reshaped to the matrix W of shape (prod(kernel.shape[:-1]), out), by its
  largest singular value sigma(W), estimated by power iteration:

      v <- normalise(u W^T),   u <- normalise(v W),   sigma = v W u^T,

  with u carried between calls in the 'batch_stats' collection and updated
  when `train` is True (`flax.linen.SpectralNorm`; u and v are constants of
  the gradient). The normalised layer is then 1-Lipschitz in the spectral
  norm, up to the power-iteration error. Apply with
  `mutable=['batch_stats']` when `train` is True.
  """
  if not enabled:
    return lambda x, train: layer(x)
  wrapped = nn.SpectralNorm(layer, n_steps=n_steps)
  return lambda x, train: wrapped(x, update_stats=train)


__all__ = ['Conv', 'ConvTranspose', 'conv2d', 'conv2d_transpose',
           'conv_padding', 'conv_transpose_padding', 'spectral_norm',
           'IMPLEMENTATIONS', 'PATCHES_LIMIT']
