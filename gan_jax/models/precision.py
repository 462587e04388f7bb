"""Computation dtypes: models compute in one, parameters and outputs stay float32.

`--compute_dtype=bfloat16` runs every layer's arithmetic (matmuls,
convolutions, activations; batch norm normalises in it but reduces its
statistics in float32, flax's default) in bfloat16, with an 8-bit
significand, while the parameters, the optimizer states, spectral norm's
power iteration on the float32 kernels and all loss arithmetic stay float32:
each model casts its inputs and parameters to the computation dtype
(`flax.linen.dtypes.promote_dtype`) and its outputs back to float32. Gradients
reach the float32 parameters through those casts, so Adam updates the
float32 master weights ("mixed precision", Micikevicius et al. 2018). The
win is on accelerators with bfloat16 matrix units; a CPU without them
computes bfloat16 no faster.

'float32' maps to None, which leaves every module computing in its inputs'
dtype exactly as without the flag.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

COMPUTE_DTYPES = {'float32': None, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: str) -> Optional[Any]:
  """The module `dtype` for `--compute_dtype=name` (None for float32)."""
  try:
    return COMPUTE_DTYPES[name]
  except KeyError:
    raise ValueError(f'unknown compute dtype {name!r}; valid: '
                     f'{", ".join(COMPUTE_DTYPES)}') from None


def as_float32(out: jax.Array, dtype: Optional[Any]) -> jax.Array:
  """A model's output returned in float32 when it computed in `dtype`;
  unchanged when `dtype` is None (a float64 run keeps its dtype)."""
  return out if dtype is None else out.astype(jnp.float32)
