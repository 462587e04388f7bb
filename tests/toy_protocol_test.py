"""The pieces of the PacGAN synthetic-data protocol, each against an
independent computation: maxout D and batch-norm G of `mlp` against numpy
written here from the formulas, the N(0, s^2) initialisation by its
statistics, the toy layouts against hand-written means and stds (and their
samples' empirical std), evaluation in the configured layout, and
SGD with momentum (alone and under the optimistic scheme) against the update
written out by hand."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data as data_lib
from gan_jax import seeds
from gan_jax import steps as steps_lib
from gan_jax import train
from gan_jax import updates
from gan_jax.metrics import reference
from gan_jax.models import mlp
import testing


def _np(tree):
  return jax.tree.map(np.asarray, tree)


class MaxoutTest(absltest.TestCase):

  def test_maxout_discriminator_matches_numpy(self):
    k, widths = 5, (3, 4)
    d = mlp.Discriminator(hidden=widths, maxout_pieces=k)
    x = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32)
    variables = d.init(jax.random.PRNGKey(1), jnp.asarray(x))
    p = _np(variables['params'])
    self.assertEqual(p['Dense_0']['kernel'].shape, (2, 3 * k))
    self.assertEqual(p['Dense_1']['kernel'].shape, (3, 4 * k))
    self.assertEqual(p['Dense_2']['kernel'].shape, (4, 1))
    # Goodfellow et al. 2013: h_j = max_k (x W + b)_{j K + k}.
    h = x.astype(np.float64)
    for i, width in enumerate(widths):
      a = h @ p[f'Dense_{i}']['kernel'] + p[f'Dense_{i}']['bias']
      h = np.stack([max(a[n, j * k + piece] for piece in range(k))
                    for n in range(len(x)) for j in range(width)]
                   ).reshape(len(x), width)
    expected = (h @ p['Dense_2']['kernel'] + p['Dense_2']['bias'])[:, 0]
    np.testing.assert_allclose(np.asarray(d.apply(variables, jnp.asarray(x))),
                               expected, rtol=1e-5, atol=1e-6)

  def test_one_piece_is_a_relu_layer(self):
    for pieces in (0, 1):
      d = mlp.Discriminator(hidden=(6,), maxout_pieces=pieces)
      x = np.random.default_rng(2).normal(size=(5, 2)).astype(np.float32)
      variables = d.init(jax.random.PRNGKey(3), jnp.asarray(x))
      p = _np(variables['params'])
      h = np.maximum(x @ p['Dense_0']['kernel'] + p['Dense_0']['bias'], 0)
      expected = (h @ p['Dense_1']['kernel'] + p['Dense_1']['bias'])[:, 0]
      np.testing.assert_allclose(
          np.asarray(d.apply(variables, jnp.asarray(x))), expected,
          rtol=1e-5, atol=1e-6)


class BatchNormGeneratorTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.g = mlp.Generator(hidden=(8, 8), out_dim=2, batch_norm=True)
    self.z = np.random.default_rng(4).normal(size=(16, 3)).astype(np.float32)
    self.variables = self.g.init(jax.random.PRNGKey(5), jnp.asarray(self.z))

  def _numpy(self, stats):
    """G in numpy: Dense (no bias) -> BN -> ReLU per hidden layer; `stats`
    gives each layer's (mean, var): the batch's, or None for the running."""
    p = _np(self.variables['params'])
    running = _np(self.variables['batch_stats'])
    h, seen = self.z.astype(np.float64), []
    for i in range(2):
      self.assertNotIn('bias', p[f'Dense_{i}'])
      a = h @ p[f'Dense_{i}']['kernel']
      if stats == 'batch':
        mean, var = a.mean(0), a.var(0)  # biased, as batch norm normalises
      else:
        mean = running[f'BatchNorm_{i}']['mean']
        var = running[f'BatchNorm_{i}']['var']
      seen.append((mean, var))
      bn = p[f'BatchNorm_{i}']
      a = (a - mean) / np.sqrt(var + 1e-4) * bn['scale'] + bn['bias']
      h = np.maximum(a, 0)
    return h @ p['Dense_2']['kernel'] + p['Dense_2']['bias'], seen

  def test_train_mode_normalises_with_batch_statistics(self):
    out, new = self.g.apply(self.variables, jnp.asarray(self.z), train=True,
                            mutable=['batch_stats'])
    expected, seen = self._numpy('batch')
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4,
                               atol=1e-5)
    # Running statistics: r <- 0.95 r + 0.05 batch, from mean 0 and var 1.
    for i, (mean, var) in enumerate(seen):
      stats = _np(new['batch_stats'][f'BatchNorm_{i}'])
      np.testing.assert_allclose(stats['mean'], 0.05 * mean, rtol=1e-4,
                                 atol=1e-6)
      np.testing.assert_allclose(stats['var'], 0.95 + 0.05 * var, rtol=1e-4,
                                 atol=1e-6)

  def test_inference_mode_uses_running_statistics(self):
    self.variables = {
        'params': self.variables['params'],
        'batch_stats': jax.tree.map(lambda v: v + 0.5,
                                    self.variables['batch_stats'])}
    out = self.g.apply(self.variables, jnp.asarray(self.z), train=False)
    expected, _ = self._numpy('running')
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4,
                               atol=1e-5)

  def test_config_builds_it_and_training_carries_the_statistics(self):
    config = testing.tiny_toy_config(g_batch_norm=True, num_steps=3,
                                     log_every=3)
    _, steps, state = train.build(config)
    self.assertEqual(sorted(state.g_state['batch_stats']),
                     ['BatchNorm_0', 'BatchNorm_1'])
    new, _ = jax.jit(steps.train_step)(state)
    before = state.g_state['batch_stats']['BatchNorm_0']['mean']
    after = new.g_state['batch_stats']['BatchNorm_0']['mean']
    self.assertGreater(float(jnp.abs(after - before).max()), 0.0)


class InitTest(parameterized.TestCase):

  def test_kernels_are_normal_with_the_std_and_biases_zero(self):
    s = 0.02
    config = testing.tiny_toy_config(g_hidden=(400, 400), d_hidden=(200,),
                                     d_maxout=5, init_std=s)
    data = data_lib.build(config)
    g, d = testing.build_models(config, data.shape)
    gp = _np(g.init(jax.random.PRNGKey(0), jnp.zeros((1, config.z_dim)))
             ['params'])
    dp = _np(d.init(jax.random.PRNGKey(1), jnp.zeros((1,) + data.shape))
             ['params'])
    big = gp['Dense_1']['kernel']  # 400 x 400: 160,000 draws
    self.assertEqual(big.shape, (400, 400))
    # The sample std of n normal draws has standard error s / sqrt(2n).
    self.assertAlmostEqual(float(big.std()), s, delta=5 * s / math.sqrt(2 * big.size))
    self.assertAlmostEqual(float(big.mean()), 0.0, delta=5 * s / math.sqrt(big.size))
    # Normal, not truncated: about 4.55% of draws lie beyond 2 s.
    self.assertAlmostEqual(float(np.mean(np.abs(big) > 2 * s)), 0.0455,
                           delta=0.003)
    wide = dp['Dense_0']['kernel']  # 2 x 1000 maxout pieces
    self.assertEqual(wide.shape, (2, 1000))
    self.assertAlmostEqual(float(wide.std()), s, delta=0.1 * s)
    for params in (gp, dp):
      for layer in params.values():
        self.assertLess(float(np.abs(layer['kernel']).max()), 8 * s)
        np.testing.assert_array_equal(layer['bias'], 0.0)

  def test_zero_keeps_the_default_lecun_normal(self):
    g, _ = testing.build_models(testing.tiny_toy_config(g_hidden=(400, 400)),
                                (2,))
    kernel = np.asarray(g.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
                        ['params']['Dense_1']['kernel'])
    # LeCun normal: variance 1 / fan_in = 1 / 400.
    self.assertAlmostEqual(float(kernel.std()), 0.05, delta=0.002)


def _nearest_residuals(samples, means):
  d = np.linalg.norm(samples[:, None] - means[None], axis=-1)
  nearest = d.argmin(1)
  return samples - means[nearest], nearest


class ToyLayoutTest(parameterized.TestCase):

  R2 = np.sqrt(0.5)
  RING_UNIT = np.array([[1, 0], [R2, R2], [0, 1], [-R2, R2], [-1, 0],
                        [-R2, -R2], [0, -1], [R2, -R2]])

  @parameterized.named_parameters(
      ('default_is_veegan', {}, 2.0, 0.02),
      ('veegan', {'toy_layout': 'veegan'}, 2.0, 0.02),
      ('pacgan', {'toy_layout': 'pacgan'}, 1.0, 0.01),
      ('pacgan_radius', {'toy_layout': 'pacgan', 'toy_scale': 3.0}, 3.0, 0.01),
      ('pacgan_std', {'toy_layout': 'pacgan', 'toy_std': 0.1}, 1.0, 0.1),
      ('both', {'toy_scale': 0.5, 'toy_std': 0.2}, 0.5, 0.2))
  def test_ring(self, flags, radius, std):
    data = data_lib.build(testing.tiny_toy_config(dataset='ring8', **flags))
    np.testing.assert_allclose(data.means, radius * self.RING_UNIT,
                               atol=1e-12)
    self.assertEqual(data.std, std)

  @parameterized.named_parameters(
      ('default_is_veegan', {}, [-4, -2, 0, 2, 4], 0.05),
      ('pacgan', {'toy_layout': 'pacgan'}, [-4, -2, 0, 2, 4], 0.05),
      ('spacing', {'toy_layout': 'pacgan', 'toy_scale': 1.5},
       [-3, -1.5, 0, 1.5, 3], 0.05),
      ('std', {'toy_std': 0.01}, [-4, -2, 0, 2, 4], 0.01))
  def test_grid(self, flags, coords, std):
    data = data_lib.build(testing.tiny_toy_config(dataset='grid25', **flags))
    expected = [(a, b) for a in coords for b in coords]
    np.testing.assert_allclose(data.means, expected, atol=1e-12)
    self.assertEqual(data.std, std)

  @parameterized.parameters(('ring8', 1.0, 0.01), ('grid25', 2.0, 0.05),
                            ('ring8', 3.0, 0.2))
  def test_samples_have_the_layouts_std_and_weights(self, dataset, scale,
                                                    std):
    config = testing.tiny_toy_config(dataset=dataset, toy_layout='pacgan',
                                     toy_scale=scale, toy_std=std)
    data = data_lib.build(config)
    n = 40_000
    samples = np.asarray(jax.jit(data.sample, static_argnums=1)(
        jax.random.PRNGKey(6), n), np.float64)
    residual, nearest = _nearest_residuals(samples, data.means)
    # Per-coordinate std of the residuals; standard error std / sqrt(2n).
    np.testing.assert_allclose(residual.std(0), [std, std],
                               rtol=5 / math.sqrt(n))
    k = len(data.means)
    freq = np.bincount(nearest, minlength=k) / n
    np.testing.assert_allclose(freq, 1 / k,
                               atol=5 * math.sqrt((1 / k) / n))

  def test_evaluation_uses_the_configured_layout(self):
    config = testing.tiny_toy_config(toy_layout='pacgan')
    data = data_lib.build(config)
    # Samples at the PacGAN ring's modes (radius 1) with 1.5 sigma offsets:
    # all high quality there, none at the default layout's radius 2.
    samples = np.repeat(self.RING_UNIT, 10, axis=0) + 0.015
    final = train.final_record(config, data, samples, 1, 0.0)
    self.assertEqual((final['modes'], final['hq_fraction']), (8, 1.0))
    default = testing.tiny_toy_config()
    final = train.final_record(default, data_lib.build(default), samples, 1,
                               0.0)
    self.assertEqual((final['modes'], final['hq_fraction']), (0, 0.0))

  def test_metric_reference_is_drawn_in_the_configured_layout(self):
    pac = reference.load('ring8', 'train', testing.tiny_toy_config(
        toy_layout='pacgan'))
    default = reference.load('ring8', 'train')
    np.testing.assert_allclose(np.linalg.norm(pac, axis=1), 1.0, atol=0.06)
    np.testing.assert_allclose(np.linalg.norm(default, axis=1), 2.0,
                               atol=0.12)


class SGDTest(absltest.TestCase):
  """SGD with heavy-ball momentum on f(x) = 1/2 x^T A x, by hand."""

  A = np.array([[3.0, 0.5], [0.5, 1.0]])
  X0 = np.array([1.0, -2.0])

  def _optax_run(self, opt, n):
    x = jnp.asarray(self.X0, jnp.float32)
    state = opt.init(x)
    path = []
    for _ in range(n):
      g = jnp.asarray(self.A, jnp.float32) @ x
      u, state = opt.update(g, state, x)
      x = x + u
      path.append(np.asarray(x))
    return np.array(path)

  def _by_hand(self, lr, mu, n, optimistic=False):
    x, v, prev_u, path = self.X0.copy(), np.zeros(2), None, []
    for t in range(n):
      v = self.A @ x + mu * v  # v_0 = g_0
      u = -lr * v
      step = u if t == 0 or not optimistic else 2 * u - prev_u
      prev_u = u
      x = x + step
      path.append(x.copy())
    return np.array(path)

  def test_momentum(self):
    for mu in (0.0, 0.9):
      opt = steps_lib.player_optimizer('sgd', 0.05, 0.5, 0.999, mu)
      np.testing.assert_allclose(self._optax_run(opt, 6),
                                 self._by_hand(0.05, mu, 6), rtol=1e-5)

  def test_injected_form_is_the_same_arithmetic(self):
    opt = steps_lib.player_optimizer('sgd', 0.05, 0.5, 0.999, 0.9,
                                     injected=True)
    np.testing.assert_allclose(self._optax_run(opt, 6),
                               self._by_hand(0.05, 0.9, 6), rtol=1e-5)

  def test_composes_with_the_optimistic_wrapper(self):
    opt = updates.scheme_optimizer(
        'optimistic', steps_lib.player_optimizer('sgd', 0.05, 0.5, 0.999, 0.9))
    np.testing.assert_allclose(self._optax_run(opt, 6),
                               self._by_hand(0.05, 0.9, 6, optimistic=True),
                               rtol=1e-5)

  def test_training_applies_sgd_to_both_players(self):
    # Two simultaneous steps of --optimizer=sgd --momentum=0.5: each player
    # moves by -lr v_t with v_t = g_t + mu v_{t-1}, g_t its gradient at x_t on
    # the step's own batch and latents.
    lr_g, lr_d, mu = 0.03, 0.07, 0.5
    config = testing.tiny_toy_config(update='simultaneous', optimizer='sgd',
                                     momentum=mu, g_lr=lr_g, d_lr=lr_d)
    _, steps, state = train.build(config)
    v = None
    for _ in range(2):
      key = jax.random.fold_in(state.rng, state.step)
      k_data, k_z = jax.random.split(jax.random.fold_in(key, 0))
      (g_grads, d_grads), _ = steps.joint_grads(
          state.g_params, state.d_params, steps.sample_batch(k_data),
          steps.sample_z(k_z))
      grads = _np((g_grads, d_grads))
      v = grads if v is None else jax.tree.map(lambda g, w: g + mu * w,
                                                grads, v)
      expected = (jax.tree.map(lambda p, w: p - lr_g * w,
                               _np(state.g_params), v[0]),
                  jax.tree.map(lambda p, w: p - lr_d * w,
                               _np(state.d_params), v[1]))
      state, _ = jax.jit(steps.train_step)(state)
      chex.assert_trees_all_close((_np(state.g_params), _np(state.d_params)),
                                  expected, rtol=1e-5, atol=1e-6)

  def test_members_of_a_multi_seed_run_equal_their_runs_alone(self):
    config = testing.tiny_toy_config(optimizer='sgd', momentum=0.9,
                                     g_lr=0.01, d_lr=0.01, num_steps=10)
    configs = [config.replace(seed=1), config.replace(seed=2, g_lr=0.02)]
    result = seeds.train_members(configs)
    for m, member_config in enumerate(configs):
      _, steps, state = train.build(member_config)
      for _ in range(member_config.num_steps):
        state, _ = jax.jit(steps.train_step)(state)
      chex.assert_trees_all_close(
          testing.member(result.state, m).g_params, _np(state.g_params),
          rtol=1e-6, atol=1e-5)


if __name__ == '__main__':
  absltest.main()
