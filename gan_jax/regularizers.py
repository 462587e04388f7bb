"""Gradient penalties on the discriminator, by name.

Each regulariser is a pure function

    penalty(d_apply, d_params, real, fake, key) -> scalar

of D's apply function `d_apply(d_params, x_Bx...) -> out_B` (raw outputs:
logits or critic values), D's parameters, a real and a fake batch of the same
shape, and a PRNG key. It returns the penalty *without* its weight; D
minimises `d_loss + weight * penalty`. Gradients are taken with respect to
D's input, per sample: because D maps each sample to its own output, the
gradient of sum_i D(x_i) with respect to x_i is grad_x D(x_i), so one
backward pass gives all of them (this needs a D without cross-sample coupling
such as batch norm in training mode).

* `wgan_gp` (Gulrajani et al. 2017): at random interpolates
  x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per sample,

      E[(||grad_x D(x_hat)||_2 - 1)^2].

* `r1` (Mescheder et al. 2018) on real data: (1/2) E_x ||grad_x D(x)||^2, so
  `weight` is their gamma.
* `r2` the same on fake data: (1/2) E_z ||grad_x D(G(z))||^2.
* `dragan` (Kodali et al. 2017) around real data: with the perturbation of
  the authors' code, x_hat = x + alpha * delta, delta = c std(x) u,
  u ~ U[0, 1]^d per element, alpha ~ U[0, 1] per sample, c = 1/2 and std(x)
  the standard deviation of the whole real batch,

      E[(||grad_x D(x_hat)||_2 - 1)^2].

For a linear D(x) = w . x + b the gradient is w at every point, so WGAN-GP
and DRAGAN equal (||w|| - 1)^2 and R1, R2 equal ||w||^2 / 2 whatever the
points; `tests/regularizers_test.py` checks these and the quadratic
D(x) = x^T A x (gradient (A + A^T) x) against closed forms.

Conditional D (`gan_jax.conditional`): `real` and `fake` are labelled
pairs (x, y) and D reads (x, y); every gradient is with respect to x only,
with the labels held, interpolates take the real batch's labels and DRAGAN's
points keep theirs.

Lazy regularisation (Karras et al. 2020): applying the penalty only every k
D steps with weight k * weight keeps its expected contribution unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from gan_jax import conditional
from gan_jax import registry

Array = jax.Array
ApplyFn = Callable[[Any, Array], Array]
Penalty = Callable[[ApplyFn, Any, Array, Array, Array], Array]

DRAGAN_SCALE = 0.5


@dataclasses.dataclass(frozen=True)
class Regularizer:
  """A named gradient penalty.

  Attributes:
    name: registry name.
    penalty: `penalty(d_apply, d_params, real, fake, key) -> scalar`.
    doc: one line for listings.
  """

  name: str
  penalty: Penalty
  doc: str = ''

  def __call__(self, d_apply: ApplyFn, d_params: Any, real: Array,
               fake: Array, key: Array) -> Array:
    return self.penalty(d_apply, d_params, real, fake, key)


_REGISTRY: registry.Registry[Regularizer] = registry.Registry('regularizer')
# register(reg) adds a Regularizer under reg.name; names() lists them, sorted;
# get(name) returns one, or a KeyError listing the valid names.
register, names, get = _REGISTRY.register, _REGISTRY.names, _REGISTRY.get


def get_or_none(name: str) -> Optional[Regularizer]:
  """None for 'none' (no penalty), else the regulariser registered as `name`.

  An unknown name is a KeyError listing 'none' and every registered name.
  """
  if name == 'none':
    return None
  if name not in _REGISTRY.entries:
    raise KeyError(f'unknown regularizer {name!r}; valid regularizers: none, '
                   f'{", ".join(names())}')
  return get(name)


def input_gradients(d_apply: ApplyFn, d_params: Any, x: Any) -> Array:
  """grad_x D(x_i) for every sample, shape of x (one backward pass); for a
  labelled pair (x, y), grad_x D(x_i, y_i) with the labels held."""
  x, y = conditional.split(x)
  return jax.grad(
      lambda x: jnp.sum(d_apply(d_params, conditional.join(x, y))))(x)


def squared_norms(g: Array) -> Array:
  """||g_i||^2 over all but the batch axis, shape (B,)."""
  return jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1)


def safe_norm(sq: Array) -> Array:
  """sqrt(sq) with a zero (not NaN) derivative where sq == 0."""
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _per_sample(x: Array, values: Array) -> Array:
  """values of shape (B,) broadcast against x of shape (B, ...)."""
  return values.reshape((x.shape[0],) + (1,) * (x.ndim - 1))


def interpolates(real: Any, fake: Any, key: Array) -> Any:
  """x_hat = eps real + (1 - eps) fake, eps ~ U[0, 1] per sample (labelled:
  with the real batch's labels)."""
  (real, y), (fake, _) = conditional.split(real), conditional.split(fake)
  eps = _per_sample(real, jax.random.uniform(key, (real.shape[0],), real.dtype))
  return conditional.join(eps * real + (1.0 - eps) * fake, y)


def dragan_points(real: Any, key: Array) -> Any:
  """x_hat = x + alpha c std(x) u: DRAGAN's perturbed real points (labelled:
  with their labels)."""
  real, y = conditional.split(real)
  return conditional.join(_perturbed(real, key), y)


def _perturbed(real: Array, key: Array) -> Array:
  k_u, k_alpha = jax.random.split(key)
  delta = DRAGAN_SCALE * jnp.std(real) * jax.random.uniform(
      k_u, real.shape, real.dtype)
  alpha = _per_sample(
      real, jax.random.uniform(k_alpha, (real.shape[0],), real.dtype))
  return real + alpha * delta


def _unit_norm_penalty(d_apply: ApplyFn, d_params: Any, x_hat: Any) -> Array:
  """E[(||grad_x D(x_hat)|| - 1)^2]; x_hat is a constant of the derivative."""
  x_hat = jax.lax.stop_gradient(x_hat)
  norms = safe_norm(squared_norms(input_gradients(d_apply, d_params, x_hat)))
  return jnp.mean(jnp.square(norms - 1.0))


def _half_squared_norm(d_apply: ApplyFn, d_params: Any, x: Any) -> Array:
  """(1/2) E ||grad_x D(x)||^2."""
  x = jax.lax.stop_gradient(x)
  return 0.5 * jnp.mean(squared_norms(input_gradients(d_apply, d_params, x)))


def wgan_gp(d_apply: ApplyFn, d_params: Any, real: Array, fake: Array,
            key: Array) -> Array:
  """E[(||grad D(x_hat)|| - 1)^2] at x_hat = eps real + (1 - eps) fake."""
  return _unit_norm_penalty(d_apply, d_params, interpolates(real, fake, key))


def r1(d_apply: ApplyFn, d_params: Any, real: Array, fake: Array,
       key: Array) -> Array:
  """(1/2) E_x ||grad D(x)||^2 on the real batch."""
  del fake, key
  return _half_squared_norm(d_apply, d_params, real)


def r2(d_apply: ApplyFn, d_params: Any, real: Array, fake: Array,
       key: Array) -> Array:
  """(1/2) E_z ||grad D(G(z))||^2 on the fake batch."""
  del real, key
  return _half_squared_norm(d_apply, d_params, fake)


def dragan(d_apply: ApplyFn, d_params: Any, real: Array, fake: Array,
           key: Array) -> Array:
  """E[(||grad D(x_hat)|| - 1)^2] at DRAGAN's perturbed real points."""
  del fake
  return _unit_norm_penalty(d_apply, d_params, dragan_points(real, key))


WGAN_GP = register(Regularizer(
    'wgan_gp', wgan_gp,
    'E(||grad D(x_hat)|| - 1)^2 at real/fake interpolates (Gulrajani et al.)'))
R1 = register(Regularizer(
    'r1', r1, '1/2 E||grad D(x)||^2 on real data (Mescheder et al.)'))
R2 = register(Regularizer(
    'r2', r2, '1/2 E||grad D(G(z))||^2 on fake data'))
DRAGAN = register(Regularizer(
    'dragan', dragan,
    'E(||grad D(x_hat)|| - 1)^2 around perturbed real data (Kodali et al.)'))
