"""Data parallelism on 8 virtual CPU devices, in subprocesses (the device count
is fixed when JAX starts): the batch is split over the devices, parameters are
replicated, and training gives the single-device result to 1e-5."""

import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap

from absl.testing import absltest
import jax
import numpy as np
import orbax.checkpoint as ocp

from gan_jax import parallel

import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--num_steps=40', '--log_every=20', '--batch_size=32', '--z_dim=2',
        '--g_hidden=16,16', '--d_hidden=16,16', '--num_eval_samples=200',
        '--g_lr=1e-3', '--d_lr=1e-3', '--seed=1']
EIGHT = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}


def _python(args, devices_env=None):
  env = subprocess_env.env(**(devices_env or {}))
  return subprocess.run([sys.executable, *args], capture_output=True,
                        text=True, cwd=ROOT, env=env, timeout=300)


_ONE_DEVICE = []


def _one_device_run():
  """The single-device reference run (made once, shared by the tests)."""
  if not _ONE_DEVICE:
    workdir = os.path.join(tempfile.mkdtemp(), 'one')
    proc = _python(['-m', 'gan_jax.main', f'--workdir={workdir}', *TINY])
    assert proc.returncode == 0, proc.stderr
    assert 'on 1 device(s)' in proc.stdout, proc.stdout
    _ONE_DEVICE.append(workdir)
  return _ONE_DEVICE[0]


def _final_state(workdir, step=40):
  path = os.path.join(workdir, 'checkpoints', str(step), 'state')
  return ocp.StandardCheckpointer().restore(path)


class DataParallelTest(absltest.TestCase):

  def test_eight_devices_match_one_device(self):
    one = _one_device_run()
    eight = os.path.join(self.create_tempdir().full_path, 'eight')
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
    self.assertEqual(int(b['step']), 40)
    lines = lambda w: [json.loads(l) for l in open(os.path.join(w, 'metrics.jsonl'))]
    one_lines, eight_lines = lines(one), lines(eight)
    # Same number of lines and the same steps (20, 40, then the final line's
    # 40) before any comparison line by line: a missing line fails here.
    self.assertLen(eight_lines, len(one_lines))
    self.assertEqual([l['step'] for l in one_lines], [20, 40, 40])
    self.assertEqual([l['step'] for l in eight_lines],
                     [l['step'] for l in one_lines])
    self.assertEqual([bool(l.get('final')) for l in eight_lines],
                     [False, False, True])
    for x, y in zip(one_lines[:-1], eight_lines[:-1]):
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
          batch = jax.jit(steps.sample_batch)(key)
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


class LayoutTest(absltest.TestCase):
  """The program transform and padding of `Layout`, on this process's one
  device; members split over several devices run in tests/seeds_test.py."""

  def test_one_run_is_the_identity_with_no_member_axis(self):
    layout = parallel.Layout.one_run()
    chunk = lambda s: (s, {'loss': s})
    self.assertIs(layout.transform(chunk), chunk)
    self.assertIsNone(layout.state_sharding)
    self.assertEqual(layout.per_member({'loss': np.arange(3)})[0]['loss']
                     .tolist(), [0, 1, 2])
    self.assertIsNone(layout.description())

  def test_members_are_vmapped_padded_and_unpadded(self):
    layout = parallel.Layout.over_members(3, jax.local_devices()[:1])
    self.assertEqual((layout.members, layout.padded, layout.mesh), (3, 3, None))
    program = layout.transform(lambda s: (s * 2, {'loss': s.sum()}))
    state, metrics = program(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(state, [[0, 2], [4, 6], [8, 10]])
    np.testing.assert_array_equal(metrics['loss'], [1, 5, 9])
    # Five members on a 2 x 3 program: one padding run, dropped everywhere.
    padded = parallel.Layout(members=5, padded=6, member_axis=True)
    self.assertEqual(padded.pad(list('abcde')), list('abcdee'))
    tree = {'w': np.arange(6)}
    self.assertEqual(padded.unpad(tree)['w'].tolist(), [0, 1, 2, 3, 4])
    members = padded.per_member({'loss': np.arange(6) * 10})
    self.assertEqual([m['loss'] for m in members], [0, 10, 20, 30, 40])


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


class MultiProcessTest(absltest.TestCase):

  def test_importing_gan_jax_starts_no_backend(self):
    # jax.distributed.initialize() must run before any backend starts, and
    # main.py calls it after importing the package.
    proc = _python(['-c', 'import gan_jax.main, gan_jax.train; '
                    'from jax._src import xla_bridge; '
                    'print(xla_bridge.backends_are_initialized())'])
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertEqual(proc.stdout, 'False\n')

  def test_two_processes_match_one_and_only_process_0_writes(self):
    one = _one_device_run()
    two = os.path.join(self.create_tempdir().full_path, 'two')
    port = _free_port()
    env = subprocess_env.env()
    procs = [subprocess.Popen(
        [sys.executable, '-m', 'gan_jax.main', f'--workdir={two}', *TINY,
         '--multihost', f'--coordinator_address=localhost:{port}',
         '--num_processes=2', f'--process_id={i}'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=env) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
      self.assertEqual(p.returncode, 0, err)
    self.assertIn('on 2 device(s)', outs[0][0])
    self.assertIn('done in', outs[0][0])
    for word in ('training', 'step ', 'done'):
      self.assertNotIn(word, outs[1][0])
    # One writer: one event file, each metrics line once.
    self.assertLen(glob.glob(os.path.join(two, 'events.out.tfevents.*')), 1)
    records = [json.loads(l) for l in open(os.path.join(two, 'metrics.jsonl'))]
    self.assertEqual([r['step'] for r in records], [20, 40, 40])
    np.testing.assert_allclose(np.load(os.path.join(two, 'samples.npy')),
                               np.load(os.path.join(one, 'samples.npy')),
                               rtol=1e-5, atol=1e-5)
    a, b = _final_state(one), _final_state(two)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-5)


if __name__ == '__main__':
  absltest.main()
