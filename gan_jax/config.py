"""The training configuration: `Config`, each field declared once.

Data flows one way: flags (or a flagfile) -> `Config` (validated once, here)
-> training. Nothing downstream reads flags. Each field of `Config` carries
its default, type, help text, choices and own check (`config_fields.field`);
the absl flags (`define_flags`), `from_flags`, config.json (`Config.to_json`)
and its reader (`Config.load`) are derived from the fields. `validate` runs
every field's check, then the constraints between fields (model vs data set,
update scheme vs --d_steps, multiples of --log_every, ...).

Every validation failure is a `ConfigError` whose message is one line naming
the problem and the valid choices; the CLI prints it and exits with status 2
before writing anything.

Adding a hyperparameter is one edit, a field of `Config`:

    g_dropout: float = cf.field(0.0, 'Dropout rate in G.',
                                check=cf.IN_UNIT_RANGE)

and `--g_dropout` exists, config.json holds it, `Config.load` reads it back
(as 0.0 for runs saved before it existed) and `validate` checks it. Choices
from a registry are looked up when needed, never at import
(`choices=losses_lib.names`), so a registry filled later is seen.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any, Optional

from absl import flags

from gan_jax import augment as augment_lib
from gan_jax import conditional as conditional_lib
from gan_jax import config_fields as cf
from gan_jax import data as data_lib
from gan_jax.data import toy
from gan_jax import losses as losses_lib
from gan_jax import models as models_lib
from gan_jax.config_fields import ConfigError
from gan_jax.models import precision
from gan_jax import lecam as lecam_lib
from gan_jax import regularizers
from gan_jax import schedules
from gan_jax import steps as steps_lib
from gan_jax import topk as topk_lib
from gan_jax import updates as updates_lib

_LAYER_WIDTHS = cf.Check(lambda ws: len(ws) > 0 and all(w > 0 for w in ws),
                         'must be a comma-separated list of positive layer '
                         'widths')
_FEATURE_WIDTH = cf.Check(lambda v: v >= 0, "must be positive, or 0 for the "
                          "model's default width")

# Seeds become `jax.random.PRNGKey(seed)`, which keeps 32 bits of them (a
# larger seed would silently be another run's). Members of a multi-seed run
# count up from --seed, so `gan_jax.seeds` holds the last one to it as well.
SEED_LIMIT = cf.Limit(2**32, 'jax.random.PRNGKey keeps 32 bits of a seed')

# Written into config.json beside the fields by runs of several seeds
# (gan_jax.seeds, gan_jax.sweep): how many, and which. Not part of a Config.
MEMBER_KEYS = ('num_seeds', 'seeds')


def regularizer_names() -> list[str]:
  """Valid values of --reg: 'none' and every registered gradient penalty."""
  return ['none'] + regularizers.names()


def _metric_names() -> tuple[str, ...]:
  # Imported here: light, but config stays importable without it.
  from gan_jax import evaluation  # pylint: disable=g-import-not-at-top
  return evaluation.METRICS


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything a training run depends on. Defaults give a ring8 toy GAN."""

  workdir: str = cf.field(
      '', 'Directory for config.json, metrics.jsonl and samples (default '
      'runs/DATASET_LOSS).', flag_default=None)
  dataset: str = cf.field('ring8', 'Data set: {choices} (a directory of '
                          'images, subfolders as classes).',
                          choices=data_lib.choices)
  toy_layout: str = cf.field(
      toy.DEFAULT_LAYOUT, 'Mode layout of ring8 and grid25: {choices} ('
      + toy.layout_summary() + ').', choices=lambda: list(toy.LAYOUTS))
  toy_scale: float = cf.field(
      0.0, "Ring radius (ring8) or grid spacing (grid25); 0 = the "
      "--toy_layout preset's.", check=cf.NON_NEGATIVE)
  toy_std: float = cf.field(
      0.0, "Standard deviation of each mode of ring8 and grid25; 0 = the "
      "--toy_layout preset's.", check=cf.NON_NEGATIVE)
  loss: str = cf.field('non_saturating', 'Loss: {choices}.',
                       choices=losses_lib.names)
  model: str = cf.field('mlp', 'Model: {choices}.', choices=models_lib.names)
  num_steps: int = cf.field(20_000, 'Training steps (G updates).',
                            check=cf.POSITIVE)
  batch_size: int = cf.field(256, 'Batch size for both players.',
                             check=cf.POSITIVE)
  z_dim: int = cf.field(64, 'Latent dimension.', check=cf.POSITIVE)
  g_hidden: tuple[int, ...] = cf.field(
      (128, 128, 128), 'Generator hidden widths, comma-separated.',
      check=_LAYER_WIDTHS)
  d_hidden: tuple[int, ...] = cf.field(
      (128, 128, 128), 'Discriminator hidden widths, comma-separated.',
      check=_LAYER_WIDTHS)
  d_steps: int = cf.field(
      1, 'D updates per G update (G held fixed during them).',
      check=cf.POSITIVE)
  g_lr: float = cf.field(1e-4, 'Generator learning rate.',
                         check=cf.POSITIVE)
  d_lr: float = cf.field(1e-4, 'Discriminator learning rate.',
                         check=cf.POSITIVE)
  beta1: float = cf.field(0.5, 'Adam beta1 for both players.',
                          check=cf.IN_UNIT_RANGE)
  beta2: float = cf.field(0.999, 'Adam beta2 for both players.',
                          check=cf.IN_UNIT_RANGE)
  optimizer: str = cf.field(
      'adam', "Both players' optimizer: {choices} (sgd: heavy-ball "
      'momentum --momentum).', choices=lambda: list(steps_lib.OPTIMIZERS))
  momentum: float = cf.field(
      0.0, 'SGD momentum mu of --optimizer=sgd for both players (v <- g + '
      'mu v, x <- x - lr v); 0 = plain SGD.', check=cf.IN_UNIT_RANGE)
  d_weight_clip: float = cf.field(
      0.0, 'Clip D weights to [-c, c] after each D step (WGAN); 0 = off.',
      check=cf.Check(lambda v: v >= 0,
                     'must be >= 0 (0 turns weight clipping off)'))
  lr_schedule: str = cf.field(
      'constant', 'Learning-rate schedule of both players, decaying to 0 over '
      '--num_steps: {choices}.', choices=lambda: list(schedules.NAMES))
  update: str = cf.field('alternating', 'Update scheme: {choices}.',
                         choices=updates_lib.names)
  pack: int = cf.field(
      1, 'PacGAN packing degree m: D judges m samples concatenated into one '
      'input (m real, or m fakes from independent z); --batch_size counts '
      'packed inputs, so each player draws batch_size x m samples. 1 = off.',
      check=cf.AT_LEAST_ONE)
  unroll_steps: int = cf.field(
      0, "Unrolled GAN: G descends its loss at D after k more of D's "
      'optimizer updates, differentiated through them (--update=alternating '
      'or simultaneous); 0 = off.', check=cf.NON_NEGATIVE)
  consensus_weight: float = cf.field(
      10.0, 'gamma of --update=consensus: both players add gamma/2 '
      '||joint gradient||^2.', check=cf.POSITIVE)
  seed: int = cf.field(0, 'Random seed.', check=cf.NON_NEGATIVE,
                       limit=SEED_LIMIT)
  log_every: int = cf.field(
      500, 'Steps per compiled scan chunk and per log line.',
      check=cf.POSITIVE)
  num_eval_samples: int = cf.field(
      2500, 'Generator samples for the final evaluation.', check=cf.POSITIVE)
  checkpoint_every: int = cf.field(
      0, 'Steps between checkpoints, a multiple of --log_every; 0 = 10 x '
      '--log_every. A checkpoint is also written at the end and on '
      'SIGTERM/Ctrl-C.',
      check=cf.Check(lambda v: v >= 0, 'must be a positive multiple of '
                     '--log_every, or 0 for 10 x --log_every'))
  preempt_grace_s: float = cf.field(
      25.0, 'Seconds a stop on SIGTERM/Ctrl-C may take: chunks run in pieces '
      'of at most a quarter of it, and the run stops (with a checkpoint) at '
      'the end of the piece running at the signal; 0 = run each chunk whole '
      'and stop at its end.',
      check=cf.Check(lambda v: v >= 0, 'must be >= 0 seconds (0 runs each '
                     'chunk whole)'))
  keep_checkpoints: int = cf.field(
      3, 'How many of the latest checkpoints to keep.', check=cf.AT_LEAST_ONE)
  multihost: bool = cf.field(
      False, 'Call jax.distributed.initialize() first (one process per host; '
      'only process 0 writes files).')
  eval_every: int = cf.field(
      0, 'Steps between sample-quality evaluations during training, a '
      'multiple of --log_every; 0 = none.')
  eval_metrics: tuple[str, ...] = cf.field(
      ('fid', 'kid', 'pr'), 'Comma-separated metrics for --eval_every and '
      'gan_jax.evaluate: {choices}.', choices=_metric_names, noun='metric')
  data_dir: str = cf.field(
      '', 'A prepared TFDS directory for mnist, fashion_mnist, cifar10, '
      'celeb_a (default: ~/tensorflow_datasets).')
  image_size: int = cf.field(
      64, 'Side of the square images of --dataset=folder:PATH (each '
      'centre-cropped to a square and resized).', check=cf.POSITIVE)
  train_fraction: float = cf.field(
      1.0, 'Train on this fixed fraction of an image set (stratified by '
      'class where it has labels; chosen by --subset_seed, not --seed); '
      '1 = all of it.',
      check=cf.Check(lambda v: 0.0 < v <= 1.0, 'must lie in (0, 1]'))
  subset_seed: int = cf.field(
      0, 'Seed of the --train_fraction subset.', check=cf.NON_NEGATIVE,
      limit=cf.Limit(2**63, 'numpy seeds'))
  stream_data: bool = cf.field(
      False, 'Stream a TFDS set from the host in prefetched chunks even if it '
      'fits in device memory (sets over 1 GiB always stream).')
  g_features: int = cf.field(
      0, "Generator width of image models; 0 = the model's default.",
      check=_FEATURE_WIDTH)
  d_features: int = cf.field(
      0, "Discriminator width of image models; 0 = the model's default.",
      check=_FEATURE_WIDTH)
  g_batch_norm: bool = cf.field(
      False, "Batch norm in the generator's hidden layers (dcgan, mlp).")
  d_maxout: int = cf.field(
      0, 'Maxout pieces K of every hidden D layer of mlp: Dense(width K) '
      'then the max over K pieces; 0 or 1 = ReLU layers.',
      check=cf.NON_NEGATIVE)
  init_std: float = cf.field(
      0.0, 'mlp: every Dense kernel of both players drawn from N(0, s^2), '
      "biases 0; 0 = the model's default initialisation.",
      check=cf.NON_NEGATIVE)
  d_spectral_norm: bool = cf.field(
      False, 'Spectral norm on every discriminator layer (dcgan, mlp; '
      'sngan_resnet always has it).')
  g_ema_decay: float = cf.field(
      0.0, "Decay of the moving average of G's parameters used for samples "
      'and evaluation; 0 = none.',
      check=cf.Check(cf.IN_UNIT_RANGE.holds,
                     'must lie in [0, 1) (0 keeps no average)'))
  reg: str = cf.field('none', 'Gradient penalty on D: {choices}.',
                      choices=regularizer_names)
  reg_weight: float = cf.field(
      0.0, 'Weight of --reg (gamma of R1/R2, lambda of WGAN-GP).',
      check=cf.NON_NEGATIVE)
  reg_every: int = cf.field(
      1, 'Apply --reg every k steps with weight k x --reg_weight (lazy '
      'regularisation); 1 = every step.', check=cf.AT_LEAST_ONE)
  image_every: int = cf.field(
      0, 'Steps between sample grids (images) or scatter plots (toys) in '
      'samples_STEP.png, a multiple of --log_every; 0 = only the final '
      'samples.png.')
  augment: tuple[str, ...] = cf.field(
      (), 'DiffAugment policy for every image D sees (real, fake, and in '
      'the gradient penalty), comma-separated, applied in order: '
      '{choices}; empty = none.', choices=lambda: list(augment_lib.POLICIES),
      noun='augmentation')
  lecam_weight: float = cf.field(
      0.0, "Weight of LeCam regularisation of D's outputs against moving "
      'anchors (Tseng et al. 2021); 0 = off.', check=cf.NON_NEGATIVE)
  lecam_decay: float = cf.field(
      lecam_lib.DECAY, 'Decay of the moving averages of D\'s mean outputs '
      'that anchor --lecam_weight.', check=cf.IN_UNIT_RANGE)
  topk: bool = cf.field(
      False, 'Top-k G updates: G\'s loss over the fakes D rates highest '
      '(Sinha et al. 2020).')
  topk_gamma: float = cf.field(
      topk_lib.GAMMA, 'Factor by which --topk shrinks k every --topk_every '
      'steps.', check=cf.Check(lambda v: 0.0 < v <= 1.0,
                               'must lie in (0, 1]'))
  topk_every: int = cf.field(
      1000, 'Steps between the shrinkings of k of --topk.', check=cf.POSITIVE)
  topk_min_fraction: float = cf.field(
      topk_lib.MIN_FRACTION, 'Fraction of the batch below which --topk '
      'never takes k.', check=cf.Check(lambda v: 0.0 < v <= 1.0,
                                       'must lie in (0, 1]'))
  compute_dtype: str = cf.field(
      'float32', "Dtype of the models' arithmetic: {choices} (parameters, "
      'optimizer states and losses stay float32).',
      choices=lambda: list(precision.COMPUTE_DTYPES))
  conditional: str = cf.field(
      'none', 'Class-conditional GAN on a labelled data set: {choices} '
      '(projection D, or D with an auxiliary classifier; G conditioned by a '
      'class embedding and conditional batch norm).',
      choices=lambda: list(conditional_lib.CONDITIONINGS))
  acgan_weight: float = cf.field(
      1.0, "--conditional=acgan: weight of the auxiliary classifier's "
      "cross-entropy in both players' losses.", check=cf.POSITIVE)
  fake_labels: str = cf.field(
      'uniform', "Distribution of the labels G is asked for: {choices} "
      "(uniform over the classes, or the data's class frequencies).",
      choices=lambda: list(conditional_lib.FAKE_LABELS))

  def replace(self, **changes: Any) -> 'Config':
    return dataclasses.replace(self, **changes)

  def to_json(self, **members: Any) -> str:
    """config.json's text: the fields, and `MEMBER_KEYS` of a multi-seed run."""
    unknown = sorted(set(members) - set(MEMBER_KEYS))
    if unknown:
      raise TypeError(f'to_json: {", ".join(unknown)} are not member keys; '
                      f'valid: {", ".join(MEMBER_KEYS)}')
    return json.dumps({**dataclasses.asdict(self), **members}, indent=2,
                      sort_keys=True)

  @classmethod
  def define_flags(cls, flag_values: Optional[flags.FlagValues] = None
                   ) -> None:
    """Defines a flag per field on `flag_values` (absl's FLAGS); idempotent."""
    cf.define_flags(cls, flags.FLAGS if flag_values is None else flag_values)

  @classmethod
  def from_flags(cls, flag_values: Optional[flags.FlagValues] = None,
                 validated: bool = True) -> 'Config':
    """The parsed flags as a validated `Config`; without --workdir the run
    goes to runs/DATASET_LOSS.

    `validated=False` is for a sweep's base, which is never run itself: a
    base may be incomplete (e.g. --eval_metrics=label_acc with the grid
    setting --conditional), and each grid point is validated instead.
    """
    values = cf.from_flags(cls, flags.FLAGS if flag_values is None
                           else flag_values)
    if not values['workdir']:
      values['workdir'] = os.path.join(
          'runs', f'{values["dataset"]}_{values["loss"]}')
    config = cls(**values)
    return validate(config) if validated else config

  @classmethod
  def load(cls, workdir: str) -> 'Config':
    """The validated `Config` of the run in `workdir`, from its `config.json`.

    The one reader of a saved configuration. A field the file lacks (written
    before the field existed) takes its default; a field this version does
    not know, a value of the wrong type, text that is not JSON (or not UTF-8)
    or a missing file is a one-line `ConfigError`; a file that cannot be read
    (an I/O error) raises the OSError. `MEMBER_KEYS`, which runs of several
    seeds write beside the fields, are not part of the `Config`. `workdir` is the
    directory it was read from, wherever the run was moved.
    """
    path = os.path.join(workdir, 'config.json')
    if not os.path.isfile(path):
      raise ConfigError(f'{workdir} holds no config.json; point it at the '
                        'workdir of a training run')
    try:
      with open(path, encoding='utf-8') as f:
        saved = json.load(f)
    except ValueError as e:
      raise ConfigError(f'{path} is not readable JSON: '
                        f'{str(e).splitlines()[0]}') from None
    if not isinstance(saved, dict):
      raise ConfigError(f'{path} holds {type(saved).__name__}, not an object '
                        'of configuration fields')
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(saved) - known - set(MEMBER_KEYS))
    if unknown:
      raise ConfigError(f'{path} has fields this version does not know: '
                        f'{", ".join(unknown)}')
    try:
      values = cf.from_json(cls, saved)
      values['workdir'] = workdir
      return validate(cls(**values))
    except ConfigError as e:
      raise ConfigError(f'{path}: {str(e).splitlines()[0]}') from None


define_flags = Config.define_flags
from_flags = Config.from_flags


# ----------------------------------------------------------------------------
# Validation: each field on its own, then the fields together.
# ----------------------------------------------------------------------------


def validate(config: Config) -> Config:
  """Checks every field of `config`; returns it unchanged or raises ConfigError.

  First each field's own choices and check (in declaration order), then the
  constraints between fields, and last whether the workdir can be written.
  """
  cf.check_fields(config)
  if config.d_steps != 1 and not updates_lib.get(config.update).uses_d_steps:
    honouring = [n for n in updates_lib.names()
                 if updates_lib.get(n).uses_d_steps]
    raise ConfigError(f'--d_steps={config.d_steps} needs --update='
                      f'{" or ".join(honouring)} (--update={config.update} '
                      'moves both players once per step)')
  _check_unrolling(config)
  _check_images(config)
  _check_conditional(config)
  if config.reg != 'none' and config.reg_weight == 0:
    raise ConfigError(f'--reg={config.reg} needs a positive --reg_weight')
  _check_data_efficient(config)
  _check_chunk_boundaries(config)
  _check_evaluation(config)
  _check_workdir(config.workdir)
  return config


def _check_unrolling(config: Config) -> None:
  unrolling = [n for n in updates_lib.names() if updates_lib.get(n).unrolls]
  if config.unroll_steps and config.update not in unrolling:
    raise ConfigError(f'--unroll_steps={config.unroll_steps} needs --update='
                      f'{" or ".join(unrolling)} (--update={config.update} '
                      'has no unrolled G step)')


def _check_images(config: Config) -> None:
  dataset = data_lib.spec(config)
  if config.stream_data and not dataset.streamable:
    raise ConfigError(f'--stream_data applies to TFDS sets only: '
                      f'{", ".join(data_lib.TFDS_NAMES)} '
                      f'(--dataset={config.dataset} is sampled on the device)')
  if config.train_fraction < 1 and not dataset.is_image:
    raise ConfigError(f'--train_fraction={config.train_fraction} applies to '
                      f'image data sets (--dataset={config.dataset} is drawn '
                      'afresh each step; it has no fixed training set)')
  if not models_lib.compatible(config.model, dataset.shape):
    raise ConfigError(
        f'--model={config.model} cannot train on --dataset={config.dataset} '
        f'(samples of shape {dataset.shape}); valid models for it: '
        f'{", ".join(models_lib.fitting(dataset.shape))}')
  # Model-specific switches: each model declares the ones it reads.
  for option in models_lib.OPTIONS:
    accepting = models_lib.accepting(option)
    if (models_lib.option_is_set(option, getattr(config, option))
        and config.model not in accepting):
      raise ConfigError(f'--{option} applies to --model={" or ".join(accepting)}'
                        f' (--model={config.model} has no such option)')
  _check_toy_layout(config)
  if config.momentum and config.optimizer != 'sgd':
    raise ConfigError(f'--momentum={config.momentum} applies to '
                      f'--optimizer=sgd (--optimizer={config.optimizer})')


def _check_toy_layout(config: Config) -> None:
  set_flags = [f'--{name}={getattr(config, name)}'
               for name, default in (('toy_layout', toy.DEFAULT_LAYOUT),
                                     ('toy_scale', 0.0), ('toy_std', 0.0))
               if getattr(config, name) != default]
  if set_flags and config.dataset not in toy.LAID_OUT:
    raise ConfigError(f'{" ".join(set_flags)} applies to --dataset='
                      f'{" or ".join(toy.LAID_OUT)} (--dataset='
                      f'{config.dataset} has no such layout)')


def _check_conditional(config: Config) -> None:
  from gan_jax import evaluation  # pylint: disable=g-import-not-at-top
  label_metrics = [m for m in config.eval_metrics
                   if m in evaluation.LABEL_METRICS]
  if label_metrics and config.conditional == 'none':
    raise ConfigError(f'--eval_metrics={",".join(label_metrics)} scores '
                      'class-conditional samples; add --conditional='
                      'projection or acgan, or drop them')
  from gan_jax.metrics import conditional as scores  # pylint: disable=g-import-not-at-top
  if ('label_acc' in label_metrics
      and not scores.has_classifier(config.dataset)):
    raise ConfigError(f'--eval_metrics=label_acc needs a classifier trained '
                      f'on --dataset={config.dataset}; valid data sets: '
                      'digits, mnist')
  if config.conditional == 'none':
    for name, default in (('acgan_weight', 1.0), ('fake_labels', 'uniform')):
      if getattr(config, name) != default:
        raise ConfigError(f'--{name} applies to conditional runs only '
                          '(--conditional=projection or acgan)')
    return
  if config.conditional != 'acgan' and config.acgan_weight != 1.0:
    raise ConfigError('--acgan_weight applies to --conditional=acgan only')
  labelled = [n for n in data_lib.names() if data_lib.get(n).num_classes]
  if not data_lib.spec(config).num_classes:
    raise ConfigError(f'--conditional={config.conditional} needs a data set '
                      f'with labels; valid: {", ".join(labelled)} '
                      f'(--dataset={config.dataset} has none)')
  supporting = models_lib.supporting(config.conditional)
  if config.model not in supporting:
    raise ConfigError(f'--conditional={config.conditional} applies to '
                      f'--model={" or ".join(supporting)} (--model='
                      f'{config.model} has no class-conditional form)')
  if config.stream_data:
    raise ConfigError(f'--conditional={config.conditional} samples labels '
                      'on the device; drop --stream_data')
  if config.pack > 1:
    raise ConfigError(f'--conditional={config.conditional} judges one '
                      f'labelled sample at a time; drop --pack={config.pack}')


def _check_data_efficient(config: Config) -> None:
  if config.augment and not data_lib.spec(config).is_image:
    raise ConfigError(f'--augment applies to image data sets '
                      f'(--dataset={config.dataset} has no images)')
  if config.topk and losses_lib.get(config.loss).g_needs_real:
    valid = [n for n in losses_lib.names()
             if not losses_lib.get(n).g_needs_real]
    raise ConfigError(f'--topk needs a loss whose G objective is a mean over '
                      f'samples (--loss={config.loss} compares them with real '
                      f'outputs); valid: {", ".join(valid)}')


# Work done between compiled chunks lands on multiples of --log_every:
# (flag, what it writes, what 0 means).
_BETWEEN_CHUNKS = (
    ('image_every', 'grids', 'the final grid only'),
    ('checkpoint_every', 'checkpoints', '10 x --log_every'),
    ('eval_every', 'evaluations', 'no evaluation during training'),
)


def _check_chunk_boundaries(config: Config) -> None:
  for name, what, zero in _BETWEEN_CHUNKS:
    value = getattr(config, name)
    if value < 0 or value % config.log_every:
      raise ConfigError(
          f'--{name}={value} must be a multiple of --log_every='
          f'{config.log_every} ({what} land on chunk boundaries), or 0 for '
          f'{zero}')


def _check_evaluation(config: Config) -> None:
  # Imported here: light, but config stays importable without it.
  from gan_jax import features  # pylint: disable=g-import-not-at-top
  if ('is' in config.eval_metrics
      and features.default_for(config.dataset) == 'identity'):
    valid = ', '.join(m for m in _metric_names() if m != 'is')
    raise ConfigError(f'--eval_metrics=is needs class logits, which '
                      f'{config.dataset} samples (compared as they are) do '
                      f'not have; valid for it: {valid}')


def checkpoint_interval(config: Config) -> int:
  """Steps between checkpoints: `--checkpoint_every`, or 10 log intervals if 0."""
  return config.checkpoint_every or 10 * config.log_every


def _check_workdir(workdir: str) -> None:
  """The workdir must be creatable and writable, checked without leaving a trace.

  `os.access` alone is not enough (it says yes to root everywhere but on
  read-only file systems), so the nearest existing ancestor is probed by
  creating and removing an empty temporary directory in it. A symbolic link
  on the way that points nowhere could not be created through.
  """
  if not workdir:
    raise ConfigError('--workdir must name a directory for the run artifacts')
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f'--workdir={workdir} is a file, not a directory')
  ancestor = os.path.abspath(workdir)
  while not os.path.exists(ancestor):
    if os.path.islink(ancestor):
      raise ConfigError(f'--workdir={workdir} cannot be created: {ancestor} '
                        f'is a symbolic link to {os.readlink(ancestor)}, '
                        'which does not exist')
    ancestor = os.path.dirname(ancestor)
  if not os.path.isdir(ancestor):
    raise ConfigError(f'--workdir={workdir} cannot be created: {ancestor} is a '
                      'file, not a directory')
  try:
    os.rmdir(tempfile.mkdtemp(prefix='.gan_jax_probe_', dir=ancestor))
  except OSError as e:
    raise ConfigError(f'--workdir={workdir} is not writable: cannot create '
                      f'a directory in {ancestor} ({e.strerror or e})') from None
