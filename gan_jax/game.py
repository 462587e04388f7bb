"""The GAN game: one value function V of both players' parameters.

For the seed's minimax loss,

    V(D, G) = E_{x ~ p_data}[log D(x)] + E_{z ~ p_z}[log(1 - D(G(z)))],

    min_G max_D V(D, G).

`Game.value(g_params, d_params, batch, z)` is the Monte-Carlo estimate of V on
a real batch and a batch of latents, differentiable in both parameter trees.
Each player's objective is a function of its *own* parameters first, so its
gradient is plain `jax.grad` with respect to argument 0 and the other player's
parameters are constants of that derivative:

    grad_D = jax.grad(game.d_objective)(d_params, g_params, batch, z)
    grad_G = jax.grad(game.g_objective)(g_params, d_params, z)

For a fixed G the maximiser of V over all functions D is
D*(x) = p_data(x) / (p_data(x) + p_g(x)), at which
V(D*, G) = -log 4 + 2 JSD(p_data || p_g) (Goodfellow et al. 2014, Thm. 1);
`tests/game_test.py` checks both.

Models with state beyond their parameters (batch-norm running statistics,
spectral-norm power-iteration vectors: every Flax collection but 'params')
carry it next to the parameters, as `g_state` / `d_state` dicts of those
collections (empty for stateless models). Each objective says which player
runs in training mode and which state it returns:

* `d_objective`: D in training mode (spectral-norm vectors advance; the new
  `d_state` is returned); G in training mode for its forward pass (batch norm
  normalises with the batch's statistics) but G's running statistics are not
  kept: G is held fixed during D's step, state included.
* `g_objective`: G in training mode (its new `g_state` is returned); D in
  inference mode with its current state (a G step changes nothing of D).
* `value`, `generate`, `discriminate`: inference mode unless asked otherwise.

Class-conditional games (`gan_jax.conditional`) stay this one value function
with the labels on each side of it: the real batch is the pair (x, y) and
G's latents are the pair (z, y'), so

    V(D, G) = E_{(x, y) ~ p_data}[log D(x, y)]
              + E_{z ~ p_z, y' ~ p_y}[log(1 - D(G(z, y'), y'))],

and D sees G's samples paired with the labels G was asked for. Labels are
data, not parameters: they travel in `batch` and `z`, every signature here
is unchanged, and a caller that passes bare arrays plays the unconditional
game exactly as before. A D with an auxiliary classifier (ACGAN) returns
(out_B, class_logits_BxK); `discriminate` and the losses read `out`, and
with `class_loss_weight` w > 0 D's objective adds
w [CE(real logits, y) + CE(fake logits, y')] and G's w CE(fake logits, y').
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import conditional
from gan_jax.losses import Loss

Array = jax.Array
Params = dict
State = dict
# output_penalty(real_out, fake_out, d_state) -> (penalty, d_state')
OutputPenalty = Callable[[Array, Array, Any], tuple[Array, Any]]


def apply_module(module: nn.Module, params: Params, state: Optional[State],
                 x: Array, train: bool) -> tuple[Array, Optional[State]]:
  """`module(x, train=train)` with `params` and the collections in `state`.

  Returns (output, state'): in training mode a stateful module's collections
  are mutable and state' holds their new values; otherwise state' is `state`.
  """
  variables = {'params': params, **(state or {})}
  if train and state:
    out, new_state = module.apply(variables, x, train=True,
                                  mutable=list(state))
    return out, dict(new_state)
  return module.apply(variables, x, train=train), state


@dataclasses.dataclass(frozen=True, eq=False)
class Game:
  """A generator, a discriminator and the loss that pits them against each other.

  Attributes:
    generator: Linen module, `G(z_BxZ, train) -> x_Bx...` (conditional:
      `G((z, y), train)`).
    discriminator: Linen module, `D(x_Bx..., train) -> out_B` (logits or
      critic values; conditional: `D((x, y), train)`, returning
      `(out_B, class_logits_BxK)` with an auxiliary classifier), or D
      wrapped to judge packs of samples (`gan_jax.packing`: B m samples in,
      B outputs; never conditional).
    loss: the `Loss` giving V and the two players' objectives.
    class_loss_weight: w of the auxiliary classifier's cross-entropy
      (ACGAN, `--acgan_weight`); 0 for a D without one.
  """

  generator: nn.Module
  discriminator: nn.Module
  loss: Loss
  class_loss_weight: float = 0.0

  def generate(self, g_params: Params, z: Array,
               g_state: Optional[State] = None, train: bool = False) -> Array:
    """G(z): generator samples for latents z."""
    return apply_module(self.generator, g_params, g_state, z, train)[0]

  def discriminate(self, d_params: Params, x: Array,
                   d_state: Optional[State] = None,
                   train: bool = False) -> Array:
    """D's raw outputs (logits / critic values) on x, shape (B,) (without
    an auxiliary classifier's class logits)."""
    return adversarial(
        apply_module(self.discriminator, d_params, d_state, x, train)[0])

  def _outputs(self, g_params: Params, d_params: Params, batch: Array,
               z: Array, g_state: Optional[State], d_state: Optional[State],
               g_train: bool, d_train: bool, fake: Optional[Array] = None,
               fake_transform: Optional[Callable[[Array], Array]] = None):
    if fake is None:
      fake, new_g_state = apply_module(self.generator, g_params, g_state, z,
                                       g_train)
    else:
      new_g_state = g_state
    if fake_transform is not None:
      fake = fake_transform(fake)
    fake = conditional.join(fake, conditional.labels_of(z))
    both, new_d_state = apply_module(
        self.discriminator, d_params, d_state,
        jax.tree.map(lambda r, f: jnp.concatenate([r, f], axis=0), batch,
                     fake), d_train)
    # D's outputs on the real rows come first; a packed D (gan_jax.packing)
    # gives one output per pack of samples, so count outputs, not samples.
    rows = jax.tree.leaves(batch)[0].shape[0]
    total = rows + jax.tree.leaves(fake)[0].shape[0]
    n = jax.tree.leaves(both)[0].shape[0] * rows // total
    real_out, fake_out = jax.tree.map(lambda a: a[:n], both), jax.tree.map(
        lambda a: a[n:], both)
    return real_out, fake_out, new_g_state, new_d_state

  def _class_loss(self, out, batch) -> Array:
    """w CE(class logits of `out`, labels of `batch`); 0 without them."""
    if not self.class_loss_weight or not isinstance(out, tuple):
      return jnp.zeros((), jnp.float32)
    return self.class_loss_weight * conditional.class_loss(
        out[1], conditional.labels_of(batch))

  def outputs(self, g_params: Params, d_params: Params, batch: Array,
              z: Array, g_state: Optional[State] = None,
              d_state: Optional[State] = None) -> tuple[Array, Array]:
    """D's raw outputs on the real batch and on G(z), in one pass of D.

    Real and fake samples are concatenated so D runs once on 2B rows (larger,
    better-shaped matrix products) instead of twice on B rows; D has no
    batch-coupled layers, so the outputs are identical. (A spectrally
    normalised D advances its power iteration once per pass, for both.)
    """
    real_out, fake_out = self._outputs(g_params, d_params, batch, z, g_state,
                                       d_state, False, False)[:2]
    return adversarial(real_out), adversarial(fake_out)

  def value(self, g_params: Params, d_params: Params, batch: Array,
            z: Array, g_state: Optional[State] = None,
            d_state: Optional[State] = None) -> Array:
    """V(D, G) estimated on `batch` and `z`: the quantity D ascends."""
    return self.loss.value(*self.outputs(g_params, d_params, batch, z,
                                         g_state, d_state))

  def d_objective(self, d_params: Params, g_params: Params, batch: Array,
                  z: Array, g_state: Optional[State] = None,
                  d_state: Optional[State] = None,
                  fake: Optional[Array] = None,
                  output_penalty: Optional[OutputPenalty] = None
                  ) -> tuple[Array, tuple[Array, Optional[State]]]:
    """D's loss (to minimise) as a function of D's parameters.

    Returns (d_loss, (V, d_state')), d_state' being D's state after this
    training-mode pass. `fake`, when given, is G(z) already computed (G's
    training-mode output), so a caller that needs it too computes it once.
    `output_penalty(real_out, fake_out, d_state') -> (penalty, d_state'')`,
    when given, is a term of D's outputs that joins its loss and may
    advance D's state (LeCam regularisation, `gan_jax.lecam`); the result
    is then (d_loss + penalty, (V, d_state'', penalty)).
    """
    real_out, fake_out, _, new_d_state = self._outputs(
        g_params, d_params, batch, z, g_state, d_state, True, True, fake)
    class_loss = (self._class_loss(real_out, batch)
                  + self._class_loss(fake_out, z))
    real_out, fake_out = adversarial(real_out), adversarial(fake_out)
    d_loss = self.loss.d_loss(real_out, fake_out)
    if self.class_loss_weight:
      d_loss = d_loss + class_loss
    value = self.loss.value(real_out, fake_out)
    if output_penalty is None:
      return d_loss, (value, new_d_state)
    penalty, new_d_state = output_penalty(real_out, fake_out, new_d_state)
    return d_loss + penalty, (value, new_d_state, penalty)

  def g_objective(self, g_params: Params, d_params: Params, z: Array,
                  batch: Optional[Array] = None,
                  g_state: Optional[State] = None,
                  d_state: Optional[State] = None,
                  fake_transform: Optional[Callable[[Array], Array]] = None
                  ) -> tuple[Array, Optional[State]]:
    """G's loss (to minimise) as a function of G's parameters.

    Returns (g_loss, g_state'). D is only evaluated on the real batch when the
    loss compares real and fake outputs (`loss.g_needs_real`). D sees
    `fake_transform(G(z))` when it is given (a differentiable augmentation,
    `gan_jax.augment`).
    """
    g_loss, (new_g_state, _) = self.g_objective_and_outputs(
        g_params, d_params, z, batch, g_state, d_state, fake_transform)
    return g_loss, new_g_state

  def g_objective_and_outputs(self, g_params: Params, d_params: Params,
                              z: Array, batch: Optional[Array] = None,
                              g_state: Optional[State] = None,
                              d_state: Optional[State] = None,
                              fake_transform: Optional[
                                  Callable[[Array], Array]] = None
                              ) -> tuple[Array, tuple[Optional[State], Array]]:
    """`g_objective` whose aux also holds D's raw outputs on G(z):
    (g_loss, (g_state', fake_out)), for metrics read off G's own pass."""
    if self.loss.g_needs_real:
      if batch is None:
        raise ValueError(f'loss {self.loss.name} needs a real batch in g_step')
      real_out, fake_out, new_g_state, _ = self._outputs(
          g_params, d_params, batch, z, g_state, d_state, True, False,
          fake_transform=fake_transform)
      real_out = adversarial(real_out)
    else:
      fake, new_g_state = apply_module(self.generator, g_params, g_state, z,
                                       True)
      if fake_transform is not None:
        fake = fake_transform(fake)
      real_out, fake_out = None, apply_module(
          self.discriminator, d_params, d_state,
          conditional.join(fake, conditional.labels_of(z)), False)[0]
    g_loss = self.loss.g_loss(adversarial(fake_out), real_out)
    if self.class_loss_weight:
      g_loss = g_loss + self._class_loss(fake_out, z)
    return g_loss, (new_g_state, adversarial(fake_out))


def adversarial(out):
  """D's adversarial output (B,): `out` itself, or the first of an
  auxiliary classifier's (out, class_logits)."""
  return out[0] if isinstance(out, tuple) else out
