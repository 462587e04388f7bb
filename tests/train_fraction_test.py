"""--train_fraction: a fixed, seeded, stratified subset of the training set."""

from absl.testing import absltest
import jax
import numpy as np

import testing
from gan_jax import data as data_lib
from gan_jax.config import ConfigError, validate
from gan_jax.data import images


class SubsetIndicesTest(absltest.TestCase):

  def test_stratified_sizes_and_proportions(self):
    labels = np.repeat([0, 1, 2], [100, 40, 7])
    rng = np.random.default_rng(1)
    labels = labels[rng.permutation(len(labels))]
    idx = data_lib.subset_indices(len(labels), 0.25, labels, seed=3)
    self.assertEqual(len(np.unique(idx)), len(idx))
    counts = np.bincount(labels[idx], minlength=3)
    # round(0.25 n_c) of each class by hand: 25, 10, 2 (1.75 rounds up).
    np.testing.assert_array_equal(counts, [25, 10, 2])
    # A class too small for the fraction keeps one sample.
    tiny = data_lib.subset_indices(len(labels), 0.01, labels, seed=3)
    np.testing.assert_array_equal(np.bincount(labels[tiny]), [1, 1, 1])

  def test_unlabelled_size_and_determinism(self):
    a = data_lib.subset_indices(1000, 0.137, seed=5)
    self.assertLen(a, 137)
    self.assertTrue(np.all(np.diff(a) > 0))
    np.testing.assert_array_equal(a, data_lib.subset_indices(1000, 0.137,
                                                             seed=5))
    self.assertFalse(np.array_equal(a, data_lib.subset_indices(
        1000, 0.137, seed=6)))
    np.testing.assert_array_equal(data_lib.subset_indices(10, 1.0),
                                  np.arange(10))


class TrainFractionDataTest(absltest.TestCase):

  def test_digits_subset_is_the_same_for_every_run_seed(self):
    full = images.digits()
    config = testing.tiny_image_config(train_fraction=0.1)
    part = data_lib.build(config)
    other_seed = data_lib.build(config.replace(seed=7))
    per_class = np.bincount(full.labels)
    want = np.maximum(1, np.round(0.1 * per_class)).astype(int)
    np.testing.assert_array_equal(np.bincount(part.labels), want)
    self.assertLen(part, int(want.sum()))
    np.testing.assert_array_equal(np.asarray(part.images),
                                  np.asarray(other_seed.images))
    # The images are digits of the full set, with their own labels.
    idx = data_lib.subset_indices(len(full), 0.1, full.labels, 0)
    np.testing.assert_array_equal(np.asarray(part.images),
                                  np.asarray(full.images)[idx])
    np.testing.assert_array_equal(part.labels, full.labels[idx])
    moved = data_lib.build(config.replace(subset_seed=1))
    self.assertFalse(np.array_equal(np.asarray(moved.images),
                                    np.asarray(part.images)))

  def test_training_draws_only_from_the_subset(self):
    config = testing.tiny_image_config(train_fraction=0.05)
    data, steps, state = testing.build(config)
    kept = {np.asarray(im).tobytes() for im in data.as_float(data.images)}
    drawn = np.asarray(steps.sample_data(jax.random.PRNGKey(0), 500))
    self.assertTrue(all(im.tobytes() in kept for im in drawn))
    state, metrics = jax.jit(steps.train_step)(state)
    self.assertTrue(np.isfinite(float(metrics['d_loss'])))

  def test_streamed_sets_subset_their_records(self):
    records = [{'image': np.full((2, 2, 1), i, np.uint8)} for i in range(50)]
    stream = images.StreamingImages('s', records, (2, 2, 1), lambda x: x)
    idx = data_lib.subset_indices(50, 0.2, seed=0)
    part = stream.subset(idx)
    self.assertLen(part, 10)
    batch = part.chunk(seed=0, first_step=0, num_steps=3, batch_size=16)
    values = np.unique(np.round((batch + 1) * 127.5))
    self.assertTrue(set(values.astype(int)) <= set(idx.tolist()))

  def test_bad_values_and_toy_data_are_refused(self):
    for value in (0.0, 1.5, -0.1):
      with self.assertRaisesRegex(ConfigError, r'must lie in \(0, 1\]'):
        validate(testing.tiny_image_config(train_fraction=value,
                                           workdir='/tmp/tf_unused'))
    with self.assertRaisesRegex(ConfigError, 'applies to image data sets'):
      validate(testing.tiny_toy_config(train_fraction=0.5,
                                       workdir='/tmp/tf_unused'))


if __name__ == '__main__':
  absltest.main()
