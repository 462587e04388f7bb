"""Evaluates a finished run: `python -m gan_jax.evaluate --workdir=DIR`.

Reads DIR/config.json (`Config.load`: the data set and `eval_metrics`) and
DIR/samples.npy (and, for a conditional run, DIR/sample_labels.npy: the
label metrics label_acc and intra_fid need it), computes the metrics
against the reference split in the feature space of the data set's extractor (`gan_jax.evaluation`), writes
DIR/eval.json and prints a table. Reference statistics are cached per
(data set, split, extractor, weights hash) in --cache_dir.

    python -m gan_jax.evaluate --workdir=runs/digits_hinge
    python -m gan_jax.evaluate --workdir=runs/digits_hinge --metrics=fid,kid,pr,dc --split=test

Bad input (a missing workdir or file, an unknown metric, extractor or split,
samples of the wrong shape) prints one line and exits with status 2; a file
that cannot be read or written (an I/O error) exits with status 74, and an
internal error with status 70 and its traceback in DIR/crash.log (the exit
statuses of `gan_jax.cli`).
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
import numpy as np

from gan_jax import cli
from gan_jax import fileio
from gan_jax.config import Config

flags.DEFINE_string('workdir', None, 'A finished run\'s directory (holding '
                    'config.json and samples.npy).')
flags.DEFINE_string('metrics', None, 'Comma-separated metrics: fid, kid, is, '
                    'pr, dc, label_acc, intra_fid (the last two for '
                    'conditional runs; default: the run\'s eval_metrics, else '
                    'fid,kid,pr).')
flags.DEFINE_string('extractor', None, 'Feature extractor (default: the data '
                    'set\'s: digits_classifier, mnist_classifier, identity for '
                    'toy data, else inception_v3).')
flags.DEFINE_string('weights', None, 'Weights file for the extractor '
                    '(default: its standard location).')
flags.DEFINE_string('split', 'train', 'Reference split.')
flags.DEFINE_integer('num_samples', 0, 'Use the first N samples (0: all).')
flags.DEFINE_string('cache_dir', None, 'Reference statistics cache (default '
                    '$GAN_JAX_CACHE/reference or ~/.cache/gan_jax/reference).')
flags.DEFINE_integer('kid_subsets', 100, 'KID subsets.')
flags.DEFINE_integer('kid_subset_size', 1000, 'KID subset size.')

FLAGS = flags.FLAGS


def _table(result: dict) -> str:
  rows = []
  for key in ('fid', 'kid_mean', 'kid_std', 'is_mean', 'is_std', 'precision',
              'recall', 'density', 'coverage'):
    if key in result:
      rows.append(f'  {key:<10} {result[key]:.6g}')
  head = (f'{result["num_generated"]} generated vs {result["num_reference"]} '
          f'{result["dataset"]}/{result["reference_split"]} images, extractor '
          f'{result["extractor"]} (sha256 {result["extractor_sha256"][:12]})')
  secs = ', '.join(f'{k} {v:.2f} s' for k, v in result['seconds'].items())
  return '\n'.join([head, *rows, f'  time: {secs}'])


def main(argv):
  cli.no_positional_arguments(argv)
  with cli.Failures(FLAGS.workdir):  # crash.log goes to the run's workdir
    _evaluate(FLAGS.workdir)


def _evaluate(workdir: str) -> None:
  if not workdir:
    cli.usage_error('--workdir must name a finished run\'s directory')
  if not os.path.isdir(workdir):
    cli.usage_error(f'--workdir={workdir} is not a directory')
  for name in ('config.json', 'samples.npy'):
    if not os.path.isfile(os.path.join(workdir, name)):
      cli.usage_error(f'--workdir={workdir} has no {name}; is it a finished '
                      'run?')
  if FLAGS.num_samples < 0:
    cli.usage_error(f'--num_samples={FLAGS.num_samples} must be >= 0 (0: all)')
  for name in ('kid_subsets', 'kid_subset_size'):
    if getattr(FLAGS, name) < 1 + (name == 'kid_subset_size'):
      cli.usage_error(f'--{name}={getattr(FLAGS, name)} is too small')
  config = Config.load(workdir)  # a ConfigError is bad input: status 2
  try:
    samples = np.load(os.path.join(workdir, 'samples.npy'))
  except ValueError as e:
    cli.usage_error(f'{workdir}/samples.npy cannot be read: {e}')
  labels = None
  labels_path = os.path.join(workdir, 'sample_labels.npy')
  if os.path.isfile(labels_path):
    try:
      labels = np.load(labels_path)
    except ValueError as e:
      cli.usage_error(f'{labels_path} cannot be read: {e}')
  if FLAGS.num_samples:
    samples = samples[:FLAGS.num_samples]
    labels = None if labels is None else labels[:FLAGS.num_samples]
  from gan_jax import evaluation  # pylint: disable=g-import-not-at-top
  metrics = FLAGS.metrics or config.eval_metrics or evaluation.DEFAULT_METRICS
  try:
    result = evaluation.evaluate_samples(
        config, samples, labels=labels, metrics=metrics, extractor=FLAGS.extractor,
        split=FLAGS.split, weights_path=FLAGS.weights,
        cache_dir=FLAGS.cache_dir, kid_subsets=FLAGS.kid_subsets,
        kid_subset_size=FLAGS.kid_subset_size)
  except evaluation.EvaluationError as e:
    cli.usage_error(str(e))
  fileio.atomic_write(os.path.join(workdir, 'eval.json'),
                      json.dumps(result, indent=2, sort_keys=True) + '\n')
  print(_table(result))
  print(f'wrote {os.path.join(workdir, "eval.json")}')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
