"""The sweep runner: grid parsing, program grouping, resuming after an
interruption, and one-line errors for a malformed grid."""

import glob
import io
import json
import os
import shutil
import subprocess
import sys

from absl import flags
from absl.testing import absltest
from absl.testing import flagsaver
import chex
import numpy as np

from gan_jax.analysis import results
from gan_jax import sweep
from gan_jax.config import ConfigError
import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = testing.flag_values(testing.tiny_toy_config(num_steps=10))


class GridTest(absltest.TestCase):

  def test_parse(self):
    self.assertEqual(sweep.parse_grid(' loss:minimax, hinge ;d_steps:1,5;'),
                     [('loss', ['minimax', 'hinge']), ('d_steps', ['1', '5'])])
    self.assertEqual(sweep.parse_grid(''), [])

  def test_malformed_grids_raise_one_line(self):
    for grid, message in [
        ('loss=minimax', r"^--grid: 'loss=minimax' is not key:v1,v2"),
        ('loss:', r"^--grid: 'loss:' is not key:v1,v2"),
        ('loss:a,,b', r"^--grid: 'loss:a,,b' is not key:v1,v2"),
        ('lr:1,2', r"^--grid: 'lr' is not a training flag; valid: dataset, "),
        ('seed:1,2', r"^--grid: 'seed' is not a training flag \(use --seed "
                     r'and --num_seeds for seeds\)'),
        ('loss:a;loss:b', r"^--grid: 'loss' appears twice$"),
        ('loss:a,a', r"^--grid: 'loss' repeats a value$")]:
      with self.assertRaisesRegex(ConfigError, message):
        sweep.parse_grid(grid)

  def test_programs_batch_only_float_hyperparameters(self):
    base = testing.tiny_toy_config(workdir='w')
    configs = [base.replace(g_lr=1e-4), base.replace(loss='hinge'),
               base.replace(g_lr=1e-3, beta1=0.1), base.replace(d_steps=5),
               base.replace(d_lr=3e-4)]
    self.assertEqual(sweep.programs(configs, 2, 64), [[0, 2, 4], [1], [3]])
    self.assertEqual(sweep.programs(configs, 2, 4), [[0, 2], [4], [1], [3]])
    self.assertEqual(sweep.programs(configs, 2, 64, batch_hyperparams=False),
                     [[0], [1], [2], [3], [4]])

  def test_every_sweep_flagfile_expands_to_valid_configs(self):
    paths = sorted(glob.glob(os.path.join(ROOT, 'experiments', 'sweeps',
                                          '*.cfg')))
    self.assertNotEmpty(paths)
    tmp = self.create_tempdir().full_path
    with flagsaver.flagsaver():  # the flags of each flagfile alone
      try:
        for path in paths:
          flags.FLAGS.unparse_flags()
          flags.FLAGS(['prog', f'--flagfile={path}'])
          grid = sweep.parse_grid(flags.FLAGS.grid)
          # What the command does: the base (which the grid may complete,
          # e.g. --conditional for --eval_metrics=label_acc), then each point.
          sweep.base_config(grid)
          points = sweep.expand(grid, tmp)
          self.assertLen(points, np.prod([len(v) for _, v in grid]), path)
          # Each grid point is a configuration of its own, in its directory.
          self.assertLen({config for _, config in points}, len(points), path)
          for point, config in points:
            self.assertEqual(config.workdir,
                             os.path.join(tmp, sweep.point_name(point)))
      finally:
        flags.FLAGS.mark_as_parsed()

  def test_the_grid_completes_the_base_and_each_point_is_validated(self):
    tmp = self.create_tempdir().full_path
    with flagsaver.flagsaver(
        **testing.flag_values(testing.tiny_image_config()),
        eval_metrics='label_acc'):
      grid = sweep.parse_grid('conditional:projection,acgan')
      self.assertEqual(sweep.base_config(grid).conditional, 'none')
      self.assertEqual([c.conditional for _, c in sweep.expand(grid, tmp)],
                       ['projection', 'acgan'])
      with self.assertRaisesRegex(ConfigError, '^--eval_metrics=label_acc'):
        sweep.base_config([])  # a base run alone must be valid
      with self.assertRaisesRegex(
          ConfigError, r'^--grid point conditional=none: --eval_metrics='):
        sweep.expand(sweep.parse_grid('conditional:projection,none'), tmp)

  def test_integer_lists_take_x_in_a_grid(self):
    with flagsaver.flagsaver(**TINY):
      (_, config), = sweep.expand(sweep.parse_grid('g_hidden:8x4'),
                                  self.create_tempdir().full_path)
    self.assertEqual(config.g_hidden, (8, 4))

  def test_malformed_grid_on_the_command_line_exits_2_writing_nothing(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'sweep')
    proc = subprocess.run(
        [sys.executable, '-m', 'gan_jax.sweep', '--grid=loss:minimax;bogus',
         f'--workdir={workdir}'], capture_output=True, text=True, cwd=ROOT,
        timeout=300)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    self.assertEqual(proc.stderr.strip().splitlines(),
                     ["error: --grid: 'bogus' is not key:v1,v2,... (entries "
                      'separated by ";", values by ",")'])
    self.assertFalse(os.path.exists(workdir))


class ResumeTest(absltest.TestCase):

  def test_restart_recomputes_only_the_unfinished_configuration(self):
    sweep_dir = os.path.join(self.create_tempdir().full_path, 'sweep')
    grid = sweep.parse_grid('loss:minimax,hinge;g_lr:1e-4,1e-3')
    with flagsaver.flagsaver(workdir=sweep_dir, **{**TINY, 'log_every': 5}):
      from gan_jax import config as config_lib  # pylint: disable=g-import-not-at-top
      base = config_lib.from_flags()
      out = io.StringIO()
      first = sweep.run_sweep(grid, base, num_seeds=2, out=out)
      # Progress inside each program: a line per logged chunk, the last at
      # num_steps, for the 4 runs (2 points x 2 seeds) of each program.
      progress = [line for line in out.getvalue().splitlines()
                  if line.startswith('step ')]
      self.assertLen(progress, 2 * (base.num_steps // base.log_every))
      self.assertTrue(progress[-1].startswith(
          f'step {base.num_steps}/{base.num_steps}: 4 runs at '), progress)
      names = ['loss=minimax,g_lr=1e-4', 'loss=minimax,g_lr=1e-3',
               'loss=hinge,g_lr=1e-4', 'loss=hinge,g_lr=1e-3']
      self.assertEqual(first.computed, names)
      # The learning rates are floats: one program per loss.
      self.assertEqual(first.programs, [names[:2], names[2:]])
      self.assertEqual(first.compilations, 2)
      self.assertEqual(results.finished(sweep_dir), names)
      self.assertTrue(os.path.isfile(os.path.join(
          sweep_dir, 'figures', 'samples_loss=hinge,g_lr=1e-3.png')))
      rows = results.load_rows(sweep_dir)
      self.assertEqual([(r['config'], r['seed']) for r in rows],
                       [(n, s) for n in names for s in (0, 1)])

      lost = os.path.join(sweep_dir, names[3])
      before = np.load(os.path.join(lost, 'samples.npy'))
      done_times = {n: os.path.getmtime(os.path.join(sweep_dir, n,
                                                     results.DONE))
                    for n in names[:3]}
      shutil.rmtree(lost)  # as if the sweep had been killed before it
      second = sweep.run_sweep(grid, base, num_seeds=2, out=io.StringIO(),
                               figures=False)
      self.assertEqual((second.computed, second.skipped),
                       ([names[3]], names[:3]))
      self.assertEqual(second.programs, [[names[3]]])
      for n, t in done_times.items():
        self.assertEqual(os.path.getmtime(os.path.join(sweep_dir, n,
                                                       results.DONE)), t)
      # Alone in its program now, batched with g_lr=1e-4 before: same runs.
      np.testing.assert_allclose(
          np.load(os.path.join(lost, 'samples.npy')), before, atol=1e-5)
      chex.assert_shape(before, (2, 100, 2))

      with self.assertRaisesRegex(ConfigError, r'holds a different sweep '
                                  r'\(its grid, configurations differ\)'):
        sweep.run_sweep(sweep.parse_grid('loss:minimax'), base, num_seeds=2,
                        out=io.StringIO())

      # A manifest written before a field existed lacks it: that field had
      # its default value, so the sweep still resumes.
      manifest_path = os.path.join(sweep_dir, 'sweep.json')
      with open(manifest_path) as f:
        manifest = json.load(f)
      self.assertEqual(manifest['base'].pop('compute_dtype'), 'float32')
      with open(manifest_path, 'w') as f:
        json.dump(manifest, f)
      third = sweep.run_sweep(grid, base, num_seeds=2, out=io.StringIO(),
                              figures=False)
      self.assertEqual((third.computed, third.skipped), ([], names))
      with self.assertRaisesRegex(ConfigError, r'\(its base differ\)'):
        sweep.run_sweep(grid, base.replace(compute_dtype='bfloat16'),
                        num_seeds=2, out=io.StringIO())


if __name__ == '__main__':
  absltest.main()
