"""Seeds vmapped into one program equal the same seeds trained alone.

Member m of `seeds.train_members` is checked against `gan_jax.train`'s own
single-run path (`train.build` + `loop.train` + `train.generate`) with
`--seed=seed_m`: parameters and evaluation samples to 1e-5. One member also
has its own learning rate and beta1, which travel as arrays in the optimizer
state, so the same comparison covers hyperparameter batching.
"""

import io
import json
import os
import subprocess
import sys

from absl.testing import absltest
import chex
import jax
import numpy as np

from gan_jax import data as data_lib
from gan_jax import loop
from gan_jax import parallel
from gan_jax import seeds
from gan_jax import train
from gan_jax.config import ConfigError
from gan_jax.metrics import toy as toy_metrics
import reference_metrics as independent
import subprocess_env
import testing

TINY = testing.tiny_toy_config(loss='hinge')


def alone(config):
  """One run by the single-seed path: (final state, evaluation samples)."""
  _, steps, state = train.build(config)
  state = loop.train(state, steps.train_step, config.num_steps,
                     config.log_every, out=None)
  return state, train.generate(steps, state, train.eval_latents(config))


class SeedsTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.configs = [TINY.replace(seed=3),
                   TINY.replace(seed=4, g_lr=3e-4, d_lr=2e-4, beta1=0.3)]
    cls.result = seeds.train_members(cls.configs)

  def test_each_member_equals_its_seed_trained_alone(self):
    for m, config in enumerate(self.configs):
      state, samples = alone(config)
      member = testing.member(self.result.state, m)
      for name in ('g_params', 'd_params'):
        chex.assert_trees_all_close(getattr(member, name), getattr(state, name),
                                    rtol=1e-7, atol=1e-5,
                                    custom_message=f'member {m} {name}')
      np.testing.assert_allclose(self.result.samples[m], samples, atol=1e-5,
                                 err_msg=f'member {m} samples')
      self.assertEqual(int(self.result.state.step[m]), config.num_steps)

  def test_members_differ(self):
    # Different keys give different runs (the comparison above is not vacuous).
    self.assertGreater(
        np.abs(self.result.samples[0] - self.result.samples[1]).max(), 0.01)

  def test_finals_are_the_toy_metrics_of_each_members_samples(self):
    data = data_lib.build(TINY)
    for m, final in enumerate(self.result.finals):
      expected = toy_metrics.mode_metrics(self.result.samples[m], data.means,
                                          data.std)
      self.assertEqual(final['seed'], self.configs[m].seed)
      for key, value in expected.items():
        self.assertEqual(final[key], value, key)
    self.assertEqual([len(log) for log in self.result.logs], [2, 2])
    self.assertEqual([r['step'] for r in self.result.logs[0]], [10, 20])

  def test_members_must_share_their_static_fields(self):
    with self.assertRaisesRegex(ValueError, r'members differ in loss; only '
                                r'workdir, seed, g_lr'):
      seeds.build([TINY, TINY.replace(loss='minimax', seed=1)])

  def test_run_writes_seed_axis_artifacts(self):
    workdir = self.create_tempdir().full_path
    config = TINY.replace(workdir=workdir, seed=3)
    finals = seeds.run(config, 2, out=io.StringIO())
    samples = np.load(os.path.join(workdir, 'samples.npy'))
    chex.assert_shape(samples, (2, 100, 2))
    # Seed 3 is the first member of the shared result above; seed 4 there
    # has other hyperparameters.
    np.testing.assert_allclose(samples[0], self.result.samples[0], atol=1e-5)
    self.assertGreater(np.abs(samples[1] - self.result.samples[1]).max(), 1e-3)
    lines = [json.loads(l) for l in open(os.path.join(workdir,
                                                      'metrics.jsonl'))]
    self.assertEqual([(l['seed'], l['step']) for l in lines if not
                      l.get('final')],
                     [(3, 10), (4, 10), (3, 20), (4, 20)])
    self.assertEqual([l for l in lines if l.get('final')], finals)
    resolved = json.load(open(os.path.join(workdir, 'config.json')))
    self.assertEqual((resolved['num_seeds'], resolved['seeds']), (2, [3, 4]))
    self.assertTrue(os.path.isfile(os.path.join(workdir, 'samples.png')))

  def test_check_refuses_checkpoint_options(self):
    seeds.check(TINY.replace(checkpoint_every=500), 1)  # one seed: accepted
    with self.assertRaisesRegex(ConfigError,
                                r'^--num_seeds=2 writes no checkpoints.*drop '
                                r'--checkpoint_every=500, --multihost or use '
                                r'--num_seeds=1$'):
      seeds.check(TINY.replace(checkpoint_every=500, multihost=True), 2)
    with self.assertRaisesRegex(ConfigError, r'^--num_seeds=0 must be at '
                                r'least 1$'):
      seeds.check(TINY, 0)

  def test_learning_curves_of_a_mixture(self):
    # --eval_every on a toy data set: each member's record at step 20 holds
    # the mode metrics of that seed trained alone for 20 steps, computed
    # from its samples by gan_jax.metrics.toy.
    from gan_jax.metrics import toy as toy_metrics  # pylint: disable=g-import-not-at-top
    base = TINY.replace(num_steps=30, eval_every=20)
    seeds.check(base, 2)
    configs = [base.replace(seed=3), base.replace(seed=4)]
    result = seeds.train_members(configs)
    for m, config in enumerate(configs):
      at = {r['step']: r for r in result.logs[m]}
      self.assertNotIn('modes', at[10])
      _, samples = alone(config.replace(num_steps=20))
      data = result.data
      expected = toy_metrics.mode_metrics(np.asarray(samples), data.means,
                                          data.std)
      for key in ('modes', 'hq_fraction'):
        self.assertEqual(at[20][key], expected[key], (m, key))

  def test_learning_curves_of_an_image_set(self):
    # --eval_every on digits: each member's record at step 20 holds the FID
    # of that seed trained alone for 20 steps, computed here in float64 from
    # the bundled classifier's features of its samples and of the train
    # split (tests/reference_metrics.py).
    from gan_jax import features  # pylint: disable=g-import-not-at-top
    from gan_jax.metrics import reference  # pylint: disable=g-import-not-at-top
    base = testing.tiny_image_config(num_steps=30, log_every=10, eval_every=20,
                                     eval_metrics=('fid',),
                                     num_eval_samples=200)
    seeds.check(base, 2)
    configs = [base.replace(seed=3), base.replace(seed=4)]
    result = seeds.train_members(configs)
    extractor = features.get('digits_classifier')
    real, _ = extractor.extract(reference.digits('train')[0])
    for m, config in enumerate(configs):
      at = {r['step']: r for r in result.logs[m]}
      self.assertNotIn('fid', at[10])
      self.assertNotIn('fid', at[30])  # the final score is the report's
      _, samples = alone(config.replace(num_steps=20))
      fake, _ = extractor.extract(np.asarray(samples))
      np.testing.assert_allclose(at[20]['fid'],
                                 independent.frechet(real, fake), rtol=1e-4)
      self.assertEqual(at[20]['num_generated'], 200)
    self.assertNotEqual(result.logs[0][1]['fid'], result.logs[1][1]['fid'])


  def test_members_split_into_the_smallest_share_per_device(self):
    self.assertIsNone(parallel.seed_mesh(4, jax.local_devices()[:1]))
    # (members, devices) -> (devices used, members per device)
    cases = {(16, 2): (2, 8), (5, 2): (2, 3), (1, 8): (1, 1), (6, 4): (3, 2),
             (9, 8): (5, 2), (3, 1): (1, 3), (8, 8): (8, 1)}
    for (members, devices), expected in cases.items():
      used, share = parallel.split(members, devices)
      self.assertEqual((used, share), expected, (members, devices))
      self.assertGreaterEqual(used * share, members)
      self.assertLess(used * share - members, share)


class DivergingMemberTest(absltest.TestCase):

  def test_a_diverging_member_is_recorded_and_the_others_train_on(self):
    # A WGAN critic without clipping and an absurd learning rate overflows
    # within a few chunks (as in tests/nan_guard_test.py); its neighbour has
    # a sane one.
    base = TINY.replace(loss='wasserstein', num_steps=300, z_dim=2, seed=5)
    configs = [base.replace(d_lr=1e-3), base.replace(d_lr=3e3)]
    result = seeds.train_members(configs)
    self.assertNotIn('diverged_at', result.finals[0])
    for record in result.logs[0]:
      self.assertTrue(all(np.isfinite(v) for v in record.values()), record)
    chex.assert_tree_all_finite(testing.member(result.state.d_params, 0))
    # The member's first non-finite step is the step at which the same run
    # trained alone stops.
    with self.assertRaises(loop.TrainingDiverged) as stopped:
      alone(configs[1])
    step = int(str(stopped.exception).split(' at step ')[1].split()[0])
    self.assertBetween(step, 21, 299)
    self.assertEqual(result.finals[1]['diverged_at'], step)
    self.assertEqual([r['step'] for r in result.logs[1]],
                     list(range(10, 301, 10)))

  def test_a_diverging_member_of_an_image_run_is_not_scored(self):
    # --eval_every on digits: from the chunk where a member diverges its
    # records hold no scores (its samples may be NaN, which no metric
    # takes), and the other member is scored at every evaluation.
    base = testing.tiny_image_config(
        loss='wasserstein', num_steps=60, log_every=10, eval_every=10,
        eval_metrics=('fid',), num_eval_samples=50, seed=5)
    configs = [base.replace(d_lr=1e-4),
               base.replace(d_lr=1e6, g_lr=1e6, beta1=0.0)]
    result = seeds.train_members(configs)
    self.assertNotIn('diverged_at', result.finals[0])
    diverged_at = result.finals[1]['diverged_at']
    self.assertLess(diverged_at, 50)
    self.assertEqual([r['step'] for r in result.logs[0] if 'fid' in r],
                     [10, 20, 30, 40, 50])
    self.assertTrue(all(np.isfinite(r['fid']) for r in result.logs[0]
                        if 'fid' in r))
    self.assertEqual([r['step'] for r in result.logs[1] if 'fid' in r],
                     [s for s in (10, 20, 30, 40, 50) if s < diverged_at])


class SplitOverDevicesTest(absltest.TestCase):
  """`--num_seeds` split over CPU devices computes what one device does."""

  def run_main(self, workdir, cpu_devices, num_seeds=4):
    command = [sys.executable, '-m', 'gan_jax.main',
               *testing.argv(TINY.replace(num_steps=10, log_every=5)),
               f'--num_seeds={num_seeds}', f'--cpu_devices={cpu_devices}',
               f'--workdir={workdir}']
    done = subprocess.run(command, capture_output=True, text=True,
                          env=subprocess_env.env(), check=False, timeout=300)
    self.assertEqual(done.returncode, 0, done.stderr)
    return done.stdout, np.load(os.path.join(workdir, 'samples.npy'))

  def test_two_devices_equal_one(self):
    out_one, one = self.run_main(self.create_tempdir().full_path, 1)
    out_two, two = self.run_main(self.create_tempdir().full_path, 2)
    self.assertNotIn('split over', out_one)
    self.assertIn('4 runs split over 2 CPU devices, 2 per device', out_two)
    chex.assert_shape(one, (4, 100, 2))
    # The same arithmetic per member; only float reassociation may differ.
    np.testing.assert_allclose(two, one, atol=1e-5)

  def test_an_uneven_split_pads_and_discards(self):
    out_one, one = self.run_main(self.create_tempdir().full_path, 1, num_seeds=3)
    out_two, two = self.run_main(self.create_tempdir().full_path, 2, num_seeds=3)
    self.assertIn('3 runs split over 2 CPU devices, 2 per device (1 padding '
                  'run(s), discarded)', out_two)
    chex.assert_shape(two, (3, 100, 2))
    np.testing.assert_allclose(two, one, atol=1e-5)


if __name__ == '__main__':
  absltest.main()
