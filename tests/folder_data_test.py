"""--dataset=folder:PATH: images from a directory, subfolders as classes."""

import os

from absl.testing import absltest
import jax
import numpy as np
from PIL import Image

import testing
from gan_jax import data as data_lib
from gan_jax.config import ConfigError, validate
from gan_jax.data import folder


def write_png(path, pixels):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels).save(path)


def config_for(path, **kw):
  return testing.tiny_image_config(dataset=f'folder:{path}', image_size=16,
                                   workdir='/tmp/folder_unused', **kw)


class FolderDataTest(absltest.TestCase):

  def _classes(self, counts=(3, 5), mode='RGB'):
    root = self.create_tempdir().full_path
    rng = np.random.default_rng(0)
    shape = (20, 24, 3) if mode == 'RGB' else (20, 24)
    for k, n in enumerate(counts):
      for i in range(n):
        write_png(os.path.join(root, f'class_{k}', f'{i:02d}.png'),
                  rng.integers(0, 256, shape, dtype=np.uint8))
    return root

  def test_class_folders_give_labels_shape_and_pixels(self):
    root = self._classes((3, 5))
    config = validate(config_for(root))
    spec = data_lib.spec(config)
    self.assertEqual(spec.shape, (16, 16, 3))
    self.assertEqual(spec.num_classes, 2)
    data = data_lib.build(config)
    self.assertEqual(np.asarray(data.images).shape, (8, 16, 16, 3))
    np.testing.assert_array_equal(data.labels, [0, 0, 0, 1, 1, 1, 1, 1])
    # Pixels: the central 20x20 crop of the 20x24 file, resized by PIL.
    raw = np.asarray(Image.open(os.path.join(root, 'class_1', '00.png')))
    want = np.asarray(Image.fromarray(raw[:, 2:22]).resize(
        (16, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(np.asarray(data.images)[3], want)
    batch = data.sample(jax.random.PRNGKey(0), 4)
    self.assertEqual(batch.shape, (4, 16, 16, 3))
    self.assertLessEqual(float(np.abs(batch).max()), 1.0)

  def test_flat_greyscale_folder_has_no_labels(self):
    root = self.create_tempdir().full_path
    for i in range(4):
      write_png(os.path.join(root, f'{i}.png'),
                np.full((8, 8), 60 * i, np.uint8))
    with open(os.path.join(root, 'notes.txt'), 'w') as f:
      f.write('ignored')
    config = validate(config_for(root))
    self.assertEqual(data_lib.spec(config).shape, (16, 16, 1))
    self.assertEqual(data_lib.spec(config).num_classes, 0)
    data = data_lib.build(config)
    self.assertIsNone(data.labels)
    np.testing.assert_array_equal(np.asarray(data.images)[:, 5, 5, 0],
                                  [0, 60, 120, 180])

  def test_streamed_reads_the_same_images(self):
    root = self._classes((2, 2))
    config = validate(config_for(root, stream_data=True))
    stream = data_lib.build(config)
    self.assertIsInstance(stream, data_lib.images.StreamingImages)
    memory = data_lib.build(config.replace(stream_data=False))
    chunk = stream.chunk(seed=0, first_step=0, num_steps=1, batch_size=4)[0]
    idx = stream.indices(0, 0, 4)
    np.testing.assert_allclose(chunk, np.asarray(memory.as_float(
        memory.images))[idx], atol=1e-6)

  def test_train_fraction_is_stratified_over_class_folders(self):
    root = self._classes((4, 8))
    data = data_lib.build(validate(config_for(root, train_fraction=0.5)))
    np.testing.assert_array_equal(np.bincount(data.labels), [2, 4])

  def test_trains_a_step(self):
    root = self._classes((4, 4))
    _, steps, state = testing.build(validate(config_for(root)))
    _, metrics = jax.jit(steps.train_step)(state)
    self.assertTrue(np.isfinite(float(metrics['d_loss'])))

  def test_bad_folders_are_one_line_errors(self):
    missing = os.path.join(self.create_tempdir().full_path, 'nope')
    with self.assertRaisesRegex(ConfigError, 'is not a directory'):
      validate(config_for(missing))
    empty = self.create_tempdir().full_path
    with self.assertRaisesRegex(ConfigError, 'holds no'):
      validate(config_for(empty))
    root = self._classes((2, 1))
    os.makedirs(os.path.join(root, 'class_9'))
    with self.assertRaisesRegex(ConfigError, 'class folder class_9 holds no'):
      validate(config_for(root))
    # A corrupt file: refused when the set is read (before training).
    bad = self._classes((2,))
    with open(os.path.join(bad, 'class_0', '01.png'), 'wb') as f:
      f.write(b'\x89PNG\r\n\x1a\n not really')
    config = validate(config_for(bad))
    with self.assertRaisesRegex(ValueError, '01.png is not a readable image'):
      data_lib.build(config)
    # Greyscale among colour images.
    mixed = self._classes((2,))
    write_png(os.path.join(mixed, 'class_0', '05.png'),
              np.zeros((8, 8), np.uint8))
    with self.assertRaisesRegex(ValueError, '05.png has 1 channel'):
      data_lib.build(validate(config_for(mixed)))
    with self.assertRaisesRegex(ConfigError, r'--image_size=0 must be'):
      validate(config_for(root).replace(image_size=0))

  def test_unknown_dataset_lists_the_folder_form(self):
    with self.assertRaisesRegex(ConfigError, r"valid: .*folder:PATH"):
      validate(config_for('x').replace(dataset='nope'))
    self.assertTrue(folder.PREFIX == data_lib.FOLDER_PREFIX)


if __name__ == '__main__':
  absltest.main()
