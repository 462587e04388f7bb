"""The environment for the `python -m gan_jax.main` subprocesses of the tests.

Every test subprocess compiles the same few tiny programs; a persistent XLA
compilation cache shared by them halves their CPU time. A cached executable is
the compiled program itself, so results (bit-identical comparisons included)
do not depend on whether it came from the cache.
"""

import os
import tempfile

CACHE_DIR = os.path.join(tempfile.gettempdir(), 'gan_jax_tests_xla_cache')


def env(**extra: str) -> dict:
  """os.environ with the compilation cache, no inherited XLA_FLAGS, and `extra`."""
  out = dict(os.environ)
  out.pop('XLA_FLAGS', None)
  out.update(JAX_COMPILATION_CACHE_DIR=CACHE_DIR,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  out.update(extra)
  return out
