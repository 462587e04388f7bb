"""Training one run: `run(config)` builds, resumes, trains, checkpoints and
evaluates it, and writes its artifacts.

    config -> data, (G, D), loss -> Game -> Steps -> init_state
           -> loop.train (jitted scan chunks) -> generate -> final record
           -> artifacts (gan_jax.artifacts: config.json, metrics.jsonl,
              samples.npy, samples.png, TensorBoard events)

Several seeds trained as one program (`gan_jax.seeds`) take the same path:
`build_steps`, `init`, `loop.train`, `generate`, `final_record` and
`artifacts.RunFiles`, with the members' program transform in place of the
identity. What only one run does is here: checkpoints in `checkpoints/` (the
newest `--keep_checkpoints`, which a run started again on the same workdir
resumes from, bit-identically), in-training evaluations and pictures, and
stopping cleanly on SIGTERM/Ctrl-C within `--preempt_grace_s`
(`gan_jax.preemption`), between chunk ends when need be.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
import time
import zipfile
from typing import Callable, Optional

import jax
import numpy as np

from gan_jax import artifacts
from gan_jax import checkpoint
from gan_jax import conditional
from gan_jax import config as config_lib
from gan_jax import evaluation
from gan_jax import data as data_lib
from gan_jax import fileio
from gan_jax import losses as losses_lib
from gan_jax import loop
from gan_jax import models as models_lib
from gan_jax import packing
from gan_jax import parallel
from gan_jax import preemption
from gan_jax import regularizers
from gan_jax import schedules
from gan_jax import steps as steps_lib
from gan_jax import unrolled
from gan_jax import workdir_lock
from gan_jax.config import Config, ConfigError
from gan_jax.data.images import StreamingImages
from gan_jax.game import Game
from gan_jax.metrics import divergences
from gan_jax.metrics import toy as toy_metrics
from gan_jax.state import GANState, init_state
from gan_jax.steps import Steps


TrainingDiverged = loop.TrainingDiverged


def build_steps(config: Config, injected: bool = False, data=None):
  """The data set and the `Steps` of the configured game.

  Each player's optimizer is `steps.player_optimizer(config.optimizer, ...)`,
  scheduled by `--lr_schedule` and wrapped by the update scheme
  (`schedules.player_optimizer`); `gan_jax.seeds` asks for it `injected`,
  with its hyperparameters in the optimizer state. `data`, when given, is
  used instead of building the data set (anything with `.name`, `.shape`
  and `.sample`; `gan_jax.generate` passes the shape of an image set it
  does not read).
  """
  if data is None:
    data = data_lib.build(config)
  generator, discriminator = models_lib.build(config, data)
  sample_data = (_streamed(data.name) if isinstance(data, StreamingImages)
                 else data.sample)
  labelled = {}
  if config.conditional != 'none':
    if not hasattr(data, 'sample_with_labels'):
      raise config_lib.ConfigError(
          f'--conditional={config.conditional} samples labels on the device, '
          f'but --dataset={config.dataset} is streamed from the host (too '
          'large to hold); valid: a data set that fits in memory')
    sample_data = data.sample_with_labels
    labelled = dict(num_classes=num_classes(config))
    if config.fake_labels == 'data':
      labelled['fake_label_probs'] = tuple(map(float, (
          conditional.class_frequencies(data, labelled['num_classes']))))
  class_loss_weight = (config.acgan_weight if config.conditional == 'acgan'
                       else 0.0)
  steps = Steps(
      game=Game(generator, packing.packed(discriminator, config.pack),
                losses_lib.get(config.loss),
                class_loss_weight=class_loss_weight),
      g_opt=schedules.player_optimizer(config, player_optimizer(
          config, config.g_lr, config.beta1, config.beta2, injected), 'g'),
      d_opt=schedules.player_optimizer(config, player_optimizer(
          config, config.d_lr, config.beta1, config.beta2, injected, 'd'),
                                       'd'),
      sample_data=sample_data, batch_size=config.batch_size,
      z_dim=config.z_dim, d_steps=config.d_steps,
      d_weight_clip=config.d_weight_clip, update=config.update,
      consensus_weight=config.consensus_weight,
      reg=regularizers.get_or_none(config.reg),
      reg_weight=config.reg_weight, reg_every=config.reg_every,
      g_ema_decay=config.g_ema_decay, unroll_steps=config.unroll_steps,
      augment=config.augment, lecam_weight=config.lecam_weight,
      lecam_decay=config.lecam_decay, topk=config.topk,
      topk_gamma=config.topk_gamma, topk_every=config.topk_every,
      topk_min_fraction=config.topk_min_fraction, **labelled)
  return data, steps


def player_optimizer(config: Config, learning_rate, beta1, beta2,
                     injected: bool = False, player: str = 'g'):
  """Player `player`'s ('g' or 'd') `--optimizer` (before the schedule and
  the scheme's wrapper) with these hyperparameters and `--momentum`; see
  `steps.player_optimizer`. D's Adam takes `unrolled.d_adam_options`
  (G differentiates through its updates under `--unroll_steps`)."""
  options = (unrolled.d_adam_options(config.unroll_steps)
             if player == 'd' and config.optimizer == 'adam' else {})
  return steps_lib.player_optimizer(config.optimizer, learning_rate, beta1,
                                    beta2, config.momentum, injected,
                                    **options)


def num_classes(config: Config) -> int:
  """K of a conditional run (the data set's classes), 0 otherwise."""
  if config.conditional == 'none':
    return 0
  return data_lib.spec(config).num_classes


def init(config: Config, data, steps: Steps, key: jax.Array) -> GANState:
  """The initial state of the configured game from `key` (pure: jit- and
  vmap-safe)."""
  return init_state(steps.game, steps.g_opt, steps.d_opt, key, config.z_dim,
                    data.shape, g_ema=config.g_ema_decay > 0,
                    num_classes=num_classes(config),
                    lecam=config.lecam_weight > 0)


def build(config: Config):
  """The data set, the `Steps` of the configured game, and the initial state."""
  data, steps = build_steps(config)
  state = jax.jit(functools.partial(init, config, data, steps))(
      jax.random.PRNGKey(config.seed))
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
  return data.chunks(config.seed, config.batch_size * config.pack,
                     config.log_every,
                     start_step, config.num_steps,
                     batches_per_step=steps.batches_per_step(),
                     sharding=sharding)


def eval_latents(config: Config) -> jax.Array:
  """The fixed latents used for evaluation samples: independent of training."""
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x65564C)
  return jax.random.normal(key, (config.num_eval_samples, config.z_dim))


def eval_inputs(config: Config):
  """G's inputs for the evaluation samples: `eval_latents`, paired with
  `eval_labels` in a conditional run."""
  z = eval_latents(config)
  labels = eval_labels(config)
  return z if labels is None else (z, jax.numpy.asarray(labels))


def eval_labels(config: Config) -> Optional[np.ndarray]:
  """The classes the evaluation samples are asked for in a conditional run
  (0, 1, ..., K - 1, 0, ...: `conditional.eval_labels`); None otherwise."""
  k = num_classes(config)
  return conditional.eval_labels(config.num_eval_samples, k) if k else None


GENERATE_BATCH = 500


def generate(steps: Steps, state: GANState, z: jax.Array,
             member_axis: bool = False) -> np.ndarray:
  """G(z) in inference mode, from G's moving average when it keeps one,
  `GENERATE_BATCH` latents at a time (`z` may be a conditional run's pair
  (z, y)).

  With `member_axis`, every leaf of `state` and `z` has a leading member axis
  (members generate under `vmap`), and so has the result.
  """
  params = state.g_ema if steps.g_ema_decay else state.g_params
  fn = jax.vmap(steps.game.generate) if member_axis else steps.game.generate
  fn = jax.jit(fn)
  axis = int(member_axis)
  batch = lambda i: jax.tree.map(
      lambda a: a[(slice(None),) * axis + (slice(i, i + GENERATE_BATCH),)], z)
  count = jax.tree.leaves(z)[0].shape[axis]
  return np.concatenate([
      np.asarray(fn(params, batch(i), state.g_state))
      for i in range(0, count, GENERATE_BATCH)], axis=axis)


def toy_sample_metrics(config: Config, data, samples: np.ndarray) -> dict:
  """Mode coverage and sample quality of generator samples of a mixture (a
  data set registered with `has_modes`; `gan_jax.metrics.toy`), and the JSD
  to its density in 1-D; {} for other data sets, whose scores come from
  `gan_jax.evaluation`."""
  if not data_lib.spec(config).has_modes:
    return {}
  result = toy_metrics.mode_metrics(samples, data.means, data.std)
  if data.shape == (1,):
    lo = min(float(data.means.min() - 6 * data.std), float(samples.min()))
    hi = max(float(data.means.max() + 6 * data.std), float(samples.max()))
    result['jsd'] = divergences.jsd_to_samples(data.density, samples, lo, hi)
  return result


def final_record(config: Config, data, samples: np.ndarray, step: int,
                 train_seconds: float, **extra) -> dict:
  """The last line of metrics.jsonl: `final`, the step, `extra` (a seed),
  the training time, `toy_sample_metrics` and, in a conditional run,
  `conditional_sample_metrics`."""
  return {'step': step, 'final': True, **extra,
          'train_seconds': train_seconds,
          **toy_sample_metrics(config, data, samples),
          **conditional_sample_metrics(config, data, samples)}


def conditional_sample_metrics(config: Config, data, samples: np.ndarray
                               ) -> dict:
  """`label_accuracy` of a conditional run's evaluation samples, asked for
  the classes `eval_labels` (`gan_jax.metrics.conditional.final_metrics`);
  {} for an unconditional run."""
  labels = eval_labels(config)
  if labels is None:
    return {}
  from gan_jax.metrics import conditional as scores  # pylint: disable=g-import-not-at-top
  return scores.final_metrics(config.dataset, data, samples, labels)


class Preempted(RuntimeError):
  """Training stopped on SIGTERM/SIGINT: at a step with a checkpoint in
  `directory`, or before training began (`directory` None)."""

  def __init__(self, step: Optional[int], signal_name: str,
               directory: Optional[str] = None):
    super().__init__(
        f'{signal_name}: stopped at step {step} with a checkpoint in '
        f'{directory}' if directory else
        f'{signal_name}: stopped before training began')
    self.step = step
    self.signal_name = signal_name
    self.directory = directory


def _preempted(config: Config, step: Optional[int]) -> Preempted:
  return Preempted(step, preemption.requested() or 'a stop request',
                   checkpoint.directory(config.workdir) if step else None)


def _stop_if_requested(config: Config, step: Optional[int]) -> None:
  """Raises `Preempted` at `step` if any process was asked to stop."""
  if preemption.agree(preemption.requested() is not None, 0)[0]:
    raise _preempted(config, step)


# A run stopped between chunk ends leaves the per-step metrics of the steps it
# did of that chunk, for the run resuming it to log the chunk's record whole.
CHUNK_METRICS = 'chunk_metrics.npz'


def save_chunk_metrics(workdir: str, step: int, metrics: dict) -> None:
  """`metrics` (per step) of the unfinished chunk's steps up to `step`."""
  first = step - len(next(iter(metrics.values()))) + 1
  buffer = io.BytesIO()
  np.savez(buffer, step=np.int64(step), first=np.int64(first), **metrics)
  fileio.atomic_write(os.path.join(workdir, CHUNK_METRICS), buffer.getvalue())


def load_chunk_metrics(config: Config, step: int, warn: Callable[[str], None]
                       ) -> Optional[dict]:
  """The per-step metrics a run stopped at `step` saved, if `step` is not a
  chunk end. Without them (none saved: a run that ended there and now trains
  longer) the chunk's record averages the steps after `step` only; a file
  that is damaged, or of another step or chunk, is warned about."""
  path = os.path.join(config.workdir, CHUNK_METRICS)
  if (step % config.log_every == 0 or step >= config.num_steps
      or not os.path.exists(path)):
    return None
  begin = step - step % config.log_every + 1
  try:
    with np.load(path) as saved:
      if (int(saved['step']), int(saved['first'])) == (step, begin):
        metrics = {k: saved[k] for k in saved.files
                   if k not in ('step', 'first')}
        # One row per step of begin..step in every metric, or it is damaged.
        if metrics and all(v.ndim >= 1 and len(v) == step - begin + 1
                           for v in metrics.values()):
          return metrics
  except (OSError, ValueError, KeyError, TypeError, EOFError,
          zipfile.BadZipFile):
    pass
  end = step + loop.next_chunk(step, config.num_steps, config.log_every)
  warn(f'warning: {path} lacks the metrics of steps {begin}..{step}; the '
       f'record of step {end} averages steps {step + 1}..{end} only')
  return None


def run(config: Config, out=sys.stdout, err=sys.stderr) -> dict:
  """Trains `config` (already validated), writes its artifacts, returns the
  final evaluation record.

  If `config.workdir` holds a checkpoint, training resumes from the newest
  good one (see `gan_jax.checkpoint`); a checkpoint of a different config is
  refused with ConfigError before anything is written. Checkpoints are written
  every `checkpoint_interval(config)` steps and at the end. On NaN/Inf,
  `TrainingDiverged` is raised and the newest checkpoint is the last good
  state.

  SIGTERM or SIGINT (`gan_jax.preemption`) raises `Preempted`: before
  training, where the run started, with nothing written; during training, at
  the end of the piece of the chunk running then (pieces take at most a
  quarter of `--preempt_grace_s`), after a checkpoint at that step (between
  chunk ends, `CHUNK_METRICS` keeps the chunk's metrics so far); after the
  last step, before the final evaluation.

  The batch is split over every device (`gan_jax.parallel`); in a multi-process
  run only process 0 prints and writes files. That process holds the
  workdir's lock throughout (`gan_jax.workdir_lock`): a workdir another run
  holds is refused with `WorkdirInUse`, a ConfigError, before anything is
  read or written.
  """
  mesh = parallel.make_mesh()
  parallel.check_batch(config.batch_size, mesh.size)
  primary = parallel.is_primary()
  if not primary:
    out = err = None
  with jax.set_mesh(mesh), workdir_lock.hold(config.workdir, primary):
    return _run(config, parallel.Layout.one_run(mesh), primary, out, err)


def _print(stream, text: str) -> None:
  if stream is not None:
    print(text, file=stream, flush=True)


def _run(config: Config, layout: parallel.Layout, primary: bool, out, err
         ) -> dict:
  _stop_if_requested(config, None)  # a signal while the process started
  # A data set that is not prepared, or a missing extractor or reference
  # (loaded now, by the evaluator), fails here, before anything is written.
  try:
    data, steps, state = build(config)
    evaluator = (evaluation.make_in_training_evaluator(config) if primary
                 else None)
  except (FileNotFoundError, ImportError, ValueError) as e:
    raise ConfigError(str(e).strip().splitlines()[0]) from None
  steps = parallel.shard_batches(steps, layout.mesh)
  state, start_step, corrupt = checkpoint.resume(
      config, state, warn=lambda m: _print(err, m))
  # Everything up to here only reads: bad input, or a signal received while
  # starting, leaves the workdir untouched.
  _stop_if_requested(config, start_step)
  earlier = load_chunk_metrics(config, start_step, lambda m: _print(err, m))
  state = layout.place(state)
  real = (None if data_lib.is_image(config.dataset) else
          np.asarray(data.sample(jax.random.PRNGKey(config.seed),
                                 config.num_eval_samples)))
  files = artifacts.RunFiles(config, data, real, resume_step=start_step,
                             tensorboard=True, write=primary)
  ckpt = checkpoint.Checkpointer(config.workdir, config.keep_checkpoints,
                                 primary, corrupt_steps=corrupt)
  every = config_lib.checkpoint_interval(config)
  chunks = data_chunks(data, steps, config, start_step, layout.mesh)

  def due(every: int, step: int) -> bool:
    return bool(every) and step % every == 0 and step < config.num_steps

  start = time.perf_counter()
  try:
    with preemption.handling():

      def on_chunk(state: GANState) -> bool:
        step = int(state.step)
        # Pictures and evaluations first: a run killed before the checkpoint
        # below resumes from an earlier one and redoes them.
        picture = primary and due(config.image_every, step)
        evaluate_now = evaluator is not None and due(config.eval_every, step)
        if picture or evaluate_now:  # one set of samples serves both
          samples = generate(steps, state, eval_inputs(config))
        if picture:
          files.picture(step, samples)
        if evaluate_now:
          files.evaluation(evaluator(step, samples, eval_labels(config)))
        if step % every == 0 or step == config.num_steps:
          files.flush()  # the log up to `step` is on disk before its checkpoint
          ckpt.save(state, config)
        return False

      def on_stop(state: GANState, chunk_metrics: dict) -> None:
        workdir_lock.check(config.workdir)  # never write into a removed one
        step = int(state.step)
        if step != start_step:
          if chunk_metrics and primary:
            save_chunk_metrics(config.workdir, step, chunk_metrics)
          files.flush()
          ckpt.save(state, config)
        ckpt.wait()
        raise _preempted(config, step)

      if start_step:
        _print(out, f'resuming from the checkpoint at step {start_step} in '
               f'{checkpoint.directory(config.workdir)}')
      _print(out, f'training {config.loss} on {config.dataset} for '
             f'{config.num_steps} steps on {layout.mesh.size} device(s) '
             f'(compiling chunks of {config.log_every}; checkpoints every '
             f'{every})')
      try:
        state = loop.train(state, steps.train_step, config.num_steps,
                           config.log_every, on_log=files.log, out=out,
                           on_chunk=on_chunk, layout=layout,
                           data_chunks=chunks, on_stop=on_stop,
                           grace_s=config.preempt_grace_s, earlier=earlier)
      except loop.TrainingDiverged as e:
        ckpt.wait()
        good = ckpt.latest_step()
        kept = (f'the last good checkpoint (step {good}) is kept in '
                f'{checkpoint.directory(config.workdir)}' if good is not None
                else 'no checkpoint had been written')
        raise TrainingDiverged(f'{e}; {kept}') from None
      ckpt.save(state, config)  # a no-op unless training had nothing to do
      ckpt.wait()
      _stop_if_requested(config, int(state.step))
    train_seconds = time.perf_counter() - start
    samples = generate(steps, state, eval_inputs(config))
    final = final_record(config, data, samples, int(state.step),
                         train_seconds)
    if evaluator is not None:
      final.update({k: v for k, v in evaluator(
          final['step'], samples, eval_labels(config)).items()
                    if k not in ('step', 'eval')})
    files.final([final], samples, labels=eval_labels(config))
    if primary:  # done: no unfinished chunk is left to resume
      with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(config.workdir, CHUNK_METRICS))
    return final
  finally:
    # Each closes even if one before it raises: the log is fsynced and
    # orbax's writes end before the workdir lock is let go.
    with contextlib.ExitStack() as closing:
      closing.callback(files.close)
      closing.callback(ckpt.close)
      if chunks is not None:
        closing.callback(chunks.close)


def summary(config: Config, final: dict) -> str:
  """A few lines for the terminal: the result and where the artifacts are."""
  lines = [f'done in {final["train_seconds"]:.1f} s: ' + artifacts.title(
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
