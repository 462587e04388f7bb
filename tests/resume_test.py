"""Exact resume: a run killed with SIGKILL at several moments, or stopped by
SIGTERM or Ctrl-C (SIGINT), and started again with the same command ends
bit-identical to an uninterrupted run.

Real processes, real files: the reference run and the interrupted one are
`python -m gan_jax.main` subprocesses; the interrupted one is killed (SIGKILL,
no chance to clean up) while starting up and between or during checkpoint
writes, and preempted with SIGTERM and SIGINT, each time restarted with the
same command. Compared bit for bit: samples.npy, every leaf of the final
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

import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 600
# Chunks of 10 steps and a checkpoint every 60 make the run long enough
# (60 chunks, 10 checkpoint writes) to be killed in the middle of.
TINY = [f'--num_steps={NUM_STEPS}', '--log_every=10', '--checkpoint_every=60',
        '--keep_checkpoints=2', '--batch_size=32', '--z_dim=2',
        '--g_hidden=16,16', '--d_hidden=16,16', '--num_eval_samples=300',
        '--g_lr=1e-3', '--d_lr=1e-3', '--seed=5']
TIMING = ('steps_per_sec', 'elapsed_sec', 'train_seconds')


def _command(workdir):
  return [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}', *TINY]


def _run_to_end(workdir):
  proc = subprocess.run(_command(workdir), capture_output=True, text=True,
                        env=subprocess_env.env(),
                        cwd=ROOT, timeout=300)
  assert proc.returncode == 0, proc.stderr
  return proc


def _interrupt(workdir, sig, after_line=None, after_seconds=None):
  """Starts the run and sends `sig` once `after_line` is printed (or after
  `after_seconds`). Returns (returncode, stdout, stderr)."""
  proc = subprocess.Popen(_command(workdir), stdout=subprocess.PIPE,
                          env=subprocess_env.env(),
                          stderr=subprocess.PIPE, text=True, cwd=ROOT)
  lines = []
  if after_seconds is not None:
    time.sleep(after_seconds)
  else:
    for line in proc.stdout:
      lines.append(line)
      if line.startswith(after_line):
        break
  proc.send_signal(sig)
  out, err = proc.communicate(timeout=120)
  return proc.returncode, ''.join(lines) + out, err


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

  def test_interrupted_five_times_then_resumed_is_bit_identical(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    checkpoints = os.path.join(workdir, 'checkpoints')
    interruptions = [
        (signal.SIGKILL, dict(after_seconds=1.5)),  # starting up / compiling
        (signal.SIGTERM, dict(after_line='step     100/')),
        (signal.SIGKILL, dict(after_line='step     250/')),  # between checkpoints
        (signal.SIGINT, dict(after_line='step     350/')),   # Ctrl-C
        (signal.SIGKILL, dict(after_line='step     460/')),
    ]
    stops = []
    for sig, moment in interruptions:
      returncode, out, err = _interrupt(workdir, sig, **moment)
      if sig == signal.SIGKILL:
        self.assertEqual(returncode, -signal.SIGKILL)
        continue
      # Preemption: a checkpoint at the first chunk end after the signal,
      # exit status 0, and a last line saying how to resume.
      self.assertEqual((returncode, err), (0, ''))
      printed = [int(l.split()[1].split('/')[0]) for l in out.splitlines()
                 if l.startswith('step ')]
      stopped = printed[-1]
      self.assertEqual(
          out.strip().splitlines()[-1],
          f'{sig.name}: stopped at step {stopped} with a checkpoint in '
          f'{checkpoints}; resume with the same command: '
          f'{" ".join(_command(workdir))}')
      self.assertLess(stopped, NUM_STEPS)
      saved = sorted(int(d) for d in os.listdir(checkpoints) if d.isdigit())
      self.assertEqual(saved[-1], stopped)
      stops.append(stopped)
    self.assertLen(stops, 2)
    newest = max(int(d) for d in os.listdir(checkpoints) if d.isdigit())
    self.assertBetween(newest, stops[1], NUM_STEPS - 1)
    proc = _run_to_end(workdir)
    self.assertIn(f'resuming from the checkpoint at step {newest}',
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

    # A finished run started again has nothing to train and changes nothing.
    proc = _run_to_end(workdir)
    self.assertIn(f'resuming from the checkpoint at step {NUM_STEPS}',
                  proc.stdout)
    self.assertNotIn('steps/s', proc.stdout)
    self.assertTrue(np.array_equal(
        b, np.load(os.path.join(workdir, 'samples.npy'))))
    self.assertEqual(_metrics(workdir), metrics)


if __name__ == '__main__':
  absltest.main()
