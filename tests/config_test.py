"""Config declared once: flags, from_flags, config.json and Config.load all
come from the fields, and a field added in one place appears in all of them."""

import dataclasses
import json
import os

from absl import flags
from absl.testing import absltest

from gan_jax import config as config_lib
from gan_jax import config_fields as cf
from gan_jax.config import Config, ConfigError

# Every field away from its default, as a valid whole (d_steps stays 1, the
# only count the consensus update allows).
CHANGED = dict(
    dataset='mnist', loss='hinge', model='dcgan', num_steps=60, batch_size=8,
    z_dim=3, g_hidden=(5, 7), d_hidden=(9,), g_lr=3e-4, d_lr=2e-3, beta1=0.25,
    beta2=0.75, d_weight_clip=0.5, update='consensus', consensus_weight=0.5,
    seed=11, log_every=10, num_eval_samples=40, checkpoint_every=30,
    keep_checkpoints=2, multihost=True, eval_every=20, eval_metrics=('fid',),
    data_dir='/nonexistent/tfds', stream_data=True, g_features=8,
    d_features=12, g_batch_norm=True, d_spectral_norm=True, g_ema_decay=0.9,
    reg='r1', reg_weight=1.5, reg_every=2, image_every=40,
    compute_dtype='bfloat16', augment=('color', 'cutout'), lecam_weight=0.1,
    lecam_decay=0.9, topk=True, topk_gamma=0.9, topk_every=50,
    topk_min_fraction=0.25)
# The fields CHANGED cannot hold with it (toy layouts, mlp options, SGD),
# away from their defaults as another valid whole.
TOY_CHANGED = dict(
    dataset='grid25', toy_layout='pacgan', toy_scale=1.5, toy_std=0.01,
    g_batch_norm=True, d_maxout=5, init_std=0.02, optimizer='sgd',
    momentum=0.9)


def _argv(config):
  """The command line that sets every field of `config`."""
  out = []
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    if isinstance(value, bool):
      out.append(f'--{"" if value else "no"}{field.name}')
    else:
      out.append(f'--{field.name}={cf.text(value)}')
  return out


def _parse(cls, argv):
  flag_values = flags.FlagValues()
  cls.define_flags(flag_values)
  flag_values(['prog', *argv])
  return cls.from_flags(flag_values)


def _save(workdir, saved):
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump(saved, f)


@dataclasses.dataclass(frozen=True)
class WithDropout(Config):
  """A hyperparameter added by its declaration alone."""
  g_dropout: float = cf.field(0.0, 'Dropout rate in G.',
                              check=cf.IN_UNIT_RANGE)


class FlagsTest(absltest.TestCase):

  def test_one_flag_per_field_with_its_default(self):
    flag_values = flags.FlagValues()
    Config.define_flags(flag_values)
    fields = {f.name: f for f in dataclasses.fields(Config)}
    self.assertCountEqual(flag_values, fields)
    for name, field in fields.items():
      expected = None if name == 'workdir' else (
          cf.text(field.default) if isinstance(field.default, tuple)
          else field.default)
      self.assertEqual(flag_values[name].default, expected, name)
    self.assertEqual(flag_values['g_hidden'].default, '128,128,128')
    self.assertEqual(flag_values['loss'].help,
                     f'Loss: {", ".join(config_lib.losses_lib.names())}.')

  def test_every_field_round_trips_through_flags_json_and_load(self):
    workdir = self.create_tempdir().full_path
    for config in (Config(workdir=workdir),
                   Config(workdir=workdir, **CHANGED),
                   Config(workdir=workdir, **TOY_CHANGED)):
      parsed = _parse(Config, _argv(config))
      self.assertEqual(parsed, config)
      with open(os.path.join(workdir, 'config.json'), 'w') as f:
        f.write(parsed.to_json())
      self.assertEqual(Config.load(workdir), config)
    defaults = Config()
    for changed in (CHANGED, TOY_CHANGED):
      self.assertEqual([k for k, v in changed.items()
                        if getattr(defaults, k) == v], [])

  def test_workdir_defaults_to_dataset_and_loss(self):
    self.assertEqual(_parse(Config, ['--dataset=grid25', '--loss=hinge'])
                     .workdir, os.path.join('runs', 'grid25_hinge'))

  def test_bad_values_are_one_line_errors(self):
    tmp = self.create_tempdir().full_path
    for argv, message in [
        (['--g_hidden=64,x'], '--g_hidden=64,x is not a comma-separated list '
         'of integers'),
        (['--d_hidden=64,0'], '--d_hidden=64,0 must be a comma-separated list '
         'of positive layer widths'),
        (['--loss=vanilla'], "--loss='vanilla' is not a known loss; valid: "),
        (['--eval_metrics=fid,bogus'],
         "--eval_metrics: 'bogus' is not a known metric; valid: fid, kid, is, "
         'pr, dc'),
        (['--beta2=1'], '--beta2=1.0 must lie in [0, 1)'),
        (['--update=consensus', '--d_steps=2'],
         '--d_steps=2 needs --update=alternating')]:
      with self.assertRaises(ConfigError) as cm:
        _parse(Config, [f'--workdir={tmp}/run', *argv])
      self.assertStartsWith(str(cm.exception), message)
      self.assertNotIn('\n', str(cm.exception))


class NumbersTest(absltest.TestCase):
  """Floats are finite; integers fit where they go (int32, a PRNG seed)."""

  def _error(self, cls, *argv):
    tmp = self.create_tempdir().full_path
    with self.assertRaises(ConfigError) as cm:
      _parse(cls, [f'--workdir={tmp}/run', *argv])
    return str(cm.exception)

  def test_non_finite_floats_refused_whatever_their_check(self):
    for flag, shown in [('--g_lr=inf', 'inf'), ('--d_lr=1e400', 'inf'),
                        ('--beta1=nan', 'nan'), ('--reg_weight=nan', 'nan'),
                        ('--d_weight_clip=-inf', '-inf')]:
      name = flag.split('=')[0]
      self.assertEqual(self._error(Config, flag),
                       f'{name}={shown} must be a finite number')

  def test_integers_below_their_limit(self):
    int32 = ('must be below 2**31 = 2147483648 (step counters and array '
             'sizes are int32 in JAX)')
    self.assertEqual(self._error(Config, '--num_steps=2147483648'),
                     f'--num_steps=2147483648 {int32}')
    self.assertEqual(self._error(Config, '--d_hidden=8,2147483648'),
                     f'--d_hidden=8,2147483648 {int32}')
    self.assertEqual(self._error(Config, f'--seed={2**32}'),
                     f'--seed={2**32} must be below 2**32 = 4294967296 '
                     '(jax.random.PRNGKey keeps 32 bits of a seed)')
    tmp = self.create_tempdir().full_path
    config = _parse(Config, [f'--workdir={tmp}', f'--seed={2**32 - 1}',
                             f'--num_steps={2**31 - 1}'])
    self.assertEqual((config.seed, config.num_steps), (2**32 - 1, 2**31 - 1))

  def test_a_field_declares_its_own_limit(self):

    @dataclasses.dataclass(frozen=True)
    class WithLayers(Config):
      layers: int = cf.field(2, 'Layers.', check=cf.AT_LEAST_ONE,
                             limit=cf.Limit(10, 'a layer index is a digit'))

    self.assertEqual(self._error(WithLayers, '--layers=10'),
                     '--layers=10 must be below 10 (a layer index is a digit)')

  def test_saved_non_finite_value_refused(self):
    workdir = self.create_tempdir().full_path
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write('{"g_lr": NaN}')
    with self.assertRaisesRegex(ConfigError, r'config.json: --g_lr=nan must '
                                'be a finite number$'):
      Config.load(workdir)


class AddedFieldTest(absltest.TestCase):
  """A field declared once is a flag, a config.json key and checked."""

  def test_declaration_alone_gives_flag_json_load_and_check(self):
    workdir = self.create_tempdir().full_path
    config = _parse(WithDropout, [f'--workdir={workdir}', '--g_dropout=0.25'])
    self.assertEqual(config.g_dropout, 0.25)
    self.assertEqual(json.loads(config.to_json())['g_dropout'], 0.25)
    _save(workdir, json.loads(config.to_json()))
    self.assertEqual(WithDropout.load(workdir), config)
    with self.assertRaisesRegex(ConfigError,
                                r'^--g_dropout=1.5 must lie in \[0, 1\)$'):
      _parse(WithDropout, [f'--workdir={workdir}', '--g_dropout=1.5'])
    # A run saved before the field existed has its default.
    _save(workdir, json.loads(Config(workdir=workdir).to_json()))
    self.assertEqual(WithDropout.load(workdir).g_dropout, 0.0)

  def test_choices_are_looked_up_when_needed(self):
    schemes = ['plain']

    @dataclasses.dataclass(frozen=True)
    class WithScheme(Config):
      scheme: str = cf.field('plain', 'Scheme: {choices}.',
                             choices=lambda: schemes)

    workdir = self.create_tempdir().full_path
    with self.assertRaisesRegex(ConfigError, "^--scheme='later' is not a known "
                                'scheme; valid: plain$'):
      _parse(WithScheme, [f'--workdir={workdir}', '--scheme=later'])
    schemes.append('later')  # registered after the class was declared
    flag_values = flags.FlagValues()
    WithScheme.define_flags(flag_values)
    self.assertEqual(flag_values['scheme'].help, 'Scheme: plain, later.')
    self.assertEqual(_parse(WithScheme, [f'--workdir={workdir}',
                                         '--scheme=later']).scheme, 'later')

  def test_a_type_without_a_flag_is_refused(self):

    @dataclasses.dataclass(frozen=True)
    class WithDict(Config):
      table: dict = cf.field(None, 'A table.')

    with self.assertRaisesRegex(TypeError, 'WithDict.table: .* is not a flag '
                                'type; valid: str, int'):
      WithDict.define_flags(flags.FlagValues())


class LoadTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.workdir = self.create_tempdir().full_path
    self.saved = json.loads(Config(workdir='elsewhere', **CHANGED).to_json())

  def _load_error(self, saved):
    _save(self.workdir, saved)
    with self.assertRaises(ConfigError) as cm:
      Config.load(self.workdir)
    self.assertNotIn('\n', str(cm.exception))
    return str(cm.exception)

  def test_missing_fields_take_their_defaults(self):
    del self.saved['compute_dtype'], self.saved['g_hidden']
    _save(self.workdir, self.saved)
    self.assertEqual(Config.load(self.workdir),
                     Config(**{**CHANGED, 'workdir': self.workdir,
                               'compute_dtype': 'float32',
                               'g_hidden': (128, 128, 128)}))

  def test_seeds_of_a_multi_seed_run_are_not_fields(self):
    config = Config(workdir=self.workdir, **CHANGED)
    with open(os.path.join(self.workdir, 'config.json'), 'w') as f:
      f.write(config.to_json(num_seeds=2, seeds=[11, 12]))
    self.assertEqual(Config.load(self.workdir), config)
    with self.assertRaisesRegex(TypeError, 'lr are not member keys'):
      config.to_json(lr=1)

  def test_unknown_fields_refused(self):
    message = self._load_error({**self.saved, 'g_dropout': 0.1, 'lr': 1})
    self.assertEqual(message, f'{self.workdir}/config.json has fields this '
                     'version does not know: g_dropout, lr')

  def test_wrong_types_refused(self):
    path = f'{self.workdir}/config.json'
    for key, value, message in [
        ('seed', '3', 'seed: "3" is not an integer'),
        ('seed', True, 'seed: true is not an integer'),
        ('g_hidden', [16, 'x'], 'g_hidden: [16, "x"] is not a list of '
         'integers'),
        ('eval_metrics', 'fid', 'eval_metrics: "fid" is not a list of '
         'strings'),
        ('multihost', 1, 'multihost: 1 is not true or false')]:
      self.assertEqual(self._load_error({**self.saved, key: value}),
                       f'{path}: {message}')
    # An integer where a float belongs is a float.
    _save(self.workdir, {**self.saved, 'reg_weight': 2})
    self.assertEqual(Config.load(self.workdir).reg_weight, 2.0)

  def test_invalid_values_and_files_refused(self):
    self.assertIn("--loss='vanilla' is not a known loss",
                  self._load_error({**self.saved, 'loss': 'vanilla'}))
    with open(os.path.join(self.workdir, 'config.json'), 'w') as f:
      f.write('{"dataset": ')
    with self.assertRaisesRegex(ConfigError, 'is not readable JSON'):
      Config.load(self.workdir)
    with self.assertRaisesRegex(ConfigError, 'holds list, not an object'):
      _save(self.workdir, [])
      Config.load(self.workdir)
    empty = self.create_tempdir().full_path
    with self.assertRaisesRegex(ConfigError, f'^{empty} holds no config.json'):
      Config.load(empty)


if __name__ == '__main__':
  absltest.main()
