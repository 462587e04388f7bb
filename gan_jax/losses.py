"""GAN losses as pairs of per-player objectives on the discriminator's raw outputs.

The seed game (Goodfellow et al. 2014) is one value function of both players,

    V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))],      D = sigmoid(logit),

which D ascends with G held fixed and G descends. D's objective is the Bernoulli
cross-entropy of maximum likelihood: with label y = 1 for real and y = 0 for fake,
the log-likelihood of theta = D(x) is y log theta + (1 - y) log(1 - theta), and
summing over a real and a fake batch gives exactly V. So `d_loss = -V` is the
binary cross-entropy with labels 1 (real) and 0 (fake).

Every loss here is a `Loss` with three functions of D's raw outputs (logits for
the probabilistic losses, critic values for the others), averaged over the batch:

* `value(real_out, fake_out)`: the Monte-Carlo value that D ascends;
* `d_loss(real_out, fake_out)`: what D minimises (always `-value` here);
* `g_loss(fake_out, real_out)`: what G minimises. It takes `real_out` too so
  that losses which compare real and fake (relativistic ones) fit the same
  signature; losses that ignore it accept `None`.

All log-probabilities are written with `softplus` (log D = -softplus(-logit),
log(1 - D) = -softplus(logit)), which is exact and finite in float32 for
logits of any magnitude; `sigmoid` is never followed by `log`.

Example:
  >>> import jax.numpy as jnp
  >>> from gan_jax import losses
  >>> loss = losses.get('minimax')
  >>> float(loss.value(jnp.zeros(4), jnp.zeros(4)))  # D = 1/2 everywhere: -log 4
  -1.386...
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Loss:
  """A GAN loss: D's value and both players' objectives on D's raw outputs.

  Attributes:
    name: registry name.
    value: `value(real_out, fake_out) -> scalar`, ascended by D.
    d_loss: `d_loss(real_out, fake_out) -> scalar`, minimised by D.
    g_loss: `g_loss(fake_out, real_out) -> scalar`, minimised by G.
    g_needs_real: whether `g_loss` reads `real_out` (G's step then evaluates
      D on a real batch as well).
    doc: one line for listings.
  """

  name: str
  value: Callable[[Array, Array], Array]
  d_loss: Callable[[Array, Array], Array]
  g_loss: Callable[[Array, Optional[Array]], Array]
  g_needs_real: bool = False
  doc: str = ''


_REGISTRY: dict[str, Loss] = {}


def register(loss: Loss) -> Loss:
  """Adds `loss` to the registry under `loss.name` and returns it."""
  if loss.name in _REGISTRY:
    raise ValueError(f'a loss named {loss.name!r} is already registered')
  _REGISTRY[loss.name] = loss
  return loss


def names() -> list[str]:
  """The registered loss names, sorted."""
  return sorted(_REGISTRY)


def get(name: str) -> Loss:
  """Returns the loss registered as `name`.

  Raises:
    KeyError: with a message listing the valid names, if `name` is unknown.
  """
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(
        f'unknown loss {name!r}; valid losses: {", ".join(names())}') from None


def log_sigmoid(logit: Array) -> Array:
  """log D with D = sigmoid(logit), i.e. -softplus(-logit): stable for any logit."""
  return -jax.nn.softplus(-logit)


def log_one_minus_sigmoid(logit: Array) -> Array:
  """log(1 - D) with D = sigmoid(logit), i.e. -softplus(logit)."""
  return -jax.nn.softplus(logit)


# ----------------------------------------------------------------------------
# The seed's game: minimax value, saturating and non-saturating generators.
# ----------------------------------------------------------------------------


def _bernoulli_value(real_logit: Array, fake_logit: Array) -> Array:
  """V = mean log D(x) + mean log(1 - D(G(z))), the seed's value function."""
  return jnp.mean(log_sigmoid(real_logit)) + jnp.mean(
      log_one_minus_sigmoid(fake_logit))


def _bernoulli_d_loss(real_logit: Array, fake_logit: Array) -> Array:
  """-V: binary cross-entropy with label 1 on real and 0 on fake samples."""
  return -_bernoulli_value(real_logit, fake_logit)


def _saturating_g_loss(fake_logit: Array, real_logit: Optional[Array] = None
                       ) -> Array:
  """The article's G objective, minimised: E_z log(1 - D(G(z))).

  Its gradient with respect to the fake logit f is -sigmoid(f) / n, which
  vanishes as D(G(z)) -> 0, i.e. exactly when D confidently rejects G's samples
  (the saturation noted by Goodfellow et al. 2014).
  """
  del real_logit
  return jnp.mean(log_one_minus_sigmoid(fake_logit))


def _non_saturating_g_loss(fake_logit: Array,
                           real_logit: Optional[Array] = None) -> Array:
  """The non-saturating heuristic: G minimises -E_z log D(G(z)).

  Same fixed point as the minimax game, but the gradient with respect to the
  fake logit is -(1 - sigmoid(f)) / n, which tends to -1/n as D(G(z)) -> 0.
  """
  del real_logit
  return -jnp.mean(log_sigmoid(fake_logit))


MINIMAX = register(Loss(
    name='minimax',
    value=_bernoulli_value,
    d_loss=_bernoulli_d_loss,
    g_loss=_saturating_g_loss,
    doc='the seed game: D ascends V, G descends E log(1 - D(G(z))) (saturating)'))

NON_SATURATING = register(Loss(
    name='non_saturating',
    value=_bernoulli_value,
    d_loss=_bernoulli_d_loss,
    g_loss=_non_saturating_g_loss,
    doc='D as in minimax; G minimises -E log D(G(z))'))


# ----------------------------------------------------------------------------
# Critic losses.
# ----------------------------------------------------------------------------


def _wasserstein_value(real_out: Array, fake_out: Array) -> Array:
  """Kantorovich-Rubinstein estimate E f(x) - E f(G(z)) (Arjovsky et al. 2017)."""
  return jnp.mean(real_out) - jnp.mean(fake_out)


def _critic_g_loss(fake_out: Array, real_out: Optional[Array] = None) -> Array:
  """G minimises -E f(G(z)) (WGAN and the hinge loss of Lim & Ye / Miyato et al.)."""
  del real_out
  return -jnp.mean(fake_out)


WASSERSTEIN = register(Loss(
    name='wasserstein',
    value=_wasserstein_value,
    d_loss=lambda r, f: -_wasserstein_value(r, f),
    g_loss=_critic_g_loss,
    doc='WGAN critic; Lipschitz by --d_weight_clip or a gradient penalty'))


def _hinge_d_loss(real_out: Array, fake_out: Array) -> Array:
  """E relu(1 - f(x)) + E relu(1 + f(G(z)))."""
  return jnp.mean(jax.nn.relu(1.0 - real_out)) + jnp.mean(
      jax.nn.relu(1.0 + fake_out))


HINGE = register(Loss(
    name='hinge',
    value=lambda r, f: -_hinge_d_loss(r, f),
    d_loss=_hinge_d_loss,
    g_loss=_critic_g_loss,
    doc='hinge D loss, G minimises -E f(G(z))'))


def _least_squares_d_loss(real_out: Array, fake_out: Array) -> Array:
  """LSGAN (Mao et al. 2017), a=0, b=1: 1/2 E (f(x) - 1)^2 + 1/2 E f(G(z))^2."""
  return 0.5 * jnp.mean(jnp.square(real_out - 1.0)) + 0.5 * jnp.mean(
      jnp.square(fake_out))


def _least_squares_g_loss(fake_out: Array, real_out: Optional[Array] = None
                          ) -> Array:
  """LSGAN generator, c=1: 1/2 E (f(G(z)) - 1)^2."""
  del real_out
  return 0.5 * jnp.mean(jnp.square(fake_out - 1.0))


LEAST_SQUARES = register(Loss(
    name='least_squares',
    value=lambda r, f: -_least_squares_d_loss(r, f),
    d_loss=_least_squares_d_loss,
    g_loss=_least_squares_g_loss,
    doc='LSGAN with targets a=0, b=1, c=1'))
