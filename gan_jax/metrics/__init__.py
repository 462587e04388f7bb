"""Metrics on generated samples."""

from gan_jax.metrics.divergences import jsd, jsd_to_samples, kde_density, kl
from gan_jax.metrics.frechet import feature_statistics
from gan_jax.metrics.frechet import frechet_distance
from gan_jax.metrics.frechet import frechet_distance_from_statistics
from gan_jax.metrics.inception_score import inception_score
from gan_jax.metrics.kid import kernel_inception_distance
from gan_jax.metrics.prdc import density_coverage, precision_recall
from gan_jax.metrics.toy import mode_metrics
