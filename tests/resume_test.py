"""Exact resume: a run killed with SIGKILL at several moments and started again
with the same command ends bit-identical to an uninterrupted run.

Real processes, real files: the reference run and the interrupted one are
`python -m gan_jax.main` subprocesses; the interrupted one is killed (SIGKILL,
no chance to clean up) while compiling, between checkpoints, and while
checkpoints are being written, then restarted each time with the same
command. Compared bit for bit: samples.npy, every leaf of the final
checkpoint's state (parameters, optimizer states, step, key), and every
deterministic field of metrics.jsonl (each step exactly once).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from absl.testing import absltest
import jax
import numpy as np
import orbax.checkpoint as ocp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 1200
# Chunks of 10 steps and a checkpoint every 30 make the run long enough
# (hundreds of chunks and checkpoint writes) to be killed in the middle.
TINY = [f'--num_steps={NUM_STEPS}', '--log_every=10', '--checkpoint_every=30',
        '--keep_checkpoints=2', '--batch_size=32', '--z_dim=2',
        '--g_hidden=16,16', '--d_hidden=16,16', '--num_eval_samples=300',
        '--g_lr=1e-3', '--d_lr=1e-3', '--seed=5']
TIMING = ('steps_per_sec', 'elapsed_sec', 'train_seconds')


def _command(workdir):
  return [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}', *TINY]


def _run_to_end(workdir):
  proc = subprocess.run(_command(workdir), capture_output=True, text=True,
                        cwd=ROOT, timeout=300)
  assert proc.returncode == 0, proc.stderr
  return proc


def _run_and_kill(workdir, after_line=None, after_seconds=None):
  """Starts the run; SIGKILLs it once `after_line` is printed (or after
  `after_seconds`). Returns the lines it printed."""
  proc = subprocess.Popen(_command(workdir), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
  lines = []
  try:
    if after_seconds is not None:
      time.sleep(after_seconds)
    else:
      for line in proc.stdout:
        lines.append(line)
        if line.startswith(after_line):
          break
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait(timeout=60)
    proc.stdout.close()
  return lines


def _final_state(workdir):
  path = os.path.join(workdir, 'checkpoints', str(NUM_STEPS), 'state')
  return ocp.StandardCheckpointer().restore(path)


def _metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


class ResumeTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.reference = os.path.join(tempfile.mkdtemp(), 'uninterrupted')
    _run_to_end(cls.reference)

  def test_killed_four_times_then_resumed_is_bit_identical(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    moments = [
        dict(after_seconds=1.5),             # importing JAX / compiling
        dict(after_line='step      60/'),    # just after a checkpoint
        dict(after_line='step     490/'),    # between checkpoints
        dict(after_line='step     910/'),    # ditto, later
    ]
    for moment in moments:
      _run_and_kill(workdir, **moment)
    killed_at = sorted((d for d in os.listdir(os.path.join(workdir,
                                                           'checkpoints'))
                        if d.isdigit()), key=int)
    # The run was stopped before its end: its newest checkpoint is short of it.
    self.assertLess(int(killed_at[-1]), NUM_STEPS)
    proc = _run_to_end(workdir)
    self.assertIn(f'resuming from the checkpoint at step {killed_at[-1]}',
                  proc.stdout)

    a = np.load(os.path.join(self.reference, 'samples.npy'))
    b = np.load(os.path.join(workdir, 'samples.npy'))
    self.assertEqual(a.shape, (300, 2))
    self.assertTrue(np.array_equal(a, b))

    ref_state, state = _final_state(self.reference), _final_state(workdir)
    ref_leaves = jax.tree_util.tree_leaves_with_path(ref_state)
    leaves = jax.tree_util.tree_leaves_with_path(state)
    self.assertEqual([p for p, _ in ref_leaves], [p for p, _ in leaves])
    self.assertGreater(len(leaves), 10)
    for (path, x), (_, y) in zip(ref_leaves, leaves):
      self.assertTrue(np.array_equal(x, y), jax.tree_util.keystr(path))
    self.assertEqual(int(state['step']), NUM_STEPS)

    ref_metrics, metrics = _metrics(self.reference), _metrics(workdir)
    steps = [r['step'] for r in metrics if not r.get('final')]
    self.assertEqual(steps, list(range(10, NUM_STEPS + 1, 10)))
    self.assertEqual(ref_metrics, metrics)

  def test_finished_run_started_again_changes_nothing(self):
    before = np.load(os.path.join(self.reference, 'samples.npy'))
    lines = len(_metrics(self.reference))
    proc = _run_to_end(self.reference)
    self.assertIn(f'resuming from the checkpoint at step {NUM_STEPS}',
                  proc.stdout)
    self.assertNotIn('steps/s', proc.stdout)  # nothing left to train
    self.assertTrue(np.array_equal(
        before, np.load(os.path.join(self.reference, 'samples.npy'))))
    self.assertLen(_metrics(self.reference), lines)


if __name__ == '__main__':
  absltest.main()
