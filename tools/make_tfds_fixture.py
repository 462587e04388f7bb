"""Writes tests/data/tfds/: a small MNIST in TFDS's prepared on-disk format.

    python -m venv /tmp/venv_tf
    /tmp/venv_tf/bin/pip install tensorflow-cpu 'tensorflow-datasets==4.9.10' \
        array_record importlib_resources scikit-learn pillow
    /tmp/venv_tf/bin/python tools/make_tfds_fixture.py [--out tests/data/tfds]

The directory is what `tfds.builder('mnist', file_format='array_record')
.download_and_prepare()` leaves in a data directory: mnist/3.0.1/ with
dataset_info.json, features.json and one ArrayRecord shard per split
(mnist-train.array_record-00000-of-00001, mnist-test...), written by TFDS's
own MNIST builder and writer. Only its two inputs are replaced, so that
nothing is downloaded: the examples (`_split_generators`) are 64 train and
16 test images of scikit-learn's bundled 8x8 digits, scaled from 0..16 to
0..255 and resized to 28x28 (bilinear), with their labels; and the
description (`_info`) keeps MNIST's features and supervised keys but no
homepage or citation. Writing encodes the images as PNG with TensorFlow,
hence the separate environment; gan_jax reads the result through
`tfds.data_source` without TensorFlow (`--data_dir=tests/data/tfds`).
The output is deterministic up to TFDS's own metadata.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from unittest import mock

import numpy as np

NUM_TRAIN = 64
NUM_TEST = 16
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'tests', 'data', 'tfds')


def digit_images() -> tuple[np.ndarray, np.ndarray]:
  """The first NUM_TRAIN + NUM_TEST scikit-learn digits as (n, 28, 28, 1)
  uint8 and their labels."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  n = NUM_TRAIN + NUM_TEST
  out = np.zeros((n, 28, 28, 1), np.uint8)
  for i in range(n):
    small = Image.fromarray(
        np.rint(digits.images[i] * (255.0 / 16.0)).astype(np.uint8))
    out[i, :, :, 0] = np.asarray(small.resize((28, 28), Image.BILINEAR))
  return out, digits.target[:n].astype(np.int64)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', default=DEFAULT_OUT,
                      help='data directory to write (replaced)')
  args = parser.parse_args(argv)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.image_classification import mnist  # pylint: disable=g-import-not-at-top

  pixels, labels = digit_images()

  def examples(indices):
    for i in indices:
      yield int(i), {'image': pixels[i], 'label': int(labels[i])}

  def split_generators(self, dl_manager):
    del self, dl_manager
    return {'train': examples(range(NUM_TRAIN)),
            'test': examples(range(NUM_TRAIN, NUM_TRAIN + NUM_TEST))}

  original_info = mnist.MNIST._info  # pylint: disable=protected-access

  def info(self):
    full = original_info(self)
    return tfds.core.DatasetInfo(
        builder=self, features=full.features,
        supervised_keys=full.supervised_keys,
        description='MNIST-shaped test data for gan_jax: scikit-learn digits '
                    'resized to 28x28 (tools/make_tfds_fixture.py).')

  if os.path.exists(args.out):
    shutil.rmtree(args.out)
  with mock.patch.object(mnist.MNIST, '_split_generators', split_generators), \
       mock.patch.object(mnist.MNIST, '_info', info):
    builder = tfds.builder('mnist', data_dir=args.out,
                           file_format='array_record')
    builder.download_and_prepare()
  for root, _, files in sorted(os.walk(args.out)):
    for name in sorted(files):
      path = os.path.join(root, name)
      print(f'{os.path.getsize(path):8d}  {os.path.relpath(path, args.out)}')


if __name__ == '__main__':
  sys.exit(main())
