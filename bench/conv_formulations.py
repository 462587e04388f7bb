"""Forward + backward time of convolution formulations at DCGAN-MNIST sizes.

Layers (batch 64, 4x4 kernels, stride 2, 'SAME'): D's convolutions
28x28x1 -> 14x14x64 and 14x14x64 -> 7x7x128, G's transposed convolutions
7x7x128 -> 14x14x64 and 14x14x64 -> 28x28x1. One timed unit is the forward
pass and both gradients (input and kernel) of <y, r> for a fixed cotangent r,
followed by a tiny update of x and K so that nothing is loop-invariant. Each
unit is timed in a Python loop of jitted calls and inside one jitted
`lax.scan`, best of `--repeats` (the machine may be shared: best-of removes
most of the interference, not all).

    python bench/conv_formulations.py [--iters=10] [--repeats=3] [--batch=64]

Every formulation is checked against flax's layer (outputs and both
gradients to 1e-5 relative) before it is timed.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from gan_jax import layers

DN = layers.DIMENSION_NUMBERS
STRIDES = (2, 2)


def flax_conv(x, k, pads):
  return lax.conv_general_dilated(x, k, STRIDES, pads, dimension_numbers=DN)


def patches_conv(x, k, pads):
  """`conv_general_dilated_patches` (itself an XLA convolution) + one matmul."""
  kh, kw, c, o = k.shape
  p = lax.conv_general_dilated_patches(x, (kh, kw), STRIDES, pads,
                                       dimension_numbers=DN)
  # patch channels are ordered (c, u, v)
  k_mat = k.transpose(2, 0, 1, 3).reshape(c * kh * kw, o)
  return jnp.dot(p.reshape(-1, c * kh * kw), k_mat).reshape(p.shape[:3] + (o,))


def strided_slices_conv(x, k, pads):
  """im2col from kh kw strided slices of the padded input, one matmul."""
  kh, kw, c, o = k.shape
  xp = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
  ho = (xp.shape[1] - kh) // STRIDES[0] + 1
  wo = (xp.shape[2] - kw) // STRIDES[1] + 1
  cols = [lax.slice(xp, (0, u, v, 0),
                    (x.shape[0], u + STRIDES[0] * (ho - 1) + 1,
                     v + STRIDES[1] * (wo - 1) + 1, c), (1,) + STRIDES + (1,))
          for u in range(kh) for v in range(kw)]
  p = jnp.concatenate(cols, axis=-1).reshape(-1, kh * kw * c)
  return jnp.dot(p, k.reshape(-1, o)).reshape(x.shape[0], ho, wo, o)


def per_tap_conv(x, k, pads):
  """The space-to-depth convolution accumulated one tap (matmul) at a time."""
  saved = layers.PATCHES_LIMIT
  layers.PATCHES_LIMIT = 0
  try:
    return layers.conv2d(x, k, STRIDES, pads)
  finally:
    layers.PATCHES_LIMIT = saved


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def vjp_conv(x, k, pads):
  return flax_conv(x, k, pads)


def _vjp_conv_fwd(x, k, pads):
  return flax_conv(x, k, pads), (x, k)


def _vjp_conv_bwd(pads, res, g):
  """XLA's input gradient; the kernel gradient as one matmul over patches."""
  x, k = res
  _, pull = jax.vjp(lambda x: flax_conv(x, k, pads), x)
  kh, kw, c, o = k.shape
  p = lax.conv_general_dilated_patches(x, (kh, kw), STRIDES, pads,
                                       dimension_numbers=DN)
  dk = jnp.dot(p.reshape(-1, c * kh * kw).T, g.reshape(-1, o))
  return pull(g)[0], dk.reshape(c, kh, kw, o).transpose(1, 2, 0, 3)


vjp_conv.defvjp(_vjp_conv_fwd, _vjp_conv_bwd)


def flax_conv_transpose(x, k, pads):
  return lax.conv_transpose(x, k, STRIDES, pads, dimension_numbers=DN)


def subpixel_conv_transpose(x, k, pads):
  """4x4/2 'SAME' only: a 2x2 stride-1 XLA convolution with 4 O channels
  (one per output phase), then depth-to-space.

  With flax's pads (2, 2): y[2m] = x[m-1] K[0] + x[m] K[2] and
  y[2m+1] = x[m] K[1] + x[m+1] K[3] along each axis.
  """
  assert pads == ((2, 2), (2, 2)) and k.shape[:2] == (4, 4)
  b, h, w, c = x.shape
  o = k.shape[-1]
  taps = ((0, 2), (1, 3))
  kern = jnp.stack([jnp.stack([k[np.ix_(taps[p], taps[q])] for q in range(2)],
                              axis=3) for p in range(2)], axis=3)
  y = lax.conv_general_dilated(x, kern.reshape(2, 2, c, 4 * o), (1, 1),
                               ((1, 1), (1, 1)), dimension_numbers=DN)
  y = y.reshape(b, h + 1, w + 1, 2, 2, o)
  phases = jnp.stack([jnp.stack([y[:, p:p + h, q:q + w, p, q]
                                 for q in range(2)], axis=3)
                      for p in range(2)], axis=2)  # (b, h, 2, w, 2, o)
  return phases.reshape(b, 2 * h, 2 * w, o)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def vjp_conv_transpose(x, k, pads):
  return flax_conv_transpose(x, k, pads)


def _vjp_convt_fwd(x, k, pads):
  return flax_conv_transpose(x, k, pads), (x, k)


def _vjp_convt_bwd(pads, res, g):
  """XLA's input gradient; dK[u, v] = x^T S_{u,v}(g), one matmul."""
  x, k = res
  _, pull = jax.vjp(lambda x: flax_conv_transpose(x, k, pads), x)
  _, pull_k = jax.vjp(lambda k: layers.conv2d_transpose(x, k, STRIDES, pads), k)
  return pull(g)[0], pull_k(g)[0]


vjp_conv_transpose.defvjp(_vjp_convt_fwd, _vjp_convt_bwd)


CONV = {
    'flax / lax.conv_general_dilated': flax_conv,
    'conv_general_dilated_patches + matmul': patches_conv,
    'custom_vjp: XLA fwd+dx, dK = P^T dy': vjp_conv,
    'strided slices (im2col) + matmul': strided_slices_conv,
    'space-to-depth, per-tap matmuls': per_tap_conv,
    'space-to-depth im2col + matmul (layers)':
        lambda x, k, pads: layers.conv2d(x, k, STRIDES, pads),
}
CONV_TRANSPOSE = {
    'flax / lax.conv_transpose': flax_conv_transpose,
    'sub-pixel: stride-1 conv + depth-to-space': subpixel_conv_transpose,
    'custom_vjp: XLA fwd+dx, dK = x^T S(dy)': vjp_conv_transpose,
    'matmul + strided placement (layers)':
        lambda x, k, pads: layers.conv2d_transpose(x, k, STRIDES, pads),
}


def layer_cases(batch: int):
  """(label, formulations, x shape, kernel shape, pads)."""
  conv = lambda n: layers.conv_padding('SAME', (n, n), (4, 4), STRIDES)
  convt = layers.conv_transpose_padding('SAME', (4, 4), STRIDES)
  return [
      ('D conv 28x28x1 -> 14x14x64', CONV, (batch, 28, 28, 1), (4, 4, 1, 64),
       conv(28)),
      ('D conv 14x14x64 -> 7x7x128', CONV, (batch, 14, 14, 64),
       (4, 4, 64, 128), conv(14)),
      ('G convT 7x7x128 -> 14x14x64', CONV_TRANSPOSE, (batch, 7, 7, 128),
       (4, 4, 128, 64), convt),
      ('G convT 14x14x64 -> 28x28x1', CONV_TRANSPOSE, (batch, 14, 14, 64),
       (4, 4, 64, 1), convt),
  ]


def max_relative_error(f, ref, x, k, r, pads) -> float:
  loss = lambda fn: lambda x, k: jnp.sum(fn(x, k, pads) * r)
  got = (f(x, k, pads),) + jax.grad(loss(f), (0, 1))(x, k)
  want = (ref(x, k, pads),) + jax.grad(loss(ref), (0, 1))(x, k)
  return max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
             for a, b in zip(got, want))


def time_formulation(f, x, k, r, pads, iters: int, repeats: int
                     ) -> tuple[float, float]:
  """Best-of ms per forward+backward: (jitted loop, inside lax.scan)."""

  def body(carry, _):
    x, k = carry
    dx, dk = jax.grad(lambda x, k: jnp.sum(f(x, k, pads) * r), (0, 1))(x, k)
    return (x - 1e-6 * dx, k - 1e-6 * dk), None

  step = jax.jit(lambda x, k: body((x, k), None)[0])
  scan = jax.jit(lambda x, k: lax.scan(body, (x, k), None, length=iters)[0])
  jax.block_until_ready(step(x, k))
  jax.block_until_ready(scan(x, k))
  loop_best = scan_best = float('inf')
  for _ in range(repeats):
    carry = (x, k)
    start = time.perf_counter()
    for _ in range(iters):
      carry = step(*carry)
    jax.block_until_ready(carry)
    loop_best = min(loop_best, (time.perf_counter() - start) / iters)
    start = time.perf_counter()
    jax.block_until_ready(scan(x, k))
    scan_best = min(scan_best, (time.perf_counter() - start) / iters)
  return 1e3 * loop_best, 1e3 * scan_best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--iters', type=int, default=10)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--batch', type=int, default=64)
  args = parser.parse_args()
  print(f'device: {jax.devices()[0].device_kind} x{jax.device_count()}  '
        f'jax {jax.__version__}; batch {args.batch}; ms per forward+backward '
        f'(input and kernel gradients), best of {args.repeats} x {args.iters}')
  print()
  print(f'| {"layer":<28} | {"formulation":<42} | {"jit loop ms":>11} | '
        f'{"lax.scan ms":>11} | {"max rel err":>11} |')
  print(f'|{"-" * 30}|{"-" * 44}|{"-" * 13}|{"-" * 13}|{"-" * 13}|')
  for label, formulations, x_shape, k_shape, pads in layer_cases(args.batch):
    kx, kk, kr = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, x_shape, jnp.float32)
    k = 0.05 * jax.random.normal(kk, k_shape, jnp.float32)
    ref = next(iter(formulations.values()))
    r = jax.random.normal(
        kr, jax.eval_shape(lambda x, k: ref(x, k, pads), x, k).shape)
    for name, f in formulations.items():
      err = max_relative_error(f, ref, x, k, r, pads)
      if err > 1e-5:
        raise AssertionError(f'{name} differs from flax on {label}: {err:.1e}')
      loop_ms, scan_ms = time_formulation(f, x, k, r, pads, args.iters,
                                          args.repeats)
      print(f'| {label:<28} | {name:<42} | {loop_ms:11.2f} | {scan_ms:11.2f} '
            f'| {err:11.1e} |', flush=True)


if __name__ == '__main__':
  main()
