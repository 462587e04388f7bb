"""Update schemes: on the Dirac-WGAN every scheme is a linear map whose
iterates are known in closed form; on a nonlinear two-parameter game whose
field and J_w^T w are written out here every scheme, configured and scanned,
follows a hand recursion; on a toy MLP GAN simultaneous and extragradient
steps are checked against compositions of the game's gradients, and every
scheme is pure and scan-able (chunking-invariant)."""

import dataclasses
import functools
import types
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import config as config_lib
from gan_jax import data as data_lib
from gan_jax import dirac
from gan_jax import loop
from gan_jax import losses
from gan_jax import models as models_lib
from gan_jax import regularizers
from gan_jax import steps as steps_lib
from gan_jax import train
from gan_jax import updates
from gan_jax.data import toy
from gan_jax.game import Game
from gan_jax.models import mlp
from gan_jax.state import init_state

import testing

H = 0.2  # step size
GAMMA = 1.0  # consensus weight
A = np.array([[0.0, 1.0], [-1.0, 0.0]])  # Dirac-WGAN field: v(x) = A x


def _wgan_reference(update, num_steps, x0=(1.0, 1.0)):
  """Iterates of each scheme on v(theta, psi) = (psi, -theta), in float64.

  Dirac-WGAN: L_G = -psi theta, L_D = psi theta, so w = (-psi, theta) = -A x
  and the Jacobian of w is -A; SGD: x <- x - H * (what the player descends).
  """
  x = np.array(x0, np.float64)
  path = [x.copy()]
  prev_v = A @ x
  for _ in range(num_steps):
    if update == 'simultaneous':
      x = x + H * (A @ x)
    elif update == 'alternating':
      psi = x[1] + H * (-x[0])  # D first ...
      x = np.array([x[0] + H * psi, psi])  # ... then G at the new D
    elif update == 'extragradient':
      half = x + H * (A @ x)
      x = x + H * (A @ half)
    elif update == 'optimistic':
      v = A @ x
      x = x + H * (2 * v - prev_v)
      prev_v = v
    elif update == 'consensus':
      w = -A @ x
      x = x - H * (w + GAMMA * (-A).T @ w)
    path.append(x.copy())
  return np.array(path)


class DiracWassersteinTest(parameterized.TestCase):

  @parameterized.parameters(*steps_lib.UPDATES)
  def test_trajectory_matches_closed_form_iteration(self, update):
    setup = dirac.DiracSetup(loss='wasserstein', update=update,
                             learning_rate=H, consensus_weight=GAMMA,
                             num_steps=200)
    path = dirac.simulate(setup)
    expected = _wgan_reference(update, 200)
    # float32 rounding grows with |x|: compare each iterate relative to |x_t|.
    scale = np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(path / scale, expected / scale, atol=1e-5)

  def test_spectral_radius_decides_convergence(self):
    # Simultaneous: x <- (I + hA) x, modulus sqrt(1 + h^2) > 1 (spirals out).
    # Extragradient: (I + hA + h^2 A^2), modulus |1 - h^2 + ih| < 1.
    # Consensus: (1 - h gamma) I + hA, modulus |1 - h gamma + ih| < 1.
    # Alternating: determinant 1, eigenvalues on the unit circle (cycles).
    radius = {'simultaneous': abs(1 + 1j * H),
              'extragradient': abs(1 - H**2 + 1j * H),
              'consensus': abs(1 - H * GAMMA + 1j * H)}
    for update, rho in radius.items():
      path = dirac.simulate(dirac.DiracSetup(
          loss='wasserstein', update=update, learning_rate=H,
          consensus_weight=GAMMA, num_steps=100))
      np.testing.assert_allclose(np.linalg.norm(path[100]),
                                 np.sqrt(2.0) * rho**100, rtol=1e-3)
    path = dirac.simulate(dirac.DiracSetup(
        loss='wasserstein', update='alternating', num_steps=500))
    # The alternating map conserves theta^2 + psi^2 - h theta psi exactly.
    invariant = path[:, 0]**2 + path[:, 1]**2 - H * path[:, 0] * path[:, 1]
    np.testing.assert_allclose(invariant, 2.0 - H, rtol=1e-4)


def _toy(update='simultaneous', loss='non_saturating', opt=None,
         consensus_weight=0.5):
  data = toy.ring8()
  game = Game(mlp.Generator(hidden=(16,), out_dim=2),
              mlp.Discriminator(hidden=(16,)), losses.get(loss))
  opt = opt or optax.sgd(0.05)
  opt = steps_lib.scheme_optimizer(update, opt)
  steps = steps_lib.Steps(game=game, g_opt=opt, d_opt=opt,
                          sample_data=data.sample, batch_size=32, z_dim=4,
                          update=update, consensus_weight=consensus_weight)
  state = init_state(game, opt, opt, jax.random.PRNGKey(0), z_dim=4,
                     data_shape=(2,))
  batch = data.sample(jax.random.PRNGKey(1), 32)
  z = steps.sample_z(jax.random.PRNGKey(2))
  return steps, state, batch, z


def _scheme_step(steps, batch, z):
  """`state -> (state, metrics)`: one step of `steps.update` with every
  update drawing this `batch` and `z` (no penalty key)."""
  draw = lambda i, real=True: (batch if real else None, z, None)
  return lambda state: updates.get(steps.update).step(steps, state, draw)


def _assert_trees_close(test, a, b, rtol=1e-5, atol=1e-6):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  test.assertEqual(len(la), len(lb))
  for x, y in zip(la, lb):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol,
                               atol=atol)


class PenaltyKeepsGDependenceTest(absltest.TestCase):

  def test_d_gradient_depends_on_g_as_without_the_penalty(self):
    """R1 reads real data only, so d/dG of D's gradient is the same with and
    without it; the consensus term needs that block of the Jacobian."""
    plain, state, batch, z = _toy()
    penalised = dataclasses.replace(plain, reg=regularizers.get('r1'),
                                    reg_weight=10.0)
    key = jax.random.PRNGKey(3)
    direction = jax.tree.map(jnp.ones_like, state.g_params)

    def d_by_g(steps):
      def d_grad_sum(g_params):
        grads, _ = steps.d_grads(state.d_params, g_params, batch, z, key=key)
        return sum(jnp.sum(g) for g in jax.tree.leaves(grads))
      return jax.jvp(d_grad_sum, (state.g_params,), (direction,))[1]

    expected = d_by_g(plain)
    self.assertGreater(abs(float(expected)), 1e-4)
    np.testing.assert_allclose(float(d_by_g(penalised)), float(expected),
                               rtol=1e-4)


class NetworkSchemesTest(parameterized.TestCase):

  def test_simultaneous_is_both_single_steps_from_the_same_state(self):
    steps, state, batch, z = _toy('simultaneous')
    new, _ = jax.jit(_scheme_step(steps, batch, z))(state)
    d_only, _ = steps.d_step(state, batch, z)
    g_only, _ = steps.g_step(state, z)
    _assert_trees_close(self, new.d_params, d_only.d_params)
    _assert_trees_close(self, new.g_params, g_only.g_params)

  def test_extragradient_steps_from_the_lookahead_gradient(self):
    steps, state, batch, z = _toy('extragradient')
    new, _ = jax.jit(_scheme_step(steps, batch, z))(state)
    lr = 0.05
    gd = lambda d, g: jax.grad(lambda d: steps.game.d_objective(
        d, g, batch, z)[0])(d)
    gg = lambda g, d: jax.grad(steps.game.g_objective, has_aux=True)(
        g, d, z)[0]
    sub = lambda p, q: jax.tree.map(lambda a, b: a - lr * b, p, q)
    g_half = sub(state.g_params, gg(state.g_params, state.d_params))
    d_half = sub(state.d_params, gd(state.d_params, state.g_params))
    _assert_trees_close(self, new.g_params,
                        sub(state.g_params, gg(g_half, d_half)))
    _assert_trees_close(self, new.d_params,
                        sub(state.d_params, gd(d_half, g_half)))

  def test_only_optimistic_declares_an_optimizer_wrapper(self):
    sgd = optax.sgd(0.05)
    for update in steps_lib.UPDATES:
      if update != 'optimistic':
        self.assertIs(steps_lib.scheme_optimizer(update, sgd), sgd, update)
    # The declared wrapper is what makes `optimistic` differ from
    # `simultaneous` (whose step it shares): two steps from one state.
    runs = {}
    for update in ('simultaneous', 'optimistic'):
      steps, state, batch, z = _toy(update)
      step = jax.jit(_scheme_step(steps, batch, z))
      runs[update] = step(step(state)[0])[0]
    wrapped = runs['optimistic']
    diff = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(
        jax.tree.leaves(wrapped.g_params),
        jax.tree.leaves(runs['simultaneous'].g_params))]
    self.assertGreater(max(diff), 1e-6)

  def test_relativistic_loss_uses_the_real_batch_in_every_scheme(self):
    steps, state, batch, z = _toy('simultaneous', loss='rasgan')
    (wg, _), metrics = steps.joint_grads(state.g_params, state.d_params,
                                         batch, z)
    expected, _ = jax.grad(steps.game.g_objective, has_aux=True)(
        state.g_params, state.d_params, z, batch)
    _assert_trees_close(self, wg, expected)
    self.assertIn('g_loss', metrics)

  def test_unknown_update_and_d_steps_give_one_line_errors(self):
    steps, _, _, _ = _toy('simultaneous')
    with self.assertRaisesRegex(ValueError, 'valid updates: alternating, '
                                'simultaneous, extragradient, optimistic, '
                                'consensus'):
      dataclasses.replace(steps, update='gauss_seidel')
    with self.assertRaisesRegex(ValueError, 'needs update=alternating'):
      dataclasses.replace(steps, d_steps=2)


TINY = config_lib.Config(
    workdir='/tmp/unused', dataset='ring8', loss='hinge', model='mlp',
    batch_size=16, z_dim=2, g_hidden=(8,), d_hidden=(8,), num_steps=6,
    log_every=6, g_lr=1e-3, d_lr=1e-3, seed=1)


# A game whose field is written in closed form here, with no package code:
# G(z) = tanh(theta) for every z, D(x) = <psi, x>, the real data a point mass
# at M, the Wasserstein loss, so
#   L_D = <psi, tanh(theta)> - <psi, M>,   L_G = -<psi, tanh(theta)>,
#   w = (w_G, w_D) = (-psi * (1 - s^2), s - M),   s = tanh(theta),
# and grad of 1/2 ||w||^2 (consensus: J_w^T w) is, componentwise,
#   d/dtheta = w_G * 2 psi s (1 - s^2) + w_D * (1 - s^2),
#   d/dpsi   = -w_G * (1 - s^2).
THETA0 = np.array([0.8, -0.5])
PSI0 = np.array([0.4, 0.7])
M = np.array([0.3, -0.2])
LR = 0.1
CONSENSUS = 0.3


class _TanhGenerator(nn.Module):
  @nn.compact
  def __call__(self, z, train=True):
    theta = self.param('theta', lambda key: jnp.asarray(THETA0, jnp.float32))
    return jnp.broadcast_to(jnp.tanh(theta), (z.shape[0], 2))


class _LinearCritic(nn.Module):
  @nn.compact
  def __call__(self, x, train=True):
    psi = self.param('psi', lambda key: jnp.asarray(PSI0, jnp.float32))
    return x @ psi


def _field(theta, psi):
  s = np.tanh(theta)
  return -psi * (1 - s**2), s - M


def _half_sq_norm_grad(theta, psi):
  s = np.tanh(theta)
  w_g, w_d = _field(theta, psi)
  return (w_g * 2 * psi * s * (1 - s**2) + w_d * (1 - s**2),
          -w_g * (1 - s**2))


def _hand_recursion(update, num_steps):
  """float64 iterates (theta_t, psi_t), t = 0..num_steps, of SGD with rate LR
  under `update`, and each step's (d_loss, g_loss, d_grad_norm): the losses
  at x_t (G's, under `alternating`, after the D update)."""
  theta, psi = THETA0.copy(), PSI0.copy()
  path, metrics = [(theta, psi)], []
  prev = None  # the previous step's applied SGD direction (optimistic)
  for _ in range(num_steps):
    s = np.tanh(theta)
    losses = (psi @ (s - M), -psi @ s)
    w_g, w_d = _field(theta, psi)
    if update == 'alternating':
      psi = psi - LR * w_d  # D first, then G at the new D (its loss too)
      d_applied, losses = w_d, (losses[0], -psi @ s)
      theta = theta - LR * _field(theta, psi)[0]
    else:
      if update == 'extragradient':
        w_g, w_d = _field(theta - LR * w_g, psi - LR * w_d)
      elif update == 'consensus':
        r_g, r_d = _half_sq_norm_grad(theta, psi)
        w_g, w_d = w_g + CONSENSUS * r_g, w_d + CONSENSUS * r_d
      d_applied = w_d
      if update == 'optimistic':  # 2 w_t - w_{t-1}, w_{-1} = w_0
        prev = prev or (w_g, w_d)
        (w_g, w_d), prev = (2 * w_g - prev[0], 2 * w_d - prev[1]), (w_g, w_d)
      theta, psi = theta - LR * w_g, psi - LR * w_d
    path.append((theta, psi))
    metrics.append((*losses, np.linalg.norm(d_applied)))
  return path, np.array(metrics)


class HandDerivedGameTest(parameterized.TestCase):
  """Every scheme, configured by flags and scanned by the training loop,
  against the recursion above on the closed-form game."""

  @parameterized.parameters(*steps_lib.UPDATES)
  def test_scanned_steps_follow_the_hand_recursion(self, update):
    data = types.SimpleNamespace(
        shape=(2,), sample=lambda key, n: jnp.broadcast_to(
            jnp.asarray(M, jnp.float32), (n, 2)))
    config = TINY.replace(loss='wasserstein', update=update, g_lr=LR, d_lr=LR,
                          consensus_weight=CONSENSUS)
    # The configured game (`testing.build_steps`, held to training's by
    # testing_test.py) with this data set and these players, and SGD.
    with mock.patch.object(data_lib, 'build', return_value=data), \
        mock.patch.object(models_lib, 'build',
                          return_value=(_TanhGenerator(), _LinearCritic())):
      _, steps = testing.build_steps(config, lambda lr, b1, b2: optax.sgd(lr))
    state0 = jax.jit(functools.partial(testing.init, config, data, steps))(
        jax.random.PRNGKey(0))
    runner = loop.ChunkRunner(steps.train_step)
    path, expected = _hand_recursion(update, 6)
    state, observed = state0, []
    for t in (3, 6):  # two scanned chunks of three steps
      state, metrics = runner(state, 3)
      self.assertEqual(int(state.step), t)
      np.testing.assert_allclose(state.g_params['theta'], path[t][0],
                                 rtol=1e-5, atol=1e-6, err_msg=f'step {t}')
      np.testing.assert_allclose(state.d_params['psi'], path[t][1],
                                 rtol=1e-5, atol=1e-6, err_msg=f'step {t}')
      observed.append(np.stack([metrics['d_loss'], metrics['g_loss'],
                                metrics['d_grad_norm']], axis=1))
    np.testing.assert_allclose(np.concatenate(observed), expected, rtol=1e-5,
                               atol=1e-6)


class ConfiguredSchemesTest(parameterized.TestCase):

  def test_result_does_not_depend_on_chunking(self):
    _, steps, state0 = train.build(TINY.replace(update='extragradient'))
    state0 = jax.device_get(state0)
    runner = loop.ChunkRunner(steps.train_step)
    a, _ = runner(jax.tree.map(jnp.asarray, state0), 4)
    b = jax.tree.map(jnp.asarray, state0)
    for _ in range(2):
      b, _ = runner(b, 2)
    _assert_trees_close(self, a, b, rtol=1e-6, atol=1e-7)

  def test_config_validation_names_valid_updates(self):
    with self.assertRaisesRegex(
        config_lib.ConfigError,
        r"^--update='jacobi' is not a known update; valid: alternating, "
        'simultaneous, extragradient, optimistic, consensus$'):
      config_lib.validate(TINY.replace(update='jacobi'))
    with self.assertRaisesRegex(config_lib.ConfigError,
                                'needs --update=alternating'):
      config_lib.validate(TINY.replace(update='consensus', d_steps=2))
    with self.assertRaisesRegex(config_lib.ConfigError,
                                'consensus_weight=0.0 must be positive'):
      config_lib.validate(TINY.replace(consensus_weight=0.0))


def g_only(steps, state, draw):
  """A scheme from outside the package: one G step, D never moves."""
  batch, z, _ = draw(0, real=steps.game.loss.g_needs_real)
  return steps.g_step(state, z, batch)


class RegistryTest(absltest.TestCase):

  def test_a_scheme_registered_outside_the_package_runs_scanned(self):
    self.enterContext(mock.patch.dict(updates._REGISTRY.entries))  # pylint: disable=protected-access
    updates.register('g_only')(g_only)
    config = TINY.replace(update='g_only')
    config_lib.validate(config)  # a registered scheme is a valid --update
    _, steps, state0 = train.build(config)
    state0 = jax.device_get(state0)  # the runner donates its input buffers
    new, metrics = loop.ChunkRunner(steps.train_step)(
        jax.tree.map(jnp.asarray, state0), 3)
    self.assertEqual(int(new.step), 3)
    self.assertEqual(sorted(metrics), ['g_grad_norm', 'g_loss'])
    for x, y in zip(jax.tree.leaves((new.d_params, new.d_opt_state)),
                    jax.tree.leaves((state0.d_params, state0.d_opt_state))):
      np.testing.assert_array_equal(x, y)
    # Independently: three G steps, step t's z from split(fold_in(key_t, 0)).
    state, g_step = jax.tree.map(jnp.asarray, state0), jax.jit(steps.g_step)
    for t in range(3):
      key = jax.random.fold_in(state0.rng, t)
      _, k_z = jax.random.split(jax.random.fold_in(key, 0))
      state, _ = g_step(state, steps.sample_z(k_z))
    _assert_trees_close(self, new.g_params, state.g_params, rtol=1e-6,
                        atol=1e-7)
    moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(
        jax.tree.leaves(new.g_params), jax.tree.leaves(state0.g_params))]
    self.assertGreater(max(moved), 1e-4)
    with self.assertRaisesRegex(ValueError, 'needs update=alternating; '
                                'g_only takes one D step'):
      dataclasses.replace(steps, d_steps=2)

  def test_names_are_unique_and_unknown_names_list_the_valid_ones(self):
    with self.assertRaisesRegex(ValueError, 'already registered'):
      updates.register('consensus')(g_only)
    with self.assertRaises(KeyError) as raised:
      updates.get('jacobi')
    self.assertEqual(raised.exception.args[0],
                     "unknown update 'jacobi'; valid updates: alternating, "
                     'simultaneous, extragradient, optimistic, consensus')


if __name__ == '__main__':
  absltest.main()
