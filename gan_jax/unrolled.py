"""Unrolled GANs (Metz et al. 2017): G's loss at D after k more D updates.

G would ideally descend its loss at the best response of D,
f(theta_G, theta_D*(theta_G)); the unrolled GAN replaces theta_D* by k steps
of D's own optimizer from the current D, and differentiates through them
(Metz et al. 2017, Sec. 2.1-2.2, eqs. 7-12):

    theta_D^0     = theta_D,
    theta_D^{i+1} = theta_D^i + u(grad_D L_D(theta_G, theta_D^i); s^i),
                    i = 0, ..., k - 1,
    f_k(theta_G, theta_D) = L_G(theta_G, theta_D^k(theta_G, theta_D)),

    theta_G <- theta_G + u_G(d f_k / d theta_G),
    d f_k / d theta_G = dL_G/dtheta_G
                        + dL_G/dtheta_D^k . d theta_D^k / d theta_G.

u is D's optax update and s^i its optimizer state (Adam's moments advance
along the unroll, as in the authors' code), followed by D's weight clipping
when it has one; L_D is D's loss with its gradient penalty; L_G is G's loss
of the configured `Loss` (for `minimax`, Metz et al.'s f), as
`Steps.g_objective_and_outputs` computes it (with `--topk` and
`--augment`). `jax.grad` of f_k differentiates through all k updates, so
G's gradient holds the second term above: how D would react to G's move. D's state is advanced once per
training step: its own update is theta_D^1 of the unroll, not theta_D^k.

How it composes with the update schemes (`updates.register(unrolls=True)`):

* `simultaneous`: Metz et al.'s eqs. 10-11 exactly. Both players move from
  x_t on one batch and z; D's update is theta_D^1, the unroll's first step,
  computed once and taken from it.
* `alternating`: D first makes its `d_steps` updates as usual; G then
  descends f_k at the new D, unrolled k more steps on G's own batch and z.
  With k = 0 both are the plain schemes.

Data: every unrolled step, and G's loss at theta_D^k, use the same real
batch, the same z and the same penalty key, those of the G update's draw.
This is what the authors' reference implementation does (poolio/unrolled_gan:
the unrolled graph is a copy of one D update with the variables replaced,
fed by the same data and noise tensors), and it makes f_k a deterministic
function of (theta_G, theta_D) on that sample, whose gradient is the one
written above.

Differentiating through Adam: Adam divides by sqrt(nu) + eps, and the
derivative of sqrt at nu = 0 is infinite. A D parameter whose gradient is
exactly 0 (a dead ReLU unit) has nu = 0, and reverse mode then forms
0 * inf = NaN in G's gradient. With unrolling, D's Adam therefore takes
optax's `eps_root` (sqrt(nu + eps_root), the option optax provides for
differentiating through the update): `d_adam_options` gives the arguments.
With eps_root = 1e-16 the update changes only where |g| is about 1e-8 or
less, below Adam's own eps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Optional

import jax
import optax

from gan_jax.state import GANState

if TYPE_CHECKING:
  from gan_jax.steps import Steps  # steps imports updates, which imports this

Array = jax.Array
Metrics = dict[str, Array]

# eps_root of D's Adam when unrolling (see the module docstring).
ADAM_EPS_ROOT = 1e-16


def d_adam_options(unroll_steps: int) -> dict[str, float]:
  """The extra `optax.adam` arguments of D's optimizer: `eps_root` when
  G differentiates through D's updates (unroll_steps > 0), else none."""
  return {'eps_root': ADAM_EPS_ROOT} if unroll_steps else {}


class DPlayer(NamedTuple):
  """theta_D^i: D's parameters, optimizer state and model state."""

  params: Any
  opt_state: Any
  model_state: Any


def d_player(state: GANState) -> DPlayer:
  """theta_D^0, D as it stands in `state`."""
  return DPlayer(state.d_params, state.d_opt_state, state.d_state)


def unrolled_g_objective(g_params: Any, steps: Steps, state: GANState,
                         batch: Array, z: Array, key: Optional[Array]):
  """f_k(theta_G, theta_D) = L_G(theta_G, theta_D^k), k = `steps.unroll_steps`.

  theta_D^{i+1} = theta_D^i + u(grad_D L_D(theta_G, theta_D^i); s^i) from
  theta_D^0 = D in `state`, each on `batch`, `z` and penalty `key`, as a
  function of theta_G that `jax.grad` differentiates through the k updates.
  Returns (L_G, (G's new model state, D's outputs on G(z) at theta_D^k,
  theta_D^1, the metrics of D's update to theta_D^1)).
  """

  def d_update(d: DPlayer, _=None) -> tuple[DPlayer, Metrics]:
    # theta_D^{i+1} = theta_D^i + u(grad_D L_D(theta_G, theta_D^i); s^i)
    grads, metrics, model_state = steps.d_grads_and_state(
        d.params, g_params, batch, z, state.g_state, d.model_state, key,
        state.step)
    params, opt_state = steps.d_update(d.params, d.opt_state, grads)
    metrics['d_grad_norm'] = optax.tree.norm(grads)
    return DPlayer(params, opt_state, model_state), metrics

  theta_d_1, d_metrics = d_update(d_player(state))
  theta_d_k, _ = jax.lax.scan(lambda d, _: (d_update(d)[0], None), theta_d_1,
                              None, length=steps.unroll_steps - 1)
  g_loss, (g_state, fake_out) = steps.g_objective_and_outputs(
      g_params, theta_d_k.params, z, batch, state.g_state,
      theta_d_k.model_state, key, state.step)
  return g_loss, (g_state, fake_out, theta_d_1, d_metrics)


def unrolled_g_grads(steps: Steps, state: GANState, batch: Array, z: Array,
                     key: Optional[Array]
                     ) -> tuple[Any, Metrics, Any, DPlayer, Metrics]:
  """d f_k / d theta_G at `state` (second-order term included), G's metrics
  (its loss f_k, and the saturation metrics at theta_D^k for probabilistic
  losses), G's new model state, theta_D^1 and the metrics of that D update."""
  (g_loss, (g_state, fake_out, theta_d_1, d_metrics)), grads = (
      jax.value_and_grad(unrolled_g_objective, has_aux=True)(
          state.g_params, steps, state, batch, z, key))
  return (grads, steps.g_metrics(g_loss, fake_out), g_state, theta_d_1,
          d_metrics)


def g_step(steps: Steps, state: GANState, batch: Array, z: Array,
           key: Optional[Array]) -> tuple[GANState, Metrics]:
  """One G update on d f_k / d theta_G; D is left as it is."""
  grads, metrics, g_state, _, _ = unrolled_g_grads(steps, state, batch, z,
                                                   key)
  metrics['g_grad_norm'] = optax.tree.norm(grads)
  state = steps.apply_grads(state, g_grads=grads)
  return state.replace(g_state=g_state), metrics


def simultaneous_step(steps: Steps, state: GANState, batch: Array, z: Array,
                      key: Optional[Array]) -> tuple[GANState, Metrics]:
  """Metz et al.'s eqs. 10-11: from x_t, theta_G descends f_k and theta_D
  becomes theta_D^1, the unroll's first update."""
  grads, g_metrics, g_state, theta_d_1, d_metrics = unrolled_g_grads(
      steps, state, batch, z, key)
  g_metrics['g_grad_norm'] = optax.tree.norm(grads)
  state = steps.apply_grads(state, g_grads=grads)
  state = state.replace(g_state=g_state, d_params=theta_d_1.params,
                        d_opt_state=theta_d_1.opt_state,
                        d_state=theta_d_1.model_state)
  return state, {**d_metrics, **g_metrics}
