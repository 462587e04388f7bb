"""Data parallelism on 8 virtual CPU devices, in subprocesses (the device count
is fixed when JAX starts): the batch is split over the devices, parameters are
replicated, and training gives the single-device result to 1e-5."""

import json
import os
import subprocess
import sys
import textwrap

from absl.testing import absltest
import jax
import numpy as np
import orbax.checkpoint as ocp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--num_steps=60', '--log_every=20', '--batch_size=32', '--z_dim=2',
        '--g_hidden=16,16', '--d_hidden=16,16', '--num_eval_samples=200',
        '--g_lr=1e-3', '--d_lr=1e-3', '--seed=1']
EIGHT = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}


def _python(args, devices_env=None):
  env = dict(os.environ, **(devices_env or {}))
  if devices_env is None:
    env.pop('XLA_FLAGS', None)
  return subprocess.run([sys.executable, *args], capture_output=True,
                        text=True, cwd=ROOT, env=env, timeout=300)


def _final_state(workdir, step=60):
  path = os.path.join(workdir, 'checkpoints', str(step), 'state')
  return ocp.StandardCheckpointer().restore(path)


class DataParallelTest(absltest.TestCase):

  def test_eight_devices_match_one_device(self):
    tmp = self.create_tempdir().full_path
    one, eight = os.path.join(tmp, 'one'), os.path.join(tmp, 'eight')
    proc = _python(['-m', 'gan_jax.main', f'--workdir={one}', *TINY])
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertIn('on 1 device(s)', proc.stdout)
    proc = _python(['-m', 'gan_jax.main', f'--workdir={eight}', *TINY], EIGHT)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertIn('on 8 device(s)', proc.stdout)

    np.testing.assert_allclose(np.load(os.path.join(eight, 'samples.npy')),
                               np.load(os.path.join(one, 'samples.npy')),
                               rtol=1e-5, atol=1e-5)
    a, b = _final_state(one), _final_state(eight)
    self.assertEqual(jax.tree.structure(a), jax.tree.structure(b))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-5)
    self.assertEqual(int(b['step']), 60)
    lines = lambda w: [json.loads(l) for l in open(os.path.join(w, 'metrics.jsonl'))]
    for x, y in zip(lines(one)[:-1], lines(eight)[:-1]):
      self.assertEqual(x['step'], y['step'])
      for key in ('d_loss', 'g_loss', 'value'):
        np.testing.assert_allclose(y[key], x[key], rtol=1e-5, atol=1e-5)

  def test_batches_are_split_and_state_replicated(self):
    script = textwrap.dedent('''
        import json, jax
        from jax.sharding import PartitionSpec as P
        from gan_jax import loop, parallel, train
        from gan_jax.config import Config
        config = Config(workdir='/unused', batch_size=32, z_dim=2,
                        g_hidden=(16,), d_hidden=(16,))
        mesh = parallel.make_mesh()
        with jax.set_mesh(mesh):
          _, steps, state = train.build(config)
          steps = parallel.shard_batches(steps, mesh)
          state = parallel.replicate(state, mesh)
          key = jax.random.PRNGKey(0)
          batch = jax.jit(lambda k: steps.sample_data(k, 32))(key)
          z = jax.jit(steps.sample_z)(key)
          runner = loop.ChunkRunner(steps.train_step,
                                    parallel.replicated(mesh))
          hlo = runner.compiled(state, 2).as_text()
          new, _ = runner(state, 2)
        print(json.dumps({
            'devices': mesh.size,
            'batch': [str(batch.sharding.spec),
                      [s.data.shape for s in batch.addressable_shards]],
            'z': [str(z.sharding.spec),
                  [s.data.shape for s in z.addressable_shards]],
            'state': sorted({str(x.sharding.spec)
                             for x in jax.tree.leaves(new)}),
            'all_reduce': 'all-reduce' in hlo,
        }))
        ''')
    proc = _python(['-c', script], EIGHT)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    self.assertEqual(report, {
        'devices': 8,
        'batch': [str(jax.sharding.PartitionSpec('data')), [[4, 2]] * 8],
        'z': [str(jax.sharding.PartitionSpec('data')), [[4, 2]] * 8],
        'state': [str(jax.sharding.PartitionSpec())],
        'all_reduce': True,
    })

  def test_batch_not_divisible_by_device_count(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    proc = _python(['-m', 'gan_jax.main', f'--workdir={workdir}', *TINY,
                    '--batch_size=36'], EIGHT)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    self.assertEqual(proc.stderr, 'error: --batch_size=36 is not divisible by '
                     'the 8 devices it is split over; valid nearby: 32, 40\n')
    self.assertFalse(os.path.exists(workdir))


if __name__ == '__main__':
  absltest.main()
