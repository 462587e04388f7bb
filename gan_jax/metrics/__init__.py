"""Metrics on generated samples."""

from gan_jax.metrics.divergences import jsd, jsd_to_samples, kde_density, kl
from gan_jax.metrics.toy import mode_metrics
