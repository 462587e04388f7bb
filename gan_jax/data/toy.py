"""Gaussian-mixture toy data, sampled on the device inside the training scan.

* `ring8`: 8 equally weighted modes r (cos 2 pi k / 8, sin 2 pi k / 8),
  k = 0..7, each of std sigma.
* `grid25`: 25 equally weighted modes s {-2, -1, 0, 1, 2}^2, each of std
  sigma.
* `mix1d`: 1-D, 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2); its density is known in
  closed form, so divergences to it can be computed by quadrature.

The radius r, spacing s and std sigma of the 2-D sets come from a named
layout (`--toy_layout`, `LAYOUTS`), each of which may be overridden
(`--toy_scale` for r or s, `--toy_std` for sigma):

    veegan (default)  ring r = 2, sigma = 0.02; grid s = 2, sigma = 0.05
                      (the layouts as VEEGAN, Srivastava et al. 2017,
                      describes them)
    pacgan            ring r = 1, sigma = 0.01; grid s = 2, sigma = 0.05
                      (the PacGAN synthetic-data code, Lin et al. 2018:
                      2DRing config.py MEANS cos/sin(2 pi id / 8),
                      VARIANCES 0.01^2 I; 2DGrid MEANS range(-4, 5, 2)^2,
                      VARIANCES 0.05^2 I)

Each is registered as a data set with modes (the final evaluation counts the
modes covered, against the configured layout's means and std), its mode
index as the label, the identity feature extractor and, as metric
reference, 'train': draws from the mixture with a fixed key.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data as data_lib


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianMixture:
  """An isotropic Gaussian mixture with equal-std components.

  Attributes:
    name: data set name.
    means: (K, d) component means (the "modes").
    std: the common per-coordinate standard deviation.
    weights: (K,) mixing weights summing to 1.
  """

  name: str
  means: np.ndarray
  std: float
  weights: np.ndarray

  @property
  def shape(self) -> tuple[int, ...]:
    """Shape of one sample."""
    return (self.means.shape[1],)

  @property
  def num_modes(self) -> int:
    return self.means.shape[0]

  def sample(self, key: jax.Array, n: int) -> jax.Array:
    """n samples, shape (n, d), drawn with `key` (jit- and scan-safe)."""
    k_mode, k_noise = jax.random.split(key)
    idx = jax.random.choice(k_mode, self.num_modes, (n,),
                            p=jnp.asarray(self.weights, jnp.float32))
    noise = jax.random.normal(k_noise, (n,) + self.shape, jnp.float32)
    return jnp.asarray(self.means, jnp.float32)[idx] + self.std * noise

  def density(self, x: np.ndarray) -> np.ndarray:
    """The mixture density at points x of shape (..., d), in float64."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1 and self.shape == (1,):
      x = x[:, None]
    sq = np.sum((x[..., None, :] - self.means) ** 2, axis=-1)  # (..., K)
    d = self.shape[0]
    norm = (2.0 * np.pi * self.std**2) ** (-d / 2.0)
    return np.sum(self.weights * norm * np.exp(-0.5 * sq / self.std**2), -1)


def _uniform(means) -> np.ndarray:
  means = np.asarray(means, np.float64)
  return np.full((means.shape[0],), 1.0 / means.shape[0])


@dataclasses.dataclass(frozen=True)
class Layout:
  """Scale and std of the 2-D sets: ring radius and std, grid spacing and
  std."""

  ring_radius: float
  ring_std: float
  grid_spacing: float
  grid_std: float


LAYOUTS = {
    'veegan': Layout(ring_radius=2.0, ring_std=0.02, grid_spacing=2.0,
                     grid_std=0.05),
    'pacgan': Layout(ring_radius=1.0, ring_std=0.01, grid_spacing=2.0,
                     grid_std=0.05),
}
DEFAULT_LAYOUT = 'veegan'
# The data sets a layout lays out.
LAID_OUT = ('ring8', 'grid25')


def layout_summary() -> str:
  """The presets in words, for the flag's help."""
  return '; '.join(
      f'{name}: ring radius {l.ring_radius:g}, std {l.ring_std:g}, grid '
      f'spacing {l.grid_spacing:g}, std {l.grid_std:g}'
      for name, l in LAYOUTS.items())


def ring8(radius: float = 0.0, std: float = 0.0,
          layout: str = DEFAULT_LAYOUT) -> GaussianMixture:
  """8 modes on the circle of `radius`, each of `std` (0: the `layout`'s)."""
  preset = LAYOUTS[layout]
  angles = 2.0 * np.pi * np.arange(8) / 8
  means = (radius or preset.ring_radius) * np.stack(
      [np.cos(angles), np.sin(angles)], axis=1)
  return GaussianMixture('ring8', means, std or preset.ring_std,
                         _uniform(means))


def grid25(spacing: float = 0.0, std: float = 0.0,
           layout: str = DEFAULT_LAYOUT) -> GaussianMixture:
  """5 x 5 modes `spacing` apart, centred on 0, each of `std` (0: the
  `layout`'s)."""
  preset = LAYOUTS[layout]
  coords = (spacing or preset.grid_spacing) * np.arange(-2.0, 3.0)
  means = np.stack(np.meshgrid(coords, coords, indexing='ij'), -1).reshape(-1, 2)
  return GaussianMixture('grid25', means, std or preset.grid_std,
                         _uniform(means))


def mix1d() -> GaussianMixture:
  means = np.array([[-2.0], [2.0]])
  return GaussianMixture('mix1d', means, 0.5, _uniform(means))


def from_config(make, config) -> GaussianMixture:
  """`make` (ring8, grid25) in `config`'s layout: `--toy_layout`,
  `--toy_scale`, `--toy_std`."""
  return make(config.toy_scale, config.toy_std, config.toy_layout)


def _register(make, laid_out: bool) -> None:
  mixture = make()
  build = ((lambda config: from_config(make, config)) if laid_out
           else (lambda config: make()))
  data_lib.register(data_lib.DatasetSpec(
      name=mixture.name, shape=mixture.shape, build=build,
      num_classes=mixture.num_modes, has_modes=True))


for _make in (ring8, grid25, mix1d):
  _register(_make, _make.__name__ in LAID_OUT)


def normal1d_density(mean: float, std: float):
  """The density of N(mean, std^2) as a numpy function (for theory tests)."""
  # Imported here: scipy.stats costs a second at start-up, which every command
  # (including one that only reports a bad flag) would otherwise pay.
  from scipy import stats  # pylint: disable=g-import-not-at-top
  return lambda x: stats.norm.pdf(np.asarray(x, np.float64), mean, std)
