"""metrics.jsonl: strict JSON (non-finite values as null, named in
`nonfinite`), damaged lines set aside on resume instead of failing it, and the
lines past the restored step dropped.

The end-to-end case damages a real run's file for real: a run is killed with
SIGKILL right after logging step 40 (its newest checkpoint is step 20), one
byte that is not UTF-8 goes into a middle line, the last line is cut in half
as a power loss leaves it, and the same command, run again, resumes.
"""

import glob
import json
import math
import os
import signal
import subprocess
import sys
from unittest import mock

from absl.testing import absltest

from gan_jax import logging_utils

import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--log_every=10', '--checkpoint_every=20', '--batch_size=32',
        '--z_dim=2', '--g_hidden=16', '--d_hidden=16',
        '--num_eval_samples=100']

# gan_jax.main, with every checkpoint final on disk before training goes on,
# killed by SIGKILL as soon as the line of step KILL_AT is written.
KILLED_AFTER_LOGGING = '''
import os, signal, sys
from absl import app
from gan_jax import artifacts, checkpoint, cli, main
KILL_AT = int(os.environ['KILL_AT'])
save, log = checkpoint.Checkpointer.save, artifacts.RunFiles.log
def save_and_wait(self, state, config):
  seconds = save(self, state, config)
  self.wait()
  return seconds
def log_then_die(self, records):
  log(self, records)
  if records[0]['step'] == KILL_AT:
    os.kill(os.getpid(), signal.SIGKILL)
checkpoint.Checkpointer.save = save_and_wait
artifacts.RunFiles.log = log_then_die
app.run(main.main, flags_parser=cli.parse_flags)
'''


def _no_bare_constants(token):
  raise ValueError(f'bare {token} is not strict JSON')


def strict_lines(path):
  """Every line of `path` parsed by a strict JSON reader."""
  with open(path, 'rb') as f:
    return [json.loads(line.decode('utf-8'), parse_constant=_no_bare_constants)
            for line in f.read().splitlines()]


class StrictJsonTest(absltest.TestCase):

  def test_non_finite_values_round_trip_as_null_with_their_spelling(self):
    path = os.path.join(self.create_tempdir().full_path, 'metrics.jsonl')
    log = logging_utils.MetricsLog(path)
    record = {'step': 10, 'd_loss': math.nan, 'g_loss': 0.5,
              'value': -math.inf, 'g_grad_norm': math.inf,
              'seconds': {'fid': math.nan, 'kid': 1.0}, 'curve': [1.0, math.nan]}
    log.write(record)
    log.write({'step': 20, 'd_loss': 0.25})
    log.close()
    first, second = strict_lines(path)
    self.assertEqual(first, {
        'step': 10, 'd_loss': None, 'g_loss': 0.5, 'value': None,
        'g_grad_norm': None, 'seconds': {'fid': None, 'kid': 1.0},
        'curve': [1.0, None],
        'nonfinite': {'d_loss': 'nan', 'value': '-inf', 'g_grad_norm': 'inf',
                      'seconds': {'fid': 'nan'}, 'curve': {'1': 'nan'}}})
    self.assertEqual(second, {'step': 20, 'd_loss': 0.25})  # no empty marks
    records, damaged = logging_utils.read_metrics(path)
    self.assertEqual(damaged, [])
    back = records[0]
    self.assertTrue(math.isnan(back['d_loss']))
    self.assertTrue(math.isnan(back['seconds']['fid']))
    self.assertTrue(math.isnan(back['curve'][1]))
    self.assertEqual((back['value'], back['g_grad_norm']), (-math.inf, math.inf))
    self.assertNotIn('nonfinite', back)
    self.assertEqual(records[1], {'step': 20, 'd_loss': 0.25})

  def test_refuses_what_it_cannot_write_strictly(self):
    with self.assertRaisesRegex(ValueError, "'nonfinite' key"):
      logging_utils.encode_record({'step': 1, 'nonfinite': {}})
    with self.assertRaises(TypeError):  # not a float: never a bare NaN
      logging_utils.encode_record({'step': 1, 'x': object()})

  def test_marks_that_do_not_match_make_a_line_damaged(self):
    for line in ('{"step": 1, "a": 1.0, "nonfinite": {"a": "nan"}}',
                 '{"step": 1, "a": null, "nonfinite": {"a": "NaN"}}',
                 '{"step": 1, "nonfinite": {"b": "inf"}}',
                 '{"step": 1, "nonfinite": "nan"}',
                 '{"d_loss": 1.0}', '[1, 2]', '{"step": "10"}'):
      with self.assertRaises(ValueError, msg=line):
        logging_utils.decode_record(line)

  def test_lines_of_older_versions_with_bare_nan_are_read_and_made_strict(self):
    path = os.path.join(self.create_tempdir().full_path, 'metrics.jsonl')
    with open(path, 'w') as f:
      f.write('{"step": 10, "d_loss": NaN, "g_loss": Infinity}\n'
              '{"step": 20, "d_loss": 0.5, "g_loss": -Infinity}\n')
    records, damaged = logging_utils.read_metrics(path)
    self.assertEqual(damaged, [])
    self.assertTrue(math.isnan(records[0]['d_loss']))
    self.assertEqual(records[1]['g_loss'], -math.inf)
    logging_utils.MetricsLog(path, resume_step=20).close()
    self.assertEqual(strict_lines(path), [
        {'step': 10, 'd_loss': None, 'g_loss': None,
         'nonfinite': {'d_loss': 'nan', 'g_loss': 'inf'}},
        {'step': 20, 'd_loss': 0.5, 'g_loss': None,
         'nonfinite': {'g_loss': '-inf'}}])


class SweepLogsTest(absltest.TestCase):

  def test_load_logs_gives_non_finite_floats_back_and_skips_damage(self):
    from gan_jax.analysis import results  # pylint: disable=g-import-not-at-top
    sweep = self.create_tempdir().full_path
    os.makedirs(os.path.join(sweep, 'loss=a'))
    path = os.path.join(sweep, 'loss=a', 'metrics.jsonl')
    log = logging_utils.MetricsLog(path)
    for step in (10, 20):
      for seed in (0, 1):
        log.write({'seed': seed, 'step': step,
                   'd_loss': math.nan if (seed, step) == (1, 20) else 0.5})
    log.write({'seed': 0, 'step': 20, 'final': True})
    log.close()
    with open(path, 'ab') as f:
      f.write(b'{"seed": 0, "st\xffep": 30}\n')
    with mock.patch('sys.stderr') as stderr:
      logs = results.load_logs(sweep, 'loss=a')
    self.assertEqual([[r['step'] for r in seed] for seed in logs],
                     [[10, 20], [10, 20]])
    self.assertTrue(math.isnan(logs[1][1]['d_loss']))
    self.assertEqual(logs[0][1]['d_loss'], 0.5)
    written = ''.join(c.args[0] for c in stderr.write.call_args_list)
    self.assertEqual(written, f'warning: 1 damaged line(s) of {path} left '
                     'out\n')


class ResumeTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = self.create_tempdir().full_path
    self.path = os.path.join(self.dir, 'metrics.jsonl')
    self.warnings = []

  def _open(self, step):
    return logging_utils.MetricsLog(self.path, resume_step=step,
                                    warn=self.warnings.append)

  def test_keeps_lines_up_to_the_step_drops_later_ones_and_finals(self):
    log = self._open(0)
    for step in (10, 20, 30):
      log.write({'step': step, 'd_loss': step / 100})
    log.write({'step': 20, 'eval': True, 'fid': math.nan})
    log.write({'step': 30, 'final': True})
    log.close()
    self._open(20).close()
    self.assertEqual(strict_lines(self.path), [
        {'step': 10, 'd_loss': 0.1}, {'step': 20, 'd_loss': 0.2},
        {'step': 20, 'eval': True, 'fid': None, 'nonfinite': {'fid': 'nan'}}])
    self.assertEqual(self.warnings, [])
    self.assertEqual(os.listdir(self.dir), ['metrics.jsonl'])
    self._open(0).close()  # a new run starts an empty log
    self.assertEqual(open(self.path, 'rb').read(), b'')

  def test_damaged_lines_are_set_aside_with_one_warning(self):
    good = [logging_utils.encode_record({'step': s, 'd_loss': 0.5}).encode()
            for s in (10, 20, 30, 40)]
    bad_bytes = good[1][:5] + b'\xff\xfe' + good[1][5:]
    zeros = b'\x00' * 12 + b'\n'  # a block a power loss left unwritten
    invalid = b'{"step": 25, "d_loss": 0.5,,}\n'
    cut = good[3][:9]  # the last line, cut off
    with open(self.path, 'wb') as f:
      f.write(good[0] + bad_bytes + zeros + good[2] + invalid + cut)
    self._open(30).close()
    self.assertEqual(strict_lines(self.path),
                     [{'step': 10, 'd_loss': 0.5}, {'step': 30, 'd_loss': 0.5}])
    aside = self.path + '.damaged-30'
    self.assertEqual(open(aside, 'rb').read(),
                     bad_bytes + zeros + invalid + cut + b'\n')
    self.assertEqual(self.warnings, [
        f'warning: 4 damaged lines of {self.path} (bytes that are not UTF-8, '
        f'invalid JSON or cut off) set aside in {aside}; the log resumes '
        'after step 30'])
    # Damaged again and resumed from the same step: what was set aside
    # before is kept, the new line goes beside it.
    with open(self.path, 'ab') as f:
      f.write(b'{"step": 4\xff0}\n')
    self._open(30).close()
    self.assertEqual(open(aside + '.2', 'rb').read(), b'{"step": 4\xff0}\n')
    self.assertEqual(open(aside, 'rb').read(),
                     bad_bytes + zeros + invalid + cut + b'\n')
    self.assertLen(self.warnings, 2)
    self.assertIn('1 damaged line of', self.warnings[1])

  def test_flush_with_fsync_puts_the_lines_on_disk(self):
    log = self._open(0)
    log.write({'step': 10, 'd_loss': 0.5})
    with mock.patch.object(os, 'fsync', wraps=os.fsync) as fsync:
      log.flush()
      self.assertEqual(fsync.call_count, 0)
      log.flush(fsync=True)
      self.assertEqual(_paths(fsync), [self.path])
    self.assertEqual(strict_lines(self.path), [{'step': 10, 'd_loss': 0.5}])
    log.close()


def _paths(fsync):
  return [os.readlink(f'/proc/self/fd/{c.args[0]}') for c in fsync.call_args_list]


class CheckpointOrderTest(absltest.TestCase):

  def test_the_log_is_on_disk_before_each_checkpoint_is_written(self):
    from gan_jax import checkpoint  # pylint: disable=g-import-not-at-top
    from gan_jax import train  # pylint: disable=g-import-not-at-top
    from gan_jax.config import Config  # pylint: disable=g-import-not-at-top
    workdir = self.create_tempdir().full_path
    path = os.path.join(workdir, 'metrics.jsonl')
    config = Config(workdir=workdir, num_steps=40, log_every=10,
                    checkpoint_every=20, batch_size=32, z_dim=2,
                    g_hidden=(16,), d_hidden=(16,), num_eval_samples=100)
    events = []
    save = checkpoint.Checkpointer.save

    def recording_save(self, state, config):
      step = int(state.step)
      on_disk = sorted(r['step'] for r in strict_lines(path))
      events.append(('save', step, synced[-1] if synced else None, on_disk))
      return save(self, state, config)

    synced = []
    fsync = os.fsync

    def recording_fsync(fd):
      if os.readlink(f'/proc/self/fd/{fd}') == path:
        synced.append(len(open(path, 'rb').read().splitlines()))
      return fsync(fd)

    with mock.patch.object(checkpoint.Checkpointer, 'save', recording_save), \
         mock.patch.object(os, 'fsync', recording_fsync):
      train.run(config, out=None, err=None)
    # Checkpoints 20 and 40 (and the no-op save at the end): each one comes
    # after an fsync of metrics.jsonl holding every line up to its step.
    self.assertEqual([e[1] for e in events], [20, 40, 40])
    for _, step, lines_synced, on_disk in events[:2]:
      self.assertEqual(on_disk, list(range(10, step + 1, 10)))
      self.assertEqual(lines_synced, step // 10)


class DamagedRunResumesTest(absltest.TestCase):

  def test_killed_run_with_bad_bytes_and_a_cut_line_resumes(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    flags = [f'--workdir={workdir}', '--num_steps=60', *TINY]
    env = subprocess_env.env()
    killed = subprocess.run(
        [sys.executable, '-c', KILLED_AFTER_LOGGING, *flags],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env=dict(env, KILL_AT='40'))
    self.assertEqual(killed.returncode, -signal.SIGKILL, killed.stderr)
    self.assertEqual(os.listdir(os.path.join(workdir, 'checkpoints')), ['20'])
    path = os.path.join(workdir, 'metrics.jsonl')
    with open(path, 'rb') as f:
      lines = f.read().splitlines(keepends=True)
    self.assertEqual([json.loads(l)['step'] for l in lines], [10, 20, 30, 40])
    # A byte that is not UTF-8 inside the line of step 30, and the line of
    # step 40 cut in half: both are past the checkpoint (step 20).
    middle = lines[2][:10] + b'\xff' + lines[2][10:]
    cut = lines[3][:len(lines[3]) // 2]
    with open(path, 'wb') as f:
      f.write(lines[0] + lines[1] + middle + cut)

    command = [sys.executable, '-m', 'gan_jax.main', *flags]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env=env)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    aside = path + '.damaged-20'
    warnings = [l for l in proc.stderr.splitlines() if 'damaged line' in l]
    self.assertEqual(warnings, [
        f'warning: 2 damaged lines of {path} (bytes that are not UTF-8, '
        f'invalid JSON or cut off) set aside in {aside}; the log resumes '
        'after step 20'])
    self.assertIn('resuming from the checkpoint at step 20', proc.stdout)
    self.assertEqual(open(aside, 'rb').read(), middle + cut + b'\n')
    self.assertEqual(glob.glob(path + '.damaged-*'), [aside])
    records = strict_lines(path)
    self.assertEqual([r['step'] for r in records if not r.get('final')],
                     [10, 20, 30, 40, 50, 60])
    self.assertEqual([r['step'] for r in records if r.get('final')], [60])
    self.assertEqual(records[:2], [json.loads(l) for l in lines[:2]])

    # Run again once finished: nothing is damaged, nothing more set aside.
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                           timeout=300, env=env)
    self.assertEqual(again.returncode, 0, again.stderr)
    self.assertNotIn('damaged', again.stderr)
    self.assertEqual(glob.glob(path + '.damaged-*'), [aside])


if __name__ == '__main__':
  absltest.main()
