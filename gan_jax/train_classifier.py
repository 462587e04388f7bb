"""Trains the classifier behind the `digits_classifier` / `mnist_classifier`
feature extractors.

    python -m gan_jax.train_classifier --dataset=digits
    python -m gan_jax.train_classifier --dataset=mnist     # needs TFDS mnist prepared

Trains `gan_jax.features.classifier.Classifier` on the data set's 'train'
split (digits: 1,437 images of the fixed split in `gan_jax.metrics.reference`),
measures accuracy on the held-out 'test' split (digits: 360 images), and
writes `gan_jax/features/weights/DATASET_classifier.msgpack` with
`DATASET_classifier.json` beside it (test accuracy, SHA-256 of the weights,
training settings). A test accuracy below --min_accuracy writes nothing and
exits with status 1. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import os
import sys

from absl import app
from absl import flags

from gan_jax import cli

DATASETS = ('digits', 'mnist')

flags.DEFINE_string('dataset', 'digits', f'One of: {", ".join(DATASETS)}.')
flags.DEFINE_integer('steps', 600, 'Adam steps.')
flags.DEFINE_integer('batch_size', 64, 'Images per step.')
flags.DEFINE_float('learning_rate', 1e-3, 'Peak Adam learning rate (cosine '
                   'decay to 0).')
flags.DEFINE_integer('seed', 0, 'Initialisation and batch seed.')
flags.DEFINE_string('out', None, 'Weights path (default '
                    'gan_jax/features/weights/DATASET_classifier.msgpack).')
flags.DEFINE_float('min_accuracy', 0.97, 'Required held-out accuracy.')

FLAGS = flags.FLAGS


def main(argv):
  cli.no_positional_arguments(argv)
  if FLAGS.dataset not in DATASETS:
    cli.usage_error(f'--dataset={FLAGS.dataset!r} is not a known dataset; '
                    f'valid: {", ".join(DATASETS)}')
  for name in ('steps', 'batch_size', 'learning_rate'):
    if not getattr(FLAGS, name) > 0:
      cli.usage_error(f'--{name}={getattr(FLAGS, name)} must be positive')
  from gan_jax import features  # pylint: disable=g-import-not-at-top
  from gan_jax.features import classifier  # pylint: disable=g-import-not-at-top
  from gan_jax.metrics import reference  # pylint: disable=g-import-not-at-top
  loader = functools.partial(reference.load_with_labels, FLAGS.dataset)
  try:
    train_x, train_y = loader('train')
    test_x, test_y = loader('test')
  except reference.ReferenceError as e:
    cli.usage_error(str(e))
  print(f'training the {FLAGS.dataset} classifier on {len(train_x)} images '
        f'{train_x.shape[1:]}, testing on {len(test_x)}', flush=True)
  result = classifier.train(train_x, train_y, test_x, test_y,
                            steps=FLAGS.steps, batch_size=FLAGS.batch_size,
                            learning_rate=FLAGS.learning_rate, seed=FLAGS.seed,
                            log=lambda m: print(m, flush=True))
  print(f'test accuracy {100 * result.test_accuracy:.2f}% '
        f'({len(test_x)} held-out images), train accuracy '
        f'{100 * result.train_accuracy:.2f}%, {result.seconds:.1f} s',
        flush=True)
  if result.test_accuracy < FLAGS.min_accuracy:
    print(f'error: test accuracy {result.test_accuracy:.4f} is below '
          f'--min_accuracy={FLAGS.min_accuracy}; nothing written',
          file=sys.stderr)
    sys.exit(1)
  path = FLAGS.out or os.path.join(features.WEIGHTS_DIR,
                                   f'{FLAGS.dataset}_classifier.msgpack')
  meta = classifier.save(path, result.params, {
      'name': f'{FLAGS.dataset}_classifier', 'dataset': FLAGS.dataset,
      'image_size': list(train_x.shape[1:]), 'num_classes': 10,
      'feature_dim': classifier.FEATURE_DIM,
      'test_accuracy': result.test_accuracy,
      'train_accuracy': result.train_accuracy,
      'num_train': len(train_x), 'num_test': len(test_x),
      'steps': FLAGS.steps, 'batch_size': FLAGS.batch_size,
      'learning_rate': FLAGS.learning_rate, 'seed': FLAGS.seed,
      'train_seconds': round(result.seconds, 1)})
  print(f'wrote {path} (sha256 {meta["sha256"]}) and its metadata '
        f'{os.path.splitext(path)[0]}.json', flush=True)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
