"""DiffAugment, LeCam and top-k wired into the training step: each player's
loss against the loss computed by hand from the models and the documented
keys; a run with all three trains, resumes bit for bit and vmaps over
seeds."""

import os

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from gan_jax import augment
from gan_jax import config as config_lib
from gan_jax import steps as steps_lib
from gan_jax.config import ConfigError
import testing

POLICY = ('translation', 'cutout', 'color')


def _softplus(x):
  return np.logaddexp(0.0, np.asarray(x, np.float64))


def _aug_key(key, which):
  """The documented key of the augmentation of real (0) or fake (1) images
  from an update's penalty key."""
  return jax.random.fold_in(
      jax.random.fold_in(key, steps_lib.AUGMENT_KEY), which)


class WiringTest(absltest.TestCase):

  def _build(self, **changes):
    _, steps, state = testing.build(testing.tiny_image_config(**changes))
    batch, z = testing.batch_and_latents(steps)
    return steps, state, batch, z

  def test_d_sees_augmented_images_and_is_penalised_on_them(self):
    steps, state, batch, z = self._build(augment=POLICY, reg='r1',
                                         reg_weight=2.0)
    key = jax.random.PRNGKey(11)
    _, metrics = jax.jit(steps.d_step)(state, batch, z, key)
    game = steps.game
    fake = game.generate(state.g_params, z, state.g_state, train=True)
    real_aug = augment.augment(_aug_key(key, 0), batch, POLICY)
    fake_aug = augment.augment(_aug_key(key, 1), fake, POLICY)
    d = lambda x: game.discriminate(state.d_params, x, state.d_state)
    # Non-saturating D: softplus(-D(x)) + softplus(D(G(z))), by hand.
    want = _softplus(-d(real_aug)).mean() + _softplus(d(fake_aug)).mean()
    np.testing.assert_allclose(float(metrics['d_loss']), want, rtol=1e-5)
    grads = jax.grad(lambda x: jnp.sum(d(x)))(real_aug)
    r1 = 0.5 * np.mean(np.sum(np.square(np.asarray(grads)).reshape(8, -1), 1))
    np.testing.assert_allclose(float(metrics['d_penalty']), 2.0 * r1,
                               rtol=1e-4)
    # Without augmentation the loss is another number.
    plain = _softplus(-d(batch)).mean() + _softplus(d(fake)).mean()
    self.assertGreater(abs(plain - want), 1e-4)

  def test_lazy_penalty_is_skipped_with_augmentation(self):
    # reg_every = 2: the step's lax.cond traces a branch with the penalty
    # (weight 2 lambda) and one without; the penalty must be traced (and so
    # computed) in the first only, augmented or not.
    import dataclasses  # pylint: disable=g-import-not-at-top
    from gan_jax import regularizers  # pylint: disable=g-import-not-at-top
    for policy in ((), POLICY):
      steps, state, batch, z = self._build(augment=policy, reg='r1',
                                           reg_weight=1.0, reg_every=2)
      calls, original = [], steps.reg
      counting = regularizers.Regularizer(
          'r1', lambda *a: calls.append(1) or original(*a))
      steps = dataclasses.replace(steps, reg=counting)
      jax.jit(steps.d_step).lower(state, batch, z, jax.random.PRNGKey(0))
      self.assertLen(calls, 1, policy)

  def test_g_loss_and_gradient_go_through_the_augmentation(self):
    steps, state, _, z = self._build(augment=POLICY)
    key = jax.random.PRNGKey(12)
    _, metrics = jax.jit(steps.g_step)(state, z, None, key)
    game = steps.game

    def g_loss(g_params):
      fake = game.generate(g_params, z, state.g_state, train=True)
      out = game.discriminate(state.d_params,
                              augment.augment(_aug_key(key, 1), fake, POLICY),
                              state.d_state)
      return jnp.mean(jax.nn.softplus(-out))

    loss, grads = jax.value_and_grad(g_loss)(state.g_params)
    np.testing.assert_allclose(float(metrics['g_loss']), float(loss),
                               rtol=1e-5)
    norm = np.sqrt(sum(np.sum(np.square(np.asarray(g)))
                       for g in jax.tree.leaves(grads)))
    np.testing.assert_allclose(float(metrics['g_grad_norm']), norm, rtol=1e-4)

  def test_an_update_without_its_key_is_refused(self):
    steps, state, batch, z = self._build(augment=('cutout',))
    with self.assertRaisesRegex(ValueError, 'needs a PRNG key'):
      steps.d_step(state, batch, z)
    with self.assertRaisesRegex(ValueError, 'needs a PRNG key'):
      steps.g_step(state, z)

  def test_lecam_term_and_its_averages_in_d_state(self):
    steps, state, batch, z = self._build(lecam_weight=0.5)
    self.assertEqual(float(state.d_state['lecam']['updates']), 0.0)
    d_step = jax.jit(steps.d_step)
    biased_real = biased_fake = 0.0
    for t in (1, 2):
      game = steps.game
      fake = game.generate(state.g_params, z, state.g_state, train=True)
      real_out = np.asarray(game.discriminate(state.d_params, batch),
                            np.float64)
      fake_out = np.asarray(game.discriminate(state.d_params, fake),
                            np.float64)
      biased_real = 0.99 * biased_real + 0.01 * real_out.mean()
      biased_fake = 0.99 * biased_fake + 0.01 * fake_out.mean()
      alpha_real = biased_real / (1 - 0.99**t)
      alpha_fake = biased_fake / (1 - 0.99**t)
      r_lc = (np.mean((real_out - alpha_fake) ** 2)
              + np.mean((fake_out - alpha_real) ** 2))
      state, metrics = d_step(state, batch, z, jax.random.PRNGKey(t))
      np.testing.assert_allclose(float(metrics['d_lecam']), 0.5 * r_lc,
                                 rtol=1e-4, err_msg=f'update {t}')
      np.testing.assert_allclose(
          float(metrics['d_loss']),
          _softplus(-real_out).mean() + _softplus(fake_out).mean(),
          rtol=1e-5)
      averages = state.d_state['lecam']
      np.testing.assert_allclose(
          [float(averages['real']), float(averages['fake'])],
          [biased_real, biased_fake], rtol=1e-4, atol=1e-7)
      self.assertEqual(float(averages['updates']), t)

  def test_topk_g_loss_over_the_fakes_d_rates_highest(self):
    steps, state, _, z = self._build(topk=True, topk_gamma=0.5, topk_every=2,
                                     topk_min_fraction=0.25)
    game = steps.game
    fake = game.generate(state.g_params, z, state.g_state, train=True)
    out = np.asarray(game.discriminate(state.d_params, fake), np.float64)
    # Batch 8: k = floor(8 max(0.5^e, 1/4)) at e = floor(t / 2).
    for t, k in ((0, 8), (1, 8), (2, 4), (5, 2), (400, 2)):
      _, metrics = jax.jit(steps.g_step)(state.replace(step=jnp.int32(t)), z)
      kept = np.sort(out)[::-1][:k]
      np.testing.assert_allclose(float(metrics['g_loss']),
                                 _softplus(-kept).mean(), rtol=1e-5,
                                 err_msg=f'step {t}')

  def test_config_checks(self):
    image = testing.tiny_image_config
    with self.assertRaisesRegex(ConfigError, 'applies to image data sets'):
      config_lib.validate(testing.tiny_toy_config(augment=('color',)))
    with self.assertRaisesRegex(ConfigError,
                                "'flip' is not a known augmentation; valid: "
                                'color, translation, cutout'):
      config_lib.validate(image(augment=('flip',)))
    with self.assertRaisesRegex(ConfigError, '--topk needs a loss'):
      config_lib.validate(image(topk=True, loss='rahinge'))
    with self.assertRaisesRegex(ConfigError, r'--topk_gamma=0\.0 must lie'):
      config_lib.validate(image(topk_gamma=0.0))


ALL = dict(augment=POLICY, reg='r1', reg_weight=1.0, lecam_weight=0.1,
           topk=True, topk_every=2)


class TrainingTest(absltest.TestCase):

  def test_trains_and_resumes_bit_identically(self):
    from gan_jax import train  # pylint: disable=g-import-not-at-top
    config = testing.tiny_image_config(checkpoint_every=3, **ALL)
    whole = self.create_tempdir().full_path
    train.run(config.replace(workdir=whole), out=None, err=None)
    split = self.create_tempdir().full_path
    train.run(config.replace(workdir=split, num_steps=3), out=None, err=None)
    train.run(config.replace(workdir=split), out=None, err=None)
    read = lambda w: ocp.StandardCheckpointer().restore(
        os.path.join(w, 'checkpoints', '6', 'state'))
    a, b = read(whole), read(split)
    chex.assert_trees_all_equal(a, b)
    self.assertEqual(float(a['d_state']['lecam']['updates']), 6.0)
    np.testing.assert_array_equal(np.load(os.path.join(whole, 'samples.npy')),
                                  np.load(os.path.join(split, 'samples.npy')))

  def test_composes_with_unrolling_and_packing(self):
    from gan_jax import loop  # pylint: disable=g-import-not-at-top
    for changes in (dict(unroll_steps=2), dict(pack=2),
                    dict(update='consensus', reg='none', reg_weight=0.0)):
      config = testing.tiny_image_config(num_steps=2, log_every=2,
                                         **{**ALL, **changes})
      config_lib.validate(
          config.replace(workdir=self.create_tempdir().full_path))
      _, steps, state = testing.build(config)
      state = loop.train(state, steps.train_step, 2, 2, out=None)
      for leaf in jax.tree.leaves(state):
        self.assertTrue(np.isfinite(np.asarray(leaf)).all(), changes)
      # D's own updates (not the unrolled ones) advance the averages.
      self.assertEqual(float(state.d_state['lecam']['updates']), 2.0)

  def test_vmapped_seeds_equal_seeds_alone(self):
    base = testing.tiny_image_config(num_steps=3, **ALL)
    testing.assert_members_equal_alone(
        [base.replace(seed=1), base.replace(seed=2)],
        ('g_params', 'd_params', 'd_state'))


if __name__ == '__main__':
  absltest.main()
