"""The artifact writer of one run and of several seeds: the same files, the
seeds' with a seed axis; temporaries removed are gan_jax's only."""

import json
import os

from absl.testing import absltest
import numpy as np

from gan_jax import artifacts
from gan_jax import fileio
from gan_jax.config import Config
from gan_jax.data import toy

RECORD = {'d_loss': 1.5, 'g_loss': 0.5, 'value': -1.5, 'steps_per_sec': 9.0,
          'elapsed_sec': 1.0}


def _lines(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


class RunFilesTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.workdir = self.create_tempdir().full_path
    self.config = Config(workdir=self.workdir, seed=3)
    self.data = toy.ring8()

  def test_one_run(self):
    stale = fileio.temporary_name(os.path.join(self.workdir, 'samples.png'))
    mine = os.path.join(self.workdir, 'notes.tmp-1')  # not gan_jax's
    for path in (stale, mine):
      with open(path, 'w') as f:
        f.write('x')
    files = artifacts.RunFiles(self.config, self.data, tensorboard=False)
    self.assertFalse(os.path.exists(stale))
    self.assertTrue(os.path.exists(mine))
    files.log([{'step': 10, **RECORD}])
    samples = np.zeros((50, 2), np.float32)
    final = {'step': 10, 'final': True, 'modes': 1, 'num_modes': 8,
             'hq_fraction': 1.0}
    files.final([final], samples)
    files.close()
    with open(os.path.join(self.workdir, 'config.json')) as f:
      self.assertEqual(f.read(), self.config.to_json() + '\n')
    self.assertEqual(_lines(self.workdir), [{'step': 10, **RECORD}, final])
    np.testing.assert_array_equal(
        np.load(os.path.join(self.workdir, 'samples.npy')), samples)
    with open(os.path.join(self.workdir, 'samples.png'), 'rb') as png:
      self.assertEqual(png.read(8), b'\x89PNG\r\n\x1a\n')
    self.assertEqual(artifacts.title(self.config, final),
                     'ring8 / non_saturating / 10 steps\nmodes 1/8  HQ 100.0%')

  def test_several_seeds_carry_their_seed(self):
    files = artifacts.RunFiles(self.config, self.data, seeds=[3, 4])
    for step in (10, 20):
      files.log([{'step': step, **RECORD}, {'step': step, **RECORD}])
    finals = [{'step': 20, 'final': True, 'seed': s} for s in (3, 4)]
    files.final(finals, np.zeros((2, 50, 2), np.float32))
    files.close()
    lines = _lines(self.workdir)
    self.assertEqual([(l.get('seed'), l['step']) for l in lines],
                     [(3, 10), (4, 10), (3, 20), (4, 20), (3, 20), (4, 20)])
    self.assertEqual(lines[-2:], finals)
    with open(os.path.join(self.workdir, 'config.json')) as f:
      self.assertEqual(f.read(),
                       self.config.to_json(num_seeds=2, seeds=[3, 4]) + '\n')
    self.assertEqual(
        np.load(os.path.join(self.workdir, 'samples.npy')).shape, (2, 50, 2))
    self.assertTrue(os.path.isfile(os.path.join(self.workdir, 'samples.png')))
    self.assertEqual(artifacts.panel_title({'seed': 4, 'modes': 7,
                                            'num_modes': 8,
                                            'hq_fraction': 0.5}),
                     'seed 4: 7/8 modes, HQ 50%')

  def test_a_process_that_does_not_write_writes_nothing(self):
    workdir = os.path.join(self.workdir, 'run')
    files = artifacts.RunFiles(self.config.replace(workdir=workdir),
                               self.data, tensorboard=True, write=False)
    files.log([{'step': 10, **RECORD}])
    files.picture(10, np.zeros((50, 2), np.float32))
    files.final([{'step': 10, 'final': True}], np.zeros((50, 2), np.float32))
    files.close()
    self.assertFalse(os.path.exists(workdir))


if __name__ == '__main__':
  absltest.main()
