"""What a run tells its user: metrics.jsonl, TensorBoard events, progress.

* `MetricsLog`: one JSON object per line. On resume from step S it keeps the
  lines of steps <= S and drops the rest (steps past the checkpoint that will
  be recomputed, the previous final line, a line cut off by a kill), so the
  file of a resumed run has the same steps as an uninterrupted run's, each once.
* `TensorBoard`: event files beside metrics.jsonl, written with tensorboardX
  (no TensorFlow): every logged scalar at its step, and the sample images.
  A resumed writer sets `purge_step`, so TensorBoard discards the older files'
  events from that step on, as it does after a TensorFlow restart.
* `Progress`: on a terminal one line redrawn in place (a bar, steps/s, ETA);
  otherwise (a file, a pipe, a cluster log) one plain line per chunk.
* `read_events`: reads event files back, checking each record's CRC.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from typing import IO, Iterator, Optional

import numpy as np

from gan_jax import fileio

# For the callers that import it from here; new code uses gan_jax.fileio.
atomic_write = fileio.atomic_write


class MetricsLog:
  """Appends JSON lines to `path`, first keeping only the lines up to `step`."""

  def __init__(self, path: str, resume_step: int = 0):
    kept = []
    if resume_step > 0 and os.path.exists(path):
      with open(path) as f:
        for line in f:
          try:
            record = json.loads(line)
          except ValueError:
            continue  # a line cut off by a kill
          if (isinstance(record, dict) and not record.get('final')
              and 0 < record.get('step', 0) <= resume_step):
            kept.append(json.dumps(record) + '\n')
    fileio.atomic_write(path, ''.join(kept))
    self._file = open(path, 'a')

  def write(self, record: dict) -> None:
    self._file.write(json.dumps(record) + '\n')
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class TensorBoard:
  """Scalars and images as TensorBoard event files in `logdir`."""

  def __init__(self, logdir: str, purge_step: Optional[int] = None):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._writer = SummaryWriter(
        logdir=logdir, purge_step=purge_step or None, flush_secs=10,
        filename_suffix=f'.{os.getpid()}')

  def scalars(self, step: int, record: dict, prefix: str = 'train/') -> None:
    for name, value in record.items():
      if name == 'step' or isinstance(value, bool):
        continue
      if isinstance(value, (int, float)) and math.isfinite(value):
        self._writer.add_scalar(prefix + name, value, step)

  def image_png(self, tag: str, step: int, png_path: str) -> None:
    """Adds the PNG at `png_path` as an image."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    with Image.open(png_path) as image:
      pixels = np.asarray(image.convert('RGB'))
    self._writer.add_image(tag, pixels, step, dataformats='HWC')

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


def _masked_crc(data: bytes) -> int:
  from tensorboardX.crc32c import crc32c  # pylint: disable=g-import-not-at-top
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xa282ead8) & 0xffffffff


def read_events(path: str) -> Iterator:
  """The `Event` protos of one event file; raises ValueError on a bad CRC."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  with open(path, 'rb') as f:
    data = f.read()
  offset = 0
  while offset < len(data):
    header = data[offset:offset + 8]
    (length,) = struct.unpack('<Q', header)
    (header_crc,) = struct.unpack('<I', data[offset + 8:offset + 12])
    body = data[offset + 12:offset + 12 + length]
    (body_crc,) = struct.unpack('<I', data[offset + 12 + length:
                                          offset + 16 + length])
    if header_crc != _masked_crc(header) or body_crc != _masked_crc(body):
      raise ValueError(f'{path}: bad CRC in the record at byte {offset}')
    event = event_pb2.Event()
    event.ParseFromString(body)
    yield event
    offset += 16 + length


def format_eta(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rem = divmod(seconds, 3600)
  minutes, secs = divmod(rem, 60)
  return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


class Progress:
  """Training progress: a redrawn bar on a terminal, plain lines elsewhere."""

  WIDTH = 24

  def __init__(self, num_steps: int, out: Optional[IO[str]] = sys.stdout):
    self.num_steps = num_steps
    self.out = out
    self.tty = bool(out is not None and getattr(out, 'isatty', None)
                    and out.isatty())
    self._drawn = False

  def update(self, step: int, record: dict) -> None:
    if self.out is None:
      return
    rate = record['steps_per_sec']
    eta = format_eta((self.num_steps - step) / rate) if rate > 0 else '?'
    losses = (f'd_loss {record["d_loss"]:+.4f}  g_loss {record["g_loss"]:+.4f}'
              f'  V {record["value"]:+.4f}')
    if self.tty:
      filled = int(self.WIDTH * step / self.num_steps)
      bar = '#' * filled + '.' * (self.WIDTH - filled)
      line = (f'[{bar}] {step}/{self.num_steps} {100 * step / self.num_steps:3.0f}%'
              f'  {rate:.1f} steps/s  ETA {eta}  {losses}')
      self.out.write('\r' + line + '\x1b[K')
      self._drawn = True
    else:
      self.out.write(f'step {step:>7d}/{self.num_steps}  {losses}  '
                     f'{rate:7.1f} steps/s  ETA {eta}\n')
    self.out.flush()

  def close(self) -> None:
    """Ends the redrawn line, so whatever follows starts on a new one."""
    if self._drawn:
      self.out.write('\n')
      self.out.flush()
      self._drawn = False
