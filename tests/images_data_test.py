"""Image data: digits offline, every TFDS set under tfds.testing.mock_data;
what every built-in data set's registration declares."""

import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits
import tensorflow_datasets as tfds

from gan_jax import data as data_lib
from gan_jax.config import Config
from gan_jax.data import images
from gan_jax.data import tfds_sets
from gan_jax.metrics import reference

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

  @parameterized.parameters(*sorted(tfds_sets.SETS))
  def test_in_memory(self, name):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
      data = tfds_sets.in_memory(name)
      source = tfds.data_source(name, split='train', download=False)
      raw = [np.asarray(source[i]['image']) for i in range(NUM_EXAMPLES)]
    shape = tfds_sets.SETS[name].shape
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

  @parameterized.parameters(*sorted(tfds_sets.SETS))
  def test_streaming(self, name):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
      stream = tfds_sets.streaming(name)
      memory = np.asarray(tfds_sets.in_memory(name).images)
      prefetch = stream.chunks(seed=3, batch_size=2, chunk_steps=2,
                               num_steps=5)
      chunks = [np.asarray(c) for c in prefetch]
      resumed = stream.chunks(seed=3, batch_size=2, chunk_steps=2,
                              start_step=2, num_steps=5)
      resumed_first = np.asarray(next(resumed))
      resumed.close()
    shape = tfds_sets.SETS[name].shape
    self.assertEqual([c.shape for c in chunks],
                     [(2, 2) + shape, (2, 2) + shape, (1, 2) + shape])
    # step t's batch is the records at indices(seed, t), in [-1, 1]
    for t in range(5):
      want = memory[stream.indices(3, t, 2)].astype(np.float32) / 127.5 - 1
      np.testing.assert_array_equal(chunks[t // 2][t % 2], want)
    np.testing.assert_array_equal(resumed_first, chunks[1])

  def test_streaming_batches_per_step_and_host_sample(self):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
      stream = tfds_sets.streaming('mnist')
      memory = np.asarray(tfds_sets.in_memory('mnist').images)
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
      self.assertIsInstance(tfds_sets.load('mnist'), images.InMemoryImages)
      self.assertIsInstance(tfds_sets.load('mnist', max_device_bytes=100),
                            images.StreamingImages)

  def test_missing_data_set_says_how_to_prepare(self):
    with tempfile.TemporaryDirectory() as tmp:
      data_dir = os.path.join(tmp, 'tfds')
      with self.assertRaises(FileNotFoundError) as ctx:
        tfds_sets.source('mnist', data_dir=data_dir)
    message = str(ctx.exception)
    self.assertNotIn('\n', message)
    self.assertIn(
        "tfds.builder('mnist', data_dir='%s', file_format='array_record')"
        '.download_and_prepare()' % data_dir, message)

  def test_unknown_name(self):
    with self.assertRaisesRegex(
        KeyError, "unknown TFDS image set 'svhn'; valid sets: "
        'celeb_a, cifar10, fashion_mnist, mnist'):
      tfds_sets.source('svhn')


class RegistrationTest(parameterized.TestCase):

  def test_declarations(self):
    """(extractor, classes, reference splits, has modes, streamable)."""
    tfds_set = lambda extractor, classes: (extractor, classes,
                                           ('train', 'test'), False, True)
    toy = lambda modes: ('identity', modes, ('train',), True, False)
    self.assertEqual(
        {name: (spec.feature_extractor, spec.num_classes,
                spec.reference_splits, spec.has_modes, spec.streamable)
         for name, spec in ((n, data_lib.get(n)) for n in data_lib.names())},
        {'celeb_a': tfds_set('inception_v3', 0),
         'cifar10': tfds_set('inception_v3', 10),
         'digits': ('digits_classifier', 10, ('train', 'test', 'all'), False,
                    False),
         'fashion_mnist': tfds_set('inception_v3', 10),
         'grid25': toy(25), 'mix1d': toy(2),
         'mnist': tfds_set('mnist_classifier', 10), 'ring8': toy(8)})
    self.assertEqual(data_lib.TFDS_NAMES,
                     ('celeb_a', 'cifar10', 'fashion_mnist', 'mnist'))

  @parameterized.parameters('ring8', 'grid25', 'mix1d', 'digits')
  def test_declared_shape_is_the_built_shape(self, name):
    built = data_lib.build(Config(dataset=name))
    self.assertEqual(built.shape, data_lib.SHAPES[name])
    self.assertEqual(data_lib.is_image(name), name == 'digits')
    self.assertEqual(getattr(built, 'num_modes', 0),
                     data_lib.get(name).num_classes * (name != 'digits'))

  @parameterized.parameters(*sorted(tfds_sets.SETS))
  def test_tfds_shape_and_reference(self, name):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
      built = data_lib.build(Config(dataset=name))
      streamed = data_lib.build(Config(dataset=name, stream_data=True))
      x, y = reference.load_with_labels(name, 'test')
      stored = np.asarray(tfds_sets.in_memory(name, 'test').images)
    self.assertIsInstance(built, images.InMemoryImages)
    self.assertIsInstance(streamed, images.StreamingImages)
    self.assertEqual(built.shape, data_lib.SHAPES[name])
    np.testing.assert_array_equal(x, stored.astype(np.float32) / 127.5 - 1)
    if name == 'celeb_a':
      self.assertIsNone(y)
    else:
      self.assertEqual((y.dtype, y.shape), (np.int32, (NUM_EXAMPLES,)))
      self.assertTrue(np.all((y >= 0) & (y < 10)))

  def test_unknown_names(self):
    with self.assertRaisesRegex(
        KeyError, "unknown dataset 'moons'; valid datasets: celeb_a, cifar10, "
        'digits, fashion_mnist, grid25, mix1d, mnist, ring8'):
      data_lib.get('moons')
    with self.assertRaisesRegex(reference.ReferenceError,
                                "unknown digits split 'val'; valid: train, "
                                'test, all'):
      reference.load('digits', 'val')
    with self.assertRaisesRegex(ValueError,
                                'reference splits train, test need '
                                'load_reference'):
      data_lib.DatasetSpec('x', (2,), build=None,
                           reference_splits=('train', 'test'))


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
