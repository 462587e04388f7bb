"""Evaluation of samples: provenance, reference cache, in-training evaluator,
the `gan_jax.evaluate` command line and its bad input."""

import json
import os
import subprocess
import sys

from absl.testing import absltest
import jax
import numpy as np

from gan_jax import config as config_lib
from gan_jax import evaluation
from gan_jax import features
from gan_jax.data import toy
from gan_jax.metrics import reference
import reference_metrics as independent
import testing

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, cache):
  env = dict(os.environ, GAN_JAX_CACHE=cache, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'gan_jax.evaluate', *args],
                        capture_output=True, text=True, cwd=_ROOT, env=env,
                        check=False)


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
    np.testing.assert_allclose(out['fid'], independent.frechet(real, fake),
                               rtol=1e-5)
    np.testing.assert_allclose(out['kid_mean'], independent.kid(real, fake, 10),
                               rtol=1e-4)
    np.testing.assert_allclose(out['is_mean'],
                               independent.inception_score(logits), rtol=1e-6)
    # Counts of points in balls: a float32 distance on a ball's boundary may
    # flip one point.
    precision, recall, density, coverage = independent.prdc(real, fake)
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
    np.testing.assert_allclose(record['fid'], independent.frechet(ref, samples),
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
    np.testing.assert_allclose(result['fid'], independent.frechet(real, fake),
                               rtol=1e-5)
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
