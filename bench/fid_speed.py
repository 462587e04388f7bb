"""Speed of the sample-quality metrics and feature extraction on this machine.

Setting: random Gaussian "features", N real = N fake (default 10,000) at
d = 2,048 (Inception pool3's size), one warm-up call per row (compilation
excluded), best of --repeats.

    python bench/fid_speed.py [--n=10000] [--dim=2048] [--repeats=2] [--skip_prdc] [--inception]

Rows: FID (statistics of both sets + the float64 trace term, by the eigh
route and by scipy's sqrtm), KID (100 subsets of 1,000), precision/recall
(k = 3) and density/coverage (k = 5), digits-classifier feature extraction,
and with --inception the FID Inception network on 299x299 inputs (random
weights; same cost as the real ones).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from gan_jax import features
from gan_jax import metrics
from gan_jax.features import inception_v3
from gan_jax.metrics import frechet


def best_of(fn, repeats):
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--n', type=int, default=10_000)
  parser.add_argument('--dim', type=int, default=2048)
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--skip_prdc', action='store_true')
  parser.add_argument('--inception', action='store_true')
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  real = rng.normal(size=(args.n, args.dim)).astype(np.float32)
  fake = (rng.normal(size=(args.n, args.dim)) * 1.1 + 0.05).astype(np.float32)
  rows = []
  stats = [frechet.feature_statistics(real), frechet.feature_statistics(fake)]
  shape = f'{args.n} x {args.dim}'
  rows.append((f'FID, eigh route ({shape}, stats incl.)', best_of(
      lambda: metrics.frechet_distance(real, fake), args.repeats)))
  rows.append(('  of which statistics of both sets', best_of(
      lambda: [frechet.feature_statistics(x) for x in (real, fake)],
      args.repeats)))
  rows.append(('  of which the trace term (eigh)', best_of(
      lambda: frechet.trace_sqrt_product(stats[0][1], stats[1][1]),
      args.repeats)))
  rows.append(('  the trace term by scipy sqrtm', best_of(
      lambda: frechet.trace_sqrt_product(stats[0][1], stats[1][1], 'sqrtm'),
      1)))
  rows.append((f'KID, 100 subsets x 1000 ({shape})', best_of(
      lambda: metrics.kernel_inception_distance(real, fake), args.repeats)))
  if not args.skip_prdc:
    rows.append((f'precision/recall k=3 ({shape})', best_of(
        lambda: metrics.precision_recall(real, fake, k=3), 1)))
    rows.append((f'density/coverage k=5 ({shape})', best_of(
        lambda: metrics.density_coverage(real, fake, k=5), 1)))
  digits = features.get('digits_classifier')
  images = rng.uniform(-1, 1, (10_000, 16, 16, 1)).astype(np.float32)
  rows.append(('digits_classifier features, 10,000 16x16', best_of(
      lambda: digits.extract(images), args.repeats)))
  if args.inception:
    params = jax.tree.map(
        lambda s: rng.normal(size=s.shape).astype(np.float32) * 0.01,
        inception_v3.abstract_params())
    model = inception_v3.FIDInceptionV3()
    apply = jax.jit(lambda p, x: model.apply({'params': p}, x))
    batch = rng.uniform(-1, 1, (64, 32, 32, 3)).astype(np.float32)
    seconds = best_of(lambda: jax.block_until_ready(apply(params, batch)), 1)
    rows.append((f'inception_v3, 64 images -> 299x299 '
                 f'({64 / seconds:.1f} img/s)', seconds))
  print(f'{jax.devices()[0].platform}, {os.cpu_count()} CPU threads; '
        f'best of {args.repeats} after a warm-up')
  width = max(len(name) for name, _ in rows)
  print(f'| {"metric":<{width}} | seconds |')
  print(f'|{"-" * (width + 2)}|---------|')
  for name, seconds in rows:
    print(f'| {name:<{width}} | {seconds:7.2f} |')


if __name__ == '__main__':
  main()
