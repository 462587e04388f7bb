"""gan_jax.generate: samples of trained runs, truncation, slerp, EMA vs raw G."""

import io
import math
import os
import subprocess
import sys

from absl.testing import absltest
import jax
import numpy as np
from scipy import stats

import testing
from gan_jax import generate
from gan_jax import seeds as seeds_lib
from gan_jax import train
from gan_jax.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def numpy_slerp(a, b, t):
  """Shoemake's slerp of two vectors at fraction t, from the formula."""
  omega = math.acos(float(np.dot(a, b) / (np.linalg.norm(a) *
                                          np.linalg.norm(b))))
  return (math.sin((1 - t) * omega) * a + math.sin(t * omega) * b) / math.sin(
      omega)


class GenerateTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = absltest.get_default_test_tmpdir()
    quiet = io.StringIO()
    cls.toy = testing.tiny_toy_config(
        workdir=os.path.join(root, 'toy'), g_ema_decay=0.9,
        checkpoint_every=10)
    train.run(cls.toy, out=quiet, err=quiet)
    cls.image = testing.tiny_image_config(workdir=os.path.join(root, 'img'))
    train.run(cls.image, out=quiet, err=quiet)
    cls.members = testing.tiny_toy_config(workdir=os.path.join(root, 'seeds'),
                                          seed=5, num_steps=10)
    seeds_lib.run(cls.members, 2, out=quiet)
    cls.conditional = testing.tiny_image_config(
        workdir=os.path.join(root, 'conditional'), conditional='projection')
    train.run(cls.conditional, out=quiet, err=quiet)

  def _run(self, config, name, **options):
    out = os.path.join(self.create_tempdir().full_path, name)
    generate.run(config.workdir, generate.Options(out=out, **options))
    return out

  def _load(self, out, name):
    return np.load(os.path.join(out, name))

  def test_counts_shapes_and_files(self):
    out = self._run(self.toy, 'toy', num=37, interpolate=5, num_strips=3)
    self.assertEqual(sorted(os.listdir(out)), [
        'generated.json', 'interpolation.npy', 'interpolation.png',
        'interpolation_latents.npy', 'latents.npy', 'samples.npy',
        'samples.png'])
    self.assertEqual(self._load(out, 'samples.npy').shape, (37, 2))
    self.assertEqual(self._load(out, 'latents.npy').shape, (37, 4))
    self.assertEqual(self._load(out, 'interpolation.npy').shape, (3, 5, 2))
    self.assertEqual(self._load(out, 'interpolation_latents.npy').shape,
                     (3, 5, 4))
    out = self._run(self.image, 'img', num=10)
    images = self._load(out, 'samples.npy')
    self.assertEqual(images.shape, (10, 16, 16, 1))
    self.assertLessEqual(float(np.abs(images).max()), 1.0)

  def test_a_conditional_run_makes_the_classes_asked_for(self):
    every = self._run(self.conditional, 'every', num=23, interpolate=3,
                      num_strips=2)
    labels = self._load(every, 'labels.npy')
    np.testing.assert_array_equal(labels, np.arange(23) % 10)
    self.assertTrue(os.path.isfile(os.path.join(every,
                                                'samples_by_class.png')))
    self.assertEqual(self._load(every, 'interpolation.npy').shape[:2], (2, 3))
    three = self._run(self.conditional, 'three', num=23, label=3)
    np.testing.assert_array_equal(self._load(three, 'labels.npy'),
                                  np.full(23, 3))
    # Same latents: a sample asked for class 3 both times is the same image;
    # asked for another class it is another image.
    a, b = self._load(every, 'samples.npy'), self._load(three, 'samples.npy')
    same = labels == 3
    np.testing.assert_array_equal(a[same], b[same])
    self.assertGreater(float(np.abs(a[~same] - b[~same]).max(axis=(1, 2, 3))
                             .min()), 0.0)

  def test_the_same_seed_gives_the_same_samples(self):
    a = self._load(self._run(self.toy, 'a', num=20, seed=4), 'samples.npy')
    b = self._load(self._run(self.toy, 'b', num=20, seed=4), 'samples.npy')
    c = self._load(self._run(self.toy, 'c', num=20, seed=5), 'samples.npy')
    np.testing.assert_array_equal(a, b)
    self.assertFalse(np.allclose(a, c))

  def test_ema_weights_reproduce_the_runs_own_samples_and_raw_differs(self):
    # The run wrote samples.npy from its final G's moving average on
    # train.eval_latents; the checkpoint read back must give those again.
    steps, state, _, step, _ = generate.load(self.toy, None, -1)
    self.assertEqual(step, 20)
    z = np.asarray(train.eval_latents(self.toy))
    ema = generate.generate(steps, state, z, 'ema')
    np.testing.assert_allclose(
        ema, np.load(os.path.join(self.toy.workdir, 'samples.npy')),
        rtol=1e-6, atol=1e-6)
    raw = generate.generate(steps, state, z, 'raw')
    np.testing.assert_allclose(
        raw, np.asarray(steps.game.generate(state.g_params, z, state.g_state)),
        rtol=1e-6, atol=1e-6)
    self.assertFalse(np.allclose(raw, ema))
    # Through the command: auto = ema here, raw on request.
    auto = self._load(self._run(self.toy, 'auto', num=8), 'samples.npy')
    raw8 = self._load(self._run(self.toy, 'raw', num=8, weights='raw'),
                      'samples.npy')
    self.assertFalse(np.allclose(auto, raw8))

  def test_an_older_step_is_another_generator(self):
    newest = self._load(self._run(self.toy, 'n', num=8), 'samples.npy')
    step20 = self._load(self._run(self.toy, 's20', num=8, step=20),
                        'samples.npy')
    step10 = self._load(self._run(self.toy, 's10', num=8, step=10),
                        'samples.npy')
    np.testing.assert_array_equal(newest, step20)
    self.assertFalse(np.allclose(step10, step20))

  def test_truncation_resamples_entries_outside_psi(self):
    psi, num, dim = 0.7, 5000, 4
    z = generate.latents(3, num, dim, psi)
    full = generate.latents(3, num, dim, 0.0)
    self.assertLessEqual(float(np.abs(z).max()), psi)
    # Entries already within psi are kept as drawn: nothing is rescaled.
    inside = np.abs(full) <= psi
    np.testing.assert_array_equal(z[inside], full[inside])
    self.assertTrue(np.all(z[~inside] != full[~inside]))
    # The distribution is N(0, 1) truncated to [-psi, psi]: against numpy
    # draws kept only within psi (the resampling rule by hand) ...
    rng = np.random.default_rng(0)
    draws = rng.standard_normal(200_000)
    hand = draws[np.abs(draws) <= psi][:z.size]
    self.assertGreater(stats.ks_2samp(z.ravel(), hand).pvalue, 1e-3)
    # ... its variance 1 - 2 psi phi(psi) / (2 Phi(psi) - 1) ...
    var = 1 - 2 * psi * stats.norm.pdf(psi) / (2 * stats.norm.cdf(psi) - 1)
    self.assertAlmostEqual(float(z.var()), var, delta=0.01)
    # ... and not the scaled draws psi z / max|z|.
    scaled = psi * full / np.abs(full).max()
    self.assertLess(stats.ks_2samp(z.ravel(), scaled.ravel()).pvalue, 1e-6)
    # The command writes the latents it used.
    out = self._run(self.toy, 'trunc', num=64, truncation=0.5)
    latents = self._load(out, 'latents.npy')
    self.assertLessEqual(float(np.abs(latents).max()), 0.5)

  def test_interpolation_strips_are_slerp(self):
    k, strips = 7, 4
    out = self._run(self.toy, 'slerp', num=4, interpolate=k,
                    num_strips=strips)
    lat = self._load(out, 'interpolation_latents.npy')
    frames = self._load(out, 'interpolation.npy')
    for s in range(strips):
      a, b = lat[s, 0].astype(np.float64), lat[s, -1].astype(np.float64)
      self.assertGreater(abs(np.dot(a, b)), 0)  # ends are two latents
      for i, t in enumerate(np.linspace(0, 1, k)):
        want = numpy_slerp(a, b, t)
        np.testing.assert_allclose(lat[s, i], want, rtol=1e-5, atol=1e-5)
        # Norm from the slerp weights: |wa a + wb b|^2.
        omega = math.acos(np.dot(a, b) / np.linalg.norm(a) /
                          np.linalg.norm(b))
        wa = math.sin((1 - t) * omega) / math.sin(omega)
        wb = math.sin(t * omega) / math.sin(omega)
        norm = math.sqrt(wa**2 * a @ a + wb**2 * b @ b + 2 * wa * wb * a @ b)
        self.assertAlmostEqual(float(np.linalg.norm(lat[s, i])), norm,
                               places=4)
    # The ends are the pair's latents, drawn from --seed like the samples'.
    ends = np.asarray(jax.random.normal(
        jax.random.fold_in(jax.random.PRNGKey(0), 1), (2, strips, 4)))
    np.testing.assert_allclose(lat[:, 0], ends[0], atol=1e-6)
    np.testing.assert_allclose(lat[:, -1], ends[1], atol=1e-6)
    # The frames are G (its moving average) of those latents.
    steps, state, _, _, _ = generate.load(self.toy, None, -1)
    np.testing.assert_allclose(
        frames[1], generate.generate(steps, state, lat[1], 'ema'),
        rtol=1e-6, atol=1e-6)

  def test_runs_of_several_seeds(self):
    out = self._run(self.members, 'all', num=6)
    a5 = self._load(out, 'samples_seed5.npy')
    a6 = self._load(out, 'samples_seed6.npy')
    self.assertEqual(a5.shape, (6, 2))
    self.assertFalse(np.allclose(a5, a6))
    one = self._run(self.members, 'one', num=6, seed_index=1)
    self.assertNotIn('samples_seed5.npy', os.listdir(one))
    np.testing.assert_array_equal(self._load(one, 'samples_seed6.npy'), a6)
    # Each member's generator gives its samples.npy of the training run.
    steps, tree, _, _, seeds = generate.load(self.members, None, -1)
    self.assertEqual(seeds, [5, 6])
    run_samples = np.load(os.path.join(self.members.workdir, 'samples.npy'))
    for m, seed in enumerate(seeds):
      member = {k: testing.member(v, m) for k, v in tree.items()}
      z = np.asarray(train.eval_latents(self.members.replace(seed=seed)))
      np.testing.assert_allclose(generate.generate(steps, member, z, 'raw'),
                                 run_samples[m], rtol=1e-5, atol=1e-5)

  def test_bad_input_writes_nothing(self):
    out = os.path.join(self.create_tempdir().full_path, 'never')
    cases = [
        (self.toy, dict(step=15), 'no checkpoint of step 15.*steps there: '
         '10, 20'),
        (self.toy, dict(truncation=0.01), 'at least 0.05'),
        (self.toy, dict(truncation=-1.0), 'at least 0.05'),
        (self.toy, dict(interpolate=1), '2..4096'),
        (self.toy, dict(num=0), '--num=0'),
        (self.toy, dict(seed_index=1), 'run of one seed'),
        (self.image, dict(weights='ema'), 'no moving average'),
        (self.members, dict(seed_index=2), 'not a member'),
        (self.members, dict(step=10), 'final generators'),
    ]
    for config, options, message in cases:
      with self.subTest(**options):
        with self.assertRaisesRegex(ConfigError, message):
          generate.run(config.workdir, generate.Options(out=out, **options))
        self.assertFalse(os.path.exists(out))
    empty = self.create_tempdir().full_path
    with open(os.path.join(empty, 'config.json'), 'w') as f:
      f.write(self.toy.replace(workdir=empty).to_json())
    with self.assertRaisesRegex(ConfigError, 'holds no checkpoint'):
      generate.run(empty, generate.Options(out=out))
    self.assertEqual(os.listdir(empty), ['config.json'])
    for config, label, message in (
        (self.toy, 0, 'not a class-conditional run'),
        (self.conditional, 10, r'--class=10 is not a class.*0\.\.9')):
      with self.assertRaisesRegex(ConfigError, message):
        generate.run(config.workdir, generate.Options(out=out, label=label))
      self.assertFalse(os.path.exists(out))

  def test_command_line_bad_step_is_one_line_exit_2(self):
    out = os.path.join(self.create_tempdir().full_path, 'never')
    proc = subprocess.run(
        [sys.executable, '-m', 'gan_jax.generate',
         f'--workdir={self.toy.workdir}', '--step=7', f'--out={out}'],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, 'PYTHONPATH': ROOT}, check=False)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    self.assertRegex(proc.stderr.strip(), r'^error: no checkpoint of step 7 ')
    self.assertEqual(len(proc.stderr.strip().splitlines()), 1)
    self.assertFalse(os.path.exists(out))


if __name__ == '__main__':
  absltest.main()
