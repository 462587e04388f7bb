"""Classifier-FID, KID, precision/recall and density/coverage of corrupted
digits against the digits 'train' split, with their cost.

Each row is a workdir (config.json + samples.npy) evaluated exactly as a
finished run is, with `gan_jax.evaluation.evaluate_samples`:

  test          the 360 held-out real digits (the floor: real vs real)
  noise 0.25    held-out digits + N(0, 0.25^2) pixel noise, clipped to [-1, 1]
  noise 0.5     the same with std 0.5
  blur 1.0      held-out digits, Gaussian blur with sigma 1 pixel
  shuffled      held-out digits with pixels permuted (no digit structure)

    python bench/digits_metrics.py [--workdirs=/tmp/digits_metrics]

then e.g. `python -m gan_jax.evaluate --workdir=/tmp/digits_metrics/noise_0.5
--metrics=fid,kid,pr,dc` reproduces one row.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import ndimage

from gan_jax import evaluation
from gan_jax.config import Config
from gan_jax.metrics import reference


def corruptions(x: np.ndarray) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  perm = rng.permutation(x.shape[1] * x.shape[2])
  flat = x.reshape(len(x), -1)
  return {
      'test': x,
      'noise_0.25': np.clip(x + 0.25 * rng.normal(size=x.shape), -1, 1),
      'noise_0.5': np.clip(x + 0.5 * rng.normal(size=x.shape), -1, 1),
      'blur_1.0': ndimage.gaussian_filter(x, sigma=(0, 1.0, 1.0, 0)),
      'shuffled': flat[:, perm].reshape(x.shape),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdirs', default='/tmp/digits_metrics')
  args = parser.parse_args()
  x, _ = reference.digits('test')
  metric_names = ('fid', 'kid', 'is', 'pr', 'dc')
  evaluator = evaluation.Evaluator('digits', metrics=metric_names)
  print(f'reference digits/train: {evaluator.reference["info"]["num_reference"]}'
        f' images, features in {evaluator.reference_seconds:.2f} s '
        f'(cached: {evaluator.reference["cached"]}); extractor '
        f'digits_classifier sha256 {evaluator.extractor.weights_sha256[:12]}')
  print('| samples | N | classifier-FID | KID | IS | precision | recall '
        '| density | coverage | seconds |')
  print('|---|---|---|---|---|---|---|---|---|---|')
  for name, samples in corruptions(x).items():
    workdir = os.path.join(args.workdirs, name)
    os.makedirs(workdir, exist_ok=True)
    samples = samples.astype(np.float32)
    np.save(os.path.join(workdir, 'samples.npy'), samples)
    config = Config(workdir=workdir, dataset='digits', model='dcgan',
                    eval_metrics=tuple(metric_names))
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json())
    start = time.perf_counter()
    r = evaluator(samples)
    seconds = time.perf_counter() - start
    print(f'| {name} | {r["num_generated"]} | {r["fid"]:.2f} | '
          f'{r["kid_mean"]:.4g} ± {r["kid_std"]:.2g} | '
          f'{r["is_mean"]:.2f} | {r["precision"]:.3f} | {r["recall"]:.3f} | '
          f'{r["density"]:.3f} | {r["coverage"]:.3f} | {seconds:.2f} |')


if __name__ == '__main__':
  main()
