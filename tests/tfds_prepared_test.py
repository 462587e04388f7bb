"""A real prepared TFDS directory, read through `--data_dir`.

tests/data/tfds/ is MNIST in TFDS's on-disk format (mnist/3.0.1/ with
dataset_info.json, features.json and one ArrayRecord shard per split), written
by TFDS's own MNIST builder from 64 train and 16 test images of
scikit-learn's digits resized to 28x28 (tools/make_tfds_fixture.py
regenerates it). The tests read it as a user's prepared directory: the
records against the images the writer was given, a tiny training run that
resumes bit-identically, and two damaged copies (made in a temporary
directory): a truncated shard is unreadable data, one line and exit status
74; a directory without dataset_info.json is not prepared, one line and
exit status 2. Neither leaves a traceback.
"""

import importlib.util
import os
import shutil
import subprocess
import sys

from absl.testing import absltest
import numpy as np

from gan_jax.data import tfds_sets

import subprocess_env
import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(ROOT, 'tests', 'data', 'tfds')
VERSION_DIR = os.path.join(DATA_DIR, 'mnist', '3.0.1')
TRAIN_SHARD = 'mnist-train.array_record-00000-of-00001'
TINY = testing.argv(testing.tiny_image_config(
    dataset='mnist', batch_size=8, log_every=3, checkpoint_every=3,
    num_eval_samples=16))


def _fixture_writer():
  spec = importlib.util.spec_from_file_location(
      'make_tfds_fixture', os.path.join(ROOT, 'tools', 'make_tfds_fixture.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _main(workdir, data_dir, num_steps, *extra):
  return subprocess.run(
      [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}',
       f'--data_dir={data_dir}', *TINY, f'--num_steps={num_steps}', *extra],
      capture_output=True, text=True, cwd=ROOT, env=subprocess_env.env(),
      timeout=600)


class PreparedDirectoryTest(absltest.TestCase):

  def test_records_are_the_images_that_were_written(self):
    writer = _fixture_writer()
    pixels, labels = writer.digit_images()
    train = tfds_sets.source('mnist', 'train', DATA_DIR)
    test = tfds_sets.source('mnist', 'test', DATA_DIR)
    self.assertEqual((len(train), len(test)),
                     (writer.NUM_TRAIN, writer.NUM_TEST))
    # TFDS's writer orders a split's records by a hash of the example keys,
    # so each split is compared as a collection of (label, image) pairs.
    def pairs(images, image_labels):
      return sorted((int(l), im.tobytes()) for im, l in
                    zip(images, image_labels))
    for records, part in ((train, slice(0, writer.NUM_TRAIN)),
                          (test, slice(writer.NUM_TRAIN, None))):
      read = [records[i] for i in range(len(records))]
      for r in read:
        self.assertEqual(r['image'].shape, (28, 28, 1))
        self.assertEqual(r['image'].dtype, np.uint8)
      self.assertEqual(pairs([r['image'] for r in read],
                             [r['label'] for r in read]),
                       pairs(pixels[part], labels[part]))
    held = tfds_sets.in_memory('mnist', 'train', DATA_DIR)
    self.assertEqual(held.images.dtype, np.uint8)
    np.testing.assert_array_equal(
        np.asarray(held.images),
        np.stack([train[i]['image'] for i in range(len(train))]))
    # Digits, not blank or constant images, and ten classes.
    self.assertGreater(float(pixels.std()), 30.0)
    self.assertEqual(sorted(set(labels.tolist())), list(range(10)))

  def test_trains_and_resumes_bit_identically(self):
    whole = self.create_tempdir().full_path
    proc = _main(whole, DATA_DIR, 6)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    split = self.create_tempdir().full_path
    proc = _main(split, DATA_DIR, 3)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    proc = _main(split, DATA_DIR, 6)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    a = np.load(os.path.join(whole, 'samples.npy'))
    b = np.load(os.path.join(split, 'samples.npy'))
    self.assertEqual(a.shape, (16, 28, 28, 1))
    np.testing.assert_array_equal(a, b)

  def _damaged_copy(self):
    data_dir = os.path.join(self.create_tempdir().full_path, 'tfds')
    shutil.copytree(DATA_DIR, data_dir)
    return data_dir, os.path.join(data_dir, 'mnist', '3.0.1')

  def _assert_one_line(self, proc, status, workdir):
    self.assertEqual(proc.returncode, status, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    self.assertLen(lines, 1, proc.stderr)
    self.assertTrue(lines[0].startswith('error: '), lines[0])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertNotIn('internal error', proc.stderr)
    self.assertFalse(os.path.exists(workdir), 'something was written')
    return lines[0]

  def test_truncated_shard_is_unreadable_data(self):
    data_dir, version_dir = self._damaged_copy()
    shard = os.path.join(version_dir, TRAIN_SHARD)
    with open(shard, 'r+b') as f:
      f.truncate(os.path.getsize(shard) // 4)
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    line = self._assert_one_line(_main(workdir, data_dir, 3), 74, workdir)
    self.assertIn(f'error: {version_dir}: ', line)
    self.assertIn("TFDS 'mnist' split 'train' is unreadable", line)
    self.assertTrue(line.endswith('(EIO)'), line)

  def test_missing_dataset_info_is_not_prepared(self):
    data_dir, version_dir = self._damaged_copy()
    os.remove(os.path.join(version_dir, 'dataset_info.json'))
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    line = self._assert_one_line(_main(workdir, data_dir, 3), 2, workdir)
    self.assertIn(f"TFDS data set 'mnist' (split 'train') is not prepared in "
                  f'{data_dir}', line)


if __name__ == '__main__':
  absltest.main()
