"""Damaged and half-written checkpoints, in real processes on real files.

A finished run's workdir is copied, a checkpoint in the copy is damaged in one
of several ways, and the same command is run again: the damage is detected,
one warning line names it, the checkpoint is moved to corrupt_checkpoints/,
training resumes from the previous good one, and the run ends bit-identical
to the undamaged one (same samples, same checkpoint fingerprints).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import jax
import numpy as np

from gan_jax import checkpoint
from gan_jax import train
from gan_jax.config import Config

import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--num_steps=80', '--log_every=10', '--checkpoint_every=20',
        '--keep_checkpoints=4', '--batch_size=32', '--z_dim=2',
        '--g_hidden=16', '--d_hidden=16', '--num_eval_samples=100', '--seed=2']


def _main(workdir):
  return subprocess.run(
      [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}', *TINY],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=subprocess_env.env())


def _files(path):
  return [os.path.join(root, name) for root, _, names in os.walk(path)
          for name in names]


def _flip_bytes(step_dir):
  for path in _files(os.path.join(step_dir, 'state')):
    if os.sep + 'd' + os.sep in path:  # the array data files
      data = bytearray(open(path, 'rb').read())
      for i in range(0, len(data), 7):
        data[i] ^= 0x5A
      open(path, 'wb').write(bytes(data))


def _truncate(step_dir):
  for path in _files(os.path.join(step_dir, 'state')):
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
      f.truncate(size // 2)


def _delete_meta(step_dir):
  os.remove(os.path.join(step_dir, 'meta', 'metadata'))


def _delete_state_manifest(step_dir):
  for path in _files(os.path.join(step_dir, 'state')):
    if path.endswith('manifest.ocdbt'):
      os.remove(path)


def _wrong_fingerprint(step_dir):
  # Silent corruption: every file reads back, but the arrays are not the ones
  # that were saved. Simulated by recording a different fingerprint.
  path = os.path.join(step_dir, 'meta', 'metadata')
  meta = json.load(open(path))
  meta['fingerprint'] = '0' * 64
  json.dump(meta, open(path, 'w'))


def _fingerprints(workdir):
  out = {}
  for step in os.listdir(os.path.join(workdir, 'checkpoints')):
    path = os.path.join(workdir, 'checkpoints', step, 'meta', 'metadata')
    out[step] = json.load(open(path))['fingerprint']
  return out


class DamagedCheckpointTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.reference = os.path.join(tempfile.mkdtemp(), 'run')
    proc = _main(cls.reference)
    assert proc.returncode == 0, proc.stderr
    cls.samples = np.load(os.path.join(cls.reference, 'samples.npy'))
    cls.fingerprints = _fingerprints(cls.reference)
    assert sorted(cls.fingerprints, key=int) == ['20', '40', '60', '80']

  def _copy(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    shutil.copytree(self.reference, workdir)
    return workdir

  def _check(self, damage, good, reasons, workdir=None):
    """Damages a copy as `damage` says, runs the command again, and checks
    the warnings (newest first), the fallback to `good` and the result."""
    workdir = workdir or self._copy()
    ckpts = os.path.join(workdir, 'checkpoints')
    for step, fn in damage.items():
      fn(os.path.join(ckpts, step))
    proc = _main(workdir)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    warnings = proc.stderr.strip().splitlines()
    self.assertLen(warnings, len(reasons), proc.stderr)
    for line, (step, reason) in zip(warnings, reasons):
      moved = os.path.join(workdir, 'corrupt_checkpoints', step)
      self.assertTrue(line.startswith(
          f'warning: checkpoint {step} in {ckpts} is damaged ('), line)
      self.assertIn(reason, line)
      self.assertTrue(line.endswith(
          f'); it is moved to {moved}, resuming from step {good}'), line)
      self.assertTrue(os.path.isdir(moved))
    self.assertIn(f'resuming from the checkpoint at step {good} in {ckpts}',
                  proc.stdout)
    self.assertTrue(np.array_equal(
        self.samples, np.load(os.path.join(workdir, 'samples.npy'))))
    # The checkpoints written again are bit-identical to the lost ones, and
    # no temporary directory is left.
    self.assertEqual(_fingerprints(workdir), self.fingerprints)
    self.assertEqual(sorted(os.listdir(ckpts), key=int),
                     ['20', '40', '60', '80'])

  def test_half_written_and_damaged_data_fall_back_with_warnings(self):
    workdir = self._copy()
    ckpts = os.path.join(workdir, 'checkpoints')
    # What a kill during orbax's write leaves: a temporary directory never
    # renamed to its step. It is not a checkpoint: ignored, removed, no
    # warning.
    partial = os.path.join(ckpts, '80.orbax-checkpoint-tmp-1790000000')
    os.rename(os.path.join(ckpts, '80'), partial)
    _truncate(partial)
    self._check({'60': _flip_bytes, '40': _truncate}, '20',
                [('60', 'DATA_LOSS'), ('40', 'Error')], workdir)

  def test_missing_files_and_silent_change_fall_back_with_warnings(self):
    self._check({'80': _wrong_fingerprint, '60': _delete_meta,
                 '40': _delete_state_manifest}, '20',
                [('80', 'its contents do not match the fingerprint recorded '
                  'when it was written'), ('60', 'Error'),
                 ('40', 'NOT_FOUND')])

  def test_every_checkpoint_damaged_starts_over(self):
    workdir = self._copy()
    for step in ('20', '40', '60', '80'):
      _delete_meta(os.path.join(workdir, 'checkpoints', step))
    proc = _main(workdir)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    warnings = proc.stderr.strip().splitlines()
    self.assertEqual([w.split()[2] for w in warnings], ['80', '60', '40', '20'])
    self.assertTrue(all(w.endswith(', starting from scratch')
                        for w in warnings), warnings)
    self.assertNotIn('resuming', proc.stdout)
    self.assertTrue(np.array_equal(
        self.samples, np.load(os.path.join(workdir, 'samples.npy'))))
    self.assertEqual(_fingerprints(workdir), self.fingerprints)


class FingerprintTest(absltest.TestCase):

  def test_save_and_restore_in_process(self):
    config = Config(workdir=self.create_tempdir().full_path, batch_size=8,
                    z_dim=2, g_hidden=(4,), d_hidden=(4,), num_steps=1,
                    log_every=1, keep_checkpoints=2)
    _, _, state = train.build(config)
    writer = checkpoint.Checkpointer(config.workdir, keep=2)
    writer.save(state, config)
    writer.close()
    restored = checkpoint.latest(config, checkpoint.to_host(state))
    self.assertEqual((restored.step, restored.skipped), (0, []))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored.state)):
      self.assertTrue(np.array_equal(np.asarray(a), b))
    self.assertEqual(checkpoint.fingerprint(restored.state),
                     checkpoint.fingerprint(checkpoint.to_host(state)))
    # One changed bit changes the fingerprint.
    leaves, tree = jax.tree.flatten(checkpoint.to_host(state))
    leaves[2] = leaves[2].copy()
    leaves[2].view(np.uint32).flat[0] ^= 1
    self.assertNotEqual(checkpoint.fingerprint(jax.tree.unflatten(tree, leaves)),
                        checkpoint.fingerprint(restored.state))


if __name__ == '__main__':
  absltest.main()
