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
import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from gan_jax import registry

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
    probabilistic: whether D's raw output is the logit of a probability
      D(x) = sigmoid(out) that x is real, against which G's samples can
      saturate; G's step then logs `saturation_metrics`.
  """

  name: str
  value: Callable[[Array, Array], Array]
  d_loss: Callable[[Array, Array], Array]
  g_loss: Callable[[Array, Optional[Array]], Array]
  g_needs_real: bool = False
  doc: str = ''
  probabilistic: bool = False


_REGISTRY: registry.Registry[Loss] = registry.Registry('loss', plural='losses')
# register(loss) adds a Loss under loss.name; names() lists them, sorted;
# get(name) returns one, or a KeyError listing the valid names.
register, names, get = _REGISTRY.register, _REGISTRY.names, _REGISTRY.get


# D(G(z)) below this counts as saturated: D rejects the sample with
# confidence 1 - 1e-3, where the saturating G loss's gradient with respect
# to the logit, -D(G(z)) / n, has all but vanished.
SATURATION_THRESHOLD = 1e-3
SATURATION_METRICS = ('d_fake_prob', 'd_fake_saturated_frac')


def saturation_metrics(fake_logit: Array) -> dict[str, Array]:
  """How confidently D rejects G's samples, for probabilistic losses.

  With D(G(z)) = sigmoid(logit) over the batch of fakes (of packs, under
  PacGAN):

      d_fake_prob           = mean D(G(z)),
      d_fake_saturated_frac = fraction of fakes with D(G(z)) < 1e-3
                              (`SATURATION_THRESHOLD`).

  Near 0 both mean D wins: the saturating (minimax) G loss
  E log(1 - D(G(z))) then has gradient -D(G(z)) / n with respect to each
  fake logit, which vanishes (Goodfellow et al. 2014, Sec. 3).
  """
  prob = jax.nn.sigmoid(fake_logit.astype(jnp.float32))
  return {'d_fake_prob': jnp.mean(prob),
          'd_fake_saturated_frac': jnp.mean(
              (prob < SATURATION_THRESHOLD).astype(jnp.float32))}


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


def _bernoulli_game(name: str, g_loss, doc: str) -> Loss:
  """D plays the article's Bernoulli likelihood; only G's loss differs."""
  return register(Loss(name=name, value=_bernoulli_value,
                       d_loss=_bernoulli_d_loss, g_loss=g_loss, doc=doc,
                       probabilistic=True))


MINIMAX = _bernoulli_game(
    'minimax', _saturating_g_loss,
    'the seed game: D ascends V, G descends E log(1 - D(G(z))) (saturating)')
NON_SATURATING = _bernoulli_game(
    'non_saturating', _non_saturating_g_loss,
    'D as in minimax; G minimises -E log D(G(z))')


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


def _register_from_d_loss(name: str, d_loss: Callable, g_loss: Callable,
                          doc: str, g_needs_real: bool = False) -> Loss:
  """A loss whose value (what D ascends) is minus D's loss: V = -d_loss."""
  return register(Loss(name=name, value=lambda r, f: -d_loss(r, f),
                       d_loss=d_loss, g_loss=g_loss, g_needs_real=g_needs_real,
                       doc=doc))


HINGE = _register_from_d_loss('hinge', _hinge_d_loss, _critic_g_loss,
                              'hinge D loss, G minimises -E f(G(z))')


def _least_squares_d_loss(real_out: Array, fake_out: Array) -> Array:
  """LSGAN (Mao et al. 2017), a=0, b=1: 1/2 E (f(x) - 1)^2 + 1/2 E f(G(z))^2."""
  return 0.5 * jnp.mean(jnp.square(real_out - 1.0)) + 0.5 * jnp.mean(
      jnp.square(fake_out))


def _least_squares_g_loss(fake_out: Array, real_out: Optional[Array] = None
                          ) -> Array:
  """LSGAN generator, c=1: 1/2 E (f(G(z)) - 1)^2."""
  del real_out
  return 0.5 * jnp.mean(jnp.square(fake_out - 1.0))


LEAST_SQUARES = _register_from_d_loss(
    'least_squares', _least_squares_d_loss, _least_squares_g_loss,
    'LSGAN with targets a=0, b=1, c=1')


# ----------------------------------------------------------------------------
# f-GAN (Nowozin, Cseke & Tomioka 2016).
# ----------------------------------------------------------------------------
#
# For a convex f with f(1) = 0, the f-divergence D_f(P || Q) = E_Q f(p/q) has
# the variational lower bound (Nguyen, Wainwright & Jordan 2010)
#
#     D_f(P || Q) >= sup_T  E_P[T(x)] - E_Q[f*(T(x))],
#
# with f*(t) = sup_u (u t - f(u)) the convex conjugate, attained at
# T*(x) = f'(p(x) / q(x)). f-GAN writes T = g_f(v) with v the raw output of D
# and g_f an output activation that maps the reals into dom f*. D ascends
#
#     F(D, G) = E_x[g_f(v(x))] - E_z[f*(g_f(v(G(z))))],
#
# and G, as recommended by Nowozin et al. (Sec. 3.2), minimises
# -E_z[g_f(v(G(z)))] (the non-saturating form, the same fixed point). For
# every divergence below the composition f*(g_f(v)) is written in closed form
# so that it is exact for any float32 v.


@dataclasses.dataclass(frozen=True)
class FDivergence:
  """The pieces of one f-GAN divergence (Nowozin et al. 2016, Table 6).

  Attributes:
    name: short name, used as `fgan_<name>` in the loss registry.
    activation: g_f(v), the output activation into dom f*.
    conjugate_of_activation: f*(g_f(v)), simplified in closed form.
    doc: the generator f(u) of D_f(P || Q) = E_Q f(p/q).
  """

  name: str
  activation: Callable[[Array], Array]
  conjugate_of_activation: Callable[[Array], Array]
  doc: str

  def value(self, real_out: Array, fake_out: Array) -> Array:
    """F = mean g_f(v(x)) - mean f*(g_f(v(G(z)))), the bound D ascends."""
    return (jnp.mean(self.activation(real_out))
            - jnp.mean(self.conjugate_of_activation(fake_out)))

  def g_loss(self, fake_out: Array, real_out: Optional[Array] = None) -> Array:
    """-mean g_f(v(G(z))), the generator loss of Nowozin et al. (Sec. 3.2)."""
    del real_out
    return -jnp.mean(self.activation(fake_out))


# math, not jnp: importing a module must not start a JAX backend (multi-host
# runs call jax.distributed.initialize() after the imports, before any JAX work).
_LOG2 = math.log(2.0)

F_DIVERGENCES: dict[str, FDivergence] = {
    d.name: d for d in (
        # f(u) = u log u;  g_f(v) = v;  f*(t) = exp(t - 1).
        FDivergence('kl', lambda v: v, lambda v: jnp.exp(v - 1.0),
                    'KL(P || Q): f(u) = u log u'),
        # f(u) = -log u;  g_f(v) = -exp(-v);  f*(t) = -1 - log(-t),
        # so f*(g_f(v)) = v - 1.
        FDivergence('reverse_kl', lambda v: -jnp.exp(-v), lambda v: v - 1.0,
                    'KL(Q || P): f(u) = -log u'),
        # f(u) = u log u - (u + 1) log((u + 1) / 2), i.e. D_f = 2 JSD;
        # g_f(v) = log 2 - log(1 + exp(-v));  f*(t) = -log(2 - exp(t)),
        # so f*(g_f(v)) = softplus(v) - log 2.
        FDivergence('js', lambda v: _LOG2 + log_sigmoid(v),
                    lambda v: jax.nn.softplus(v) - _LOG2,
                    '2 JSD(P, Q): f(u) = u log u - (u + 1) log((u + 1) / 2)'),
        # f(u) = (u - 1)^2;  g_f(v) = v;  f*(t) = t^2 / 4 + t.
        FDivergence('pearson', lambda v: v, lambda v: 0.25 * v * v + v,
                    'Pearson chi^2(P || Q): f(u) = (u - 1)^2'),
        # f(u) = (sqrt(u) - 1)^2;  g_f(v) = 1 - exp(-v);  f*(t) = t / (1 - t),
        # so f*(g_f(v)) = exp(v) - 1.
        FDivergence('hellinger', lambda v: -jnp.expm1(-v), jnp.expm1,
                    'squared Hellinger: f(u) = (sqrt(u) - 1)^2'),
    )
}


def _register_fgan(div: FDivergence) -> Loss:
  # For the Jensen-Shannon divergence g_f(v) = log 2 + log sigmoid(v): v is
  # the logit of the GAN discriminator D = sigmoid(v), and F = V + log 4
  # (Nowozin et al. 2016, Sec. 2.4), so its D is a probability too.
  return register(Loss(
      name=f'fgan_{div.name}',
      value=div.value,
      d_loss=lambda r, f: -div.value(r, f),
      g_loss=div.g_loss,
      doc=f'f-GAN, {div.doc}; G minimises -E g_f(v(G(z)))',
      probabilistic=div.name == 'js'))


FGAN_KL, FGAN_REVERSE_KL, FGAN_JS, FGAN_PEARSON, FGAN_HELLINGER = (
    _register_fgan(F_DIVERGENCES[n])
    for n in ('kl', 'reverse_kl', 'js', 'pearson', 'hellinger'))


# ----------------------------------------------------------------------------
# Relativistic average losses (Jolicoeur-Martineau 2019).
# ----------------------------------------------------------------------------
#
# D's raw output C is made relative to the other batch's mean:
#     r~ = C(x) - E C(G(z)),      f~ = C(G(z)) - E C(x).
# D wants real more realistic than the average fake (r~ large) and fake less
# realistic than the average real (f~ small); G wants the opposite, so G's
# loss is D's loss with the roles of real and fake swapped, and it reads D's
# real outputs (`g_needs_real`).


def _relative(real_out: Array, fake_out: Array) -> tuple[Array, Array]:
  return real_out - jnp.mean(fake_out), fake_out - jnp.mean(real_out)


def _ra_sgan_d_loss(real_out: Array, fake_out: Array) -> Array:
  """-E log sigmoid(r~) - E log(1 - sigmoid(f~))."""
  r, f = _relative(real_out, fake_out)
  return -jnp.mean(log_sigmoid(r)) - jnp.mean(log_one_minus_sigmoid(f))


def _ra_lsgan_d_loss(real_out: Array, fake_out: Array) -> Array:
  """E (r~ - 1)^2 + E (f~ + 1)^2."""
  r, f = _relative(real_out, fake_out)
  return jnp.mean(jnp.square(r - 1.0)) + jnp.mean(jnp.square(f + 1.0))


def _ra_hinge_d_loss(real_out: Array, fake_out: Array) -> Array:
  """E relu(1 - r~) + E relu(1 + f~)."""
  r, f = _relative(real_out, fake_out)
  return jnp.mean(jax.nn.relu(1.0 - r)) + jnp.mean(jax.nn.relu(1.0 + f))


def _register_relativistic(name: str, d_loss: Callable, doc: str) -> Loss:

  def g_loss(fake_out: Array, real_out: Optional[Array] = None) -> Array:
    if real_out is None:
      raise ValueError(f'loss {name} compares real and fake outputs; its '
                       'g_loss needs real_out')
    return d_loss(fake_out, real_out)

  return _register_from_d_loss(name, d_loss, g_loss, doc, g_needs_real=True)


RA_SGAN = _register_relativistic(
    'rasgan', _ra_sgan_d_loss,
    'relativistic average standard GAN; G swaps real and fake')
RA_LSGAN = _register_relativistic(
    'ralsgan', _ra_lsgan_d_loss,
    'relativistic average LSGAN; G swaps real and fake')
RA_HINGE = _register_relativistic(
    'rahinge', _ra_hinge_d_loss,
    'relativistic average hinge; G swaps real and fake')
