"""Evaluation of class-conditional generators: label accuracy, intra-class
FID and the per-class grid of a short conditional run."""

import json
import os
import tempfile

from absl.testing import absltest
import numpy as np
import scipy.linalg

from gan_jax import evaluation
from gan_jax import features
from gan_jax import train
from gan_jax.config import Config
from gan_jax.data import images as images_lib
from gan_jax.metrics import conditional


def _scipy_frechet(a, b):
  """FID from the formula with scipy's matrix square root."""
  mu_a, mu_b = a.mean(0), b.mean(0)
  s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  covmean = np.real(scipy.linalg.sqrtm(s_a @ s_b))
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * covmean))


class LabelAccuracyTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    images, cls.labels = images_lib.digits_split('all')
    cls.logits = features.get('digits_classifier').extract(images)[1]

  def test_real_digits_score_high(self):
    self.assertGreater(
        conditional.label_accuracy(self.logits, self.labels), 0.9)

  def test_shuffled_labels_score_near_chance(self):
    shuffled = np.random.default_rng(0).permutation(self.labels)
    accuracy = conditional.label_accuracy(self.logits, shuffled)
    # 1,797 labels: chance is 0.1 with a standard deviation of 0.007.
    self.assertLess(abs(accuracy - 0.1), 0.03)

  def test_hand_counted(self):
    logits = np.array([[2., 1., 0.], [0., 3., 1.], [1., 0., 5.], [0., 1., 0.]])
    self.assertEqual(conditional.label_accuracy(logits, [0, 1, 1, 2]), 0.5)

  def test_nearest_mode(self):
    means = np.array([[0., 0.], [10., 0.]])
    samples = np.array([[1., 0.], [9., 1.], [4., 0.], [6., 0.]])
    self.assertEqual(conditional.nearest_mode_accuracy(
        samples, np.array([0, 1, 1, 1]), means), 0.75)


class IntraClassFidTest(absltest.TestCase):

  def test_matches_scipy_per_class(self):
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 4))
    real_labels = rng.integers(0, 3, 300)
    fake = rng.normal(size=(240, 4)) * 1.3 + 0.5
    fake_labels = np.arange(240) % 3
    real[real_labels == 2] += 2.0  # the classes differ
    result = conditional.intra_class_fid(fake, fake_labels, real,
                                         real_labels, 3)
    expected = [_scipy_frechet(fake[fake_labels == k],
                               real[real_labels == k]) for k in range(3)]
    np.testing.assert_allclose(result['intra_fid_per_class'], expected,
                               rtol=1e-6)
    np.testing.assert_allclose(result['intra_fid'], np.mean(expected),
                               rtol=1e-6)

  def test_a_class_without_samples_is_refused(self):
    x = np.zeros((4, 2))
    with self.assertRaisesRegex(ValueError, 'class 1 has 0 generated'):
      conditional.intra_class_fid(x, np.zeros(4, int), x,
                                  np.array([0, 0, 1, 1]), 2)

  def test_evaluator_scores_real_images_with_their_labels(self):
    images, labels = images_lib.digits_split('test')
    evaluator = evaluation.Evaluator(
        'digits', metrics=('label_acc', 'intra_fid'),
        cache_dir=tempfile.mkdtemp())
    right = evaluator(images, labels)
    wrong = evaluator(images, (labels + 1) % 10)
    self.assertGreater(right['label_acc'], 0.9)
    self.assertLess(wrong['label_acc'], 0.1)
    self.assertLess(right['intra_fid'], wrong['intra_fid'])
    with self.assertRaisesRegex(evaluation.EvaluationError, 'need the label'):
      evaluator(images)


class ConditionalRunTest(absltest.TestCase):

  def test_short_digits_run_writes_class_grid_and_label_accuracy(self):
    workdir = os.path.join(tempfile.mkdtemp(), 'run')
    config = Config(workdir=workdir, dataset='digits', model='dcgan',
                    conditional='projection', g_batch_norm=True,
                    g_features=8, d_features=8, z_dim=8, batch_size=8,
                    num_steps=2, log_every=2, num_eval_samples=50)
    final = train.run(config, out=None)
    self.assertIn('label_accuracy', final)
    self.assertEqual(final['label_classifier'], 'digits_classifier')
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
      last = [json.loads(line) for line in f][-1]
    self.assertTrue(last['final'])
    self.assertBetween(last['label_accuracy'], 0.0, 1.0)
    np.testing.assert_array_equal(
        np.load(os.path.join(workdir, 'sample_labels.npy')),
        np.arange(50) % 10)
    from PIL import Image
    with Image.open(os.path.join(workdir, 'samples_by_class.png')) as png:
      # 10 rows (classes) x 10 columns of 16x16 cells with 1-pixel gaps,
      # enlarged 2x: 2 * (10 * 17 + 1).
      self.assertEqual(png.size, (342, 342))


if __name__ == '__main__':
  absltest.main()
