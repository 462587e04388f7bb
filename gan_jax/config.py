"""Flags, the frozen `Config` they resolve to, and its validation.

Data flows one way: flags (or a flagfile) -> `Config` (validated once, here)
-> training. Nothing downstream reads flags. Every validation failure is a
`ConfigError` whose message is one line naming the problem and the valid
choices; the CLI prints it and exits with status 2 before writing anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any

from absl import flags

from gan_jax import data as data_lib
from gan_jax import losses as losses_lib
from gan_jax import models as models_lib
from gan_jax.models import precision
from gan_jax import regularizers
from gan_jax import steps as steps_lib


class ConfigError(ValueError):
  """A bad configuration value; the message is one line for a person."""


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything a training run depends on. Defaults give a ring8 toy GAN."""

  workdir: str = ''
  dataset: str = 'ring8'
  loss: str = 'non_saturating'
  model: str = 'mlp'
  num_steps: int = 20_000
  batch_size: int = 256
  z_dim: int = 64
  g_hidden: tuple[int, ...] = (128, 128, 128)
  d_hidden: tuple[int, ...] = (128, 128, 128)
  d_steps: int = 1
  g_lr: float = 1e-4
  d_lr: float = 1e-4
  beta1: float = 0.5
  beta2: float = 0.999
  d_weight_clip: float = 0.0
  update: str = 'alternating'
  consensus_weight: float = 10.0
  seed: int = 0
  log_every: int = 500
  num_eval_samples: int = 2500
  checkpoint_every: int = 0
  keep_checkpoints: int = 3
  multihost: bool = False
  eval_every: int = 0
  eval_metrics: tuple[str, ...] = ('fid', 'kid', 'pr')
  data_dir: str = ''
  stream_data: bool = False
  g_features: int = 0
  d_features: int = 0
  g_batch_norm: bool = False
  d_spectral_norm: bool = False
  g_ema_decay: float = 0.0
  reg: str = 'none'
  reg_weight: float = 0.0
  reg_every: int = 1
  image_every: int = 0
  compute_dtype: str = 'float32'

  def replace(self, **changes: Any) -> 'Config':
    return dataclasses.replace(self, **changes)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def load(cls, workdir: str) -> 'Config':
    """The validated `Config` of the run in `workdir`, from its `config.json`.

    The one reader of a saved configuration. A field the file lacks (written
    before the field existed) takes its default; a field this version does
    not know, unreadable JSON or a missing file is a one-line `ConfigError`.
    `workdir` is the directory it was read from, wherever the run was moved.
    """
    path = os.path.join(workdir, 'config.json')
    if not os.path.isfile(path):
      raise ConfigError(f'{workdir} holds no config.json; point it at the '
                        'workdir of a training run')
    try:
      with open(path, encoding='utf-8') as f:
        saved = json.load(f)
    except (OSError, ValueError) as e:
      raise ConfigError(f'{path} is not readable JSON: '
                        f'{str(e).splitlines()[0]}') from None
    if not isinstance(saved, dict):
      raise ConfigError(f'{path} holds {type(saved).__name__}, not an object '
                        'of configuration fields')
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(saved) - known)
    if unknown:
      raise ConfigError(f'{path} has fields this version does not know: '
                        f'{", ".join(unknown)}')
    values = {k: tuple(v) if isinstance(v, list) else v
              for k, v in saved.items()}
    values['workdir'] = workdir
    try:
      return validate(cls(**values))
    except (ConfigError, TypeError) as e:
      raise ConfigError(f'{path}: {str(e).splitlines()[0]}') from None


# ----------------------------------------------------------------------------
# Validation.
# ----------------------------------------------------------------------------


def _check_name(kind: str, value: str, valid: list[str]) -> None:
  if value not in valid:
    raise ConfigError(
        f'--{kind}={value!r} is not a known {kind}; valid: {", ".join(valid)}')


def _check_positive(name: str, value) -> None:
  if not value > 0:
    raise ConfigError(f'--{name}={value} must be positive')


def validate(config: Config) -> Config:
  """Checks every field of `config`; returns it unchanged or raises ConfigError."""
  _check_name('dataset', config.dataset, data_lib.names())
  _check_name('loss', config.loss, losses_lib.names())
  _check_name('model', config.model, models_lib.names())
  _check_name('compute_dtype', config.compute_dtype,
              list(precision.COMPUTE_DTYPES))
  for name in ('num_steps', 'batch_size', 'z_dim', 'd_steps', 'log_every',
               'num_eval_samples', 'g_lr', 'd_lr'):
    _check_positive(name, getattr(config, name))
  for name in ('g_hidden', 'd_hidden'):
    widths = getattr(config, name)
    if not widths or any(w <= 0 for w in widths):
      raise ConfigError(f'--{name}={",".join(map(str, widths))} must be a '
                        'comma-separated list of positive layer widths')
  for name in ('beta1', 'beta2'):
    value = getattr(config, name)
    if not 0.0 <= value < 1.0:
      raise ConfigError(f'--{name}={value} must lie in [0, 1)')
  if config.d_weight_clip < 0:
    raise ConfigError(f'--d_weight_clip={config.d_weight_clip} must be >= 0 '
                      '(0 turns weight clipping off)')
  _check_name('update', config.update, list(steps_lib.UPDATES))
  if config.d_steps != 1 and config.update != 'alternating':
    raise ConfigError(f'--d_steps={config.d_steps} needs --update=alternating '
                      f'(--update={config.update} moves both players once per '
                      'step)')
  _check_positive('consensus_weight', config.consensus_weight)
  _check_images(config)
  _check_regularization(config)
  if config.seed < 0:
    raise ConfigError(f'--seed={config.seed} must be >= 0')
  _check_checkpointing(config)
  _check_evaluation(config)
  _check_workdir(config.workdir)
  return config


def _check_evaluation(config: Config) -> None:
  # Imported here: both modules are light, but config stays importable alone.
  from gan_jax import evaluation  # pylint: disable=g-import-not-at-top
  from gan_jax import features  # pylint: disable=g-import-not-at-top
  if config.eval_every < 0 or config.eval_every % config.log_every:
    raise ConfigError(
        f'--eval_every={config.eval_every} must be a multiple of '
        f'--log_every={config.log_every} (evaluations land on chunk '
        'boundaries), or 0 for no evaluation during training')
  for name in config.eval_metrics:
    if name not in evaluation.METRICS:
      raise ConfigError(f'--eval_metrics: {name!r} is not a known metric; '
                        f'valid: {", ".join(evaluation.METRICS)}')
  if ('is' in config.eval_metrics
      and features.default_for(config.dataset) == 'identity'):
    raise ConfigError(f'--eval_metrics=is needs class logits, which '
                      f'{config.dataset} samples (compared as they are) do '
                      f'not have; valid for it: '
                      f'{", ".join(m for m in evaluation.METRICS if m != "is")}')


def regularizer_names() -> list[str]:
  """Valid values of --reg: 'none' and every registered gradient penalty."""
  return ['none'] + regularizers.names()


def _check_images(config: Config) -> None:
  shape = data_lib.SHAPES[config.dataset]
  if config.stream_data and config.dataset not in data_lib.TFDS_NAMES:
    raise ConfigError(f'--stream_data applies to TFDS sets only: '
                      f'{", ".join(data_lib.TFDS_NAMES)} '
                      f'(--dataset={config.dataset} is sampled on the device)')
  if not models_lib.compatible(config.model, shape):
    valid = [m for m in models_lib.names() if models_lib.compatible(m, shape)]
    raise ConfigError(
        f'--model={config.model} cannot train on --dataset={config.dataset} '
        f'(samples of shape {shape}); valid models for it: {", ".join(valid)}')
  for name in ('g_features', 'd_features'):
    if getattr(config, name) < 0:
      raise ConfigError(f'--{name}={getattr(config, name)} must be positive, '
                        "or 0 for the model's default width")
  if config.g_batch_norm and config.model != 'dcgan':
    raise ConfigError(f'--g_batch_norm applies to --model=dcgan only '
                      f'(--model={config.model})')
  if config.d_spectral_norm and config.model not in ('dcgan', 'mlp'):
    always = (' always normalises D' if config.model == 'sngan_resnet'
              else ' has no such option')
    raise ConfigError(f'--d_spectral_norm applies to --model=dcgan or mlp '
                      f'(--model={config.model}{always})')
  if not 0.0 <= config.g_ema_decay < 1.0:
    raise ConfigError(f'--g_ema_decay={config.g_ema_decay} must lie in '
                      '[0, 1) (0 keeps no average)')
  if config.image_every < 0 or config.image_every % config.log_every:
    raise ConfigError(
        f'--image_every={config.image_every} must be a multiple of '
        f'--log_every={config.log_every} (grids land on chunk boundaries), or '
        '0 for the final grid only')


def _check_regularization(config: Config) -> None:
  _check_name('reg', config.reg, regularizer_names())
  if config.reg_weight < 0:
    raise ConfigError(f'--reg_weight={config.reg_weight} must be >= 0')
  if config.reg != 'none' and config.reg_weight == 0:
    raise ConfigError(f'--reg={config.reg} needs a positive --reg_weight')
  if config.reg_every < 1:
    raise ConfigError(f'--reg_every={config.reg_every} must be at least 1')


def checkpoint_interval(config: Config) -> int:
  """Steps between checkpoints: `--checkpoint_every`, or 10 log intervals if 0."""
  return config.checkpoint_every or 10 * config.log_every


def _check_checkpointing(config: Config) -> None:
  # Checkpoints are written between compiled chunks, so they can only land on
  # chunk boundaries; chunks end on multiples of --log_every.
  if config.checkpoint_every < 0:
    raise ConfigError(f'--checkpoint_every={config.checkpoint_every} must be '
                      'a positive multiple of --log_every, or 0 for '
                      '10 x --log_every')
  if config.checkpoint_every % config.log_every:
    raise ConfigError(
        f'--checkpoint_every={config.checkpoint_every} must be a multiple of '
        f'--log_every={config.log_every} (checkpoints land on chunk '
        'boundaries), or 0 for 10 x --log_every')
  if config.keep_checkpoints < 1:
    raise ConfigError(f'--keep_checkpoints={config.keep_checkpoints} must be '
                      'at least 1')


def _check_workdir(workdir: str) -> None:
  """The workdir must be creatable and writable, checked without leaving a trace.

  `os.access` alone is not enough (it says yes to root everywhere but on
  read-only file systems), so the nearest existing ancestor is probed by
  creating and removing an empty temporary directory in it.
  """
  if not workdir:
    raise ConfigError('--workdir must name a directory for the run artifacts')
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f'--workdir={workdir} is a file, not a directory')
  ancestor = os.path.abspath(workdir)
  while not os.path.exists(ancestor):
    ancestor = os.path.dirname(ancestor)
  if not os.path.isdir(ancestor):
    raise ConfigError(f'--workdir={workdir} cannot be created: {ancestor} is a '
                      'file, not a directory')
  try:
    os.rmdir(tempfile.mkdtemp(prefix='.gan_jax_probe_', dir=ancestor))
  except OSError as e:
    raise ConfigError(f'--workdir={workdir} is not writable: cannot create '
                      f'a directory in {ancestor} ({e.strerror or e})') from None


# ----------------------------------------------------------------------------
# Flags.
# ----------------------------------------------------------------------------

_DEFAULTS = Config()


def _widths(text: str) -> tuple[int, ...]:
  try:
    return tuple(int(w) for w in text.split(',') if w.strip())
  except ValueError:
    raise ConfigError(f'{text!r} is not a comma-separated list of integer '
                      'layer widths') from None


def define_flags() -> None:
  """Defines the training flags on absl's global FLAGS (idempotent)."""
  if 'dataset' in flags.FLAGS:
    return
  d = _DEFAULTS
  flags.DEFINE_string('workdir', None, 'Directory for config.json, '
                      'metrics.jsonl and samples (default runs/DATASET_LOSS).')
  flags.DEFINE_string('dataset', d.dataset,
                      f'Data set: {", ".join(data_lib.names())}.')
  flags.DEFINE_string('loss', d.loss, f'Loss: {", ".join(losses_lib.names())}.')
  flags.DEFINE_string('model', d.model,
                      f'Model: {", ".join(models_lib.names())}.')
  flags.DEFINE_integer('num_steps', d.num_steps, 'Training steps (G updates).')
  flags.DEFINE_integer('batch_size', d.batch_size, 'Batch size for both players.')
  flags.DEFINE_integer('z_dim', d.z_dim, 'Latent dimension.')
  flags.DEFINE_string('g_hidden', ','.join(map(str, d.g_hidden)),
                      'Generator hidden widths, comma-separated.')
  flags.DEFINE_string('d_hidden', ','.join(map(str, d.d_hidden)),
                      'Discriminator hidden widths, comma-separated.')
  flags.DEFINE_integer('d_steps', d.d_steps,
                       'D updates per G update (G held fixed during them).')
  flags.DEFINE_float('g_lr', d.g_lr, 'Generator Adam learning rate.')
  flags.DEFINE_float('d_lr', d.d_lr, 'Discriminator Adam learning rate.')
  flags.DEFINE_float('beta1', d.beta1, 'Adam beta1 for both players.')
  flags.DEFINE_float('beta2', d.beta2, 'Adam beta2 for both players.')
  flags.DEFINE_float('d_weight_clip', d.d_weight_clip,
                     'Clip D weights to [-c, c] after each D step (WGAN); 0 = off.')
  flags.DEFINE_string('update', d.update,
                      f'Update scheme: {", ".join(steps_lib.UPDATES)}.')
  flags.DEFINE_float('consensus_weight', d.consensus_weight,
                     'gamma of --update=consensus: both players add '
                     'gamma/2 ||joint gradient||^2.')
  flags.DEFINE_integer('seed', d.seed, 'Random seed.')
  flags.DEFINE_integer('log_every', d.log_every,
                       'Steps per compiled scan chunk and per log line.')
  flags.DEFINE_integer('num_eval_samples', d.num_eval_samples,
                       'Generator samples for the final evaluation.')
  flags.DEFINE_integer('checkpoint_every', d.checkpoint_every,
                       'Steps between checkpoints, a multiple of --log_every; '
                       '0 = 10 x --log_every. A checkpoint is also written at '
                       'the end and on SIGTERM/Ctrl-C.')
  flags.DEFINE_integer('keep_checkpoints', d.keep_checkpoints,
                       'How many of the latest checkpoints to keep.')
  flags.DEFINE_bool('multihost', d.multihost,
                    'Call jax.distributed.initialize() first (one process per '
                    'host; only process 0 writes files).')
  flags.DEFINE_integer('eval_every', d.eval_every,
                       'Steps between sample-quality evaluations during '
                       'training, a multiple of --log_every; 0 = none.')
  flags.DEFINE_string('eval_metrics', ','.join(d.eval_metrics),
                      'Comma-separated metrics for --eval_every and '
                      'gan_jax.evaluate: fid, kid, is, pr, dc.')
  flags.DEFINE_string('data_dir', d.data_dir,
                      'A prepared TFDS directory for mnist, fashion_mnist, '
                      'cifar10, celeb_a (default: ~/tensorflow_datasets).')
  flags.DEFINE_bool('stream_data', d.stream_data,
                    'Stream a TFDS set from the host in prefetched chunks even '
                    'if it fits in device memory (sets over 1 GiB always '
                    'stream).')
  flags.DEFINE_integer('g_features', d.g_features,
                       "Generator width of image models; 0 = the model's "
                       'default.')
  flags.DEFINE_integer('d_features', d.d_features,
                       "Discriminator width of image models; 0 = the model's "
                       'default.')
  flags.DEFINE_bool('g_batch_norm', d.g_batch_norm,
                    'Batch norm in the DCGAN generator.')
  flags.DEFINE_bool('d_spectral_norm', d.d_spectral_norm,
                    'Spectral norm on every discriminator layer (dcgan, mlp; '
                    'sngan_resnet always has it).')
  flags.DEFINE_float('g_ema_decay', d.g_ema_decay,
                     'Decay of the moving average of G\'s parameters used for '
                     'samples and evaluation; 0 = none.')
  flags.DEFINE_string('reg', d.reg,
                      'Gradient penalty on D: '
                      f'{", ".join(regularizer_names())}.')
  flags.DEFINE_float('reg_weight', d.reg_weight,
                     'Weight of --reg (gamma of R1/R2, lambda of WGAN-GP).')
  flags.DEFINE_integer('reg_every', d.reg_every,
                       'Apply --reg every k steps with weight k x --reg_weight '
                       '(lazy regularisation); 1 = every step.')
  flags.DEFINE_integer('image_every', d.image_every,
                       'Steps between sample grids (images) or scatter plots '
                       '(toys) in samples_STEP.png, a multiple of '
                       '--log_every; 0 = only the final samples.png.')
  flags.DEFINE_string('compute_dtype', d.compute_dtype,
                      'Dtype of the models\' arithmetic: '
                      f'{", ".join(precision.COMPUTE_DTYPES)} (parameters, '
                      'optimizer states and losses stay float32).')


def from_flags(flag_values=None) -> Config:
  """Resolves parsed flags into a validated `Config`."""
  f = flag_values or flags.FLAGS
  workdir = f.workdir or os.path.join('runs', f'{f.dataset}_{f.loss}')
  config = Config(
      workdir=workdir, dataset=f.dataset, loss=f.loss, model=f.model,
      num_steps=f.num_steps, batch_size=f.batch_size, z_dim=f.z_dim,
      g_hidden=_widths(f.g_hidden), d_hidden=_widths(f.d_hidden),
      d_steps=f.d_steps, g_lr=f.g_lr, d_lr=f.d_lr, beta1=f.beta1,
      beta2=f.beta2, d_weight_clip=f.d_weight_clip, update=f.update,
      consensus_weight=f.consensus_weight, seed=f.seed,
      log_every=f.log_every, num_eval_samples=f.num_eval_samples,
      checkpoint_every=f.checkpoint_every,
      keep_checkpoints=f.keep_checkpoints, multihost=f.multihost,
      eval_every=f.eval_every,
      eval_metrics=tuple(m.strip() for m in f.eval_metrics.split(',')
                         if m.strip()),
      data_dir=f.data_dir, stream_data=f.stream_data,
      g_features=f.g_features, d_features=f.d_features,
      g_batch_norm=f.g_batch_norm, d_spectral_norm=f.d_spectral_norm,
      g_ema_decay=f.g_ema_decay, reg=f.reg, reg_weight=f.reg_weight,
      reg_every=f.reg_every, image_every=f.image_every,
      compute_dtype=f.compute_dtype)
  return validate(config)
