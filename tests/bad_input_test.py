"""Bad invocations of the command line, in real subprocesses: each prints one
line naming the problem (and the valid choices), exits with status 2, shows
no traceback, and writes nothing: no workdir is created, and a workdir that
already holds a run is left byte for byte as it was."""

import hashlib
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized

import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--num_steps=20', '--log_every=10', '--batch_size=32', '--z_dim=2',
        '--g_hidden=16', '--d_hidden=16', '--num_eval_samples=100']
EIGHT = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}


def _main(*args, env=None):
  env = subprocess_env.env(**(env or {}))
  return subprocess.run([sys.executable, '-m', 'gan_jax.main', *args],
                        capture_output=True, text=True, cwd=ROOT, env=env,
                        timeout=300)


def _tree(path):
  """{relative path: sha256} of every file under `path`."""
  out = {}
  for root, _, files in os.walk(path):
    for name in files:
      full = os.path.join(root, name)
      with open(full, 'rb') as f:
        out[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
  return out


class Symlink(str):
  """A symbolic link to this text (formatted like the args) in SETUP."""


# What every BAD row finds in {tmp}, and nothing else must be there after.
SETUP = {
    'afile': '',
    'bad.cfg': '--dataset=grid25\n--loss=vanilla\n',
    'bytes.cfg': b'\xff\xfe--loss=hinge\n',
    'outer.cfg': '# includes a flagfile that is not UTF-8\n'
                 '--flagfile={tmp}/bytes.cfg\n',
    'dangling': Symlink('{tmp}/nowhere'),
}


def _set_up(tmp):
  for name, content in SETUP.items():
    path = os.path.join(tmp, name)
    if isinstance(content, Symlink):
      os.symlink(content.format(tmp=tmp), path)
    elif isinstance(content, bytes):
      with open(path, 'wb') as f:
        f.write(content)
    else:
      with open(path, 'w') as f:
        f.write(content.format(tmp=tmp))


# (name, args, the one line's expected text). {tmp} holds SETUP only.
BAD = [
    ('unknown_loss', ['--loss=vanilla'], "--loss='vanilla' is not a known loss; valid: "),
    ('unknown_dataset', ['--dataset=moons'],
     'valid: celeb_a, cifar10, digits, fashion_mnist, grid25, mix1d, mnist, '
     'ring8'),
    ('unknown_model', ['--model=resnet'], 'valid: dcgan, mlp, sngan_resnet'),
    ('mlp_on_images', ['--dataset=digits', '--model=mlp'],
     '--model=mlp cannot train on --dataset=digits (samples of shape '
     '(16, 16, 1)); valid models for it: dcgan'),
    ('dcgan_on_toy', ['--model=dcgan'],
     '--model=dcgan cannot train on --dataset=ring8 (samples of shape (2,)); '
     'valid models for it: mlp'),
    ('resnet_on_digits', ['--dataset=digits', '--model=sngan_resnet'],
     'valid models for it: dcgan'),
    ('unknown_reg', ['--reg=gp'],
     "--reg='gp' is not a known reg; valid: none, dragan, r1, r2, wgan_gp"),
    ('reg_without_weight', ['--reg=r1'], '--reg=r1 needs a positive --reg_weight'),
    ('zero_reg_every', ['--reg=r1', '--reg_weight=1', '--reg_every=0'],
     '--reg_every=0 must be at least 1'),
    ('ema_decay_one', ['--g_ema_decay=1'], '--g_ema_decay=1.0 must lie in [0, 1)'),
    ('image_every_off_chunk_boundary', ['--log_every=20', '--image_every=30'],
     '--image_every=30 must be a multiple of --log_every=20'),
    ('batch_norm_on_resnet', ['--dataset=cifar10', '--model=sngan_resnet',
                              '--g_batch_norm'],
     '--g_batch_norm applies to --model=dcgan or mlp '
     '(--model=sngan_resnet has no such option)'),
    ('maxout_on_dcgan', ['--dataset=digits', '--model=dcgan', '--d_maxout=5'],
     '--d_maxout applies to --model=mlp (--model=dcgan has no such option)'),
    ('init_std_on_dcgan', ['--dataset=digits', '--model=dcgan',
                           '--init_std=0.02'],
     '--init_std applies to --model=mlp (--model=dcgan has no such option)'),
    ('negative_maxout', ['--d_maxout=-2'], '--d_maxout=-2 must be >= 0'),
    ('unknown_toy_layout', ['--toy_layout=unrolled'],
     "--toy_layout='unrolled' is not a known toy_layout; valid: veegan, pacgan"),
    ('toy_layout_on_mix1d', ['--dataset=mix1d', '--toy_std=0.1'],
     '--toy_std=0.1 applies to --dataset=ring8 or grid25 (--dataset=mix1d has '
     'no such layout)'),
    ('negative_toy_scale', ['--toy_scale=-1'], '--toy_scale=-1.0 must be >= 0'),
    ('unknown_optimizer', ['--optimizer=rmsprop'],
     "--optimizer='rmsprop' is not a known optimizer; valid: adam, sgd"),
    ('momentum_with_adam', ['--momentum=0.9'],
     '--momentum=0.9 applies to --optimizer=sgd (--optimizer=adam)'),
    ('momentum_one', ['--optimizer=sgd', '--momentum=1'],
     '--momentum=1.0 must lie in [0, 1)'),
    ('spectral_norm_flag_on_resnet', ['--dataset=cifar10',
                                      '--model=sngan_resnet',
                                      '--d_spectral_norm'],
     '--d_spectral_norm applies to --model=dcgan or mlp '
     '(--model=sngan_resnet has no such option)'),
    ('negative_features', ['--dataset=digits', '--model=dcgan',
                           '--g_features=-8'], '--g_features=-8 must be positive'),
    ('unprepared_tfds_set', ['--dataset=mnist', '--model=dcgan',
                             '--data_dir={tmp}/tfds'],
     "TFDS data set 'mnist' (split 'train') is not prepared in"),
    ('zero_batch', ['--batch_size=0'], '--batch_size=0 must be positive'),
    ('negative_steps', ['--num_steps=-5'], '--num_steps=-5 must be positive'),
    ('zero_lr', ['--d_lr=0'], '--d_lr=0.0 must be positive'),
    ('negative_g_lr', ['--g_lr=-1e-3'], '--g_lr=-0.001 must be positive'),
    ('beta_one', ['--beta1=1.0'], 'must lie in [0, 1)'),
    ('bad_widths', ['--g_hidden=64,x'], 'comma-separated'),
    ('zero_width', ['--d_hidden=64,0'], 'positive layer widths'),
    ('zero_z', ['--z_dim=0'], '--z_dim=0 must be positive'),
    ('unroll_with_extragradient', ['--unroll_steps=3',
                                   '--update=extragradient'],
     '--unroll_steps=3 needs --update=alternating or simultaneous '
     '(--update=extragradient has no unrolled G step)'),
    ('negative_unroll_steps', ['--unroll_steps=-1'],
     '--unroll_steps=-1 must be >= 0'),
    ('zero_pack', ['--pack=0'], '--pack=0 must be at least 1'),
    ('unknown_update', ['--update=adam'],
     "--update='adam' is not a known update; valid: alternating"),
    ('unknown_metric', ['--eval_metrics=fid,bogus'],
     "--eval_metrics: 'bogus' is not a known metric; valid: fid, kid"),
    ('unknown_compute_dtype', ['--compute_dtype=float16'],
     "--compute_dtype='float16' is not a known compute_dtype; valid: "
     'float32, bfloat16'),
    ('zero_seeds', ['--num_seeds=0'], '--num_seeds=0 must be at least 1'),
    ('negative_cpu_devices', ['--num_seeds=2', '--cpu_devices=-1'],
     '--cpu_devices=-1 must be 0 (one per core) or a positive count'),
    ('zero_log_every', ['--log_every=0'], '--log_every=0 must be positive'),
    ('negative_seed', ['--seed=-1'], '--seed=-1 must be >= 0'),
    ('negative_checkpoint_every', ['--checkpoint_every=-100'],
     '--checkpoint_every=-100 must be a positive multiple of --log_every'),
    ('checkpoint_off_chunk_boundary',
     ['--log_every=20', '--checkpoint_every=50'],
     '--checkpoint_every=50 must be a multiple of --log_every=20'),
    ('zero_keep_checkpoints', ['--keep_checkpoints=0'],
     '--keep_checkpoints=0 must be at least 1'),
    ('missing_flagfile', ['--flagfile=experiments/nope.cfg'], 'nope.cfg'),
    ('unknown_flag', ['--lossy=hinge'], 'lossy'),
    ('not_an_int', ['--num_steps=ten'], 'num_steps'),
    ('stray_argument', ['hinge'], 'unexpected arguments'),
    ('unwritable_workdir', ['--workdir=/proc/gan_jax_run'],
     '--workdir=/proc/gan_jax_run is not writable'),
    ('workdir_under_a_file', ['--workdir={tmp}/afile/run'],
     'afile is a file, not a directory'),
    ('bad_value_in_flagfile', ['--flagfile={tmp}/bad.cfg'],
     "--loss='vanilla' is not a known loss"),
    ('seed_beyond_prng_key', ['--seed=99999999999999999999'],
     '--seed=99999999999999999999 must be below 2**32 = 4294967296 '
     '(jax.random.PRNGKey keeps 32 bits of a seed)'),
    ('member_seeds_beyond_prng_key', ['--seed=4294967295', '--num_seeds=2'],
     '--seed=4294967295 --num_seeds=2 reach seed 4294967296, which must be '
     'below 2**32'),
    ('flagfile_not_utf8', ['--flagfile={tmp}/bytes.cfg'],
     'bytes.cfg is not UTF-8 text: byte 0xff at offset 0'),
    ('nested_flagfile_not_utf8', ['--flagfile', '{tmp}/outer.cfg'],
     'bytes.cfg is not UTF-8 text: byte 0xff at offset 0'),
    ('workdir_dangling_symlink', ['--workdir={tmp}/dangling'],
     'dangling is a symbolic link to '),
    ('workdir_under_dangling_symlink', ['--workdir={tmp}/dangling/run'],
     'cannot be created: '),
    ('infinite_g_lr', ['--g_lr=inf'], '--g_lr=inf must be a finite number'),
    ('overflowing_d_lr', ['--d_lr=1e400'],
     '--d_lr=inf must be a finite number'),
    ('nan_reg_weight', ['--reg=r1', '--reg_weight=nan'],
     '--reg_weight=nan must be a finite number'),
    ('nan_beta', ['--beta2=nan'], '--beta2=nan must be a finite number'),
    ('num_steps_not_an_integer', ['--num_steps=1e23'],
     'flag --num_steps=1e23: invalid literal for int()'),
    ('num_steps_beyond_int32', ['--num_steps=2147483648'],
     '--num_steps=2147483648 must be below 2**31 = 2147483648 (step counters '
     'and array sizes are int32 in JAX)'),
    ('huge_num_steps', ['--num_steps=100000000000000000000000'],
     '--num_steps=100000000000000000000000 must be below 2**31'),
    ('log_every_beyond_int32', ['--log_every=4294967296'],
     '--log_every=4294967296 must be below 2**31'),
    ('width_beyond_int32', ['--g_hidden=16,2147483648'],
     '--g_hidden=16,2147483648 must be below 2**31'),
]


class BadInputTest(parameterized.TestCase):

  @parameterized.named_parameters(*BAD)
  def test_one_line_exit_2_nothing_written(self, args, expected):
    tmp = self.create_tempdir().full_path
    _set_up(tmp)
    args = [a.format(tmp=tmp) for a in args]
    workdir = os.path.join(tmp, 'run')
    if not any(a.startswith('--workdir') for a in args):
      args = [f'--workdir={workdir}', *args]
    proc = _main(*args)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    self.assertLen(lines, 1, proc.stderr)
    self.assertTrue(lines[0].startswith('error: '), lines[0])
    self.assertIn(expected, lines[0])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertEqual(proc.stdout, '')
    self.assertEqual(sorted(os.listdir(tmp)), sorted(SETUP))
    self.assertFalse(os.path.exists('/proc/gan_jax_run'))

  def test_workdir_that_is_a_file(self):
    path = os.path.join(self.create_tempdir().full_path, 'afile')
    open(path, 'w').close()
    proc = _main(f'--workdir={path}')
    self.assertEqual(proc.returncode, 2)
    self.assertEqual(proc.stderr,
                     f'error: --workdir={path} is a file, not a directory\n')

  def test_batch_not_divisible_by_eight_devices(self):
    tmp = self.create_tempdir().full_path
    proc = _main(f'--workdir={tmp}/run', *TINY, '--batch_size=20', env=EIGHT)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    self.assertEqual(proc.stderr, 'error: --batch_size=20 is not divisible by '
                     'the 8 devices it is split over; valid nearby: 16, 24\n')
    self.assertEqual(os.listdir(tmp), [])


class MalformedGridTest(parameterized.TestCase):
  """The sweep runner's --grid, in the same contract."""

  @parameterized.named_parameters(
      ('no_colon', 'loss=hinge', "--grid: 'loss=hinge' is not key:v1,v2,..."),
      ('unknown_key', 'lossy:hinge,minimax',
       "--grid: 'lossy' is not a training flag; valid: dataset, toy_layout, "
       'toy_scale, toy_std, loss'),
      ('bad_value', 'loss:hinge,vanilla',
       "--grid point loss=vanilla: --loss='vanilla' is not a known loss; "
       'valid: fgan_hellinger'),
      ('infinite_value', 'g_lr:1e-4,inf',
       '--grid point g_lr=inf: --g_lr=inf must be a finite number'),
  )
  def test_one_line_exit_2_nothing_written(self, grid, expected):
    tmp = self.create_tempdir().full_path
    proc = subprocess.run(
        [sys.executable, '-m', 'gan_jax.sweep', f'--grid={grid}',
         f'--workdir={tmp}/sweep'], capture_output=True, text=True, cwd=ROOT,
        env=subprocess_env.env(), timeout=300)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    self.assertLen(lines, 1, proc.stderr)
    self.assertTrue(lines[0].startswith(f'error: {expected}'), lines[0])
    self.assertEqual(os.listdir(tmp), [])


class OtherCommandsTest(parameterized.TestCase):
  """gan_jax.evaluate, gan_jax.train_classifier and gan_jax.sweep, in the same
  contract for absl's own flag errors and stray arguments."""

  @parameterized.named_parameters(
      ('evaluate_not_an_int', 'gan_jax.evaluate', '--num_samples=ten',
       "error: flag --num_samples=ten: invalid literal for int() with base "
       "10: 'ten'"),
      ('evaluate_stray_argument', 'gan_jax.evaluate', 'runs/x',
       'error: unexpected arguments runs/x; pass settings as --flag=value'),
      ('classifier_unknown_flag', 'gan_jax.train_classifier', '--stepz=3',
       "error: Unknown command line flag 'stepz'. Did you mean: steps ?"),
      ('sweep_stray_argument', 'gan_jax.sweep', 'hinge',
       'error: unexpected arguments hinge; pass settings as --flag=value'),
  )
  def test_one_line_exit_2(self, module, arg, expected):
    tmp = self.create_tempdir().full_path
    proc = subprocess.run([sys.executable, '-m', module, arg],
                          capture_output=True, text=True, cwd=tmp,
                          env=subprocess_env.env(PYTHONPATH=ROOT), timeout=300)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    self.assertLen(lines, 1, proc.stderr)
    self.assertStartsWith(lines[0], expected)
    self.assertEqual(os.listdir(tmp), [])


class ExistingCheckpointTest(parameterized.TestCase):
  """A workdir holding a finished run's checkpoints, offered other flags."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.workdir = os.path.join(tempfile.mkdtemp(), 'run')
    proc = _main(f'--workdir={cls.workdir}', *TINY, '--seed=4')
    assert proc.returncode == 0, proc.stderr
    cls.files = _tree(cls.workdir)

  @parameterized.named_parameters(
      ('other_loss_and_seed', ['--seed=5', '--loss=hinge'],
       'holds a checkpoint (step 20) of a different run: --loss='
       '"non_saturating" there vs "hinge" here; --seed=4 there vs 5 here; '
       'on resume only --num_steps, --keep_checkpoints, '),
      ('fewer_steps', ['--seed=4', '--num_steps=10'],
       '--num_steps=10 is less than step 20 of the checkpoint'),
  )
  def test_refused_and_left_untouched(self, extra, expected):
    proc = _main(f'--workdir={self.workdir}', *TINY, *extra)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    self.assertLen(lines, 1, proc.stderr)
    self.assertIn(expected, lines[0])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertEqual(_tree(self.workdir), self.files)


if __name__ == '__main__':
  absltest.main()
