"""What a run tells its user: metrics.jsonl, TensorBoard events, progress.

* `MetricsLog`: one strict JSON object per line (RFC 8259: no bare `NaN` or
  `Infinity`, which strict readers reject). A non-finite float is written as
  `null` and named in the line's `nonfinite` object with its spelling,
  `"nan"`, `"inf"` or `"-inf"`, at the same place in the record:

      {"step": 40, "d_loss": null, "g_loss": 0.7, "nonfinite": {"d_loss": "nan"}}

  `read_metrics` (and `decode_record`) give the floats back. On resume from
  step S the log keeps the lines of steps <= S and drops the rest (steps past
  the checkpoint that will be recomputed, the previous final line), so the
  file of a resumed run has the same steps as an uninterrupted run's, each
  once. A damaged line (bytes that are not UTF-8, invalid JSON, a line cut off
  by a kill or a power loss) is set aside in `metrics.jsonl.damaged-S`, with
  one warning; it never stops a run from resuming. `flush(fsync=True)` puts
  the lines on disk before a checkpoint that claims their step is written.
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
from typing import IO, Callable, Iterator, Optional

import numpy as np

from gan_jax import fileio

# For the callers that import it from here; new code uses gan_jax.fileio.
atomic_write = fileio.atomic_write

NONFINITE = 'nonfinite'
_SPELLINGS = {'nan': math.nan, 'inf': math.inf, '-inf': -math.inf}


def _spelling(value: float) -> str:
  return 'nan' if math.isnan(value) else ('inf' if value > 0 else '-inf')


def _null_nonfinite(value, marks: dict, key):
  """`value` with each non-finite float replaced by None; `marks[key]` gets
  its spelling (nested dicts and lists get a nested dict of marks)."""
  if isinstance(value, float) and not math.isfinite(value):
    marks[key] = _spelling(value)
    return None
  items = (value.items() if isinstance(value, dict) else
           enumerate(value) if isinstance(value, (list, tuple)) else None)
  if items is None:
    return value
  inner = {}
  clean = {k: _null_nonfinite(v, inner, str(k)) for k, v in items}
  if inner:
    marks[key] = inner
  return clean if isinstance(value, dict) else list(clean.values())


def encode_record(record: dict) -> str:
  """`record` as one line of strict JSON (with its newline).

  Non-finite floats become `null`, and the `nonfinite` object records each
  one's spelling at its key (a nested record's marks nest the same way, a
  list's are keyed by index). Raises ValueError if `record` already has a
  `nonfinite` key, TypeError for a value JSON cannot hold.
  """
  if NONFINITE in record:
    raise ValueError(f'a metrics record may not have a {NONFINITE!r} key; '
                     'it is reserved for the non-finite values')
  marks: dict = {}
  clean = _null_nonfinite(record, marks, NONFINITE)
  if marks:
    clean.update(marks)
  return json.dumps(clean, allow_nan=False) + '\n'


def _restore(container, marks: dict) -> None:
  if not isinstance(marks, dict):
    raise ValueError(f'{NONFINITE} holds {marks!r}, not an object')
  for key, mark in marks.items():
    index = int(key) if isinstance(container, list) else key
    if isinstance(mark, dict):
      _restore(container[index], mark)
    elif mark in _SPELLINGS and container[index] is None:
      container[index] = _SPELLINGS[mark]
    else:
      raise ValueError(f'{NONFINITE} marks {key!r} as {mark!r}')


def decode_record(line: bytes | str) -> dict:
  """The record of one metrics.jsonl line, its non-finite floats restored.

  Lines written before metrics.jsonl was strict, with bare `NaN` and
  `Infinity`, read as well. Raises ValueError (UnicodeDecodeError and
  json.JSONDecodeError are ValueErrors) for a damaged line: bytes that are not
  UTF-8, invalid JSON, anything but an object with an integer `step`, or
  `nonfinite` marks that do not match the record.
  """
  if isinstance(line, bytes):
    line = line.decode('utf-8')
  record = json.loads(line)
  if not (isinstance(record, dict) and isinstance(record.get('step'), int)
          and not isinstance(record['step'], bool)):
    raise ValueError('a metrics line is an object with an integer step')
  try:
    _restore(record, record.pop(NONFINITE, {}))
  except (LookupError, TypeError) as e:
    raise ValueError(f'{NONFINITE} marks do not match the record: {e}') from None
  return record


def read_metrics(path: str) -> tuple[list[dict], list[bytes]]:
  """The records of metrics.jsonl at `path` (non-finite floats restored) and
  its damaged lines as they were (raw bytes, without their newline).

  The file is read as bytes and decoded line by line, so one bad line costs
  only that line. Blank lines are neither.
  """
  with open(path, 'rb') as f:
    data = f.read()
  records, damaged = [], []
  for line in data.split(b'\n'):
    if not line.strip():
      continue
    try:
      records.append(decode_record(line))
    except ValueError:
      damaged.append(line)
  return records, damaged


def _stderr(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def set_aside(path: str, lines: list[bytes], step: int) -> str:
  """Writes `lines` to `PATH.damaged-STEP` (or `.damaged-STEP.2`, ... if that
  exists: what was set aside before is kept) and returns its path."""
  aside = f'{path}.damaged-{step}'
  copy = 1
  while os.path.exists(aside if copy == 1 else f'{aside}.{copy}'):
    copy += 1
  aside = aside if copy == 1 else f'{aside}.{copy}'
  fileio.atomic_write(aside, b''.join(line + b'\n' for line in lines))
  return aside


class MetricsLog:
  """Appends strict JSON lines to `path`, first keeping only the lines up to
  `resume_step` (none for a new run).

  Damaged lines met on resume are set aside (`set_aside`) and `warn` (default:
  a line on stderr) is called once with how many and where.
  """

  def __init__(self, path: str, resume_step: int = 0,
               warn: Callable[[str], None] = _stderr):
    kept = []
    if resume_step > 0 and os.path.exists(path):
      records, damaged = read_metrics(path)
      kept = [encode_record(r) for r in records
              if not r.get('final') and 0 < r['step'] <= resume_step]
      if damaged:
        aside = set_aside(path, damaged, resume_step)
        count = f'{len(damaged)} damaged line{"s" * (len(damaged) > 1)}'
        warn(f'warning: {count} of {path} (bytes that are not UTF-8, invalid '
             f'JSON or cut off) set aside in {aside}; the log resumes after '
             f'step {resume_step}')
    fileio.atomic_write(path, ''.join(kept))
    self._file = open(path, 'a', encoding='utf-8')

  def write(self, record: dict) -> None:
    """Appends `record` (see `encode_record`), handed to the OS at once."""
    self._file.write(encode_record(record))
    self._file.flush()

  def flush(self, fsync: bool = False) -> None:
    """Hands the lines to the OS; with `fsync`, waits until they are on disk."""
    self._file.flush()
    if fsync:
      os.fsync(self._file.fileno())

  def close(self) -> None:
    self.flush(fsync=True)
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
