"""The command line end to end, in real subprocesses: artifacts and flagfiles.

Bad input (one-line errors, exit status 2, nothing written) is in
tests/bad_input_test.py."""

import glob
import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--num_steps=40', '--log_every=20', '--batch_size=32', '--z_dim=2',
        '--g_hidden=16,16', '--d_hidden=16,16', '--num_eval_samples=200']


def _main(*args, cwd=ROOT):
  return subprocess.run([sys.executable, '-m', 'gan_jax.main', *args],
                        capture_output=True, text=True, cwd=cwd, timeout=300)


class EndToEndTest(absltest.TestCase):

  def test_flagfile_run_writes_every_artifact(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    with tempfile.NamedTemporaryFile('w', suffix='.cfg', delete=False) as f:
      f.write('# a tiny test flagfile\n--dataset=grid25\n--loss=hinge\n'
              '--seed=7\n')
    # Flags after the flagfile override it.
    proc = _main(f'--flagfile={f.name}', f'--workdir={workdir}', *TINY,
                 '--loss=least_squares')
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertIn(os.path.abspath(workdir), proc.stdout)
    self.assertIn('steps/s', proc.stdout)
    self.assertIn('ETA', proc.stdout)

    config = json.load(open(os.path.join(workdir, 'config.json')))
    self.assertEqual((config['dataset'], config['loss'], config['seed']),
                     ('grid25', 'least_squares', 7))
    self.assertEqual(config['g_hidden'], [16, 16])

    lines = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
    self.assertEqual([l['step'] for l in lines[:-1]], [20, 40])
    for line in lines[:-1]:
      for key in ('d_loss', 'g_loss', 'value', 'steps_per_sec'):
        self.assertTrue(np.isfinite(line[key]), key)
      np.testing.assert_allclose(line['value'], -line['d_loss'], rtol=1e-6)
    final = lines[-1]
    self.assertTrue(final['final'])
    self.assertEqual(final['step'], 40)
    self.assertEqual(final['num_modes'], 25)
    self.assertEqual(sum(final['mode_counts']),
                     round(final['hq_fraction'] * 200))

    samples = np.load(os.path.join(workdir, 'samples.npy'))
    self.assertEqual(samples.shape, (200, 2))
    with open(os.path.join(workdir, 'samples.png'), 'rb') as png:
      self.assertEqual(png.read(8), b'\x89PNG\r\n\x1a\n')

  def test_mix1d_reports_jsd(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    proc = _main('--dataset=mix1d', f'--workdir={workdir}', *TINY)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    final = json.loads(open(os.path.join(workdir, 'metrics.jsonl')).readlines()[-1])
    self.assertBetween(final['jsd'], 0.0, np.log(2.0))
    self.assertEqual(np.load(os.path.join(workdir, 'samples.npy')).shape,
                     (200, 1))


class ExperimentsTest(parameterized.TestCase):

  def test_every_flagfile_resolves_to_a_valid_config(self):
    from absl import flags  # pylint: disable=g-import-not-at-top
    from gan_jax import config as config_lib  # pylint: disable=g-import-not-at-top
    paths = sorted(glob.glob(os.path.join(ROOT, 'experiments', '*.cfg')))
    self.assertNotEmpty(paths)
    config_lib.define_flags()
    for path in paths:
      flags.FLAGS.unparse_flags()
      flags.FLAGS(['prog', f'--flagfile={path}'])
      config = config_lib.from_flags()
      header = open(path).read().splitlines()
      self.assertTrue(header[0].startswith('#'), path)
      text = '\n'.join(l for l in header if l.startswith('#'))
      self.assertIn('python -m gan_jax.main --flagfile=experiments/', text, path)
      self.assertIn('Measured', text, path)
      # DATASET_LOSS, DATASET_MODEL_LOSS or DATASET_MODEL_bench, MODEL
      # possibly shortened to its first word (sngan for sngan_resnet).
      stem = os.path.basename(path)[:-len('.cfg')]
      model = config.model.split('_')[0]
      self.assertIn(stem, (f'{config.dataset}_{config.loss}',
                           f'{config.dataset}_{model}_{config.loss}',
                           f'{config.dataset}_{model}_bench'), path)


if __name__ == '__main__':
  absltest.main()
