"""PacGAN (`--pack`): D's packed input against numpy reshapes, the game's
outputs and a gradient penalty on packs computed by hand, short runs of
several losses, penalties and schemes, seeds, and the unpacked evaluation
samples and a resumed run."""

import json
import os

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import config as config_lib
from gan_jax import loop
from gan_jax import packing
from gan_jax import seeds
from gan_jax import train
from gan_jax.models import dcgan
from gan_jax.models import mlp

import testing


class PackTest(absltest.TestCase):

  def test_flat_samples_become_concatenated_vectors(self):
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    expected = np.stack([np.concatenate([x[0], x[1]]),
                         np.concatenate([x[2], x[3]]),
                         np.concatenate([x[4], x[5]])])
    np.testing.assert_array_equal(packing.pack(jnp.asarray(x), 2), expected)
    np.testing.assert_array_equal(
        packing.pack(jnp.asarray(x), 3),
        np.stack([x[:3].ravel(), x[3:].ravel()]))
    self.assertIs(packing.pack(x, 1), x)

  def test_images_are_stacked_along_channels(self):
    x = np.random.default_rng(0).normal(size=(4, 3, 3, 2)).astype(np.float32)
    packed = np.asarray(packing.pack(jnp.asarray(x), 2))
    self.assertEqual(packed.shape, (2, 3, 3, 4))
    for i in range(2):
      np.testing.assert_array_equal(
          packed[i], np.concatenate([x[2 * i], x[2 * i + 1]], axis=-1))

  def test_a_batch_that_does_not_divide_is_refused(self):
    with self.assertRaisesRegex(ValueError, 'cannot pack 5 samples in packs'):
      packing.pack(jnp.zeros((5, 2)), 2)

  def test_packed_d_is_d_on_the_concatenated_vector(self):
    d = mlp.Discriminator(hidden=(8, 8))
    packed = packing.packed(d, 2)
    variables = packed.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    # D's own parameters, sized for inputs of 2 x 2 entries, no extra level.
    self.assertEqual(variables['params']['Dense_0']['kernel'].shape, (4, 8))
    x = np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32)
    out = np.asarray(packed.apply(variables, jnp.asarray(x)))
    self.assertEqual(out.shape, (3,))
    for i in range(3):
      alone = d.apply(variables, np.concatenate([x[2 * i], x[2 * i + 1]])[None])
      np.testing.assert_allclose(out[i], np.asarray(alone)[0], rtol=1e-6)
    self.assertIs(packing.packed(d, 1), d)

  def test_packed_image_d_reads_m_times_the_channels(self):
    d = dcgan.Discriminator(features=4)
    packed = packing.packed(d, 3)
    variables = packed.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)))
    x = np.random.default_rng(2).normal(size=(6, 16, 16, 1)).astype(
        np.float32)
    out = packed.apply(variables, jnp.asarray(x))
    alone = d.apply(variables, np.concatenate([x[3], x[4], x[5]], axis=-1)[None])
    np.testing.assert_allclose(out[1], alone[0], rtol=1e-5, atol=1e-6)


def _manual_pack(x, m):
  return np.stack([np.concatenate(list(x[i:i + m]), axis=-1)
                   for i in range(0, len(x), m)])


class PackedGameTest(absltest.TestCase):

  def test_steps_draw_batch_size_packs_and_d_sees_them(self):
    config = testing.tiny_toy_config(pack=3, batch_size=8)
    _, steps, state = testing.build(config)
    self.assertEqual(steps.pack, 3)
    batch, z = testing.batch_and_latents(steps)
    self.assertEqual(batch.shape, (24, 2))
    self.assertEqual(z.shape, (24, config.z_dim))
    real_out, fake_out = steps.game.outputs(state.g_params, state.d_params,
                                            batch, z)
    self.assertEqual((real_out.shape, fake_out.shape), ((8,), (8,)))
    d = mlp.Discriminator(hidden=config.d_hidden)
    g = mlp.Generator(hidden=config.g_hidden, out_dim=2)
    fake = np.asarray(g.apply({'params': state.g_params}, z))
    np.testing.assert_allclose(
        real_out, d.apply({'params': state.d_params},
                          _manual_pack(np.asarray(batch), 3)), rtol=1e-5)
    np.testing.assert_allclose(
        fake_out, d.apply({'params': state.d_params}, _manual_pack(fake, 3)),
        rtol=1e-5, atol=1e-6)
    # D's loss is the cross-entropy on the 8 packed outputs of each kind.
    d_loss = steps.game.d_objective(state.d_params, state.g_params, batch,
                                    z)[0]
    softplus = lambda v: np.log1p(np.exp(-np.abs(v))) + np.maximum(v, 0)
    np.testing.assert_allclose(
        d_loss, np.mean(softplus(-np.asarray(real_out)))
        + np.mean(softplus(np.asarray(fake_out))), rtol=1e-5)

  def test_r1_is_taken_on_whole_packs(self):
    # R1 = 1/2 mean over the B packs of ||grad D(pack)||^2, each gradient
    # over all m d entries of its pack (per pack, one jax.grad each).
    config = testing.tiny_toy_config(pack=2, batch_size=4, reg='r1',
                                     reg_weight=1.0)
    _, steps, state = testing.build(config)
    batch, z = testing.batch_and_latents(steps)
    _, metrics, _ = steps.d_grads_and_state(
        state.d_params, state.g_params, batch, z, key=jax.random.PRNGKey(3))
    d = mlp.Discriminator(hidden=config.d_hidden)
    packs = _manual_pack(np.asarray(batch), 2)
    grad_one = jax.grad(lambda p: d.apply({'params': state.d_params},
                                          p[None])[0])
    sq = [float(np.sum(np.square(grad_one(jnp.asarray(p))))) for p in packs]
    self.assertLen(sq, 4)
    np.testing.assert_allclose(metrics['d_penalty'], 0.5 * np.mean(sq),
                               rtol=1e-5)

  def test_wgan_gp_interpolates_packs(self):
    # A linear D on packs, f(p) = w . p + b: the gradient is w at every
    # interpolate, so the penalty is (||w|| - 1)^2 with w over m d entries.
    config = testing.tiny_toy_config(pack=2, batch_size=4, reg='wgan_gp',
                                     reg_weight=1.0, loss='wasserstein',
                                     d_hidden=(1,))
    _, steps, state = testing.build(config)
    params = jax.tree.map(np.asarray, state.d_params)
    params['Dense_0']['kernel'] = np.array([[1.0], [2.0], [-1.0], [0.5]],
                                           np.float32)
    params['Dense_0']['bias'] = np.array([20.0], np.float32)  # ReLU on
    params['Dense_1']['kernel'] = np.array([[3.0]], np.float32)
    batch, z = testing.batch_and_latents(steps)
    _, metrics, _ = steps.d_grads_and_state(
        params, state.g_params, batch, z, key=jax.random.PRNGKey(4))
    w = 3.0 * np.array([1.0, 2.0, -1.0, 0.5])
    # Only if every interpolate keeps the unit's pre-activation positive;
    # the samples are within a few units of the origin.
    np.testing.assert_allclose(metrics['d_penalty'],
                               (np.linalg.norm(w) - 1.0) ** 2, rtol=1e-5)


def _moved(a, b):
  return max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


class PackedTrainingTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('non_saturating_alternating', dict(loss='non_saturating')),
      ('wgan_gp_simultaneous', dict(loss='wasserstein', reg='wgan_gp',
                                    reg_weight=1.0, update='simultaneous')),
      ('hinge_r1_extragradient', dict(loss='hinge', reg='r1', reg_weight=1.0,
                                      update='extragradient')),
      ('rasgan_dragan_consensus', dict(loss='rasgan', reg='dragan',
                                       reg_weight=1.0, update='consensus')),
      ('minimax_unrolled_simultaneous', dict(loss='minimax', unroll_steps=2,
                                           update='simultaneous')),
  )
  def test_a_short_packed_run(self, changes):
    config = testing.tiny_toy_config(pack=2, **changes)
    config_lib.validate(config.replace(workdir=self.create_tempdir().full_path))
    _, steps, state0 = testing.build(config)
    state0 = jax.device_get(state0)
    new, metrics = loop.ChunkRunner(steps.train_step)(
        jax.tree.map(jnp.asarray, state0), 3)
    self.assertEqual(int(new.step), 3)
    for name, values in metrics.items():
      self.assertTrue(np.all(np.isfinite(values)), name)
    self.assertGreater(_moved(new.g_params, state0.g_params), 0)
    self.assertGreater(_moved(new.d_params, state0.d_params), 0)

  def test_seeds_vmapped_match_seeds_alone(self):
    config = testing.tiny_toy_config(pack=2, unroll_steps=2, num_steps=4,
                                     log_every=4, num_eval_samples=50)
    result = seeds.train_members(seeds.member_configs(config, 2))
    self.assertEqual(result.samples.shape, (2, 50, 2))
    for m in range(2):
      c = config.replace(seed=config.seed + m)
      _, steps, state = train.build(c)
      state, _ = loop.ChunkRunner(steps.train_step)(state, 4)
      for x, y in zip(jax.tree.leaves(testing.member(result.state.g_params, m)),
                      jax.tree.leaves(state.g_params)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)


class PackedRunTest(absltest.TestCase):

  def test_evaluation_is_unpacked_and_a_resumed_run_is_bit_identical(self):
    tmp = self.create_tempdir().full_path
    config = testing.tiny_toy_config(pack=2, num_steps=8, log_every=4,
                                     checkpoint_every=4, num_eval_samples=60)
    whole = config.replace(workdir=os.path.join(tmp, 'whole'))
    train.run(config_lib.validate(whole), out=None, err=None)
    samples = np.load(os.path.join(whole.workdir, 'samples.npy'))
    self.assertEqual(samples.shape, (60, 2))  # G's samples, one per latent
    with open(os.path.join(whole.workdir, 'metrics.jsonl')) as f:
      records = [json.loads(line) for line in f]
    self.assertEqual([r['step'] for r in records[:-1]], [4, 8])
    for r in records[:-1]:  # the saturation metrics flow into the log
      self.assertTrue(0 < r['d_fake_prob'] < 1, r)
      self.assertEqual(r['d_fake_saturated_frac'], 0.0)
    halves = config.replace(workdir=os.path.join(tmp, 'halves'))
    train.run(config_lib.validate(halves.replace(num_steps=4)), out=None,
              err=None)
    train.run(config_lib.validate(halves), out=None, err=None)
    np.testing.assert_array_equal(
        np.load(os.path.join(halves.workdir, 'samples.npy')), samples)


if __name__ == '__main__':
  absltest.main()
