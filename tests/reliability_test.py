"""Faults produced for real, in real subprocesses, and the one line and exit
status each must give (gan_jax.cli): a second writer on a held workdir (2,
nothing written, and the lock freed by a SIGKILL), the workdir removed while
the run trains (74), a write past the file size limit (74), an internal error
(70, the traceback in crash.log), and `--workdir=.` among files that gan_jax
did not write (kept)."""

import contextlib
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

from absl.testing import absltest
from absl.testing import parameterized

import subprocess_env
from gan_jax import cli
from gan_jax import workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--batch_size=32', '--z_dim=2', '--g_hidden=16', '--d_hidden=16',
        '--num_eval_samples=100']
# A run that trains until it is stopped, checkpointing often.
ENDLESS = [*TINY, '--num_steps=2000000000', '--log_every=10',
           '--checkpoint_every=50']

# A process that holds a workdir's lock until its stdin closes; no JAX.
HOLDER = """
import sys
from gan_jax import workdir_lock
with workdir_lock.hold(sys.argv[1]):
  print('held', flush=True)
  sys.stdin.read()
"""

# A launcher with a loss that fails inside the compiled step: a bug in code
# that gan_jax runs (here an extension's), not bad input.
BROKEN_LOSS = """
from absl import app
from gan_jax import cli, losses, main

def broken(*args):
  raise RuntimeError('a bug in the loss')

losses.register(losses.Loss(name='broken', value=broken, d_loss=broken,
                            g_loss=broken))
app.run(main.main, flags_parser=cli.parse_flags)
"""


def _env(**extra):
  return subprocess_env.env(PYTHONPATH=ROOT, **extra)


def _main(*args, cwd=ROOT, **kwargs):
  return subprocess.run([sys.executable, '-m', 'gan_jax.main', *args],
                        capture_output=True, text=True, cwd=cwd, env=_env(),
                        timeout=300, **kwargs)


@contextlib.contextmanager
def _endless_run(workdir):
  """A run training in the background from its first checkpoint on, killed
  at the end; its output goes to files beside `workdir`."""
  with open(workdir + '.out', 'w') as out, open(workdir + '.err', 'w') as err:
    proc = subprocess.Popen(
        [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}',
         *ENDLESS], stdout=out, stderr=err, cwd=ROOT, env=_env())
  try:
    _wait_for_checkpoint(proc, workdir)
    yield proc
  finally:
    proc.kill()
    proc.wait(timeout=60)


def _checkpoints(workdir):
  try:
    return sorted(int(d) for d in os.listdir(os.path.join(workdir,
                                                          'checkpoints'))
                  if d.isdigit())
  except FileNotFoundError:
    return []


def _wait_for_checkpoint(proc, workdir, timeout=240):
  deadline = time.monotonic() + timeout
  while not _checkpoints(workdir):
    if proc.poll() is not None or time.monotonic() > deadline:
      proc.kill()
      with open(workdir + '.err') as f:
        raise AssertionError(f'no checkpoint (exit {proc.poll()}): {f.read()}')
    time.sleep(0.05)


def _stop(pid):
  """SIGSTOP, and wait until every thread of `pid` has stopped."""
  os.kill(pid, signal.SIGSTOP)
  tasks = f'/proc/{pid}/task'
  while True:
    states = []
    for task in os.listdir(tasks):
      with open(os.path.join(tasks, task, 'stat')) as f:
        states.append(f.read().rsplit(')', 1)[1].split()[0])
    if all(state in 'Tt' for state in states):
      return
    time.sleep(0.01)


def _state(path):
  """{relative path: (sha256, size, mtime_ns)} of every file and directory."""
  out = {}
  for root, dirs, files in os.walk(path):
    for name in dirs + files:
      full = os.path.join(root, name)
      st = os.lstat(full)
      digest = ''
      if name in files:
        with open(full, 'rb') as f:
          digest = hashlib.sha256(f.read()).hexdigest()
      out[os.path.relpath(full, path)] = (digest, st.st_size, st.st_mtime_ns)
  return out


def _one_line(test, status, proc, stderr=None):
  """The one `error:` line of `proc`, which exited with `status`; `stderr` is
  its error output when it is not `proc.stderr`."""
  stderr = proc.stderr if stderr is None else stderr
  test.assertEqual(proc.returncode, status, stderr)
  lines = stderr.strip().splitlines()
  test.assertLen(lines, 1, stderr)
  test.assertStartsWith(lines[0], 'error: ')
  test.assertNotIn('Traceback', stderr)
  return lines[0]


class TwoWritersTest(parameterized.TestCase):

  def test_second_run_refused_until_the_first_is_killed(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    with _endless_run(workdir) as first:
      # Frozen, the first run still holds the lock and writes nothing, so
      # any change to the workdir would be the second run's.
      _stop(first.pid)
      before = _state(workdir)
      second = _main(f'--workdir={workdir}', *ENDLESS)
      line = _one_line(self, cli.EXIT_USAGE, second)
      self.assertIn(f'--workdir={workdir} is in use by another gan_jax run '
                    f'(pid {first.pid}, holding {workdir}/.gan_jax.lock)',
                    line)
      self.assertEqual(second.stdout, '')
      self.assertEqual(_state(workdir), before)
    # SIGKILL left the lock file behind, but the lock went with the process.
    self.assertTrue(os.path.exists(workdir_lock.lock_path(workdir)))
    steps = _checkpoints(workdir)
    third = _main(f'--workdir={workdir}', *TINY, '--log_every=10',
                  '--checkpoint_every=50', f'--num_steps={steps[-1] + 10}')
    self.assertEqual(third.returncode, 0, third.stderr)
    self.assertIn(f'resuming from the checkpoint at step {steps[-1]}',
                  third.stdout)
    self.assertFalse(os.path.exists(workdir_lock.lock_path(workdir)))

  @parameterized.named_parameters(
      ('one_run', 'gan_jax.main', []),
      ('seeds', 'gan_jax.main', ['--num_seeds=2']),
      ('sweep', 'gan_jax.sweep', ['--grid=loss:hinge,minimax']),
  )
  def test_every_command_takes_the_lock(self, module, args):
    workdir = self.create_tempdir().full_path
    holder = subprocess.Popen([sys.executable, '-c', HOLDER, workdir],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=_env())
    try:
      self.assertEqual(holder.stdout.readline(), 'held\n')
      before = _state(workdir)
      proc = subprocess.run(
          [sys.executable, '-m', module, f'--workdir={workdir}', *TINY,
           '--num_steps=20', '--log_every=10', *args],
          capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
      line = _one_line(self, cli.EXIT_USAGE, proc)
      self.assertIn(f'is in use by another gan_jax run (pid {holder.pid},',
                    line)
      self.assertEqual(_state(workdir), before)
    finally:
      holder.stdin.close()
      holder.wait()
    self.assertEqual(os.listdir(workdir), [])  # the holder let go


class LockTest(absltest.TestCase):
  """workdir_lock in this process: what it leaves, and holding twice."""

  def test_lets_go_and_removes_only_the_directories_it_made(self):
    tmp = self.create_tempdir().full_path
    workdir = os.path.join(tmp, 'a', 'b')
    with self.assertRaises(ValueError):
      with workdir_lock.hold(workdir):
        with open(workdir_lock.lock_path(workdir)) as f:
          self.assertEqual(f.read().split()[0], str(os.getpid()))
        with workdir_lock.hold(workdir):  # the same process may nest
          pass
        raise ValueError('refused before writing anything')
    self.assertEqual(os.listdir(tmp), [])
    with workdir_lock.hold(workdir):
      open(os.path.join(workdir, 'written'), 'w').close()
    self.assertEqual(os.listdir(workdir), ['written'])


class IOFailureTest(absltest.TestCase):

  def test_workdir_removed_while_training(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    with _endless_run(workdir) as proc:
      # Until the run stops: a checkpoint under way may recreate parts of it.
      while proc.poll() is None:
        shutil.rmtree(workdir, ignore_errors=True)
        time.sleep(0.02)
    with open(workdir + '.err') as f:
      line = _one_line(self, cli.EXIT_IO, proc, f.read())
    # Usually `the workdir was removed while the run was writing to it`; a
    # checkpoint write that failed first names its own file in the workdir.
    self.assertStartsWith(line, f'error: {workdir}')
    self.assertEndsWith(line, '(ENOENT)')

  def test_write_past_the_file_size_limit(self):
    # RLIMIT_FSIZE makes a write past 16 KiB fail with EFBIG, a real I/O
    # error of the same kind as a full disk; samples.npy (5000 x 2 float32)
    # is the first file to grow that large.
    workdir = os.path.join(self.create_tempdir().full_path, 'run')

    def limit_file_size():
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
      resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    env = _env()
    del env['JAX_COMPILATION_CACHE_DIR']  # its entries are larger
    proc = subprocess.run(
        [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}', *TINY,
         '--num_steps=20', '--log_every=10', '--num_eval_samples=5000'],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
        preexec_fn=limit_file_size)
    self.assertEqual(_one_line(self, cli.EXIT_IO, proc),
                     f'error: {workdir}/samples.npy: File too large (EFBIG)')
    self.assertCountEqual(os.listdir(workdir), [
        'checkpoints', 'config.json', 'metrics.jsonl',
        *[n for n in os.listdir(workdir) if n.startswith('events.out')]])


class InternalErrorTest(absltest.TestCase):

  def test_exit_70_with_the_traceback_in_crash_log(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    proc = subprocess.run(
        [sys.executable, '-c', BROKEN_LOSS, f'--workdir={workdir}',
         '--loss=broken', *TINY, '--num_steps=20', '--log_every=10'],
        capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
    crash_log = os.path.join(workdir, 'crash.log')
    self.assertEqual(
        _one_line(self, cli.EXIT_INTERNAL, proc),
        'error: internal error (RuntimeError: a bug in the loss); the '
        f'traceback is in {crash_log}; please report it')
    with open(crash_log) as f:
      text = f.read()
    self.assertIn('Traceback (most recent call last)', text)
    self.assertIn('in broken\nRuntimeError: a bug in the loss', text)


class OnlyItsOwnFilesTest(absltest.TestCase):

  def test_workdir_dot_keeps_files_gan_jax_did_not_write(self):
    tmp = self.create_tempdir().full_path
    foreign = {'notes.tmp-1': 'mine', 'draft.tmp-': 'mine too',
               '.x.tmp-3': 'also mine'}
    for name, text in foreign.items():
      with open(os.path.join(tmp, name), 'w') as f:
        f.write(text)
    os.mkdir(os.path.join(tmp, 'data.orbax-checkpoint-tmp-5'))
    stale = os.path.join(tmp, '.gan_jax-tmp-999999-config.json')
    open(stale, 'w').close()  # a temporary of a killed gan_jax run
    proc = _main('--workdir=.', *TINY, '--num_steps=20', '--log_every=10',
                 cwd=tmp)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    for name, text in foreign.items():
      with open(os.path.join(tmp, name)) as f:
        self.assertEqual(f.read(), text)
    self.assertTrue(os.path.isdir(os.path.join(tmp,
                                               'data.orbax-checkpoint-tmp-5')))
    self.assertFalse(os.path.exists(stale))
    self.assertTrue(os.path.isfile(os.path.join(tmp, 'samples.npy')))


if __name__ == '__main__':
  absltest.main()
