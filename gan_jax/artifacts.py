"""The files a run leaves in its workdir: one writer for one run and for a
program of several seeds.

  config.json    the resolved configuration; with several seeds, that of the
                 first plus `num_seeds` and the list of `seeds`;
  metrics.jsonl  one JSON object per log event: per chunk (step, d_loss,
                 g_loss, value, gradient norms, steps_per_sec, elapsed_sec;
                 with several seeds one line per seed, each with its `seed`),
                 in-training evaluations, and last the final evaluation
                 (`"final": true`, one per seed);
  samples.npy    the evaluation samples, shape (N, dims), or (N, H, W, C) in
                 [-1, 1] for images; with several seeds a leading seed axis;
  samples.png    one run: toys drawn over the data's modes, images as an
                 8x8 grid of the first 64; several seeds: one panel per seed;
  samples_STEP.png  (one run) the same picture every --image_every steps;
  sample_labels.npy, samples_by_class.png  (a conditional run) the class
                 each sample was generated for, and for images a grid with
                 a row per class;
  events.out.tfevents.*  (one run) TensorBoard: the metrics as scalars, the
                 samples as an image.

Every file is replaced atomically (`gan_jax.fileio`) or appended to, so a
run killed at any moment leaves each artifact either complete or absent; the
temporaries such a kill leaves are removed when the next run starts.
"""

from __future__ import annotations

import io
import os
from typing import Optional, Sequence

import numpy as np

from gan_jax import fileio
from gan_jax import logging_utils
from gan_jax import workdir_lock
from gan_jax.config import Config


def write_config(workdir: str, config: Config, **members) -> None:
  """config.json: `config` resolved, plus the `members` keys (`num_seeds`,
  `seeds`) of a several-seed program."""
  fileio.atomic_write(os.path.join(workdir, 'config.json'),
                      config.to_json(**members) + '\n')


def save_npy(path: str, array: np.ndarray) -> None:
  buffer = io.BytesIO()
  np.save(buffer, array)
  fileio.atomic_write(path, buffer.getvalue())


def write_picture(path: str, samples: np.ndarray, data, title: str,
                  real: Optional[np.ndarray] = None,
                  panel_titles: Optional[Sequence[str]] = None) -> None:
  """A PNG of generator samples (`gan_jax.plots`, written atomically).

  One run's `samples`: toys scattered over the data's modes (over `real`
  data in grey when given), images as an 8x8 grid. With `panel_titles`,
  `samples` has a leading seed axis and each seed gets its own panel.
  """
  from gan_jax import plots  # pylint: disable=g-import-not-at-top
  if panel_titles is not None:
    plots.samples_grid(path, samples, data, panel_titles, title=title)
  elif samples.ndim == 4:
    plots.save_image_grid(path, samples)
  else:
    plots.toy_samples(path, samples, data, title=title, real=real)


def title(config: Config, final: dict) -> str:
  """One run's picture title: data set, loss, steps and the toy metrics."""
  text = f'{config.dataset} / {config.loss} / {final["step"]} steps'
  if 'modes' in final:
    text += (f'\nmodes {final["modes"]}/{final["num_modes"]}  '
             f'HQ {100 * final["hq_fraction"]:.1f}%')
  if 'jsd' in final:
    text += f'  JSD {final["jsd"]:.4f}'
  return text


def panel_title(final: dict) -> str:
  """One seed's panel title in a several-seed picture."""
  text = f'seed {final["seed"]}'
  if 'modes' in final:
    text += (f': {final["modes"]}/{final["num_modes"]} modes, HQ '
             f'{100 * final["hq_fraction"]:.0f}%')
  return text


class RunFiles:
  """Writes the artifacts of one run, or of one program of several seeds.

  Opening it removes the temporaries a killed run left, writes config.json
  and starts metrics.jsonl (keeping, on resume from step S, the lines of
  steps <= S; see `logging_utils.MetricsLog`). With `write` False (the
  processes of a multi-process run but the first) every method does nothing.

  Args:
    config: the run's config (the first seed's, for several).
    data: the data set, for the pictures (None: no pictures).
    real: real data samples drawn under toy pictures.
    seeds: the seeds of a several-seed program (None: one run).
    resume_step: the step training resumes from (0: a new run).
    tensorboard: whether to write TensorBoard events as well.
    write: whether this process writes files.
  """

  def __init__(self, config: Config, data=None,
               real: Optional[np.ndarray] = None,
               seeds: Optional[Sequence[int]] = None, resume_step: int = 0,
               tensorboard: bool = False, write: bool = True):
    self.config = config
    self.workdir = config.workdir
    self._data = data
    self._real = real
    self._seeds = None if seeds is None else list(seeds)
    self._metrics = self._tensorboard = None
    if not write:
      return
    os.makedirs(self.workdir, exist_ok=True)
    fileio.remove_stale_temporaries(self.workdir)
    extra = ({} if self._seeds is None else
             dict(num_seeds=len(self._seeds), seeds=self._seeds))
    write_config(self.workdir, config, **extra)
    self._metrics = logging_utils.MetricsLog(
        self.path('metrics.jsonl'), resume_step=resume_step)
    if tensorboard:
      self._tensorboard = logging_utils.TensorBoard(
          self.workdir, purge_step=resume_step + 1 if resume_step else None)

  def path(self, name: str) -> str:
    return os.path.join(self.workdir, name)

  def log(self, records: Sequence[dict]) -> None:
    """One chunk's records, one per seed (one for one run)."""
    if self._metrics is None:
      return
    workdir_lock.check(self.workdir)  # removed under the run: stop here
    for seed, record in zip(self._seeds or [None], records):
      self._metrics.write(record if seed is None else {'seed': seed, **record})
    if self._tensorboard is not None:
      self._tensorboard.scalars(records[0]['step'], records[0])

  def evaluation(self, record: dict) -> None:
    """An in-training evaluation record."""
    if self._metrics is not None:
      self._metrics.write(record)

  def picture(self, step: int, samples: np.ndarray) -> None:
    """samples_STEP.png of one run, also as a TensorBoard image."""
    if self._metrics is None:
      return
    path = self.path(f'samples_{step}.png')
    write_picture(path, samples, self._data,
                  f'{self.config.dataset} / {self.config.loss} / {step} steps',
                  self._real)
    if self._tensorboard is not None:
      self._tensorboard.image_png('samples', step, path)

  def final(self, finals: Sequence[dict], samples: np.ndarray,
            labels: Optional[np.ndarray] = None) -> None:
    """The final records (one per seed), samples.npy and samples.png; with
    `labels` (one run, conditional) sample_labels.npy and, for images,
    samples_by_class.png."""
    if self._metrics is None:
      return
    for final in finals:
      self._metrics.write(final)
    save_npy(self.path('samples.npy'), samples)
    if labels is not None:
      self._by_class(finals[0]['step'], samples, labels)
    if self._data is None:
      return
    png = self.path('samples.png')
    if self._seeds is None:
      write_picture(png, samples, self._data, title(self.config, finals[0]),
                    self._real)
    else:
      write_picture(png, samples, self._data,
                    f'{self.config.dataset} / {self.config.loss} / '
                    f'{self.config.num_steps} steps',
                    panel_titles=[panel_title(f) for f in finals])
    if self._tensorboard is not None:
      self._tensorboard.scalars(finals[0]['step'], finals[0], prefix='eval/')
      self._tensorboard.image_png('samples', finals[0]['step'], png)

  # Samples per class in samples_by_class.png (a row per class).
  PER_CLASS = 10

  def _by_class(self, step: int, samples: np.ndarray,
                labels: np.ndarray) -> None:
    """sample_labels.npy and, for images, samples_by_class.png (also a
    TensorBoard image)."""
    from gan_jax import plots  # pylint: disable=g-import-not-at-top
    save_npy(self.path('sample_labels.npy'), np.asarray(labels, np.int32))
    if samples.ndim != 4 or self._seeds is not None:
      return
    num_classes = int(np.max(labels)) + 1
    png = self.path('samples_by_class.png')
    plots.save_image_grid(
        png, plots.rows_by_class(samples, labels, num_classes,
                                 self.PER_CLASS),
        rows=num_classes, cols=self.PER_CLASS)
    if self._tensorboard is not None:
      self._tensorboard.image_png('samples_by_class', step, png)

  def flush(self) -> None:
    """Puts metrics.jsonl on disk (fsync): called before a checkpoint is
    written, so the lines up to the step it claims survive a crash."""
    if self._metrics is not None:
      self._metrics.flush(fsync=True)

  def close(self) -> None:
    if self._metrics is not None:
      self._metrics.close()
    if self._tensorboard is not None:
      self._tensorboard.close()
