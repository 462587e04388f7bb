"""The value function and its theory: D*, V(D*, G) = -log 4 + 2 JSD, and the
players' gradients taken each with respect to its own parameters only."""

from absl.testing import absltest
from absl.testing import parameterized
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats

from gan_jax import losses
from gan_jax.data import toy
from gan_jax.game import Game
from gan_jax.metrics import divergences
from gan_jax.models import mlp
from gan_jax.state import init_state
from gan_jax.steps import Steps
import testing


def _quantile_points(density, lo, hi, n):
  """x_i = F^{-1}((i + 1/2) / n) for the CDF of `density` on [lo, hi]: a
  deterministic n-point rule whose mean of h(x_i) approximates E h(x)."""
  grid = np.linspace(lo, hi, 400_001)
  cdf = np.cumsum(density(grid))
  cdf /= cdf[-1]
  return np.interp((np.arange(n) + 0.5) / n, cdf, grid)


CASES = {
    'gaussians': (toy.normal1d_density(0.0, 1.0),
                  toy.normal1d_density(1.5, 0.7)),
    'mixture_vs_gaussian': (toy.mix1d().density,
                            toy.normal1d_density(0.0, 1.5)),
    'equal': (toy.normal1d_density(0.3, 1.0), toy.normal1d_density(0.3, 1.0)),
}


class Affine(nn.Module):
  """G(z) = a z + b with z ~ N(0, 1): p_g = N(b, a^2) in closed form."""

  @nn.compact
  def __call__(self, z, train=True):
    a = self.param('a', lambda k: jnp.array(1.5, jnp.float32))
    b = self.param('b', lambda k: jnp.array(0.0, jnp.float32))
    return a * z + b


class OptimalDiscriminatorTest(parameterized.TestCase):

  @parameterized.named_parameters(*[(k, k) for k in CASES])
  def test_value_at_optimal_d_is_minus_log4_plus_2jsd(self, case):
    p_data, p_g = CASES[case]
    lo, hi = -12.0, 12.0
    n = 200_000
    real = _quantile_points(p_data, lo, hi, n)
    fake = _quantile_points(p_g, lo, hi, n)
    # D* = p_data / (p_data + p_g), i.e. logit D* = log p_data - log p_g.
    logit = lambda x: np.log(p_data(x)) - np.log(p_g(x))
    value = losses.get('minimax').value(
        jnp.asarray(logit(real), jnp.float32), jnp.asarray(logit(fake), jnp.float32))
    grid = np.linspace(lo, hi, 200_001)
    expected = -np.log(4.0) + 2.0 * divergences.jsd(p_data(grid), p_g(grid), grid)
    np.testing.assert_allclose(float(value), expected, atol=1e-3)

  def test_d_trained_against_fixed_g_approaches_optimal_d(self):
    data = toy.mix1d()
    game = Game(Affine(), mlp.Discriminator(hidden=(64, 64)),
                losses.get('minimax'))
    steps = Steps(game=game, g_opt=optax.sgd(0.0), d_opt=optax.adam(optax.cosine_decay_schedule(3e-3, 4000)),
                  sample_data=data.sample, batch_size=1024, z_dim=1)
    state = init_state(game, steps.g_opt, steps.d_opt, jax.random.PRNGKey(0),
                       z_dim=1, data_shape=(1,))

    def body(state, i):
      key = jax.random.fold_in(jax.random.PRNGKey(1), i)
      k_x, k_z = jax.random.split(key)
      state, _ = steps.d_step(state, data.sample(k_x, 1024), steps.sample_z(k_z))
      return state, None

    state, _ = jax.jit(lambda s: jax.lax.scan(body, s, jnp.arange(4000)))(state)
    x = np.linspace(-3.5, 3.5, 141)
    p_d, p_g = data.density(x), stats.norm.pdf(x, 0.0, 1.5)
    d_star = p_d / (p_d + p_g)
    d_learned = jax.nn.sigmoid(game.discriminate(state.d_params,
                                                 jnp.asarray(x[:, None], jnp.float32)))
    # Where either density has mass, D matches D* closely.
    mask = (p_d + p_g) > 0.05
    np.testing.assert_allclose(np.asarray(d_learned)[mask], d_star[mask],
                               atol=0.06)
    self.assertLess(float(np.mean(np.abs(np.asarray(d_learned) - d_star)[mask])),
                    0.025)


def _toy_steps(loss_name='minimax'):
  _, steps, state = testing.build(testing.tiny_toy_config(
      loss=loss_name, g_hidden=(32, 32), d_hidden=(32, 32), batch_size=64,
      z_dim=8, g_lr=1e-3, d_lr=1e-3))
  return (steps, state, *testing.batch_and_latents(steps))


class PlayersTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_d_step_leaves_g_bit_identical_and_moves_d(self):
    steps, state, batch, z = _toy_steps()
    new, _ = self.variant(steps.d_step)(state, batch, z)
    chex.assert_trees_all_equal(new.g_params, state.g_params)
    chex.assert_trees_all_equal(new.g_opt_state, state.g_opt_state)
    testing.assert_trees_differ(new.d_params, state.d_params)

  @chex.variants(with_jit=True, without_jit=True)
  def test_g_step_leaves_d_bit_identical_and_moves_g(self):
    steps, state, _, z = _toy_steps()
    new, _ = self.variant(steps.g_step)(state, z)
    chex.assert_trees_all_equal(new.d_params, state.d_params)
    chex.assert_trees_all_equal(new.d_opt_state, state.d_opt_state)
    testing.assert_trees_differ(new.g_params, state.g_params)

  def test_minimax_objectives_are_gradients_of_one_value_function(self):
    # D ascends V: grad_D d_loss = -grad_D V. The saturating G descends V, and
    # E log D(x) does not depend on G: grad_G g_loss = grad_G V.
    steps, state, batch, z = _toy_steps('minimax')
    game = steps.game
    dv_dd = jax.grad(game.value, argnums=1)(state.g_params, state.d_params, batch, z)
    dv_dg = jax.grad(game.value, argnums=0)(state.g_params, state.d_params, batch, z)
    gd = jax.grad(lambda d: game.d_objective(d, state.g_params, batch, z)[0])(
        state.d_params)
    gg, _ = jax.grad(game.g_objective, has_aux=True)(state.g_params,
                                                     state.d_params, z)
    chex.assert_trees_all_close(gd, jax.tree.map(jnp.negative, dv_dd),
                                rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(gg, dv_dg, rtol=1e-5, atol=1e-7)

  def test_saturating_generator_gradient_vanishes_when_d_rejects_fakes(self):
    # With D(G(z)) ~ e^-30 the saturating G gradient is ~e^-30 times the
    # non-saturating one; they share the direction sum_i df_i/dtheta.
    steps, state, _, z = _toy_steps()
    d_params = jax.tree.map(lambda p: p, state.d_params)
    d_params['Dense_2']['bias'] = jnp.array([-30.0])
    norms = {}
    for name in ('minimax', 'non_saturating'):
      game = Game(steps.game.generator, steps.game.discriminator,
                  losses.get(name))
      grads, _ = jax.grad(game.g_objective, has_aux=True)(state.g_params,
                                                          d_params, z)
      norms[name] = float(optax.tree.norm(grads))
    self.assertGreater(norms['non_saturating'], 1e-3)
    np.testing.assert_allclose(norms['minimax'] / norms['non_saturating'],
                               np.exp(-30.0), rtol=0.5)


if __name__ == '__main__':
  absltest.main()
