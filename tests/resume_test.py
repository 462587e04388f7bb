"""Exact resume: a run killed with SIGKILL at several moments, or stopped by
SIGTERM or Ctrl-C (SIGINT), and started again with the same command ends
bit-identical to an uninterrupted run.

Real processes, real files: the reference run and the interrupted one are
`python -m gan_jax.main` subprocesses; the interrupted one is killed (SIGKILL,
no chance to clean up) while starting up and between checkpoint writes,
preempted with SIGTERM and SIGINT, and killed inside orbax checkpoint writes,
while the arrays are written and before the final rename (held there by a
pause, so the kill cannot miss it), each time restarted with the same
command. A run is also resumed with every flag that
may differ on resume changed (chunk length included), and the set of such
flags is checked against every Config field and the README. Compared bit for bit:
samples.npy, every leaf of the final checkpoint's state (parameters,
optimizer states, step, key), and every deterministic field of metrics.jsonl
(each step exactly once).
"""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

from absl.testing import absltest
import jax
import numpy as np
import orbax.checkpoint as ocp

from gan_jax import checkpoint
from gan_jax import checkpoint_meta
from gan_jax.config import Config

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


# `python -m gan_jax.main` whose orbax pauses inside the write of checkpoint
# $PAUSE_STEP, at $PAUSE_POINT: `arrays`, once the writes of the state's
# arrays are under way (nothing committed, every item still in its own
# temporary directory), or `rename`, where the checkpoint is complete in its
# temporary directory and only the rename to its step is left. There it
# creates $PAUSE_MARKER and sleeps, for the test to kill it inside the write.
PAUSED_WRITE = textwrap.dedent('''
    import os, time
    from absl import app
    from orbax.checkpoint import handlers
    from orbax.checkpoint._src.path import atomicity
    from gan_jax import cli, main

    def pause():
      open(os.environ['PAUSE_MARKER'], 'w').close()
      time.sleep(600)

    save = handlers.StandardCheckpointHandler.async_save
    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def paused_save(self, directory, *args, **kwargs):
      futures = await save(self, directory, *args, **kwargs)
      step_dir = os.path.basename(os.path.dirname(
          str(getattr(directory, 'path', directory))))
      if (os.environ['PAUSE_POINT'] == 'arrays' and step_dir.startswith(
          os.environ['PAUSE_STEP'] + '.orbax-checkpoint-tmp')):
        pause()
      return futures

    async def paused_finalize(self, *args, **kwargs):
      if (os.environ['PAUSE_POINT'] == 'rename'
          and self.get_final().name == os.environ['PAUSE_STEP']):
        pause()
      return await finalize(self, *args, **kwargs)

    handlers.StandardCheckpointHandler.async_save = paused_save
    atomicity.AtomicRenameTemporaryPath.finalize = paused_finalize
    app.run(main.main, flags_parser=cli.parse_flags)
''')


def _flags(**changes):
  """TINY with `changes` (flag name: value) in place of its values."""
  flags = dict(flag[2:].split('=', 1) for flag in TINY)
  flags.update({name: str(value) for name, value in changes.items()})
  return [f'--{name}={value}' for name, value in flags.items()]


def _command(workdir, **changes):
  return [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}',
          *_flags(**changes)]


def _run_to_end(workdir, **changes):
  proc = subprocess.run(_command(workdir, **changes), capture_output=True,
                        text=True,
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

  def _assert_as_uninterrupted(self, workdir, metrics=True):
    """Checks the samples, every array of the final state and (if `metrics`)
    metrics.jsonl against the reference; returns (samples, metrics)."""
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

    records = _metrics(workdir)
    if metrics:
      steps = [r['step'] for r in records if not r.get('final')]
      self.assertEqual(steps, list(range(10, NUM_STEPS + 1, 10)))
      self.assertEqual(_metrics(self.reference), records)
    return b, records

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

    b, metrics = self._assert_as_uninterrupted(workdir)

    # A finished run started again has nothing to train and changes nothing.
    proc = _run_to_end(workdir)
    self.assertIn(f'resuming from the checkpoint at step {NUM_STEPS}',
                  proc.stdout)
    self.assertNotIn('steps/s', proc.stdout)
    self.assertTrue(np.array_equal(
        b, np.load(os.path.join(workdir, 'samples.npy'))))
    self.assertEqual(_metrics(workdir), metrics)

  def _kill_inside_write(self, workdir, step, point):
    """Runs the command until it is inside the write of checkpoint `step`
    at `point` (see PAUSED_WRITE), and SIGKILLs it there."""
    marker = os.path.join(os.path.dirname(workdir), f'paused-{step}')
    with open(os.path.join(os.path.dirname(workdir), 'stderr'), 'w+') as err:
      proc = subprocess.Popen(
          [sys.executable, '-c', PAUSED_WRITE, f'--workdir={workdir}', *TINY],
          stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
          env=subprocess_env.env(PAUSE_STEP=str(step), PAUSE_POINT=point,
                                 PAUSE_MARKER=marker))
      deadline = time.monotonic() + 240
      while not os.path.exists(marker):
        if proc.poll() is not None or time.monotonic() > deadline:
          proc.kill()
          err.seek(0)
          self.fail(f'the write of step {step} never paused: {err.read()}')
        time.sleep(0.02)
      proc.kill()  # SIGKILL, inside the write of checkpoint `step`
      self.assertEqual(proc.wait(), -signal.SIGKILL)

  def test_killed_inside_checkpoint_writes_resumes_bit_identically(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    checkpoints = os.path.join(workdir, 'checkpoints')
    # Killed while the arrays of checkpoint 120 are being written (after the
    # save was issued, before it was committed): only its temporary
    # directory exists, whatever of its items the writer had created.
    # (Whether the temporary directory is already on disk when the kill
    # lands depends on orbax's writer threads; what matters is that no 120
    # was committed.)
    self._kill_inside_write(workdir, 120, 'arrays')
    names = os.listdir(checkpoints)
    self.assertEqual(sorted(int(n) for n in names if n.isdigit()), [60])
    self.assertTrue(all(n == '60' or n.startswith('120.orbax-checkpoint-tmp')
                        for n in names), names)
    # Started again (from 60), killed inside the write of checkpoint 180
    # where it is complete, arrays and all, but was never renamed to 180.
    self._kill_inside_write(workdir, 180, 'rename')
    names = os.listdir(checkpoints)
    partial = [n for n in names if n.startswith('180.orbax-checkpoint-tmp')]
    self.assertLen(partial, 1, names)
    self.assertTrue(os.listdir(os.path.join(checkpoints, partial[0], 'state',
                                            'd')))
    self.assertEqual(sorted(int(n) for n in names if n.isdigit()), [60, 120])

    proc = _run_to_end(workdir)
    self.assertIn(f'resuming from the checkpoint at step 120 in {checkpoints}',
                  proc.stdout)
    self.assertEqual(proc.stderr, '')
    self.assertFalse([n for n in os.listdir(checkpoints) if 'tmp' in n])
    self._assert_as_uninterrupted(workdir)

  def test_resumed_with_the_resumable_flags_changed_is_bit_identical(self):
    # Stopped at step 120 by its own --num_steps, then resumed with every
    # flag that may differ changed (other chunks: --log_every=20) but the
    # observers that write files for minutes (evaluations, pictures).
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    _run_to_end(workdir, num_steps=120, num_eval_samples=100,
                checkpoint_every=40, keep_checkpoints=1)
    moved = os.path.join(self.create_tempdir().full_path, 'moved')
    os.rename(workdir, moved)
    proc = _run_to_end(moved, log_every=20, checkpoint_every=100,
                       keep_checkpoints=3)
    self.assertIn('resuming from the checkpoint at step 120', proc.stdout)
    self._assert_as_uninterrupted(moved, metrics=False)
    # Up to step 120, chunks of 10 steps were logged as in the reference.
    records = _metrics(moved)
    self.assertEqual(records[:12], _metrics(self.reference)[:12])
    self.assertEqual([r['step'] for r in records[12:-1]],
                     list(range(140, NUM_STEPS + 1, 20)))


def _another(value):
  """A value of the same JSON type as `value` that differs from it."""
  if isinstance(value, bool):
    return not value
  if isinstance(value, (int, float)):
    return value * 2 + 1
  if isinstance(value, str):
    return value + 'x'
  return [*value, *value[:1]] if value else [1]


class ResumableChangesTest(absltest.TestCase):

  def test_exactly_the_resumable_fields_may_differ(self):
    config = Config(workdir='run')
    saved = checkpoint_meta.config_dict(config)
    for field in dataclasses.fields(Config):
      changed = {**saved, field.name: _another(saved[field.name])}
      diffs = checkpoint.config_differences(changed, config)
      if field.name in checkpoint.RESUMABLE_CHANGES:
        self.assertEqual(diffs, [], field.name)
      else:
        self.assertLen(diffs, 1, field.name)
        self.assertTrue(diffs[0].startswith(f'--{field.name}='), diffs)

  def test_the_readme_lists_exactly_the_resumable_flags(self):
    with open(os.path.join(ROOT, 'README.md')) as f:
      text = ' '.join(f.read().split())
    listed = re.search(r'exactly these flags may differ[^:]*:([^.]*)\.', text)
    self.assertIsNotNone(listed)
    self.assertEqual(re.findall(r'`--(\w+)`', listed.group(1)),
                     list(checkpoint.RESUMABLE_CHANGES))


if __name__ == '__main__':
  absltest.main()
