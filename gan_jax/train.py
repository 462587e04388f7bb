"""Training and evaluating one run: `run(config)` writes every artifact.

    config -> data, (G, D), loss -> Game -> Steps -> init_state
           -> loop.train (jitted scan chunks) -> evaluate -> artifacts

Artifacts in `config.workdir`:
  config.json    the resolved configuration;
  metrics.jsonl  one JSON object per log event (step, d_loss, g_loss, value,
                 gradient norms, steps_per_sec); the last line is the final
                 evaluation (`"final": true`);
  samples.npy    `num_eval_samples` generator samples, shape (N, dims), or
                 (N, H, W, C) in [-1, 1] for images (from G's moving
                 average when --g_ema_decay is set);
  samples.png    toys: the samples drawn over the data's modes; images: an
                 8x8 grid of the first 64;
  samples_STEP.png  the same picture every --image_every steps;
  events.out.tfevents.*  TensorBoard: the metrics as scalars, the samples
                 as an image;
  checkpoints/   the newest `--keep_checkpoints` orbax checkpoints, which a
                 run started again on the same workdir resumes from.

Every file is replaced atomically (written aside, then renamed) or appended
to, so a run killed at any moment leaves each artifact either complete or
absent, and a restart with the same command finishes with the same bits.
"""

from __future__ import annotations

import io
import os
import sys
import time
import jax
import numpy as np

from gan_jax import checkpoint
from gan_jax import config as config_lib
from gan_jax import evaluation
from gan_jax import data as data_lib
from gan_jax import logging_utils
from gan_jax import losses as losses_lib
from gan_jax import loop
from gan_jax import models as models_lib
from gan_jax import parallel
from gan_jax import plots
from gan_jax import regularizers
from gan_jax.config import Config, ConfigError
from gan_jax.data.images import StreamingImages
from gan_jax.data.toy import GaussianMixture
from gan_jax.game import Game
from gan_jax.metrics import divergences
from gan_jax.metrics import toy as toy_metrics
from gan_jax.state import GANState, init_state
from gan_jax.steps import Steps, adam, scheme_optimizer


TrainingDiverged = loop.TrainingDiverged


def build(config: Config):
  """The data set, the `Steps` of the configured game, and the initial state."""
  data = data_lib.build(config)
  generator, discriminator = models_lib.build(config, data)
  sample_data = (_streamed(data.name) if isinstance(data, StreamingImages)
                 else data.sample)
  game = Game(generator, discriminator, losses_lib.get(config.loss))
  steps = Steps(
      game=game,
      g_opt=scheme_optimizer(config.update,
                             adam(config.g_lr, config.beta1, config.beta2)),
      d_opt=scheme_optimizer(config.update,
                             adam(config.d_lr, config.beta1, config.beta2)),
      sample_data=sample_data, batch_size=config.batch_size,
      z_dim=config.z_dim, d_steps=config.d_steps,
      d_weight_clip=config.d_weight_clip, update=config.update,
      consensus_weight=config.consensus_weight,
      reg=None if config.reg == 'none' else regularizers.get(config.reg),
      reg_weight=config.reg_weight, reg_every=config.reg_every,
      g_ema_decay=config.g_ema_decay)
  state = jax.jit(lambda key: init_state(
      game, steps.g_opt, steps.d_opt, key, config.z_dim, data.shape,
      g_ema=config.g_ema_decay > 0))(jax.random.PRNGKey(config.seed))
  return data, steps, state


def _streamed(name: str):
  def sample_data(key, n):
    raise ValueError(f'data set {name} is streamed from the host: its batches '
                     'come through train_step(state, batches), not sampled '
                     'on the device (gan_jax.train runs it; --num_seeds > 1 '
                     'and sweeps need a data set that fits in memory)')
  return sample_data


def data_chunks(data, steps: Steps, config: Config, start_step: int, mesh):
  """For a streamed data set, the prefetched chunks of real batches the
  training loop consumes, (steps, k, B, H, W, C) with B split over the
  mesh; None for data sampled on the device."""
  if not isinstance(data, StreamingImages):
    return None
  sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec(None, None, parallel.DATA_AXIS))
  return data.chunks(config.seed, config.batch_size, config.log_every,
                     start_step, config.num_steps,
                     batches_per_step=steps.batches_per_step(),
                     sharding=sharding)


def eval_latents(config: Config) -> jax.Array:
  """The fixed latents used for evaluation samples: independent of training."""
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x65564C)
  return jax.random.normal(key, (config.num_eval_samples, config.z_dim))


GENERATE_BATCH = 500


def generate(steps: Steps, state: GANState, z: jax.Array) -> np.ndarray:
  """G(z) in inference mode, from G's moving average when it keeps one,
  `GENERATE_BATCH` latents at a time."""
  params = state.g_ema if steps.g_ema_decay else state.g_params
  fn = jax.jit(steps.game.generate)
  return np.concatenate([
      np.asarray(fn(params, z[i:i + GENERATE_BATCH], state.g_state))
      for i in range(0, z.shape[0], GENERATE_BATCH)])


def write_picture(path: str, samples: np.ndarray, data, title: str,
                  real: np.ndarray) -> None:
  """samples.png: toys scattered over the modes, images as an 8x8 grid;
  written aside and renamed, so the file is always whole."""
  tmp = f'{path[:-4]}.tmp-{os.getpid()}.png'
  if samples.ndim == 4:
    plots.save_image_grid(tmp, samples)
  else:
    plots.toy_samples(tmp, samples, data, title=title, real=real)
  os.replace(tmp, path)


def evaluate(data, samples: np.ndarray) -> dict:
  """Final metrics of generator samples against the data set."""
  result = {}
  if isinstance(data, GaussianMixture):
    result.update(toy_metrics.mode_metrics(samples, data.means, data.std))
    if data.shape == (1,):
      lo = min(float(data.means.min() - 6 * data.std), float(samples.min()))
      hi = max(float(data.means.max() + 6 * data.std), float(samples.max()))
      result['jsd'] = divergences.jsd_to_samples(data.density, samples, lo, hi)
  return result


class Preempted(RuntimeError):
  """Training stopped on SIGTERM/SIGINT after writing a checkpoint."""

  def __init__(self, step: int, signal_name: str, directory: str):
    super().__init__(f'{signal_name}: stopped at step {step} with a '
                     f'checkpoint in {directory}')
    self.step = step
    self.signal_name = signal_name
    self.directory = directory


def _any_process(flag: bool) -> bool:
  """`flag` or-ed over all processes (every process must stop together)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def run(config: Config, out=sys.stdout, err=sys.stderr) -> dict:
  """Trains `config` (already validated), writes its artifacts, returns the
  final evaluation record.

  If `config.workdir` holds a checkpoint, training resumes from the newest
  good one (see `gan_jax.checkpoint`); a checkpoint of a different config is
  refused with ConfigError before anything is written. Checkpoints are written
  every `checkpoint_interval(config)` steps, at the end, and when SIGTERM or
  SIGINT arrives (then `Preempted` is raised). On NaN/Inf, `TrainingDiverged`
  is raised and the newest checkpoint is the last good state.

  The batch is split over every device (`gan_jax.parallel`); in a multi-process
  run only process 0 prints and writes files.
  """
  mesh = parallel.make_mesh()
  parallel.check_batch(config.batch_size, mesh.size)
  primary = parallel.is_primary()
  if not primary:
    out = err = None
  with jax.set_mesh(mesh):
    return _run(config, mesh, primary, out, err)


def _print(stream, text: str) -> None:
  if stream is not None:
    print(text, file=stream, flush=True)


def _run(config: Config, mesh, primary: bool, out, err) -> dict:
  # A data set that is not prepared, or a missing extractor or reference
  # (loaded now, by the evaluator), fails here, before anything is written.
  try:
    data, steps, state = build(config)
    evaluator = (evaluation.make_in_training_evaluator(config) if primary
                 else None)
  except (FileNotFoundError, ImportError, ValueError) as e:
    raise ConfigError(str(e).strip().splitlines()[0]) from None
  steps = parallel.shard_batches(steps, mesh)
  # Everything up to here only reads: bad input leaves the workdir untouched.
  restored = checkpoint.restore_or_none(config, state,
                                        warn=lambda m: _print(err, m))
  start_step = 0
  if restored is not None and restored.state is not None:
    if restored.step > config.num_steps:
      raise ConfigError(
          f'--num_steps={config.num_steps} is less than step {restored.step} '
          f'of the checkpoint in --workdir={config.workdir}; pass '
          f'--num_steps>={restored.step} or use a new --workdir')
    state, start_step = restored.state, restored.step
  state = parallel.replicate(state, mesh)

  metrics = tensorboard = None
  if primary:
    os.makedirs(config.workdir, exist_ok=True)
    for name in os.listdir(config.workdir):  # left by a kill mid-replace
      if '.tmp-' in name and os.path.isfile(os.path.join(config.workdir, name)):
        os.remove(os.path.join(config.workdir, name))
    logging_utils.atomic_write(os.path.join(config.workdir, 'config.json'),
                               (config.to_json() + '\n').encode())
    metrics = logging_utils.MetricsLog(
        os.path.join(config.workdir, 'metrics.jsonl'), resume_step=start_step)
    tensorboard = logging_utils.TensorBoard(
        config.workdir, purge_step=start_step + 1 if start_step else None)
  ckpt = checkpoint.Checkpointer(
      config.workdir, config.keep_checkpoints, primary,
      corrupt_steps=tuple(s for s, _ in (restored.skipped if restored else ())))
  every = config_lib.checkpoint_interval(config)
  real = (None if data_lib.is_image(config.dataset) else
          np.asarray(data.sample(jax.random.PRNGKey(config.seed),
                                 config.num_eval_samples)))
  chunks = data_chunks(data, steps, config, start_step, mesh)

  def due(every: int, step: int) -> bool:
    return bool(every) and step % every == 0 and step < config.num_steps

  def on_log(record: dict) -> None:
    if primary:
      metrics.write(record)
      tensorboard.scalars(record['step'], record)

  start = time.perf_counter()
  try:
    with loop.StopRequest() as stop:

      def on_chunk(state: GANState) -> bool:
        step = int(state.step)
        stopping = _any_process(bool(stop)) and step < config.num_steps
        if step % every == 0 or step == config.num_steps or stopping:
          ckpt.save(state, config)
        picture = primary and due(config.image_every, step)
        evaluate_now = evaluator is not None and due(config.eval_every, step)
        if picture or evaluate_now:  # one set of samples serves both
          samples = generate(steps, state, eval_latents(config))
        if picture:
          path = os.path.join(config.workdir, f'samples_{step}.png')
          write_picture(path, samples, data,
                        f'{config.dataset} / {config.loss} / {step} steps',
                        real)
          tensorboard.image_png('samples', step, path)
        if evaluate_now:
          metrics.write(evaluator(step, samples))
        if stopping:
          ckpt.wait()
          raise Preempted(step, stop.signal_name or 'signal',
                          checkpoint.directory(config.workdir))
        return False

      if start_step:
        _print(out, f'resuming from the checkpoint at step {start_step} in '
               f'{checkpoint.directory(config.workdir)}')
      _print(out, f'training {config.loss} on {config.dataset} for '
             f'{config.num_steps} steps on {mesh.size} device(s) (compiling '
             f'chunks of {config.log_every}; checkpoints every {every})')
      try:
        state = loop.train(state, steps.train_step, config.num_steps,
                           config.log_every, on_log=on_log, out=out,
                           on_chunk=on_chunk,
                           state_sharding=parallel.replicated(mesh),
                           data_chunks=chunks)
      except loop.TrainingDiverged as e:
        ckpt.wait()
        good = ckpt.latest_step()
        kept = (f'the last good checkpoint (step {good}) is kept in '
                f'{checkpoint.directory(config.workdir)}' if good is not None
                else 'no checkpoint had been written')
        raise TrainingDiverged(f'{e}; {kept}') from None
    ckpt.save(state, config)  # a no-op unless training had nothing to do
    ckpt.wait()
    train_seconds = time.perf_counter() - start
    samples = generate(steps, state, eval_latents(config))
    final = {'step': int(state.step), 'final': True,
             'train_seconds': train_seconds, **evaluate(data, samples)}
    if evaluator is not None:
      final.update({k: v for k, v in evaluator(final['step'], samples).items()
                    if k not in ('step', 'eval')})
    if primary:
      metrics.write(final)
      buffer = io.BytesIO()
      np.save(buffer, samples)
      logging_utils.atomic_write(
          os.path.join(config.workdir, 'samples.npy'), buffer.getvalue())
      png = os.path.join(config.workdir, 'samples.png')
      write_picture(png, samples, data, _title(config, final), real)
      tensorboard.scalars(final['step'], final, prefix='eval/')
      tensorboard.image_png('samples', final['step'], png)
    return final
  finally:
    if chunks is not None:
      chunks.close()
    ckpt.close()
    if primary:
      metrics.close()
      tensorboard.close()


def _title(config: Config, final: dict) -> str:
  text = f'{config.dataset} / {config.loss} / {final["step"]} steps'
  if 'modes' in final:
    text += (f'\nmodes {final["modes"]}/{final["num_modes"]}  '
             f'HQ {100 * final["hq_fraction"]:.1f}%')
  if 'jsd' in final:
    text += f'  JSD {final["jsd"]:.4f}'
  return text


def summary(config: Config, final: dict) -> str:
  """A few lines for the terminal: the result and where the artifacts are."""
  lines = [f'done in {final["train_seconds"]:.1f} s: ' + _title(
      config, final).replace('\n', ', ')]
  if final.get('reverse_kl') is not None:
    lines[0] += f', reverse KL {final["reverse_kl"]:.3f}'
  scores = [f'{label} {final[key]:.{digits}f}' for key, label, digits in (
      ('fid', 'FID', 2), ('kid_mean', 'KID', 4), ('is_mean', 'IS', 2),
      ('precision', 'precision', 3), ('recall', 'recall', 3),
      ('density', 'density', 3), ('coverage', 'coverage', 3))
            if isinstance(final.get(key), (int, float))]
  if scores:
    lines[0] += (f', {", ".join(scores)} ({final.get("extractor")}, '
                 f'{final.get("num_generated")} samples)')
  lines.append(f'artifacts in {os.path.abspath(config.workdir)}:')
  for name in ('config.json', 'metrics.jsonl', 'samples.npy', 'samples.png',
               *(['samples_STEP.png'] if config.image_every else []),
               'events.out.tfevents.* (tensorboard --logdir '
               f'{config.workdir})', 'checkpoints/'):
    lines.append(f'  {os.path.join(config.workdir, name)}')
  return '\n'.join(lines)
