"""Divergences between 1-D densities by quadrature, and a KDE for samples.

On a uniform grid x_0..x_M with densities p, q (trapezoid rule):

    KL(p || q)  = int p log(p / q)
    JSD(p, q)   = 1/2 KL(p || m) + 1/2 KL(q || m),   m = (p + q) / 2,

with 0 log 0 = 0. JSD lies in [0, log 2]. Goodfellow et al. (2014, Thm. 1):
at the optimal discriminator D* = p_data / (p_data + p_g) the minimax value is
V(D*, G) = -log 4 + 2 JSD(p_data, p_g).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats


def _xlogy_ratio(p: np.ndarray, q: np.ndarray) -> np.ndarray:
  """p log(p / q) with 0 log 0 = 0."""
  out = np.zeros_like(p)
  nz = p > 0
  out[nz] = p[nz] * (np.log(p[nz]) - np.log(q[nz]))
  return out


def kl(p: np.ndarray, q: np.ndarray, grid: np.ndarray) -> float:
  """KL(p || q) by the trapezoid rule on `grid`."""
  return float(np.trapezoid(_xlogy_ratio(np.asarray(p, np.float64),
                                         np.asarray(q, np.float64)), grid))


def jsd(p: np.ndarray, q: np.ndarray, grid: np.ndarray) -> float:
  """Jensen-Shannon divergence (nats) of densities p, q tabulated on `grid`."""
  p = np.asarray(p, np.float64)
  q = np.asarray(q, np.float64)
  m = 0.5 * (p + q)
  return 0.5 * kl(p, m, grid) + 0.5 * kl(q, m, grid)


def kde_density(samples: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
  """Gaussian kernel density estimate (Scott's bandwidth) of 1-D samples."""
  return stats.gaussian_kde(np.asarray(samples, np.float64).reshape(-1))


def jsd_to_samples(data_density: Callable[[np.ndarray], np.ndarray],
                   samples: np.ndarray, lo: float, hi: float,
                   num_points: int = 8001) -> float:
  """JSD(p_data, p_g) with p_g the KDE of `samples`, by quadrature on [lo, hi].

  The KDE's mass outside [lo, hi] is not renormalised; choose the interval to
  cover both densities (the training code uses the data's modes +- 6 std
  widened to the samples' range).
  """
  grid = np.linspace(lo, hi, num_points)
  return jsd(data_density(grid), kde_density(samples)(grid), grid)
