"""Evaluation of samples: provenance, reference cache, in-training evaluator,
the `gan_jax.evaluate` command line and its bad input."""

import json
import os
import subprocess
import sys
import warnings

from absl.testing import absltest
import jax
import numpy as np
import scipy.linalg
import scipy.spatial
import scipy.special

from gan_jax import config as config_lib
from gan_jax import evaluation
from gan_jax import features
from gan_jax.data import toy
from gan_jax.metrics import reference
import testing

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, cache):
  env = dict(os.environ, GAN_JAX_CACHE=cache, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'gan_jax.evaluate', *args],
                        capture_output=True, text=True, cwd=_ROOT, env=env,
                        check=False)


# Independent float64 numpy/scipy computations of the metrics, written from
# the papers' formulas (the package computes them otherwise: FID by two
# eigen-decompositions, KID and the k-NN metrics by jitted float32 products).


def _frechet(a, b):
  """FID (Heusel et al. 2017): ||mu_a - mu_b||^2
  + Tr(S_a + S_b - 2 sqrtm(S_a S_b)), unbiased covariances."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  with warnings.catch_warnings():  # rank-deficient features: still exact
    warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
    covmean = np.real(scipy.linalg.sqrtm(s_a @ s_b))
  diff = a.mean(0) - b.mean(0)
  return float(diff @ diff + np.trace(s_a + s_b - 2 * covmean))


def _kid(a, b, num_subsets, subset_size=1000, seed=0):
  """Mean over subsets of the unbiased MMD^2 with k(x, y) = (x.y/d + 1)^3
  (Binkowski et al. 2018), subsets drawn as documented: numpy
  default_rng(seed), `num_subsets` draws from a, then from b."""
  m = min(subset_size, len(a), len(b))
  rng = np.random.default_rng(seed)
  idx_a = [rng.choice(len(a), m, replace=False) for _ in range(num_subsets)]
  idx_b = [rng.choice(len(b), m, replace=False) for _ in range(num_subsets)]
  values = []
  for ia, ib in zip(idx_a, idx_b):
    x = np.asarray(a, np.float64)[ia]
    y = np.asarray(b, np.float64)[ib]
    d = x.shape[1]
    kxx, kyy, kxy = [(p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y),
                                                         (x, y))]
    off = lambda k: (k.sum() - np.trace(k)) / (m * (m - 1))
    values.append(off(kxx) + off(kyy) - 2 * kxy.mean())
  return float(np.mean(values))


def _inception_score(logits, num_splits=10):
  """exp E_x KL(p(y|x) || p(y)) (Salimans et al. 2016), mean over splits."""
  p = scipy.special.softmax(np.asarray(logits, np.float64), axis=1)
  scores = []
  for part in np.array_split(p, num_splits):
    marginal = part.mean(0)
    scores.append(np.exp(np.mean(np.sum(
        part * (np.log(part) - np.log(marginal)), axis=1))))
  return float(np.mean(scores))


def _knn_radius(x, k):
  """Distance from each row of x to its k-th nearest other row."""
  d = scipy.spatial.distance.cdist(x, x)
  return np.sort(d, axis=1)[:, k]  # column 0 is the row itself


def _prdc(real, fake, k_pr=3, k_dc=5):
  """Improved precision/recall (Kynkaanniemi et al. 2019, closed balls) and
  density/coverage (Naeem et al. 2020, open balls)."""
  real = np.asarray(real, np.float64)
  fake = np.asarray(fake, np.float64)
  d = scipy.spatial.distance.cdist(fake, real)  # (M, N)
  r_real, r_fake = _knn_radius(real, k_pr), _knn_radius(fake, k_pr)
  precision = np.mean(np.any(d <= r_real[None, :], axis=1))
  recall = np.mean(np.any(d.T <= r_fake[None, :], axis=1))
  r_real = _knn_radius(real, k_dc)
  density = np.sum(d < r_real[None, :]) / (k_dc * len(fake))
  coverage = np.mean(d.min(axis=0) < r_real)
  return precision, recall, density, coverage


class EvaluateSamplesTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.cache = self.create_tempdir().full_path

  def test_digits_metrics_and_provenance(self):
    test_x, _ = reference.digits('test')
    out = evaluation.evaluate_samples(
        testing.tiny_image_config(), test_x, metrics='fid,kid,is,pr,dc',
        cache_dir=self.cache, kid_subsets=10)
    ext = features.get('digits_classifier')
    real, _ = ext.extract(reference.digits('train')[0])
    fake, logits = ext.extract(test_x)
    # Independent float64 computations on the same features and logits.
    np.testing.assert_allclose(out['fid'], _frechet(real, fake), rtol=1e-5)
    np.testing.assert_allclose(out['kid_mean'], _kid(real, fake, 10),
                               rtol=1e-4)
    np.testing.assert_allclose(out['is_mean'], _inception_score(logits),
                               rtol=1e-6)
    # Counts of points in balls: a float32 distance on a ball's boundary may
    # flip one point.
    precision, recall, density, coverage = _prdc(real, fake)
    np.testing.assert_allclose(out['precision'], precision, atol=1.01 / 360)
    np.testing.assert_allclose(out['recall'], recall, atol=1.01 / 1437)
    np.testing.assert_allclose(out['density'], density, atol=1.01 / 1800)
    np.testing.assert_allclose(out['coverage'], coverage, atol=1.01 / 1437)
    # The digits test split against the train split: close distributions
    # (a Frechet distance of 13 in the classifier's feature space).
    self.assertBetween(out['fid'], 1.0, 30.0)
    self.assertBetween(out['precision'], 0.5, 1.0)
    self.assertBetween(out['is_mean'], 5.0, 10.0)
    self.assertEqual(
        {k: out[k] for k in ('num_generated', 'num_reference', 'dataset',
                             'reference_split', 'extractor',
                             'extractor_sha256')},
        {'num_generated': 360, 'num_reference': 1437, 'dataset': 'digits',
         'reference_split': 'train', 'extractor': 'digits_classifier',
         'extractor_sha256': ext.weights_sha256})
    self.assertEqual(sorted(out['seconds']),
                     ['dc', 'features', 'fid', 'is', 'kid', 'pr'])

  def test_reference_cache_is_keyed_and_reused(self):
    ext = features.get('digits_classifier')
    first = reference.statistics('digits', 'test', ext, self.cache)
    second = reference.statistics('digits', 'test', ext, self.cache)
    self.assertEqual((first['cached'], second['cached']), (False, True))
    np.testing.assert_array_equal(first['sigma'], second['sigma'])
    self.assertEqual(first['sigma'].dtype, np.float64)
    name, = os.listdir(self.cache)
    self.assertTrue(name.startswith(
        f'digits-test-digits_classifier-{ext.weights_sha256[:16]}-'), name)
    # Another extractor (or other weights) gets its own entry.
    reference.statistics('digits', 'test', features.get('identity'),
                         self.cache)
    self.assertLen(os.listdir(self.cache), 2)

  def test_toy_data_in_training_evaluator(self):
    config = testing.tiny_toy_config(workdir=self.create_tempdir().full_path,
                                     eval_every=500, eval_metrics=('fid',))
    evaluate = evaluation.make_in_training_evaluator(config,
                                                     cache_dir=self.cache)
    data = toy.ring8()
    samples = np.asarray(data.sample(jax.random.PRNGKey(1), 2000))
    record = evaluate(1500, samples)
    ref = reference.load('ring8', 'train')
    np.testing.assert_allclose(record['fid'], _frechet(ref, samples),
                               rtol=1e-5, atol=1e-9)
    self.assertLess(record['fid'], 0.01)
    self.assertEqual((record['step'], record['eval'], record['extractor'],
                      record['num_reference'], record['num_generated']),
                     (1500, True, 'identity', 10_000, 2000))
    self.assertNotIn('precision', record)
    self.assertIsNone(evaluation.make_in_training_evaluator(
        config.replace(eval_every=0)))

  def test_bad_requests(self):
    with self.assertRaisesRegex(evaluation.EvaluationError,
                                "unknown metric 'fidd'; valid: fid, kid, is, "
                                'pr, dc'):
      evaluation.check_metrics('fid,fidd')
    with self.assertRaisesRegex(evaluation.EvaluationError,
                                'needs images'):
      evaluation.evaluate_samples(testing.tiny_image_config(),
                                  np.zeros((10, 2)), cache_dir=self.cache)
    with self.assertRaisesRegex(evaluation.EvaluationError,
                                'identity does not have'):
      evaluation.Evaluator('ring8', metrics=('is',), cache_dir=self.cache)
    with self.assertRaisesRegex(evaluation.EvaluationError,
                                "unknown digits split 'val'; valid: train, "
                                'test, all'):
      evaluation.Evaluator('digits', split='val', cache_dir=self.cache)


class ConfigTest(absltest.TestCase):

  def test_eval_flags_validate(self):
    base = testing.tiny_toy_config(workdir=self.create_tempdir().full_path)
    config_lib.validate(base.replace(eval_every=1000, log_every=500))
    for changes, message in [
        ({'eval_metrics': ('fid', 'fd')},
         "--eval_metrics: 'fd' is not a known metric; valid: fid, kid, is, pr, "
         'dc'),
        ({'eval_every': 750, 'log_every': 500},
         '--eval_every=750 must be a multiple of --log_every=500'),
        ({'eval_metrics': ('is',)}, '--eval_metrics=is needs class logits')]:
      with self.assertRaises(config_lib.ConfigError) as cm:
        config_lib.validate(base.replace(**changes))
      self.assertStartsWith(str(cm.exception), message)
      self.assertNotIn('\n', str(cm.exception))


class EvaluateCliTest(absltest.TestCase):

  def test_run_directory(self):
    cache = self.create_tempdir().full_path
    workdir = self.create_tempdir().full_path
    x, _ = reference.digits('test')
    np.save(os.path.join(workdir, 'samples.npy'), x[:200])
    config = testing.tiny_image_config(workdir=workdir,
                                       eval_metrics=('fid', 'pr'))
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json())
    proc = _cli(f'--workdir={workdir}', cache=cache)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertIn('200 generated vs 1437 digits/train images, extractor '
                  'digits_classifier', proc.stdout)
    with open(os.path.join(workdir, 'eval.json')) as f:
      result = json.load(f)
    self.assertEqual(sorted(k for k in result if k in (
        'fid', 'kid_mean', 'precision', 'recall', 'density')),
                     ['fid', 'precision', 'recall'])
    ext = features.get('digits_classifier')
    real, _ = ext.extract(reference.digits('train')[0])
    fake, _ = ext.extract(x[:200])
    np.testing.assert_allclose(result['fid'], _frechet(real, fake), rtol=1e-5)
    self.assertIn(f'{result["fid"]:.6g}', proc.stdout)

    # Bad input: one line on stderr, exit status 2, eval.json unchanged.
    os.remove(os.path.join(workdir, 'eval.json'))
    other = self.create_tempdir().full_path  # saved by a later version
    np.save(os.path.join(other, 'samples.npy'), x[:200])
    with open(os.path.join(other, 'config.json'), 'w') as f:
      json.dump({**json.loads(config.to_json()), 'g_dropout': 0.1}, f)
    for args, message in [
        ((f'--workdir={workdir}/missing',), 'is not a directory'),
        ((f'--workdir={workdir}', '--metrics=fid,bogus'),
         "unknown metric 'bogus'; valid: fid, kid, is, pr, dc"),
        ((f'--workdir={workdir}', '--extractor=vgg'),
         "unknown feature extractor 'vgg'; valid: digits_classifier, "
         'identity, inception_v3, mnist_classifier'),
        ((f'--workdir={cache}',), 'has no config.json'),
        ((f'--workdir={other}',), f'{other}/config.json has fields this '
         'version does not know: g_dropout')]:
      proc = _cli(*args, cache=cache)
      self.assertEqual(proc.returncode, 2, proc.stderr)
      self.assertEqual(proc.stderr.strip().count('\n'), 0, proc.stderr)
      self.assertIn(message, proc.stderr)
    self.assertFalse(os.path.exists(os.path.join(workdir, 'eval.json')))


if __name__ == '__main__':
  absltest.main()
