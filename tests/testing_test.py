"""The test helpers build what training builds and say what they mean: the
game of `testing.build` is `gan_jax.train.build`'s, and `testing.argv` /
`testing.flag_values` parse back to their configuration."""

import dataclasses

from absl import flags
from absl.testing import absltest
from absl.testing import flagsaver
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import train
from gan_jax.config import Config
from gan_jax.steps import Steps
import testing

# Between them, every field of Steps that a configuration sets.
CONFIGS = {
    'toy_clipped': testing.tiny_toy_config(
        loss='wasserstein', d_steps=3, d_weight_clip=0.01, g_lr=2e-4,
        beta1=0.1, beta2=0.9),
    'toy_optimistic_penalised': testing.tiny_toy_config(
        loss='hinge', update='optimistic', consensus_weight=0.1, reg='r1',
        reg_weight=0.5, reg_every=2, d_spectral_norm=True, seed=3),
    'image': testing.tiny_image_config(g_batch_norm=True,
                                       d_spectral_norm=True, g_ema_decay=0.9),
    'toy_acgan': testing.tiny_toy_config(conditional='acgan',
                                         acgan_weight=0.5,
                                         fake_labels='data'),
    'toy_packed_unrolled': testing.tiny_toy_config(
        pack=2, unroll_steps=2, update='simultaneous'),
    'image_data_efficient': testing.tiny_image_config(
        augment=('translation', 'cutout', 'color'), lecam_weight=0.3,
        topk=True, lr_schedule='cosine'),
}


def _two_updates(opt, params):
  """`opt`'s second update from its initial state, for gradients 1 then 2."""
  state = opt.init(params)
  for g in (1.0, 2.0):
    updates, state = opt.update(jax.tree.map(lambda p: jnp.full_like(p, g),
                                             params), state, params)
  return updates, state


class BuildTest(parameterized.TestCase):

  @parameterized.named_parameters(*CONFIGS.items())
  def test_same_state_and_steps_as_train(self, config):
    data, steps, state = testing.build(config)
    train_data, train_steps, train_state = train.build(config)
    self.assertEqual(data.shape, train_data.shape)
    chex.assert_trees_all_equal(state, train_state)
    # Every field of Steps: the optimizers by two updates, the data by a
    # sample, the rest (the game's modules and loss included) by value.
    for field in dataclasses.fields(Steps):
      ours, theirs = (getattr(s, field.name) for s in (steps, train_steps))
      if field.name in ('g_opt', 'd_opt'):
        params = state.g_params if field.name == 'g_opt' else state.d_params
        chex.assert_trees_all_equal(_two_updates(ours, params),
                                    _two_updates(theirs, params))
      elif field.name == 'sample_data':
        key = jax.random.PRNGKey(5)
        chex.assert_trees_all_equal(ours(key, 4), theirs(key, 4))
      else:
        self.assertEqual(repr(ours), repr(theirs), field.name)

  def test_optimizer_replaces_adam(self):
    config = testing.tiny_toy_config(g_lr=0.5, d_lr=0.25)
    _, steps = testing.build_steps(config, lambda lr, b1, b2: optax.sgd(lr))
    grads = {'w': jnp.full(3, 2.0)}
    for opt, lr in ((steps.g_opt, 0.5), (steps.d_opt, 0.25)):
      updates, _ = opt.update(grads, opt.init(grads))
      chex.assert_trees_all_close(updates, {'w': jnp.full(3, -2 * lr)})

  def test_batch_and_latents(self):
    _, steps, _ = testing.build(testing.tiny_toy_config(batch_size=16))
    batch, z = testing.batch_and_latents(steps)
    chex.assert_shape(batch, (16, 2))
    chex.assert_shape(z, (16, 4))


class FlagsTest(absltest.TestCase):

  def test_argv_parses_back_to_the_config(self):
    workdir = self.create_tempdir().full_path
    for config in (testing.tiny_toy_config(loss='hinge', eval_metrics=('fid',),
                                           d_spectral_norm=True, g_lr=3e-4),
                   testing.tiny_image_config(g_batch_norm=True,
                                             stream_data=False)):
      flag_values = flags.FlagValues()
      Config.define_flags(flag_values)
      flag_values(['prog', f'--workdir={workdir}', *testing.argv(config)])
      self.assertEqual(Config.from_flags(flag_values),
                       config.replace(workdir=workdir))

  def test_flag_values_give_the_config(self):
    Config.define_flags()
    config = testing.tiny_toy_config(d_hidden=(8, 4), beta1=0.1)
    workdir = self.create_tempdir().full_path
    # Other tests in this process may have left flags set: start from the
    # defaults, as a fresh command line does.
    defaults = {f.name: flags.FLAGS[f.name].default
                for f in dataclasses.fields(Config) if f.name in flags.FLAGS}
    with flagsaver.flagsaver(**defaults):
      with flagsaver.flagsaver(workdir=workdir, **testing.flag_values(config)):
        self.assertEqual(Config.from_flags(), config.replace(workdir=workdir))

  def test_only_what_differs_from_the_defaults(self):
    self.assertEqual(testing.argv(Config(workdir='elsewhere')), [])
    self.assertEqual(testing.argv(Config(g_batch_norm=True, seed=0, z_dim=3)),
                     ['--z_dim=3', '--g_batch_norm'])
    self.assertEqual(testing.argv(Config(eval_metrics=('fid',)).replace(
        multihost=True)), ['--multihost', '--eval_metrics=fid'])


class TreeTest(absltest.TestCase):

  def test_assert_trees_differ(self):
    a = {'w': jnp.zeros(3), 'b': jnp.ones(())}
    testing.assert_trees_differ(a, {**a, 'b': jnp.zeros(())})
    with self.assertRaisesRegex(AssertionError, 'no leaf differs'):
      testing.assert_trees_differ(a, dict(a))
    with self.assertRaises(AssertionError):  # another structure
      testing.assert_trees_differ(a, {'w': a['w']})

  def test_member(self):
    tree = {'a': jnp.arange(6).reshape(3, 2), 'b': [jnp.arange(3)]}
    chex.assert_trees_all_equal(testing.member(tree, 1),
                                {'a': np.array([2, 3]), 'b': [1]})


if __name__ == '__main__':
  absltest.main()
