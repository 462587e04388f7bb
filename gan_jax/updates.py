"""Update schemes by name: how the two players move in one training step.

Write x = (theta_G, psi_D) for both players' parameters, L_G and L_D for their
objectives (L_D including any penalty), and

    w(x) = (grad_G L_G(x), grad_D L_D(x)),      v(x) = -w(x),

the joint gradient field (v is the vector field of Mescheder et al. 2017,
x' = v(x) in continuous time). With each player's optimizer written as
x <- x + u(w; s) (u = -lr * w for SGD), a scheme decides where w is evaluated
and what is applied:

* `alternating` (Goodfellow et al. 2014): Gauss-Seidel, D then G.
* `simultaneous`: Jacobi, both from w(x_t).
* `extragradient` (Korpelevich 1976; Gidel et al. 2019): both from the
  gradient at a lookahead point.
* `optimistic` (Daskalakis et al. 2018): simultaneous, each update
  extrapolated from the previous one.
* `consensus` (Mescheder et al. 2017): simultaneous on w + gamma J_w^T w.

A scheme is a pure function `step(steps, state, draw) -> (state, metrics)` of
the game's `gan_jax.steps.Steps`, the `GANState` and `draw`, the step's source
of randomness and real data: `draw(i, real=True) -> (batch, z, key)` gives
update i of the step its real batch (None when `real` is False), its latents
and the key of its gradient penalty (which also seeds the augmentation of
D's images, `--augment`), all derived from
`fold_in(fold_in(state.rng, state.step), i)`. The scheme leaves `state.step`
alone; `Steps.train_step` counts it. A scheme that needs its own optimizer
transformation declares it (`optimizer`); callers build each player's
optimizer as `scheme_optimizer(name, opt)`.

Example, a scheme in which only G moves (then valid as `--update=g_only`):

    from gan_jax import updates

    @updates.register('g_only')
    def g_only(steps, state, draw):
      '''One G step per training step; D stays where it started.'''
      batch, z, key = draw(0, real=steps.game.loss.g_needs_real)
      return steps.g_step(state, z, batch, key)
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Optional

import jax
import optax

from gan_jax import registry
from gan_jax import unrolled
from gan_jax.state import GANState

if TYPE_CHECKING:
  from gan_jax.steps import Steps  # steps imports this module

Array = jax.Array
Metrics = dict[str, Array]
# draw(i, real=True) -> (batch or None, z, penalty key): see the docstring.
Draw = Callable[..., tuple[Optional[Array], Array, Optional[Array]]]
Transform = Callable[[optax.GradientTransformation],
                     optax.GradientTransformation]


def _same(opt: optax.GradientTransformation) -> optax.GradientTransformation:
  return opt


def _one_batch(steps: Steps) -> int:
  del steps
  return 1


@dataclasses.dataclass(frozen=True)
class UpdateScheme:
  """One update scheme.

  Attributes:
    name: registry name, the value of `--update`.
    step: `step(steps, state, draw) -> (state, metrics)`; see the module
      docstring.
    optimizer: wraps each player's optimizer for this scheme (the identity
      for most schemes).
    batches_per_step: `batches_per_step(steps) -> int`, the real batches
      `step` draws (the length of the host-streamed `batches`).
    uses_d_steps: whether `step` honours `Steps.d_steps` > 1.
    unrolls: whether `step` honours `Steps.unroll_steps` > 0 (the unrolled
      GAN, `gan_jax.unrolled`).
  """

  name: str
  step: Callable[[Steps, GANState, Draw], tuple[GANState, Metrics]]
  optimizer: Transform = _same
  batches_per_step: Callable[[Steps], int] = _one_batch
  uses_d_steps: bool = False
  unrolls: bool = False


class _InRegistrationOrder(registry.Registry):
  """Names in registration order: the built-ins as listed above, then any
  scheme registered later (in `--help` and in errors)."""

  def names(self) -> list[str]:
    return list(self.entries)


_REGISTRY: registry.Registry[UpdateScheme] = _InRegistrationOrder('update')
names = _REGISTRY.names
get = _REGISTRY.get


def register(name: str, *, optimizer: Transform = _same,
             batches_per_step: Callable[[Steps], int] = _one_batch,
             uses_d_steps: bool = False, unrolls: bool = False) -> Callable:
  """Decorator: registers the decorated `step` function as scheme `name`.

  The other arguments are the `UpdateScheme` attributes; the function is
  returned unchanged. A name is taken once.
  """

  def add(step):
    _REGISTRY.register(UpdateScheme(name, step, optimizer, batches_per_step,
                                    uses_d_steps, unrolls))
    return step

  return add


def scheme_optimizer(name: str, opt: optax.GradientTransformation
                     ) -> optax.GradientTransformation:
  """The optimizer a player needs under scheme `name`: `opt` wrapped as the
  scheme declares (`optimistic(opt)` for `optimistic`, `opt` itself for the
  others)."""
  return get(name).optimizer(opt)


def optimistic(opt: optax.GradientTransformation
               ) -> optax.GradientTransformation:
  """`opt` followed by the optimistic correction u'_t = 2 u_t - u_{t-1}.

  With `optax.sgd(lr)` this is optimistic gradient descent,
  theta_{t+1} = theta_t - lr (2 g_t - g_{t-1}) (optax's
  `optimistic_gradient_descent(lr)`); with Adam it is the optimistic Adam of
  Daskalakis et al. 2018, theta_{t+1} = theta_t - lr (2 r_t - r_{t-1}) with
  r_t Adam's normalised step. The first step is a plain step (u_{-1} = u_0).
  """
  return optax.chain(opt, optax.scale_by_optimistic_gradient(alpha=1.0,
                                                             beta=1.0))


# ----------------------------------------------------------------------------
# Alternating (Gauss-Seidel).
# ----------------------------------------------------------------------------


def _g_reads_real(steps: Steps) -> bool:
  # G's update reads a real batch when its loss compares real and fake
  # outputs, or when it unrolls D's updates (which read one).
  return steps.game.loss.g_needs_real or steps.unroll_steps > 0


def _alternating_batches(steps: Steps) -> int:
  return steps.d_steps + int(_g_reads_real(steps))


@register('alternating', batches_per_step=_alternating_batches,
          uses_d_steps=True, unrolls=True)
def alternating(steps: Steps, state: GANState, draw: Draw
                ) -> tuple[GANState, Metrics]:
  """`d_steps` D updates with G fixed, then one G update at the new D.

  The article's scheme (Goodfellow et al. 2014, Algorithm 1): k = `d_steps`
  times psi <- psi + u_D(grad_D L_D(theta, psi)), each on a fresh batch and
  z, then theta <- theta + u_G(grad_G L_G(theta, psi)) at the new psi
  (Gauss-Seidel). The metrics are those of the last D update and of the G
  update. With `unroll_steps` = k > 0, G descends instead its loss at D
  after k more unrolled D updates from the new psi, on G's batch and z
  (`unrolled.g_step`).
  """
  d_metrics: Metrics = {}
  for i in range(steps.d_steps):
    batch, z, key = draw(i)
    state, d_metrics = steps.d_step(state, batch, z, key)
  batch, z, key = draw(steps.d_steps, real=_g_reads_real(steps))
  if steps.unroll_steps:
    state, g_metrics = unrolled.g_step(steps, state, batch, z, key)
  else:
    state, g_metrics = steps.g_step(state, z, batch, key)
  return state, {**d_metrics, **g_metrics}


# ----------------------------------------------------------------------------
# Joint schemes: both players move once, from one batch and one z.
# ----------------------------------------------------------------------------


def _field_at(steps: Steps, state: GANState, batch: Array, z: Array,
              key: Optional[Array]) -> Callable:
  """x -> (w(x), metrics, new model states) on this step's batch, z and key,
  with both players' model states those of x_t."""

  def field(g_params: Any, d_params: Any):
    return steps.joint_grads_and_state(g_params, d_params, batch, z,
                                       state.g_state, state.d_state, key,
                                       state.step)

  return field


def _apply_joint(steps: Steps, state: GANState, grads: tuple[Any, Any],
                 metrics: Metrics, model_states: tuple[Any, Any]
                 ) -> tuple[GANState, Metrics]:
  """Applies (g_grads, d_grads) to both players from x_t; model state
  advances once, from the pass at x_t. The gradient norms in the metrics are
  those of the gradients applied."""
  g_grads, d_grads = grads
  metrics['g_grad_norm'] = optax.tree.norm(g_grads)
  metrics['d_grad_norm'] = optax.tree.norm(d_grads)
  g_state, d_state = model_states
  state = steps.apply_grads(state, g_grads, d_grads)
  return state.replace(g_state=g_state, d_state=d_state), metrics


@register('simultaneous', unrolls=True)
def simultaneous(steps: Steps, state: GANState, draw: Draw
                 ) -> tuple[GANState, Metrics]:
  """Both players step from w(x_t) on the same batch and z (Jacobi).

  x_{t+1} = x_t + u(w(x_t); s_t). The losses in the metrics are those at
  x_t. With `unroll_steps` = k > 0, G's gradient is that of its loss at D
  after k unrolled D updates from x_t, and D's update is the first of them
  (Metz et al. 2017, `unrolled.simultaneous_step`).
  """
  batch, z, key = draw(0)
  if steps.unroll_steps:
    return unrolled.simultaneous_step(steps, state, batch, z, key)
  grads, metrics, model_states = _field_at(steps, state, batch, z, key)(
      state.g_params, state.d_params)
  return _apply_joint(steps, state, grads, metrics, model_states)


@register('extragradient')
def extragradient(steps: Steps, state: GANState, draw: Draw
                  ) -> tuple[GANState, Metrics]:
  """Both players step from x_t with the gradient at a lookahead point.

  Extragradient (Korpelevich 1976; for GANs Gidel et al. 2019): the
  lookahead x_{t+1/2} = x_t + u(w(x_t); s_t), whose optimizer state is
  discarded, then x_{t+1} = x_t + u(w(x_{t+1/2}); s_t) from the same
  optimizer state, batch and z. On a bilinear game, where simultaneous
  steps spiral out, it converges. The losses in the metrics are those at x_t.
  """
  batch, z, key = draw(0)
  field = _field_at(steps, state, batch, z, key)
  grads, metrics, model_states = field(state.g_params, state.d_params)
  half = steps.apply_grads(state, *grads)
  grads, _, _ = field(half.g_params, half.d_params)
  return _apply_joint(steps, state, grads, metrics, model_states)


@register('optimistic', optimizer=optimistic)
def optimistic_step(steps: Steps, state: GANState, draw: Draw
                    ) -> tuple[GANState, Metrics]:
  """Simultaneous steps with each update extrapolated: 2 u_t - u_{t-1}.

  Optimistic mirror descent (Daskalakis et al. 2018, "Training GANs with
  Optimism"): x_{t+1} = x_t + 2 u_t - u_{t-1} with u_t = u(w(x_t); s_t);
  for SGD, x_{t+1} = x_t - lr (2 w(x_t) - w(x_{t-1})); for Adam, optimistic
  Adam. The extrapolation is the scheme's optimizer (`optimistic(opt)`),
  and the previous update lives in the optax state, so the step itself is
  `simultaneous`.
  """
  return simultaneous(steps, state, draw)


@register('consensus')
def consensus(steps: Steps, state: GANState, draw: Draw
              ) -> tuple[GANState, Metrics]:
  """Simultaneous steps on w + gamma J_w^T w (consensus optimization).

  Mescheder et al. 2017 ("The Numerics of GANs"): both players add
  gamma/2 ||w(x)||^2 to their objectives, gamma = `Steps.consensus_weight`,
  so each steps on w + gamma grad(1/2 ||w||^2) = w + gamma J_w^T w. J_w^T w
  is one vector-Jacobian product of the field with itself (`jax.vjp`), never
  a materialised Jacobian. The metrics add `field_sq_norm` = ||w(x_t)||^2.
  """
  batch, z, key = draw(0)
  field = _field_at(steps, state, batch, z, key)
  (g_grads, d_grads), metrics, model_states = field(state.g_params,
                                                    state.d_params)
  w, vjp = jax.vjp(lambda params: field(*params)[0],
                   (state.g_params, state.d_params))
  (g_reg, d_reg), = vjp(w)  # J_w^T w = grad of 1/2 ||w||^2
  gamma = steps.consensus_weight
  g_grads = jax.tree.map(lambda a, b: a + gamma * b, g_grads, g_reg)
  d_grads = jax.tree.map(lambda a, b: a + gamma * b, d_grads, d_reg)
  metrics['field_sq_norm'] = optax.tree.norm(w, squared=True)
  return _apply_joint(steps, state, (g_grads, d_grads), metrics, model_states)
