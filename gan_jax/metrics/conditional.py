"""Metrics of class-conditional generators: does G make the class it was
asked for, and how well does it match each class?

* `label_accuracy` (the "classification accuracy" of conditional GANs,
  e.g. Odena et al. 2017 on ACGAN samples): the fraction of samples asked
  for class k that a classifier trained on the data assigns to class k,

      acc = 1/N sum_i [argmax_j c(G(z_i, y_i))_j = y_i];

  on real labelled images it is the classifier's own accuracy (near 1), on
  labels unrelated to the images 1/K.
* `nearest_mode_accuracy`: the same for a Gaussian mixture, the classifier
  being "the nearest mode".
* `intra_class_fid` (Miyato & Koyama 2018, "intra-FID"): the mean over the
  K classes of the Fréchet distance between the features of the samples
  asked for class k and those of the reference images of class k,

      intra-FID = 1/K sum_k FID({phi(G(z, k))}, {phi(x) : y(x) = k}).
"""

from __future__ import annotations

import numpy as np

from gan_jax.metrics import frechet


def label_accuracy(logits_NxK: np.ndarray, labels_N: np.ndarray) -> float:
  """The fraction of rows whose arg-max logit is their label."""
  logits_NxK, labels_N = np.asarray(logits_NxK), np.asarray(labels_N)
  if logits_NxK.shape[:1] != labels_N.shape:
    raise ValueError(f'{logits_NxK.shape[0]} rows of logits but '
                     f'{labels_N.shape} labels')
  return float(np.mean(np.argmax(logits_NxK, axis=-1) == labels_N))


def nearest_mode_accuracy(samples_Nxd: np.ndarray, labels_N: np.ndarray,
                          means_Kxd: np.ndarray) -> float:
  """The fraction of samples whose nearest mode (Euclidean) is their label."""
  x = np.asarray(samples_Nxd, np.float64)
  sq = np.sum((x[:, None, :] - np.asarray(means_Kxd)[None]) ** 2, axis=-1)
  return label_accuracy(-sq, labels_N)


def intra_class_fid(fake_features: np.ndarray, fake_labels: np.ndarray,
                    real_features: np.ndarray, real_labels: np.ndarray,
                    num_classes: int) -> dict:
  """{'intra_fid': mean over classes, 'intra_fid_per_class': [K values]}:
  the Fréchet distance per class between fake and real features.

  Every class needs at least 2 fake and 2 real samples (a covariance).
  """
  per_class = []
  for k in range(num_classes):
    fake = np.asarray(fake_features)[np.asarray(fake_labels) == k]
    real = np.asarray(real_features)[np.asarray(real_labels) == k]
    if len(fake) < 2 or len(real) < 2:
      raise ValueError(f'class {k} has {len(fake)} generated and {len(real)} '
                       'reference samples; intra-class FID needs at least 2 '
                       'of each')
    per_class.append(frechet.frechet_distance(fake, real))
  return {'intra_fid': float(np.mean(per_class)),
          'intra_fid_per_class': [float(v) for v in per_class]}


def classifier_for(dataset: str):
  """The `gan_jax.features` extractor of a classifier trained on `dataset`
  (its default extractor when that is `{dataset}_classifier`: digits,
  mnist), weights loaded; None when it has none or its weights are absent."""
  from gan_jax import features  # pylint: disable=g-import-not-at-top
  name = features.default_for(dataset)
  if name != f'{dataset}_classifier':
    return None
  try:
    return features.get(name)
  except features.FeatureError:
    return None


def has_classifier(dataset: str) -> bool:
  """Whether `dataset` names a classifier of its own (without loading it)."""
  from gan_jax import features  # pylint: disable=g-import-not-at-top
  return features.default_for(dataset) == f'{dataset}_classifier'


def final_metrics(dataset: str, data, samples: np.ndarray,
                  labels: np.ndarray) -> dict:
  """A conditional run's final `label_accuracy`: the fraction of `samples`
  (asked for classes `labels`) that the data set's own classifier (digits,
  mnist) or, for a mixture, the nearest mode assigns to their class, with
  `label_classifier` naming the classifier; {} for a set with neither."""
  if hasattr(data, 'means'):  # a mixture: its modes are its classes
    return {'label_accuracy': nearest_mode_accuracy(samples, labels,
                                                    data.means),
            'label_classifier': 'nearest_mode'}
  extractor = classifier_for(dataset)
  if extractor is None:
    return {}
  return {'label_accuracy': label_accuracy(extractor.extract(samples)[1],
                                           labels),
          'label_classifier': extractor.name}
