"""Pure training steps: `d_step`, `g_step` and the `train_step` of a scheme.

The pieces every update scheme shares: each player's gradient of its own
objective, one optimizer update of each player, gradient penalties, G's EMA
and the step's draws of data and latents. How the two players combine them in
one training step is the update scheme (`Steps.update`), a pure function
registered by name in `gan_jax.updates` (alternating, simultaneous,
extragradient, optimistic, consensus).

    d_step(state, batch, z) -> (state, metrics)   # one update of D
    g_step(state, z, batch=None) -> (state, metrics)   # one update of G
    train_step(state) -> (state, metrics)   # one step of the update scheme

Each step differentiates only its own player's objective with respect to its
own parameters, so a D step leaves G's parameters (and optimizer state)
bit-identical, and vice versa.

`train_step` draws everything it needs from `fold_in(state.rng, state.step)`,
including the real batch (sampled on the device), so it can be the body of a
`lax.scan` and whole chunks of training compile to one program. Update i of
a step draws its batch and z from split(fold_in(key, i)) and its penalty's
randomness from fold_in(fold_in(key, i), 2).

Regularisation: a named gradient penalty R (`gan_jax.regularizers`) joins D's
objective, L_D + lambda R. Lazily (Karras et al. 2020), with `reg_every` = k,
R is applied only at the D updates of every k-th training step, with weight
k lambda, so its expected contribution is unchanged and k - 1 of every k
steps skip its double backward pass.

Generator EMA: with `g_ema_decay` = beta, after every G update
theta_ema <- beta theta_ema + (1 - beta) theta_G (Yazici et al. 2019);
samples and evaluations use theta_ema, with G's running statistics.

Model state (batch norm, spectral norm): D's state advances in D's steps
and G's in G's steps; see `gan_jax.game`.

Class-conditional games (`num_classes` K > 0, `gan_jax.conditional`):
`sample_data` returns the pair (x, y), images and labels of the same
indices, and `sample_z(key)` the pair (z, y'), z ~ N(0, I) from `key`
exactly as unconditionally and y' ~ uniform over the K classes (or
`fake_label_probs`) from `fold_in(key, 1)`; so labels, like the batch, are
functions of (seed, step) and a resumed run draws the same ones.

Data-efficient training, each off by default:

* `augment` (DiffAugment, Zhao et al. 2020; `gan_jax.augment`): every image
  D sees is augmented, the real batch and G(z) in D's update (and the
  gradient penalty on those augmented images, as the authors' R1 does),
  G(z) (and the real batch, for losses that compare) in G's, G's gradient
  flowing through the augmentation. Update i draws it from
  fold_in(fold_in(k_pen, AUGMENT_KEY), 0) for real and (..., 1) for fake
  images, k_pen its penalty key; joint schemes, whose players share one
  batch and z, so augment both players' images alike.
* `lecam_weight` = lambda (Tseng et al. 2021; `gan_jax.lecam`): D adds
  lambda R_LC of its outputs on the (augmented) images; the anchors' moving
  averages advance at every D update and live in D's state.
* `topk` (Sinha et al. 2020; `gan_jax.topk`): G's loss averages over the k
  fakes D rates highest, k annealed with the step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import augment as augment_lib
from gan_jax import conditional
from gan_jax import lecam as lecam_lib
from gan_jax import losses
from gan_jax import packing
from gan_jax import regularizers
from gan_jax import topk as topk_lib
from gan_jax import updates
from gan_jax.game import Game, adversarial, apply_module
from gan_jax.state import GANState
from gan_jax.updates import scheme_optimizer  # pylint: disable=unused-import  # re-exported

Array = jax.Array
Metrics = dict[str, Array]

# The augmentation's key is fold_in(penalty key, AUGMENT_KEY), then 0 for
# real and 1 for fake images.
AUGMENT_KEY = 0x417567
_REAL, _FAKE = 0, 1


def __getattr__(name: str):
  # `UPDATES`: the registered scheme names, read when asked for, so a scheme
  # registered after import is a valid `--update` too.
  if name == 'UPDATES':
    return tuple(updates.names())
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


OPTIMIZERS = ('adam', 'sgd')


def adam(learning_rate: float, beta1: float, beta2: float, **options: float
         ) -> optax.GradientTransformation:
  """One player's optimizer: Adam with its own learning rate (`options`:
  more of `optax.adam`'s arguments, e.g. `unrolled.d_adam_options`)."""
  return optax.adam(learning_rate, b1=beta1, b2=beta2, **options)


def unrolling_schemes() -> list[str]:
  """The update schemes that take `unroll_steps` > 0."""
  return [n for n in updates.names() if updates.get(n).unrolls]


def player_optimizer(kind: str, learning_rate: Any, beta1: Any, beta2: Any,
                     momentum: float = 0.0, injected: bool = False,
                     **adam_options: float) -> optax.GradientTransformation:
  """One player's optimizer before the update scheme's wrapper.

  * `adam` (Kingma & Ba 2015): `optax.adam(learning_rate, b1=beta1,
    b2=beta2)`.
  * `sgd`: SGD with heavy-ball momentum mu = `momentum` (Polyak 1964), as
    optax writes it: v_t = g_t + mu v_{t-1} (v_0 = g_0), x_{t+1} = x_t -
    lr v_t; plain SGD x_{t+1} = x_t - lr g_t when mu is 0. `beta1` and
    `beta2` are unused.

  With `injected`, the learning rate (and Adam's betas) live in the
  optimizer state (`optax.inject_hyperparams`), so they may be traced
  arrays, one per vmapped member (`gan_jax.seeds`); the arithmetic is the
  same. `adam_options` are more of `optax.adam`'s arguments
  (`unrolled.d_adam_options`); SGD has no square root and takes none.
  """
  if kind == 'adam':
    if not injected:
      return adam(learning_rate, beta1, beta2, **adam_options)
    return optax.inject_hyperparams(optax.adam)(
        learning_rate=learning_rate, b1=beta1, b2=beta2, **adam_options)
  if kind == 'sgd':
    mu = float(momentum) or None  # None: no momentum trace in the state
    if not injected:
      return optax.sgd(learning_rate, momentum=mu)
    return optax.inject_hyperparams(optax.sgd, static_args=('momentum',))(
        learning_rate=learning_rate, momentum=mu)
  raise ValueError(f'unknown optimizer {kind!r}; valid: '
                   f'{", ".join(OPTIMIZERS)}')


@dataclasses.dataclass(frozen=True, eq=False)
class Steps:
  """The pure step functions of one game, closed over its static pieces.

  Attributes:
    game: the `Game` (models and loss).
    g_opt, d_opt: the players' optax transformations, built with
      `scheme_optimizer(update, opt)`.
    sample_data: `sample_data(key, n) -> batch`, pure, runs on the device.
    batch_size: D's inputs per batch for both players: samples, or packs of
      m samples when D is packed (`gan_jax.packing`), when each batch holds
      batch_size * m samples.
    z_dim: latent dimension; z ~ N(0, I).
    d_steps: D updates per G update (schemes that use it: `alternating`).
    d_weight_clip: if > 0, D's parameters are clipped to [-c, c] after each D
      update (WGAN weight clipping).
    update: the update scheme, a name in `gan_jax.updates`.
    consensus_weight: gamma of the `consensus` scheme.
    reg: optional named gradient penalty (`gan_jax.regularizers`), weighted
      by `reg_weight`, applied lazily every `reg_every` training steps; it is
      part of D's objective in every scheme and in the joint field.
    g_ema_decay: beta of G's parameter EMA; 0 keeps no average.
    unroll_steps: k of the unrolled GAN (`gan_jax.unrolled`): G descends its
      loss at D after k more D updates, differentiated through them; 0 is
      the plain game. Schemes that support it: `unrolling_schemes()`.
    batch_sharding: if given, every batch the step samples (real data and
      latents) is constrained to it (`gan_jax.parallel.shard_batches`).
    num_classes: K > 0 for a class-conditional game: the latents are
      (z, y') and `sample_data` returns (x, y); 0: unconditional.
    fake_label_probs: the probabilities (K,) of G's labels y'; None:
      uniform.
    augment: DiffAugment policy (names of `gan_jax.augment.POLICIES`) for
      every image D sees; () = none.
    lecam_weight, lecam_decay: lambda of the LeCam term in D's loss (0 =
      none; D's state must hold its averages, `init_state(lecam=True)`) and
      its moving averages' decay.
    topk, topk_gamma, topk_every, topk_min_fraction: top-k G updates, k
      annealed from the batch by gamma every `topk_every` steps down to
      `topk_min_fraction` of it.
  """

  game: Game
  g_opt: optax.GradientTransformation
  d_opt: optax.GradientTransformation
  sample_data: Callable[[Array, int], Array]
  batch_size: int
  z_dim: int
  d_steps: int = 1
  d_weight_clip: float = 0.0
  update: str = 'alternating'
  consensus_weight: float = 0.0
  reg: Optional[regularizers.Regularizer] = None
  reg_weight: float = 0.0
  reg_every: int = 1
  g_ema_decay: float = 0.0
  unroll_steps: int = 0
  batch_sharding: Optional[jax.sharding.Sharding] = None
  num_classes: int = 0
  fake_label_probs: Optional[tuple[float, ...]] = None
  augment: tuple[str, ...] = ()
  lecam_weight: float = 0.0
  lecam_decay: float = lecam_lib.DECAY
  topk: bool = False
  topk_gamma: float = topk_lib.GAMMA
  topk_every: int = 1000
  topk_min_fraction: float = topk_lib.MIN_FRACTION

  def __post_init__(self):
    try:
      scheme = updates.get(self.update)
    except KeyError as e:
      raise ValueError(e.args[0]) from None
    if self.d_steps != 1 and not scheme.uses_d_steps:
      valid = [n for n in updates.names() if updates.get(n).uses_d_steps]
      raise ValueError(f'd_steps={self.d_steps} needs update='
                       f'{"|".join(valid)}; {self.update} takes one D step '
                       'per training step')
    if self.unroll_steps and not scheme.unrolls:
      raise ValueError(f'unroll_steps={self.unroll_steps} needs update='
                       f'{"|".join(unrolling_schemes())}; {self.update} '
                       'has no unrolled G step')

  @property
  def pack(self) -> int:
    """Samples per D input: m of a packed D (`gan_jax.packing`), else 1."""
    return packing.degree(self.game.discriminator)

  # --------------------------------------------------------------------------
  # Sampling.
  # --------------------------------------------------------------------------

  def _constrain(self, x: Array) -> Array:
    if self.batch_sharding is None:
      return x
    return jax.tree.map(
        lambda a: jax.lax.with_sharding_constraint(a, self.batch_sharding), x)

  def sample_batch(self, key: Array) -> Array:
    """A batch of `batch_size` * `pack` real samples (with their labels when
    conditional), split as `batch_sharding`."""
    return self._constrain(self.sample_data(key, self.batch_size * self.pack))

  def sample_z(self, key: Array) -> Array:
    """A batch of latents z ~ N(0, I), shape (batch_size * pack, z_dim)
    (with G's labels y' from `fold_in(key, 1)` when conditional), split as
    `batch_sharding`."""
    n = self.batch_size * self.pack
    z = jax.random.normal(key, (n, self.z_dim), jnp.float32)
    if self.num_classes:
      probs = (None if self.fake_label_probs is None
               else np.asarray(self.fake_label_probs))
      z = (z, conditional.sample_labels(jax.random.fold_in(key, 1), n,
                                        self.num_classes, probs))
    return self._constrain(z)

  def _augment(self, key: Array, images: Array, which: int) -> Array:
    """DiffAugment of real (`which` 0) or fake (1) images from the update's
    penalty key `key`."""
    key = jax.random.fold_in(jax.random.fold_in(key, AUGMENT_KEY), which)
    images, labels = conditional.split(images)  # the images only
    return conditional.join(augment_lib.augment(key, images, self.augment),
                            labels)

  def _lecam(self, real_out: Array, fake_out: Array, d_state: Any):
    """lambda R_LC on D's outputs and D's state with the advanced averages."""
    if not d_state or lecam_lib.COLLECTION not in d_state:
      raise ValueError('lecam_weight > 0 needs the averages in D\'s state: '
                       'build it with init_state(..., lecam=True)')
    r, averages = lecam_lib.penalty(d_state[lecam_lib.COLLECTION], real_out,
                                    fake_out, self.lecam_decay)
    return (self.lecam_weight * r,
            {**d_state, lecam_lib.COLLECTION: averages})

  # --------------------------------------------------------------------------
  # Gradients of each player's objective.
  # --------------------------------------------------------------------------

  def _d_objective(self, d_params: Any, g_params: Any, batch: Array,
                   z: Array, g_state: Any, d_state: Any, key: Optional[Array],
                   reg_weight: float):
    fake = None
    if (self.reg is not None and reg_weight) or self.augment:
      # G(z) once, for D's loss and for the penalty. It stays differentiable
      # in g_params: D's own gradient never flows into G, but the joint
      # field's D-by-G block (consensus, the game Jacobian) reads it.
      fake = self.game.generate(g_params, z, g_state, train=True)
    if self.augment:
      batch = self._augment(key, batch, _REAL)
      fake = self._augment(key, fake, _FAKE)
    extra = {'output_penalty': self._lecam} if self.lecam_weight else {}
    d_loss, aux = self.game.d_objective(
        d_params, g_params, batch, z, g_state, d_state, fake, **extra)
    value, new_d_state = aux[:2]
    metrics = {'d_loss': d_loss, 'value': value}
    if self.lecam_weight:
      metrics['d_lecam'] = aux[2]
      metrics['d_loss'] = d_loss - aux[2]
    if self.reg is None:
      return d_loss, (metrics, new_d_state)
    penalty = jnp.zeros((), d_loss.dtype)  # a step that skips a lazy penalty
    if reg_weight:  # (fake is G(z) here)
      # On the inputs D judges: packs of samples under PacGAN (a packed run
      # is never conditional), the labels held in a conditional one.
      judge, pack = packing.penalty_view(self.game.discriminator)
      d_apply = lambda p, x: adversarial(
          apply_module(judge, p, d_state, x, False)[0])
      fake = conditional.join(fake, conditional.labels_of(z))
      penalty = reg_weight * self.reg(d_apply, d_params, pack(batch),
                                      pack(fake), key)
    metrics['d_penalty'] = penalty
    return d_loss + penalty, (metrics, new_d_state)

  def d_grads_and_state(self, d_params: Any, g_params: Any, batch: Array,
                        z: Array, g_state: Any = None, d_state: Any = None,
                        key: Optional[Array] = None,
                        step: Optional[Array] = None
                        ) -> tuple[Any, Metrics, Any]:
    """grad_D of D's objective (loss plus penalties), its metrics and D's
    new state; G is a constant. `key` feeds the named penalty (required
    with one); `step` decides lazy regularisation: the penalty, weighted
    k lambda, enters at steps divisible by k = `reg_every` only."""
    if self.reg is not None and key is None:
      raise ValueError(f'the {self.reg.name} penalty needs a PRNG key')
    if self.augment and key is None:
      raise ValueError('augmenting D\'s images needs a PRNG key')

    def grads(weight):
      (_, (metrics, new_d_state)), g = jax.value_and_grad(
          self._d_objective, has_aux=True)(d_params, g_params, batch, z,
                                           g_state, d_state, key, weight)
      return g, metrics, new_d_state

    if self.reg is None or self.reg_every == 1 or step is None:
      return grads(self.reg_weight)
    return jax.lax.cond(step % self.reg_every == 0,
                        lambda: grads(self.reg_every * self.reg_weight),
                        lambda: grads(0.0))

  def d_grads(self, d_params: Any, g_params: Any, batch: Array, z: Array,
              g_state: Any = None, d_state: Any = None,
              key: Optional[Array] = None) -> tuple[Any, Metrics]:
    """grad_D of D's objective (loss plus penalties); G is a constant."""
    return self.d_grads_and_state(d_params, g_params, batch, z, g_state,
                                  d_state, key)[:2]

  def g_grads_and_state(self, g_params: Any, d_params: Any, z: Array,
                        batch: Optional[Array] = None, g_state: Any = None,
                        d_state: Any = None, key: Optional[Array] = None,
                        step: Optional[Array] = None
                        ) -> tuple[Any, Metrics, Any]:
    """grad_G of G's objective, its metrics and G's new state; D is a
    constant. For a probabilistic loss the metrics add how confidently D
    rejects G's samples (`losses.saturation_metrics`), from the same pass.
    `key` and `step` as in `g_objective_and_outputs`."""
    (g_loss, (new_g_state, fake_out)), grads = jax.value_and_grad(
        self.g_objective_and_outputs, has_aux=True)(
            g_params, d_params, z, batch, g_state, d_state, key, step)
    return grads, self.g_metrics(g_loss, fake_out), new_g_state

  def g_objective_and_outputs(self, g_params: Any, d_params: Any, z: Array,
                              batch: Optional[Array] = None,
                              g_state: Any = None, d_state: Any = None,
                              key: Optional[Array] = None,
                              step: Optional[Array] = None):
    """G's objective as the steps differentiate it: the game's
    `g_objective_and_outputs`, over the top k fakes (`topk`) and with D's
    images augmented (`augment`). `key` (the update's penalty key) feeds
    the augmentation and `step` the top-k schedule, each required with its
    option. Returns (g_loss, (g_state', D's outputs on G's samples))."""
    game, extra = self.game, {}
    if self.topk:
      if step is None:
        raise ValueError('top-k G updates need the training step')
      k = lambda n: topk_lib.k_at(step, n, self.topk_gamma, self.topk_every,
                                  self.topk_min_fraction)
      game = dataclasses.replace(game, loss=topk_lib.topk_loss(game.loss, k))
    if self.augment:
      if key is None:
        raise ValueError('augmenting D\'s images needs a PRNG key')
      extra['fake_transform'] = lambda x: self._augment(key, x, _FAKE)
      if batch is not None and game.loss.g_needs_real:
        batch = self._augment(key, batch, _REAL)
    return game.g_objective_and_outputs(g_params, d_params, z, batch,
                                        g_state, d_state, **extra)

  def g_metrics(self, g_loss: Array, fake_out: Array) -> Metrics:
    """G's loss, and `losses.saturation_metrics` of D's outputs on G's
    samples when the loss is probabilistic."""
    metrics = {'g_loss': g_loss}
    if self.game.loss.probabilistic:
      metrics.update(losses.saturation_metrics(fake_out))
    return metrics

  def joint_grads_and_state(self, g_params: Any, d_params: Any, batch: Array,
                            z: Array, g_state: Any = None,
                            d_state: Any = None, key: Optional[Array] = None,
                            step: Optional[Array] = None):
    """w(x) = (grad_G L_G, grad_D L_D) at one x, batch and z, both players'
    metrics, and their new model states (g_state, d_state); `key` and `step`
    as in `d_grads_and_state`."""
    d_grads, d_metrics, new_d_state = self.d_grads_and_state(
        d_params, g_params, batch, z, g_state, d_state, key, step)
    g_grads, g_metrics, new_g_state = self.g_grads_and_state(
        g_params, d_params, z, batch if self.game.loss.g_needs_real else None,
        g_state, d_state, key, step)
    return ((g_grads, d_grads), {**d_metrics, **g_metrics},
            (new_g_state, new_d_state))

  def joint_grads(self, g_params: Any, d_params: Any, batch: Array, z: Array,
                  g_state: Any = None, d_state: Any = None,
                  key: Optional[Array] = None
                  ) -> tuple[tuple[Any, Any], Metrics]:
    """w(x) = (grad_G L_G, grad_D L_D), both at the same x, batch and z.

    The joint (simultaneous) gradient of the game; its negative is the vector
    field v(x) whose Jacobian at a stationary point decides local
    convergence (Mescheder et al. 2017).
    """
    return self.joint_grads_and_state(g_params, d_params, batch, z, g_state,
                                      d_state, key)[:2]

  # --------------------------------------------------------------------------
  # Updates.
  # --------------------------------------------------------------------------

  def apply_grads(self, state: GANState, g_grads: Any = None,
                  d_grads: Any = None) -> GANState:
    """One optimizer update of each player whose gradients are given.

    x <- x + u(grads; s), with the optimizer state s advanced; D's parameters
    are then clipped to [-c, c] under weight clipping, and G's EMA follows
    every G update.
    """
    if g_grads is not None:
      u, g_opt_state = self.g_opt.update(g_grads, state.g_opt_state,
                                                state.g_params)
      state = state.replace(
          g_params=optax.apply_updates(state.g_params, u),
          g_opt_state=g_opt_state)
      if self.g_ema_decay:
        beta = self.g_ema_decay
        state = state.replace(g_ema=jax.tree.map(
            lambda e, p: beta * e + (1.0 - beta) * p, state.g_ema,
            state.g_params))
    if d_grads is not None:
      d_params, d_opt_state = self.d_update(state.d_params,
                                            state.d_opt_state, d_grads)
      state = state.replace(d_params=d_params, d_opt_state=d_opt_state)
    return state

  def d_update(self, d_params: Any, d_opt_state: Any, d_grads: Any
               ) -> tuple[Any, Any]:
    """One optimizer update of D alone, pure: psi <- psi + u(grads; s),
    then clipped to [-c, c] under weight clipping; (psi', s')."""
    u, d_opt_state = self.d_opt.update(d_grads, d_opt_state, d_params)
    d_params = optax.apply_updates(d_params, u)
    if self.d_weight_clip > 0:
      c = self.d_weight_clip
      d_params = jax.tree.map(lambda p: jnp.clip(p, -c, c), d_params)
    return d_params, d_opt_state

  def d_step(self, state: GANState, batch: Array, z: Array,
             key: Optional[Array] = None) -> tuple[GANState, Metrics]:
    """One D update on grad_D of D's loss; G is a constant here. `key` feeds
    a random gradient penalty (interpolation weights, say)."""
    grads, metrics, d_state = self.d_grads_and_state(
        state.d_params, state.g_params, batch, z, state.g_state,
        state.d_state, key, state.step)
    metrics['d_grad_norm'] = optax.tree.norm(grads)
    state = self.apply_grads(state, d_grads=grads)
    return state.replace(d_state=d_state), metrics

  def g_step(self, state: GANState, z: Array, batch: Optional[Array] = None,
             key: Optional[Array] = None) -> tuple[GANState, Metrics]:
    """One G update on grad_G of G's loss; D is a constant here. `key`
    feeds the augmentation of D's images."""
    grads, metrics, g_state = self.g_grads_and_state(
        state.g_params, state.d_params, z, batch, state.g_state, state.d_state,
        key, state.step)
    metrics['g_grad_norm'] = optax.tree.norm(grads)
    state = self.apply_grads(state, g_grads=grads)
    return state.replace(g_state=g_state), metrics

  def batches_per_step(self) -> int:
    """Real batches one training step of the scheme consumes (`d_steps` for
    D plus one for G under `alternating` when G's loss compares real and
    fake outputs; one for the joint schemes)."""
    return updates.get(self.update).batches_per_step(self)

  def train_step(self, state: GANState, batches: Optional[Array] = None
                 ) -> tuple[GANState, Metrics]:
    """One step of the update scheme `update`; `step` counts them.

    All randomness comes from key = `fold_in(state.rng, state.step)`: the
    scheme's update i draws from `fold_in(key, i)`. Real batches are drawn
    on the device with `sample_data`, or, for data streamed from the host,
    taken in order from `batches`, shape (`batches_per_step()`, B, ...).
    """
    key = jax.random.fold_in(state.rng, state.step)

    def draw(i: int, real: bool = True):
      k_data, k_z = jax.random.split(jax.random.fold_in(key, i))
      batch = None
      if real:
        batch = batches[i] if batches is not None else self.sample_batch(
            k_data)
      k_reg = jax.random.fold_in(jax.random.fold_in(key, i), 2)
      return batch, self.sample_z(k_z), k_reg

    state, metrics = updates.get(self.update).step(self, state, draw)
    return state.replace(step=state.step + 1), metrics
