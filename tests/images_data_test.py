"""Image data: digits offline, every TFDS set under tfds.testing.mock_data."""

import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits
import tensorflow_datasets as tfds

from gan_jax.data import images

NUM_EXAMPLES = 6


def _rows_in(sample: np.ndarray, pool: np.ndarray, atol: float = 0.0) -> bool:
  """Whether every sample row equals some row of pool (to atol)."""
  flat_pool = pool.reshape(len(pool), -1)
  return all(np.any(np.all(np.abs(flat_pool - s) <= atol, axis=1))
             for s in sample.reshape(len(sample), -1))


class DigitsTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.raw = load_digits().images.astype(np.float64)  # (1797, 8, 8), 0..16
    cls.data = images.digits(16)

  def test_shape_and_range(self):
    self.assertEqual(self.data.name, 'digits')
    self.assertEqual(self.data.shape, (16, 16, 1))
    self.assertEqual(len(self.data), 1797)
    x = np.asarray(self.data.images)
    self.assertEqual(x.dtype, np.float32)
    self.assertEqual(float(x.min()), -1.0)
    self.assertLessEqual(float(x.max()), 1.0)

  def test_size_8_is_the_raw_digits_scaled(self):
    """v in 0..16 -> v / 8 - 1, exactly."""
    np.testing.assert_array_equal(np.asarray(images.digits(8).images)[..., 0],
                                  (self.raw / 8 - 1).astype(np.float32))

  def test_resize_matches_bilinear(self):
    want = jax.image.resize(jnp.asarray(self.raw[:20, ..., None] / 8 - 1),
                            (20, 16, 16, 1), 'linear')
    np.testing.assert_allclose(np.asarray(self.data.images[:20]),
                               np.clip(np.asarray(want), -1, 1), atol=1e-5)

  def test_pad_centres_the_digit(self):
    padded = np.asarray(images.digits(16, mode='pad').images)[..., 0]
    np.testing.assert_array_equal(padded[:, 4:12, 4:12],
                                  (self.raw / 8 - 1).astype(np.float32))
    border = padded.copy()
    border[:, 4:12, 4:12] = -1
    np.testing.assert_array_equal(border, -np.ones_like(border))

  def test_unknown_mode(self):
    with self.assertRaisesRegex(ValueError,
                                "unknown digits mode 'crop'; valid modes: pad, resize"):
      images.digits(16, mode='crop')

  def test_sample_inside_scan(self):
    """Sampling is pure: the same key gives the same batch inside a jitted
    scan as outside, and every sampled image is one of the set's."""
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    scanned = jax.jit(lambda ks: jax.lax.scan(
        lambda c, k: (c, self.data.sample(k, 5)), 0, ks)[1])(keys)
    self.assertEqual(scanned.shape, (3, 5, 16, 16, 1))
    np.testing.assert_array_equal(np.asarray(scanned[1]),
                                  np.asarray(self.data.sample(keys[1], 5)))
    self.assertTrue(_rows_in(np.asarray(scanned).reshape(15, -1),
                             np.asarray(self.data.images)))
    self.assertFalse(np.array_equal(np.asarray(scanned[0]),
                                    np.asarray(scanned[1])))
    passed = jax.jit(lambda im, k: self.data.sample_from(im, k, 5))(
        self.data.images, keys[1])
    np.testing.assert_array_equal(np.asarray(passed), np.asarray(scanned[1]))


class InMemoryUint8Test(absltest.TestCase):

  def test_uint8_pixels_map_to_unit_range(self):
    pixels = np.array([0, 1, 127, 128, 255], np.uint8).reshape(5, 1, 1, 1)
    data = images.InMemoryImages('toy', jnp.asarray(pixels))
    got = np.sort(np.asarray(data.sample(jax.random.PRNGKey(1), 200)).ravel())
    want = pixels.ravel().astype(np.float64) / 127.5 - 1
    self.assertTrue(_rows_in(got[:, None], want[:, None], atol=1e-6))
    np.testing.assert_allclose(got[[0, -1]], [-1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(data.as_float(jnp.asarray(pixels))).ravel(),
                               want, atol=1e-7)


class TfdsTest(parameterized.TestCase):

  @parameterized.parameters(*sorted(images.TFDS_SETS))
  def test_in_memory(self, name):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
      data = images.tfds_in_memory(name)
      source = tfds.data_source(name, split='train', download=False)
      raw = [np.asarray(source[i]['image']) for i in range(NUM_EXAMPLES)]
    shape = images.TFDS_SETS[name][0]
    self.assertEqual(data.name, name)
    self.assertEqual(data.shape, shape)
    self.assertEqual(len(data), NUM_EXAMPLES)
    self.assertEqual(data.images.dtype, jnp.uint8)
    stored = np.asarray(data.images)
    if name == 'celeb_a':
      # centre 140x140 crop of 218x178, bilinear (antialiased) to 64x64
      for got, image in zip(stored, raw):
        crop = image[39:179, 19:159].astype(np.float64)
        want = jax.image.resize(crop, (64, 64, 3), 'linear', antialias=True)
        np.testing.assert_allclose(got, np.asarray(want), atol=1.0)
    else:
      np.testing.assert_array_equal(stored, np.stack(raw))
    batch = np.asarray(data.sample(jax.random.PRNGKey(0), 4))
    self.assertEqual(batch.shape, (4,) + shape)
    self.assertTrue(
        _rows_in(batch, stored.astype(np.float64) / 127.5 - 1, atol=1e-6))

  @parameterized.parameters(*sorted(images.TFDS_SETS))
  def test_streaming(self, name):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
      stream = images.tfds_streaming(name)
      memory = np.asarray(images.tfds_in_memory(name).images)
      prefetch = stream.chunks(seed=3, batch_size=2, chunk_steps=2,
                               num_steps=5)
      chunks = [np.asarray(c) for c in prefetch]
      resumed = stream.chunks(seed=3, batch_size=2, chunk_steps=2,
                              start_step=2, num_steps=5)
      resumed_first = np.asarray(next(resumed))
      resumed.close()
    shape = images.TFDS_SETS[name][0]
    self.assertEqual([c.shape for c in chunks],
                     [(2, 2) + shape, (2, 2) + shape, (1, 2) + shape])
    # step t's batch is the records at indices(seed, t), in [-1, 1]
    for t in range(5):
      want = memory[stream.indices(3, t, 2)].astype(np.float32) / 127.5 - 1
      np.testing.assert_array_equal(chunks[t // 2][t % 2], want)
    np.testing.assert_array_equal(resumed_first, chunks[1])

  def test_streaming_batches_per_step_and_host_sample(self):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
      stream = images.tfds_streaming('mnist')
      memory = np.asarray(images.tfds_in_memory('mnist').images)
      chunk = stream.chunk(seed=1, first_step=4, num_steps=2, batch_size=3,
                           batches_per_step=2)
      sample = stream.sample(jax.random.PRNGKey(0), 5)
    self.assertEqual(chunk.shape, (2, 2, 3, 28, 28, 1))
    # step t's k batches are its k * B records, split in order
    want = memory[stream.indices(1, 5, 6)].astype(np.float32) / 127.5 - 1
    np.testing.assert_array_equal(chunk[1].reshape(6, 28, 28, 1), want)
    self.assertEqual(sample.shape, (5, 28, 28, 1))
    self.assertTrue(_rows_in(sample, memory.astype(np.float64) / 127.5 - 1,
                             atol=1e-6))

  def test_auto_choice(self):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
      self.assertIsInstance(images.tfds_images('mnist'), images.InMemoryImages)
      self.assertIsInstance(images.tfds_images('mnist', max_device_bytes=100),
                            images.StreamingImages)

  def test_missing_data_set_says_how_to_prepare(self):
    with tempfile.TemporaryDirectory() as tmp:
      data_dir = os.path.join(tmp, 'tfds')
      with self.assertRaises(FileNotFoundError) as ctx:
        images.tfds_source('mnist', data_dir=data_dir)
    message = str(ctx.exception)
    self.assertNotIn('\n', message)
    self.assertIn(
        "tfds.builder('mnist', data_dir='%s', file_format='array_record')"
        '.download_and_prepare()' % data_dir, message)

  def test_unknown_name(self):
    with self.assertRaisesRegex(
        KeyError, "unknown TFDS image set 'svhn'; valid sets: "
        'celeb_a, cifar10, fashion_mnist, mnist'):
      images.tfds_source('svhn')


class PrefetcherTest(absltest.TestCase):

  def test_order_and_errors(self):
    self.assertEqual(list(images.Prefetcher(iter(range(7)), size=2)),
                     list(range(7)))

    def failing():
      yield 1
      raise ValueError('bad record')

    prefetch = images.Prefetcher(failing(), size=1)
    self.assertEqual(next(prefetch), 1)
    with self.assertRaisesRegex(ValueError, 'bad record'):
      next(prefetch)


if __name__ == '__main__':
  absltest.main()
