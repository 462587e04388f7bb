"""--lr_schedule: each player's updates scaled by the hand-written factor."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import testing
from gan_jax import checkpoint_meta
from gan_jax import schedules
from gan_jax import steps as steps_lib
from gan_jax.config import ConfigError, validate


def hand_factor(name, t, total):
  """The schedule's factor at update t of `total`, from its formula."""
  frac = min(max(t / total, 0.0), 1.0)
  if name == 'linear_decay':
    return 1.0 - frac
  if name == 'cosine':
    return 0.5 * (1.0 + math.cos(math.pi * frac))
  return 1.0


def updates_of(opt, grads):
  """The updates `opt` makes for a sequence of gradients of one array."""
  params = jnp.zeros_like(grads[0])
  state = opt.init(params)
  out = []
  for g in grads:
    u, state = opt.update(g, state, params)
    out.append(np.asarray(u))
  return out


class SchedulesTest(parameterized.TestCase):

  @parameterized.parameters('linear_decay', 'cosine', 'constant')
  def test_sgd_updates_follow_the_formula_and_stay_at_zero_past_the_end(
      self, name):
    total, lr = 8, 0.3
    grads = [jnp.asarray([1.0, -2.0])] * (total + 3)
    got = updates_of(schedules.scheduled(optax.sgd(lr), name, total), grads)
    for t, u in enumerate(got):
      np.testing.assert_allclose(
          u, -lr * hand_factor(name, t, total) * np.array([1.0, -2.0]),
          rtol=1e-6, atol=1e-7, err_msg=f'update {t}')
    if name != 'constant':
      self.assertEqual(float(np.abs(got[total]).max()), 0.0)

  def test_constant_is_the_optimizer_itself(self):
    opt = optax.adam(1e-3)
    self.assertIs(schedules.scheduled(opt, 'constant', 10), opt)
    config = testing.tiny_toy_config()
    plain = steps_lib.scheme_optimizer(config.update, steps_lib.adam(
        1e-3, 0.5, 0.999))
    mine = schedules.player_optimizer(config, steps_lib.adam(
        1e-3, 0.5, 0.999), 'g')
    params = {'w': jnp.ones((3,))}
    chex.assert_trees_all_equal_structs(plain.init(params), mine.init(params))

  def test_players_decay_over_their_own_update_counts(self):
    # D takes --d_steps updates per step: its horizon is num_steps x d_steps.
    config = testing.tiny_toy_config(lr_schedule='linear_decay', num_steps=5,
                                     d_steps=3)
    _, steps = testing.build_steps(config)
    grads = [jnp.asarray([0.5, -1.0, 2.0]) * (k + 1) for k in range(16)]
    for opt, total, lr in ((steps.d_opt, 15, config.d_lr),
                           (steps.g_opt, 5, config.g_lr)):
      adam = updates_of(steps_lib.adam(lr, config.beta1, config.beta2), grads)
      got = updates_of(opt, grads)
      for t in range(len(grads)):
        np.testing.assert_allclose(
            got[t], hand_factor('linear_decay', t, total) * adam[t],
            rtol=1e-5, atol=1e-9, err_msg=f'update {t} of {total}')

  def test_optimistic_extrapolates_the_scheduled_updates(self):
    config = testing.tiny_toy_config(lr_schedule='cosine', num_steps=6,
                                     update='optimistic')
    lr = 0.1
    opt = schedules.player_optimizer(config, optax.sgd(lr), 'g')
    grads = [jnp.asarray([float(k + 1), -1.0]) for k in range(8)]
    got = updates_of(opt, grads)
    # u_t = -lr f(t) g_t; applied: u_0, then 2 u_t - u_{t-1}.
    plain = [-lr * hand_factor('cosine', t, 6) * np.asarray(g)
             for t, g in enumerate(grads)]
    want = [plain[0]] + [2 * plain[t] - plain[t - 1]
                         for t in range(1, len(plain))]
    for t, (a, b) in enumerate(zip(got, want)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7,
                                 err_msg=f'update {t}')

  def test_trains_through_the_scanned_step(self):
    config = testing.tiny_toy_config(lr_schedule='cosine', num_steps=4)
    _, steps, state = testing.build(config)
    step = jax.jit(steps.train_step)
    for _ in range(4):
      state, metrics = step(state)
    self.assertTrue(np.isfinite(float(metrics['g_loss'])))
    # After num_steps updates the factor is 0: a fifth step leaves G as is.
    new, _ = step(state)
    chex.assert_trees_all_equal(new.g_params, state.g_params)

  def test_unknown_schedule_is_a_one_line_error(self):
    with self.assertRaisesRegex(ConfigError, 'valid: constant, linear_decay, '
                                'cosine'):
      validate(testing.tiny_toy_config(lr_schedule='step',
                                       workdir='/tmp/x_sched'))

  def test_resume_with_other_num_steps_refused_only_under_a_schedule(self):
    saved = checkpoint_meta.config_dict(testing.tiny_toy_config())
    longer = testing.tiny_toy_config(num_steps=40)
    self.assertEqual(checkpoint_meta.config_differences(saved, longer), [])
    saved = checkpoint_meta.config_dict(
        testing.tiny_toy_config(lr_schedule='cosine'))
    self.assertEqual(
        checkpoint_meta.config_differences(
            saved, longer.replace(lr_schedule='cosine')),
        ['--num_steps=20 there vs 40 here'])


if __name__ == '__main__':
  absltest.main()
