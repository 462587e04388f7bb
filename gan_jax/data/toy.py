"""Gaussian-mixture toy data, sampled on the device inside the training scan.

* `ring8`: 8 equally weighted modes on the circle of radius 2, std 0.02.
* `grid25`: 25 equally weighted modes at {-4, -2, 0, 2, 4}^2, std 0.05.
* `mix1d`: 1-D, 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2); its density is known in
  closed form, so divergences to it can be computed by quadrature.

The 2-D sets follow the mode layouts of VEEGAN (Srivastava et al. 2017) and
PacGAN (Lin et al. 2018). Each is registered as a data set with modes (the
final evaluation counts the modes covered), its mode index as the label,
the identity feature extractor and, as metric reference, 'train': draws
from the mixture with a fixed key.
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
    return self.sample_with_labels(key, n)[0]

  def sample_with_labels(self, key: jax.Array, n: int
                         ) -> tuple[jax.Array, jax.Array]:
    """`sample(key, n)` and each sample's mode index (n,) int32, its class
    label: the same draws."""
    k_mode, k_noise = jax.random.split(key)
    idx = jax.random.choice(k_mode, self.num_modes, (n,),
                            p=jnp.asarray(self.weights, jnp.float32))
    noise = jax.random.normal(k_noise, (n,) + self.shape, jnp.float32)
    x = jnp.asarray(self.means, jnp.float32)[idx] + self.std * noise
    return x, idx.astype(jnp.int32)

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


def ring8() -> GaussianMixture:
  angles = 2.0 * np.pi * np.arange(8) / 8
  means = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
  return GaussianMixture('ring8', means, 0.02, _uniform(means))


def grid25() -> GaussianMixture:
  coords = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
  means = np.stack(np.meshgrid(coords, coords, indexing='ij'), -1).reshape(-1, 2)
  return GaussianMixture('grid25', means, 0.05, _uniform(means))


def mix1d() -> GaussianMixture:
  means = np.array([[-2.0], [2.0]])
  return GaussianMixture('mix1d', means, 0.5, _uniform(means))


def _register(make) -> None:
  mixture = make()
  data_lib.register(data_lib.DatasetSpec(
      name=mixture.name, shape=mixture.shape, build=lambda config: make(),
      num_classes=mixture.num_modes, has_modes=True))


for _make in (ring8, grid25, mix1d):
  _register(_make)


def normal1d_density(mean: float, std: float):
  """The density of N(mean, std^2) as a numpy function (for theory tests)."""
  # Imported here: scipy.stats costs a second at start-up, which every command
  # (including one that only reports a bad flag) would otherwise pay.
  from scipy import stats  # pylint: disable=g-import-not-at-top
  return lambda x: stats.norm.pdf(np.asarray(x, np.float64), mean, std)
