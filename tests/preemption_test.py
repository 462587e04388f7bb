"""Preemption within a deadline: signals handled from process start, chunks
run in pieces whose ends do not change a bit, a stop between chunk ends that
resumes bit-identically.

In-process: the same steps as one program call, as pieces of it, as one
`lax.scan` and as several give the same bits; the pieces' sizes; the signal
handlers. Real processes (`python -m gan_jax.main`), real SIGTERMs: one a
second after start, one in the middle of a long chunk, each followed by the
same command, compared bit for bit (samples.npy, every leaf of the final
checkpoint, every deterministic field of metrics.jsonl) with a run never
interrupted that ran each chunk as one call (`--preempt_grace_s=0`).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from gan_jax import loop
from gan_jax import preemption
from gan_jax import train

import subprocess_env
import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = testing.tiny_toy_config(d_steps=2, g_ema_decay=0.9, g_lr=1e-3,
                               d_lr=1e-3, seed=3)

# One chunk of 20000 steps of a small MLP: several seconds on a CPU, long
# enough to be stopped in the middle of.
NUM_STEPS = 20_000
FLAGS = [f'--num_steps={NUM_STEPS}', f'--log_every={NUM_STEPS}', '--z_dim=2',
         '--batch_size=64', '--g_hidden=64,64', '--d_hidden=64,64',
         '--num_eval_samples=300', '--seed=7']
GRACE = 1.0
TIMING = ('steps_per_sec', 'elapsed_sec', 'train_seconds')


class PiecesTest(absltest.TestCase):
  """Where the calls of a chunk end does not change a bit."""

  def test_pieces_of_one_program_and_sub_scans_give_the_same_bits(self):
    _, steps, state = train.build(TINY)
    host = jax.device_get(state)
    fresh = lambda: jax.tree.map(jnp.asarray, host)

    runner = loop.ChunkRunner(steps.train_step)
    whole, whole_metrics = runner(fresh(), 12)
    self.assertEqual(int(whole.step), 12)
    for split in ([1, 11], [5, 4, 3], [12]):
      state, rows = fresh(), []
      for n in split:
        state, metrics = runner(state, n, capacity=12)
        rows.append(jax.tree.map(lambda m, n=n: np.asarray(m)[:n], metrics))
      chex.assert_trees_all_equal(whole, state)
      chex.assert_trees_all_equal(whole_metrics,
                        jax.tree.map(lambda *r: np.concatenate(r), *rows))
    self.assertEqual(runner.compilations, 1)  # every piece: one program

    scan = lambda s, n: jax.jit(
        lambda s: loop.scan_steps(steps.train_step, s, n))(s)
    one_scan, scan_metrics = scan(fresh(), 12)
    chex.assert_trees_all_equal(whole, one_scan)
    chex.assert_trees_all_equal(whole_metrics, scan_metrics)
    state = fresh()
    for n in (7, 5):
      state, _ = scan(state, n)
    chex.assert_trees_all_equal(whole, state)

  def test_streamed_batches_in_pieces_of_a_padded_chunk(self):
    # step(s, x) depends on the order of the batches and their values.
    step = lambda s, x: (s * 1.5 + x.sum(), {'x': x.sum()})
    xs = jnp.arange(7 * 3, dtype=jnp.float32).reshape(7, 3)
    expected, expected_metrics = jax.jit(
        lambda s: loop.scan_steps(step, s, 7, xs))(jnp.float32(1))
    padded = loop.pad_steps(xs, 10)
    self.assertEqual(padded.shape, (10, 3))
    runner = loop.ChunkRunner(step)
    state, first, rows = jnp.float32(1), 0, []
    for n in (2, 4, 1):
      state, metrics = runner(state, n, padded, first=first)
      rows.append(np.asarray(metrics['x'])[:n])
      first += n
    np.testing.assert_array_equal(state, expected)
    np.testing.assert_array_equal(np.concatenate(rows),
                                  expected_metrics['x'])


class PacerTest(absltest.TestCase):

  def test_pieces_take_a_quarter_of_the_grace_at_the_slowest_recent_pace(self):
    self.assertEqual(preemption.Pacer(0.0).length(500), 500)  # no deadline
    pacer = preemption.Pacer(8.0)
    self.assertEqual(pacer.length(500), 1)  # nothing measured yet
    pacer.record(1, 0.5)                     # 0.5 s per step
    self.assertEqual(pacer.length(500), 4)   # 8 s / 4 = 2 s
    pacer.record(4, 0.4)                     # faster: 0.1 s per step
    self.assertEqual(pacer.length(500), 4)   # the slow piece still counts
    pacer.record(20, 2.0)
    pacer.record(20, 2.0)
    self.assertEqual(pacer.length(500), 20)  # remembered: the last three
    self.assertEqual(pacer.length(7), 7)     # never past the chunk's end
    pacer.record(1, 100.0)
    self.assertEqual(pacer.length(500), 1)   # at least one step


class SignalsTest(absltest.TestCase):

  def test_handling_records_the_signal_and_restores_the_handlers(self):
    received = []
    previous = signal.signal(signal.SIGTERM,
                             lambda signum, frame: received.append(signum))
    try:
      with preemption.handling():
        self.assertTrue(preemption.installed())
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        self.assertEqual(preemption.requested(), 'SIGTERM')
        self.assertGreaterEqual(preemption.seconds_since_request(), 0)
        os.kill(os.getpid(), signal.SIGTERM)  # a second one changes nothing
        time.sleep(0.01)
      self.assertFalse(preemption.installed())
      self.assertIsNone(preemption.requested())
      self.assertEqual(received, [])
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(0.01)
      self.assertEqual(received, [signal.SIGTERM])  # the old handler again
    finally:
      signal.signal(signal.SIGTERM, previous)

  def test_release_delivers_a_received_signal_to_the_old_handler(self):
    received = []
    previous = signal.signal(signal.SIGTERM,
                             lambda signum, frame: received.append(signum))
    try:
      self.assertTrue(preemption.install())
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(0.01)
      self.assertEqual(received, [])
      preemption.release()
      time.sleep(0.01)
      self.assertEqual(received, [signal.SIGTERM])
      self.assertFalse(preemption.installed())
      self.assertIsNone(preemption.requested())
    finally:
      preemption.release()
      signal.signal(signal.SIGTERM, previous)


def _command(workdir, grace=GRACE):
  return [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}',
          *FLAGS, f'--preempt_grace_s={grace}']


def _run_to_end(workdir, grace=GRACE):
  proc = subprocess.run(_command(workdir, grace), capture_output=True,
                        text=True, env=subprocess_env.env(), cwd=ROOT,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr
  return proc


def _catches_sigterm(pid):
  """Whether process `pid` has a handler for SIGTERM (Linux's SigCgt)."""
  with open(f'/proc/{pid}/status') as f:
    caught = next(l for l in f if l.startswith('SigCgt:')).split()[1]
  return bool(int(caught, 16) >> (signal.SIGTERM - 1) & 1)


def _final_state(workdir):
  path = os.path.join(workdir, 'checkpoints', str(NUM_STEPS), 'state')
  return ocp.StandardCheckpointer().restore(path)


def _metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in f]


class PreemptedRunTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.reference = os.path.join(tempfile.mkdtemp(), 'uninterrupted')
    _run_to_end(cls.reference, grace=0)  # each chunk in one call

  def assert_same_as_reference(self, workdir):
    a = np.load(os.path.join(self.reference, 'samples.npy'))
    b = np.load(os.path.join(workdir, 'samples.npy'))
    self.assertEqual(a.shape, (300, 2))
    self.assertTrue(np.array_equal(a, b))
    ref = jax.tree_util.tree_leaves_with_path(_final_state(self.reference))
    got = jax.tree_util.tree_leaves_with_path(_final_state(workdir))
    self.assertEqual([p for p, _ in ref], [p for p, _ in got])
    self.assertGreater(len(got), 10)
    for (path, x), (_, y) in zip(ref, got):
      self.assertTrue(np.array_equal(x, y), jax.tree_util.keystr(path))
    self.assertEqual(_metrics(self.reference), _metrics(workdir))
    self.assertFalse(os.path.exists(os.path.join(workdir,
                                                 train.CHUNK_METRICS)))

  def test_sigterm_a_second_after_start_stops_cleanly_before_training(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    started = time.monotonic()
    proc = subprocess.Popen(_command(workdir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=subprocess_env.env())
    while proc.poll() is None and not _catches_sigterm(proc.pid):
      time.sleep(0.005)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    self.assertEqual((proc.returncode, err), (0, ''))
    self.assertEqual(out.splitlines(), [
        'SIGTERM: stopped before training began; resume with the same '
        f'command: {" ".join(_command(workdir))}'])
    self.assertFalse(os.path.exists(workdir))  # nothing half-written

    _run_to_end(workdir)
    self.assert_same_as_reference(workdir)

  def test_sigterm_in_a_long_chunk_stops_within_the_grace_period(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    checkpoints = os.path.join(workdir, 'checkpoints')
    delay = 2.0
    for _ in range(4):  # until the signal lands after the compilation
      proc = subprocess.Popen(_command(workdir), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=subprocess_env.env())
      lines = [next(proc.stdout)]
      self.assertTrue(lines[0].startswith('training '), lines[0])
      time.sleep(delay)
      signalled = time.monotonic()
      proc.send_signal(signal.SIGTERM)
      out, err = proc.communicate(timeout=120)
      seconds = time.monotonic() - signalled
      self.assertEqual((proc.returncode, err), (0, ''))
      if 'before training began' not in out:
        break
      delay *= 2
    last = out.strip().splitlines()[-1]
    self.assertTrue(last.startswith('SIGTERM: stopped at step '), last)
    stopped = int(last.split()[4])
    # Inside the one chunk, not at its end: the piece running at the signal
    # was the last one, and the stop took the grace period and a margin for
    # the checkpoint and the exit (on a shared CPU), not the chunk's rest.
    self.assertBetween(stopped, 1, NUM_STEPS - 1)
    self.assertLess(seconds, GRACE + 10)
    self.assertEqual(
        last, f'SIGTERM: stopped at step {stopped} with a checkpoint in '
        f'{checkpoints}; resume with the same command: '
        f'{" ".join(_command(workdir))}')
    self.assertEqual(sorted(os.listdir(checkpoints)), [str(stopped)])
    self.assertEqual(_metrics(workdir), [])  # no chunk ended yet
    self.assertTrue(os.path.exists(os.path.join(workdir,
                                                train.CHUNK_METRICS)))

    proc = _run_to_end(workdir)
    self.assertIn(f'resuming from the checkpoint at step {stopped}',
                  proc.stdout)
    self.assert_same_as_reference(workdir)


if __name__ == '__main__':
  absltest.main()
