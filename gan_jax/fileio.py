"""Atomic file writes: readers see the old file or the new one, never a part.

Every artifact gan_jax writes (config.json, samples.npy, samples.png,
RESULTS.md, reference statistics, classifier weights) goes through here. A
file is written beside its target under a name that starts with `TMP_PREFIX`,
flushed, fsynced and renamed over the target (`os.replace` is atomic on POSIX
within one file system). Temporaries left by a killed process are recognised
by that prefix only, so cleaning up never touches files gan_jax did not write.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

TMP_PREFIX = '.gan_jax-tmp-'


def temporary_name(path: str) -> str:
  """The temporary sibling of `path` that this process writes before renaming.

  The extension is kept (`samples.png` -> `.gan_jax-tmp-PID-samples.png`) so
  that writers which pick a format from the name (matplotlib, numpy) still do.
  """
  directory, name = os.path.split(path)
  return os.path.join(directory, f'{TMP_PREFIX}{os.getpid()}-{name}')


def _fsync(path: str) -> None:
  with open(path, 'rb') as f:
    os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path to write; renames it over `path` on success.

  The temporary is removed if the body raises, so a failed write leaves the
  old `path` (or nothing) behind.

      with atomic_path('samples.png') as tmp:
        figure.savefig(tmp)
  """
  tmp = temporary_name(path)
  try:
    yield tmp
    _fsync(tmp)
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    if isinstance(e, OSError) and e.filename is None:
      e.filename = path  # a failed write() names no file: name the target
    raise


def atomic_write(path: str, data: bytes | str) -> None:
  """Writes `data` (text is UTF-8 encoded) to `path` atomically."""
  if isinstance(data, str):
    data = data.encode('utf-8')
  with atomic_path(path) as tmp:
    with open(tmp, 'wb') as f:
      f.write(data)


def remove_stale_temporaries(directory: str) -> list[str]:
  """Removes the temporaries gan_jax left in `directory`; returns their names.

  Only files whose names start with `TMP_PREFIX` are removed.
  """
  removed = []
  try:
    names = os.listdir(directory)
  except FileNotFoundError:
    return removed
  for name in names:
    full = os.path.join(directory, name)
    if name.startswith(TMP_PREFIX) and os.path.isfile(full):
      with contextlib.suppress(FileNotFoundError):
        os.remove(full)
        removed.append(name)
  return removed
