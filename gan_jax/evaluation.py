"""Sample-quality metrics of generator samples against a reference split.

`evaluate_samples(config, samples)` computes the requested metrics of
`samples` (generated images (N, H, W, C) in [-1, 1], or low-dimensional
samples (N, d)) against the reference split of `config.dataset`, in the
feature space of one extractor:

    fid  Fréchet distance of the feature Gaussians (gan_jax.metrics.frechet)
    kid  unbiased MMD^2, cubic kernel, mean/std over subsets (metrics.kid)
    is   Inception Score of the extractor's logits (metrics.inception_score)
    pr   k-NN precision and recall, k = 3 (metrics.prdc)
    dc   density and coverage, k = 5 (metrics.prdc)

Every result carries what makes two numbers comparable: the number of
generated and reference samples, the data set and split, the extractor's
name and its weights' SHA-256, and the hash of the reference images. FID and
KID depend on the sample counts (FID is biased upwards for small N), so
compare results only when all of these agree.

`make_in_training_evaluator(config)` returns `(step, samples) -> record` for
the training loop to call every `config.eval_every` steps; it loads the
extractor and the (cached) reference statistics once, when it is made.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

if TYPE_CHECKING:
  from gan_jax.config import Config

METRICS = ('fid', 'kid', 'is', 'pr', 'dc')
DEFAULT_METRICS = ('fid', 'kid', 'pr')
DEFAULT_SPLIT = 'train'
PR_K = 3
DC_K = 5
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


class EvaluationError(ValueError):
  """Bad metric names, samples of the wrong shape, or a missing reference."""


def check_metrics(names) -> tuple[str, ...]:
  """`names` (a sequence or comma-separated string) as a tuple of known metrics."""
  if isinstance(names, str):
    names = tuple(n.strip() for n in names.split(',') if n.strip())
  names = tuple(names)
  for name in names:
    if name not in METRICS:
      raise EvaluationError(f'unknown metric {name!r}; valid: '
                            f'{", ".join(METRICS)}')
  if len(set(names)) != len(names):
    raise EvaluationError(f'metrics {",".join(names)} name one twice')
  return names


class Evaluator:
  """An extractor and a reference split's statistics, loaded once."""

  def __init__(self, dataset: str, metrics=DEFAULT_METRICS,
               extractor: Optional[str] = None, split: str = DEFAULT_SPLIT,
               weights_path: Optional[str] = None,
               cache_dir: Optional[str] = None,
               kid_subsets: int = KID_SUBSETS,
               kid_subset_size: int = KID_SUBSET_SIZE,
               config: Optional[Config] = None):
    from gan_jax import features  # pylint: disable=g-import-not-at-top
    from gan_jax.metrics import reference  # pylint: disable=g-import-not-at-top
    self.metrics = check_metrics(metrics)
    if not self.metrics:
      raise EvaluationError(f'no metrics requested; valid: {", ".join(METRICS)}')
    name = extractor or features.default_for(dataset)
    try:
      features.check_name(name)
      if 'is' in self.metrics and name == 'identity':
        raise EvaluationError('metric is needs class logits, which extractor '
                              'identity does not have; valid extractors for '
                              'it: ' + ', '.join(n for n in features.names()
                                                 if n != 'identity'))
      self.extractor = features.get(name, weights_path)
      start = time.perf_counter()
      self.reference = reference.statistics(dataset, split, self.extractor,
                                            cache_dir, config)
    except (features.FeatureError, reference.ReferenceError) as e:
      raise EvaluationError(str(e)) from None
    self.reference_seconds = time.perf_counter() - start
    self.dataset = dataset
    self.split = split
    self.kid_subsets = kid_subsets
    self.kid_subset_size = kid_subset_size
    self._real_r2: dict[int, np.ndarray] = {}

  def _radii(self, k: int) -> np.ndarray:
    """The reference's squared k-NN radii, computed on first use."""
    from gan_jax.metrics import prdc  # pylint: disable=g-import-not-at-top
    if k not in self._real_r2:
      self._real_r2[k] = prdc.real_sq_radii(self.reference['features'], k)
    return self._real_r2[k]

  def _check_samples(self, samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples, np.float32)
    size = self.extractor.input_size
    if size is not None and samples.ndim != 4:
      raise EvaluationError(
          f'extractor {self.extractor.name} needs images (N, H, W, C), got '
          f'samples of shape {samples.shape}')
    ref_shape = self.reference['info'].get('sample_shape')
    if size is None and ref_shape and tuple(samples.shape[1:]) != tuple(
        ref_shape):
      raise EvaluationError(f'samples have shape {samples.shape[1:]} but the '
                            f'{self.dataset} reference has {tuple(ref_shape)}')
    if len(samples) < 2:
      raise EvaluationError(f'need at least 2 samples, got {len(samples)}')
    if not np.isfinite(samples).all():
      raise EvaluationError('samples contain NaN or Inf')
    return samples

  def __call__(self, samples: np.ndarray) -> dict:
    """The metrics of `samples` with their provenance, as one flat dict."""
    from gan_jax import metrics as m  # pylint: disable=g-import-not-at-top
    samples = self._check_samples(samples)
    ref = self.reference
    seconds = {}
    start = time.perf_counter()
    feats, logits = self.extractor.extract(samples)
    seconds['features'] = time.perf_counter() - start
    out: dict[str, Any] = {}
    for name in self.metrics:
      start = time.perf_counter()
      if name == 'fid':
        mu, sigma = m.feature_statistics(feats)
        out['fid'] = m.frechet_distance_from_statistics(mu, sigma, ref['mu'],
                                                        ref['sigma'])
      elif name == 'kid':
        out.update(m.kernel_inception_distance(
            ref['features'], feats, num_subsets=self.kid_subsets,
            subset_size=self.kid_subset_size))
      elif name == 'is':
        out.update(m.inception_score(logits, num_splits=min(10, len(logits))))
      elif name == 'pr':
        out.update(m.precision_recall(ref['features'], feats, k=PR_K,
                                      real_r2=self._radii(PR_K)))
      elif name == 'dc':
        out.update(m.density_coverage(ref['features'], feats, k=DC_K,
                                      real_r2=self._radii(DC_K)))
      seconds[name] = time.perf_counter() - start
    info = ref['info']
    out.update({
        'num_generated': int(len(samples)),
        'num_reference': int(info['num_reference']),
        'dataset': info['dataset'], 'reference_split': info['split'],
        'extractor': self.extractor.name,
        'extractor_sha256': self.extractor.weights_sha256,
        'reference_images_sha256': info['images_sha256'],
        'seconds': {k: round(v, 4) for k, v in seconds.items()},
    })
    return out


def evaluate_samples(config: Config, samples: np.ndarray, **kwargs) -> dict:
  """Metrics of `samples` against the reference of `config.dataset`.

  Metrics default to `config.eval_metrics` (or DEFAULT_METRICS); keyword
  arguments are those of `Evaluator` (extractor, split, weights_path,
  cache_dir, kid_subsets, kid_subset_size). A saved run's `config` is
  `Config.load(workdir)`.
  """
  kwargs.setdefault('metrics', config.eval_metrics or DEFAULT_METRICS)
  return Evaluator(config.dataset, config=config, **kwargs)(samples)


def make_in_training_evaluator(
    config: Config, **kwargs) -> Optional[Callable[[int, np.ndarray], dict]]:
  """`(step, samples) -> record` for every `config.eval_every` steps, or None.

  The record is `{'step': step, 'eval': True, **metrics}`, a line for
  metrics.jsonl. Building it loads the extractor and the reference statistics
  (cached on disk), so a missing weights file fails before training starts.
  """
  if not config.eval_every:
    return None
  kwargs.setdefault('metrics', config.eval_metrics or DEFAULT_METRICS)
  evaluator = Evaluator(config.dataset, config=config, **kwargs)

  def evaluate(step: int, samples: np.ndarray) -> dict:
    return {'step': int(step), 'eval': True, **evaluator(samples)}

  return evaluate
