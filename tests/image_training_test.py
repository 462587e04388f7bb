"""Image GAN training: model state in both players' steps, G's EMA, lazy
regularisation, and the digits/TFDS command line end to end."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from PIL import Image

from gan_jax import losses
from gan_jax import plots
from gan_jax import regularizers
from gan_jax.game import Game
from gan_jax.models import dcgan
from gan_jax.state import init_state
from gan_jax.steps import Steps

import reference_metrics as independent
import subprocess_env
import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = (16, 16, 1)
Z = 8
B = 8


def _images(key, n):
  return jnp.tanh(jax.random.normal(key, (n,) + SHAPE))


def _steps(**kwargs):
  game = Game(dcgan.Generator(out_shape=SHAPE, features=4, batch_norm=True),
              dcgan.Discriminator(features=4, spectral_norm=True),
              losses.get(kwargs.pop('loss', 'non_saturating')))
  steps = Steps(game=game, g_opt=optax.adam(1e-3), d_opt=optax.adam(1e-3),
                sample_data=_images, batch_size=B, z_dim=Z, **kwargs)
  state = init_state(game, steps.g_opt, steps.d_opt, jax.random.PRNGKey(0),
                     Z, SHAPE, g_ema=steps.g_ema_decay > 0)
  return steps, state


def _equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


class ModelStateTest(parameterized.TestCase):

  def test_state_holds_batch_norm_and_spectral_norm_collections(self):
    _, state = _steps()
    self.assertEqual(list(state.g_state), ['batch_stats'])
    self.assertEqual(list(state.d_state), ['batch_stats'])
    self.assertNotEmpty(jax.tree.leaves(state.d_state))

  def test_d_step_moves_only_d_and_its_spectral_norm_vectors(self):
    steps, state = _steps()
    batch, z = _images(jax.random.PRNGKey(1), B), steps.sample_z(
        jax.random.PRNGKey(2))
    new, _ = jax.jit(steps.d_step)(state, batch, z)
    self.assertTrue(_equal(new.g_params, state.g_params))
    self.assertTrue(_equal(new.g_state, state.g_state))  # G's BN stats kept
    self.assertFalse(_equal(new.d_params, state.d_params))
    self.assertFalse(_equal(new.d_state, state.d_state))  # power iteration

  def test_g_step_moves_only_g_and_its_running_statistics(self):
    steps, state = _steps()
    new, _ = jax.jit(steps.g_step)(state, steps.sample_z(jax.random.PRNGKey(2)))
    self.assertTrue(_equal(new.d_params, state.d_params))
    self.assertTrue(_equal(new.d_state, state.d_state))  # D in inference mode
    self.assertFalse(_equal(new.g_params, state.g_params))
    self.assertFalse(_equal(new.g_state, state.g_state))

  def test_g_step_updates_running_means_by_flax_momentum(self):
    # BatchNorm(momentum=0.9): mean' = 0.9 mean + 0.1 batch_mean, checked on
    # the first BN layer (after G's dense layer) against numpy.
    steps, state = _steps()
    z = steps.sample_z(jax.random.PRNGKey(3))
    new, _ = steps.g_step(state, z)
    p = state.g_params['Dense_0']
    h = np.asarray(z) @ np.asarray(p['kernel'])
    h = h.reshape(B, 4, 4, -1)
    batch_mean = h.mean(axis=(0, 1, 2))
    old = np.asarray(state.g_state['batch_stats']['BatchNorm_0']['mean'])
    got = np.asarray(new.g_state['batch_stats']['BatchNorm_0']['mean'])
    np.testing.assert_allclose(got, 0.9 * old + 0.1 * batch_mean, rtol=1e-4,
                               atol=1e-6)


class EmaTest(absltest.TestCase):

  def test_ema_is_the_closed_form_average_after_each_g_update(self):
    beta = 0.9
    steps, state = _steps(g_ema_decay=beta)
    self.assertTrue(_equal(state.g_ema, state.g_params))
    expected = state.g_ema
    for t in range(3):
      state, _ = steps.train_step(state)
      expected = jax.tree.map(lambda e, p: beta * e + (1 - beta) * p,
                              expected, state.g_params)
      for a, b in zip(jax.tree.leaves(state.g_ema), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=str(t))

  def test_no_ema_keeps_no_copy(self):
    _, state = _steps()
    self.assertEqual(jax.tree.leaves(state.g_ema), [])


class LazyRegularizationTest(absltest.TestCase):

  def test_penalty_every_k_steps_with_weight_k_lambda(self):
    steps, state = _steps(reg=regularizers.R1, reg_weight=0.5, reg_every=3)
    batch = _images(jax.random.PRNGKey(1), B)
    z = steps.sample_z(jax.random.PRNGKey(2))
    d_step = jax.jit(steps.d_step)
    for step, weight in ((0, 1.5), (1, 0.0), (2, 0.0), (3, 1.5)):
      s = state.replace(step=jnp.int32(step))
      new, metrics = d_step(s, batch, z, jax.random.PRNGKey(4))
      d_apply = lambda p, x: steps.game.discriminate(p, x, s.d_state)
      expected = weight * regularizers.r1(d_apply, s.d_params, batch, None,
                                          None)
      np.testing.assert_allclose(metrics['d_penalty'], expected, rtol=1e-5,
                                 err_msg=str(step))
      if weight:
        self.assertGreater(float(metrics['d_penalty']), 0)

  def test_gradient_is_that_of_loss_plus_weighted_penalty(self):
    steps, state = _steps(reg=regularizers.WGAN_GP, reg_weight=10.0)
    batch = _images(jax.random.PRNGKey(1), B)
    z = steps.sample_z(jax.random.PRNGKey(2))
    key = jax.random.PRNGKey(5)
    grads, _ = steps.d_grads(state.d_params, state.g_params, batch, z,
                             state.g_state, state.d_state, key)
    fake = steps.game.generate(state.g_params, z, state.g_state, train=True)
    d_apply = lambda p, x: steps.game.discriminate(p, x, state.d_state)

    def objective(d):
      d_loss, _ = steps.game.d_objective(d, state.g_params, batch, z,
                                         state.g_state, state.d_state)
      return d_loss + 10.0 * regularizers.wgan_gp(d_apply, d, batch, fake, key)

    expected = jax.grad(objective)(state.d_params)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


class ImageGridTest(absltest.TestCase):

  def test_grid_places_each_image_in_its_cell(self):
    images = np.stack([np.full((3, 2, 1), v) for v in np.linspace(-1, 1, 6)])
    grid = plots.image_grid(images, rows=2, cols=3)
    self.assertEqual(grid.shape, (2 * 4 + 1, 3 * 3 + 1, 1))
    self.assertEqual(grid.dtype, np.uint8)
    for i, v in enumerate(np.linspace(-1, 1, 6)):
      r, c = divmod(i, 3)
      cell = grid[1 + 4 * r:4 + 4 * r, 1 + 3 * c:3 + 3 * c]
      np.testing.assert_array_equal(cell, np.round((v + 1) * 127.5))
    self.assertEqual(int(grid[0].max()), 0)  # the gaps are black


TINY_DIGITS = testing.argv(testing.tiny_image_config(
    num_steps=20, log_every=10, batch_size=16, g_features=8, d_features=8,
    num_eval_samples=100))


class DigitsCommandLineTest(absltest.TestCase):

  def test_digits_run_writes_images_grids_and_evaluations(self):
    workdir = self.create_tempdir().full_path
    proc = subprocess.run(
        [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}',
         *TINY_DIGITS, '--g_batch_norm', '--d_spectral_norm',
         '--g_ema_decay=0.9', '--reg=r1', '--reg_weight=1', '--reg_every=2',
         '--image_every=10', '--eval_every=10', '--eval_metrics=fid,pr'],
        capture_output=True, text=True, cwd=ROOT, env=subprocess_env.env(),
        timeout=600)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertIn('FID', proc.stdout)
    samples = np.load(os.path.join(workdir, 'samples.npy'))
    self.assertEqual(samples.shape, (100, 16, 16, 1))
    self.assertLessEqual(float(np.abs(samples).max()), 1.0)
    with Image.open(os.path.join(workdir, 'samples.png')) as im:
      self.assertEqual(im.size[0], im.size[1])  # an 8x8 grid of squares
      self.assertGreaterEqual(im.size[0], 8 * 17 + 1)
    self.assertTrue(os.path.exists(os.path.join(workdir, 'samples_10.png')))
    records = [json.loads(l) for l in open(os.path.join(workdir,
                                                        'metrics.jsonl'))]
    evals = [r for r in records if r.get('eval')]
    self.assertEqual([r['step'] for r in evals], [10])
    final = records[-1]
    self.assertTrue(final['final'])
    self.assertEqual(final['extractor'], 'digits_classifier')
    self.assertEqual((final['num_generated'], final['reference_split']),
                     (100, 'train'))
    # The final evaluation is that of samples.npy: recomputed here from the
    # classifier's features of samples.npy and of the digits train split,
    # with independent float64 metrics.
    from gan_jax import features  # pylint: disable=g-import-not-at-top
    from gan_jax.metrics import reference  # pylint: disable=g-import-not-at-top
    extractor = features.get('digits_classifier')
    self.assertEqual(final['extractor_sha256'], extractor.weights_sha256)
    real, _ = extractor.extract(reference.digits('train')[0])
    fake, _ = extractor.extract(samples)
    np.testing.assert_allclose(final['fid'], independent.frechet(real, fake),
                               rtol=1e-5)
    precision, recall, _, _ = independent.prdc(real, fake)
    np.testing.assert_allclose(final['precision'], precision, atol=1.01 / 100)
    np.testing.assert_allclose(final['recall'], recall, atol=1.01 / 1437)
    # Twenty steps of a tiny DCGAN: far from the data (the digits test split
    # is at 13 from the train split, these samples at about 2,500), but a
    # finite distance.
    self.assertBetween(final['fid'], 100.0, 10_000.0)
    self.assertBetween(final['precision'], 0.0, 1.0)
    self.assertBetween(final['recall'], 0.0, 1.0)
    self.assertIn('d_penalty', records[0])




# `python -m gan_jax.main` on TFDS's mock MNIST (`tfds.testing.mock_data`, as
# the in-process runs use it), whose orbax pauses inside the write of
# checkpoint $PAUSE_STEP (if set) once its arrays are being written: it
# creates $PAUSE_MARKER and sleeps, for the test to kill it there.
MOCK_MNIST_MAIN = textwrap.dedent('''
    import os, time
    from absl import app
    from orbax.checkpoint import handlers
    import tensorflow_datasets as tfds
    from gan_jax import cli, main

    save = handlers.StandardCheckpointHandler.async_save

    async def paused_save(self, directory, *args, **kwargs):
      futures = await save(self, directory, *args, **kwargs)
      step_dir = os.path.basename(os.path.dirname(
          str(getattr(directory, 'path', directory))))
      pause = os.environ.get('PAUSE_STEP')
      if pause and step_dir.startswith(pause + '.orbax-checkpoint-tmp'):
        open(os.environ['PAUSE_MARKER'], 'w').close()
        time.sleep(600)
      return futures

    handlers.StandardCheckpointHandler.async_save = paused_save
    with tfds.testing.mock_data(num_examples=40,
                                policy=tfds.testing.MockPolicy.USE_CODE):
      app.run(main.main, flags_parser=cli.parse_flags)
''')

class TfdsTrainingTest(parameterized.TestCase):
  """MNIST through `tfds.data_source` with `tfds.testing.mock_data`: held on
  the device, and streamed from the host in prefetched chunks."""

  def _run(self, workdir, num_steps, **changes):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    from gan_jax import train  # pylint: disable=g-import-not-at-top
    config = testing.tiny_image_config(
        workdir=workdir, dataset='mnist', num_steps=num_steps, log_every=5,
        num_eval_samples=16, checkpoint_every=5, **changes)
    with tfds.testing.mock_data(num_examples=40, policy=
                                tfds.testing.MockPolicy.USE_CODE):
      return train.run(config, out=None, err=None)

  @parameterized.named_parameters(('in_memory', False), ('streamed', True))
  def test_killed_mid_run_resumes_bit_identically(self, stream):
    # Uninterrupted, in this process: 15 steps.
    whole = self.create_tempdir().full_path
    self._run(whole, 15, stream_data=stream)
    # The same run in a subprocess, SIGKILLed inside the write of checkpoint
    # 10 (held there by a pause, so the kill lands mid-run whatever the
    # speed), then the same command again: it resumes from checkpoint 5.
    tmp = self.create_tempdir().full_path
    killed, marker = os.path.join(tmp, 'run'), os.path.join(tmp, 'paused')
    config = testing.tiny_image_config(
        dataset='mnist', num_steps=15, log_every=5, num_eval_samples=16,
        checkpoint_every=5, stream_data=stream)
    command = [sys.executable, '-c', MOCK_MNIST_MAIN, f'--workdir={killed}',
               *testing.argv(config)]
    with open(os.path.join(tmp, 'stderr'), 'w+') as err:
      proc = subprocess.Popen(
          command, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
          env=subprocess_env.env(PAUSE_STEP='10', PAUSE_MARKER=marker))
      deadline = time.monotonic() + 240
      while not os.path.exists(marker):
        if proc.poll() is not None or time.monotonic() > deadline:
          proc.kill()
          err.seek(0)
          self.fail(f'the write of step 10 never paused: {err.read()}')
        time.sleep(0.02)
      proc.kill()
      self.assertEqual(proc.wait(), -signal.SIGKILL)
    self.assertEqual([n for n in os.listdir(os.path.join(killed, 'checkpoints'))
                      if n.isdigit()], ['5'])
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env=subprocess_env.env(), timeout=300)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertIn('resuming from the checkpoint at step 5', proc.stdout)
    a = np.load(os.path.join(whole, 'samples.npy'))
    b = np.load(os.path.join(killed, 'samples.npy'))
    self.assertEqual(a.shape, (16, 28, 28, 1))
    np.testing.assert_array_equal(a, b)
    restore = lambda w: ocp.StandardCheckpointer().restore(
        os.path.join(w, 'checkpoints', '15', 'state'))
    x, y = restore(whole), restore(killed)
    self.assertEqual(int(y['step']), 15)
    self.assertEqual(jax.tree.structure(x), jax.tree.structure(y))
    for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
      np.testing.assert_array_equal(u, v)

  def test_streamed_batches_feed_every_d_step(self):
    # A step consumes d_steps batches, plus one when G's loss sees real data
    # (the relativistic losses).
    from gan_jax import train  # pylint: disable=g-import-not-at-top
    for loss, d_steps, expected in (('non_saturating', 1, 1),
                                    ('wasserstein', 3, 3),
                                    ('rasgan', 2, 3)):
      config = testing.tiny_image_config(loss=loss, d_steps=d_steps)
      _, steps, _ = train.build(config)
      self.assertEqual(steps.batches_per_step(), expected, loss)


class ImageSeedsTest(absltest.TestCase):

  def test_vmapped_seeds_equal_seeds_alone_with_model_state_and_ema(self):
    from gan_jax import train  # pylint: disable=g-import-not-at-top
    base = testing.tiny_image_config(g_batch_norm=True, d_spectral_norm=True,
                                     g_ema_decay=0.9)
    result, alone = testing.assert_members_equal_alone(
        [base.replace(seed=1), base.replace(seed=2)],
        ('g_params', 'g_state', 'd_state', 'g_ema'))
    for m, config, steps, state in alone:
      samples = train.generate(steps, state, train.eval_latents(config))
      np.testing.assert_allclose(result.samples[m], samples, atol=1e-5)


if __name__ == '__main__':
  absltest.main()
