"""Damaged, half-written, foreign and upgraded checkpoints.

In real processes on real files: a finished run's workdir is copied, a
checkpoint in the copy is damaged in one of several ways, and the same command
is run again: the damage is detected, one warning line names it, the
checkpoint is moved to corrupt_checkpoints/, training resumes from the
previous good one, and the run ends bit-identical to the undamaged one (same
samples, same checkpoint fingerprints). Checkpoints recording other package
versions restore with a note; one of another structure is refused (exit
status 2) and left where it is.

In-process, on tiny checkpoints: every field of the meta missing or
malformed (damage: one warning, never a traceback), another structure or a
newer format (refused), format 1, and a fingerprint that does not depend on
the printed treedef.
"""

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

from absl.testing import absltest
from absl.testing import parameterized
import jax
import numpy as np

from gan_jax import checkpoint
from gan_jax import checkpoint_meta
from gan_jax import train
from gan_jax.config import Config

import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--num_steps=80', '--log_every=10', '--checkpoint_every=20',
        '--keep_checkpoints=4', '--batch_size=32', '--z_dim=2',
        '--g_hidden=16', '--d_hidden=16', '--num_eval_samples=100', '--seed=2']


# `python -m gan_jax.main` whose orbax pauses inside the write of checkpoint
# $PAUSE_STEP: once the writes of the state's arrays are under way (the
# checkpoint and its items still in their temporary directories, nothing
# committed), it creates $PAUSE_MARKER and sleeps, for the test to kill it
# there.
PAUSED_ARRAY_WRITE = textwrap.dedent('''
    import os, time
    from absl import app
    from orbax.checkpoint import handlers
    from gan_jax import cli, main

    save = handlers.StandardCheckpointHandler.async_save

    async def paused_save(self, directory, *args, **kwargs):
      futures = await save(self, directory, *args, **kwargs)
      item_dir = str(getattr(directory, 'path', directory))
      step_dir = os.path.basename(os.path.dirname(item_dir))
      if step_dir.startswith(os.environ['PAUSE_STEP'] + '.orbax-checkpoint-tmp'):
        # orbax may create the item's directory on a background thread;
        # nothing commits while this coroutine holds its futures.
        deadline = time.monotonic() + 120
        while not os.path.isdir(item_dir) and time.monotonic() < deadline:
          time.sleep(0.01)
        open(os.environ['PAUSE_MARKER'], 'w').close()
        time.sleep(600)
      return futures

    handlers.StandardCheckpointHandler.async_save = paused_save
    app.run(main.main, flags_parser=cli.parse_flags)
''')

def _main(workdir):
  return subprocess.run(
      [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}', *TINY],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=subprocess_env.env())


def _files(path):
  return [os.path.join(root, name) for root, _, names in os.walk(path)
          for name in names]


def _flip_bytes(step_dir):
  for path in _files(os.path.join(step_dir, 'state')):
    if os.sep + 'd' + os.sep in path:  # the array data files
      data = bytearray(open(path, 'rb').read())
      for i in range(0, len(data), 7):
        data[i] ^= 0x5A
      open(path, 'wb').write(bytes(data))


def _truncate(step_dir):
  for path in _files(os.path.join(step_dir, 'state')):
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
      f.truncate(size // 2)


def _delete_meta(step_dir):
  os.remove(os.path.join(step_dir, 'meta', 'metadata'))


def _delete_state_manifest(step_dir):
  for path in _files(os.path.join(step_dir, 'state')):
    if path.endswith('manifest.ocdbt'):
      os.remove(path)


def _edit_meta(step_dir, edit):
  path = os.path.join(step_dir, 'meta', 'metadata')
  with open(path) as f:
    meta = json.load(f)
  edit(meta)
  with open(path, 'w') as f:
    json.dump(meta, f)


def _wrong_fingerprint(step_dir):
  # Silent corruption: every file reads back, but the arrays are not the ones
  # that were saved. Simulated by recording a different fingerprint.
  _edit_meta(step_dir, lambda meta: meta.update(fingerprint='0' * 64))


def _drop_meta_field(name):
  return lambda step_dir: _edit_meta(step_dir, lambda meta: meta.pop(name))


def _meta_not_an_object(step_dir):
  with open(os.path.join(step_dir, 'meta', 'metadata'), 'w') as f:
    f.write('[1, 2]')


def _tree(workdir):
  """Every file under `workdir` with its size and modification time."""
  return {path: (os.path.getsize(path), os.stat(path).st_mtime_ns)
          for path in _files(workdir)}


def _fingerprints(workdir):
  out = {}
  for step in os.listdir(os.path.join(workdir, 'checkpoints')):
    path = os.path.join(workdir, 'checkpoints', step, 'meta', 'metadata')
    out[step] = json.load(open(path))['fingerprint']
  return out


class DamagedCheckpointTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.reference = os.path.join(tempfile.mkdtemp(), 'run')
    proc = _main(cls.reference)
    assert proc.returncode == 0, proc.stderr
    cls.samples = np.load(os.path.join(cls.reference, 'samples.npy'))
    cls.fingerprints = _fingerprints(cls.reference)
    assert sorted(cls.fingerprints, key=int) == ['20', '40', '60', '80']

  def _copy(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    shutil.copytree(self.reference, workdir)
    return workdir

  def _check(self, damage, good, reasons, workdir=None):
    """Damages a copy as `damage` says, runs the command again, and checks
    the warnings (newest first), the fallback to `good` and the result."""
    workdir = workdir or self._copy()
    ckpts = os.path.join(workdir, 'checkpoints')
    for step, fn in damage.items():
      fn(os.path.join(ckpts, step))
    proc = _main(workdir)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    warnings = proc.stderr.strip().splitlines()
    self.assertLen(warnings, len(reasons), proc.stderr)
    for line, (step, reason) in zip(warnings, reasons):
      moved = os.path.join(workdir, 'corrupt_checkpoints', step)
      self.assertTrue(line.startswith(
          f'warning: checkpoint {step} in {ckpts} is damaged ('), line)
      self.assertIn(reason, line)
      self.assertTrue(line.endswith(
          f'); it is moved to {moved}, resuming from step {good}'), line)
      self.assertTrue(os.path.isdir(moved))
    self.assertIn(f'resuming from the checkpoint at step {good} in {ckpts}',
                  proc.stdout)
    self.assertTrue(np.array_equal(
        self.samples, np.load(os.path.join(workdir, 'samples.npy'))))
    # The checkpoints written again are bit-identical to the lost ones, and
    # no temporary directory is left.
    self.assertEqual(_fingerprints(workdir), self.fingerprints)
    self.assertEqual(sorted(os.listdir(ckpts), key=int),
                     ['20', '40', '60', '80'])

  def test_half_written_and_damaged_data_fall_back_with_warnings(self):
    # A run SIGKILLed inside the write of checkpoint 80, while its arrays
    # are being written: what is left is orbax's temporary directory, its
    # items still in their own temporary directories, nothing committed. It
    # is not a checkpoint: ignored, removed, no warning.
    tmp = self.create_tempdir().full_path
    workdir, marker = os.path.join(tmp, 'run'), os.path.join(tmp, 'inside')
    with open(os.path.join(tmp, 'stderr'), 'w+') as err:
      proc = subprocess.Popen(
          [sys.executable, '-c', PAUSED_ARRAY_WRITE, f'--workdir={workdir}',
           *TINY], stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
          env=subprocess_env.env(PAUSE_STEP='80', PAUSE_MARKER=marker))
      deadline = time.monotonic() + 240
      while not os.path.exists(marker):
        if proc.poll() is not None or time.monotonic() > deadline:
          proc.kill()
          err.seek(0)
          self.fail(f'the write of step 80 never paused: {err.read()}')
        time.sleep(0.02)
      proc.kill()  # SIGKILL, inside the write of checkpoint 80
      self.assertEqual(proc.wait(), -signal.SIGKILL)
    ckpts = os.path.join(workdir, 'checkpoints')
    names = os.listdir(ckpts)
    self.assertEqual(sorted((n for n in names if n.isdigit()), key=int),
                     ['20', '40', '60'])
    partial, = [n for n in names if n.startswith('80.orbax-checkpoint-tmp')]
    partial = os.path.join(ckpts, partial)
    items = os.listdir(partial)
    state_tmp, = [n for n in items
                  if n.startswith('state.orbax-checkpoint-tmp')]
    self.assertNotIn('state', items)
    self.assertFalse([f for f in _files(partial)
                      if f.endswith('commit_success.txt')])
    self.assertTrue(os.path.isdir(os.path.join(partial, state_tmp)))
    self._check({'60': _flip_bytes, '40': _truncate}, '20',
                [('60', 'DATA_LOSS'), ('40', 'Error')], workdir)

  def test_missing_files_and_silent_change_fall_back_with_warnings(self):
    self._check({'80': _wrong_fingerprint, '60': _delete_meta,
                 '40': _delete_state_manifest}, '20',
                [('80', 'its contents do not match the fingerprint recorded '
                  'when it was written'), ('60', 'Error'),
                 ('40', 'NOT_FOUND')])

  def test_every_checkpoint_damaged_starts_over(self):
    workdir = self._copy()
    damage = {'80': (_drop_meta_field('structure'),
                     "its meta lacks the field 'structure'"),
              '60': (_drop_meta_field('versions'),
                     "its meta lacks the field 'versions'"),
              '40': (_delete_meta, 'FileNotFoundError'),
              '20': (_meta_not_an_object, 'its meta is a JSON list')}
    for step, (fn, _) in damage.items():
      fn(os.path.join(workdir, 'checkpoints', step))
    proc = _main(workdir)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    warnings = proc.stderr.strip().splitlines()
    self.assertEqual([w.split()[2] for w in warnings], ['80', '60', '40', '20'])
    for line, (_, reason) in zip(warnings, damage.values()):
      self.assertIn(f'is damaged ({reason}', line)
      self.assertTrue(line.endswith(', starting from scratch'), line)
    self.assertNotIn('resuming', proc.stdout)
    self.assertTrue(np.array_equal(
        self.samples, np.load(os.path.join(workdir, 'samples.npy'))))
    self.assertEqual(_fingerprints(workdir), self.fingerprints)

  def test_other_versions_restore_with_a_note(self):
    # As if written by older jax and optax: the recorded versions differ,
    # the structure is the same.
    workdir = self._copy()
    ckpts = os.path.join(workdir, 'checkpoints')
    for step in ('60', '80'):
      shutil.rmtree(os.path.join(ckpts, step))
    for step in ('20', '40'):
      _edit_meta(os.path.join(ckpts, step), lambda meta: meta[
          'versions'].update(jax='0.4.30', optax='0.1.9'))
    proc = _main(workdir)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    here = checkpoint_meta.versions()
    self.assertEqual(proc.stderr.strip().splitlines(), [
        f'note: checkpoint 40 in {ckpts} was written with jax 0.4.30 (here '
        f'{here["jax"]}); optax 0.1.9 (here {here["optax"]}); its structure '
        'matches, so it is restored (later steps may differ in the last bits '
        'from a run that kept one set of versions)'])
    self.assertIn(f'resuming from the checkpoint at step 40 in {ckpts}',
                  proc.stdout)
    self.assertTrue(np.array_equal(
        self.samples, np.load(os.path.join(workdir, 'samples.npy'))))
    self.assertEqual({s: f for s, f in _fingerprints(workdir).items()
                      if s in ('60', '80')},
                     {s: self.fingerprints[s] for s in ('60', '80')})

  def test_a_state_of_another_structure_is_refused_and_left_alone(self):
    # As if written by a version whose optimizer or model has one more leaf:
    # intact, but not a state this run can continue.
    workdir = self._copy()
    config = Config.load(workdir)
    _, _, template = train.build(config)
    state = checkpoint.latest(config, checkpoint.to_host(template)).state
    g_params = {**state.g_params, 'Dense_0': {**state.g_params['Dense_0'],
                                              'scale': np.ones(16, np.float32)}}
    shutil.rmtree(os.path.join(workdir, 'checkpoints', '80'))
    writer = checkpoint.Checkpointer(workdir, keep=4)
    writer.save(state.replace(g_params=g_params), config)
    writer.close()
    before = _tree(workdir)
    proc = _main(workdir)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    self.assertEqual(proc.stderr.strip().splitlines(), [
        f'error: checkpoint 80 in {os.path.join(workdir, "checkpoints")} '
        'holds a state of another structure than this run builds: '
        ".g_params['Dense_0']['scale'] is float32[16] there vs absent here; "
        'it was written with the same package versions; resume it with what '
        'wrote it, or use a new --workdir'])
    self.assertEqual(_tree(workdir), before)  # nothing moved or written


def _tiny(workdir):
  return Config(workdir=workdir, batch_size=8, z_dim=2, g_hidden=(4,),
                d_hidden=(4,), num_steps=5, log_every=1, keep_checkpoints=5)


class MetaTest(parameterized.TestCase):
  """Every way a checkpoint's meta can be wrong, in-process on tiny
  checkpoints at steps 1 and 2 (step 2 is the one spoilt)."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.original = os.path.join(tempfile.mkdtemp(), 'run')
    _, _, state = train.build(_tiny(cls.original))
    cls.state = checkpoint.to_host(state)
    writer = checkpoint.Checkpointer(cls.original, keep=5)
    for step in (1, 2):
      writer.save(cls.state.replace(step=np.int32(step), g_params=jax.tree.map(
          lambda x: x + step, cls.state.g_params)), _tiny(cls.original))
    writer.close()

  def _resume(self, edit=None, write=None):
    """Spoils step 2's meta with `edit` (of the dict) or `write` (text) in a
    copy and resumes: (step, damaged steps, warnings)."""
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    shutil.copytree(self.original, workdir)
    step_dir = os.path.join(workdir, 'checkpoints', '2')
    if edit is not None:
      _edit_meta(step_dir, edit)
    if write is not None:
      with open(os.path.join(step_dir, 'meta', 'metadata'), 'w') as f:
        f.write(write)
    warnings = []
    _, step, damaged = checkpoint.resume(_tiny(workdir), self.state,
                                         warnings.append)
    return step, damaged, warnings

  def _assert_damaged(self, reason, **spoil):
    step, damaged, warnings = self._resume(**spoil)
    self.assertEqual((step, damaged), (1, (2,)))
    self.assertLen(warnings, 1)
    self.assertIn(f'is damaged ({reason}', warnings[0])
    self.assertTrue(warnings[0].endswith(
        '/corrupt_checkpoints/2, resuming from step 1'), warnings[0])

  def test_intact(self):
    self.assertEqual(self._resume(), (2, (), []))

  @parameterized.parameters(*checkpoint_meta.META_FIELDS)
  def test_a_missing_field_is_damage(self, field):
    self._assert_damaged(f"its meta lacks the field '{field}'",
                         edit=lambda meta: meta.pop(field))

  @parameterized.parameters(*checkpoint_meta.META_FIELDS)
  def test_a_malformed_field_is_damage(self, field):
    _, what = checkpoint_meta.META_FIELDS[field]
    self._assert_damaged(f"its meta's '{field}' is not {what}",
                         edit=lambda meta: meta.update({field: None}))

  @parameterized.named_parameters(
      ('not_json', '{"step": 2, "conf', 'JSONDecodeError: Unterminated'),
      ('a_list', '[1, 2]', 'its meta is a JSON list, not an object'),
      ('empty', '', 'JSONDecodeError: Expecting value'))
  def test_a_meta_that_is_no_object_is_damage(self, text, reason):
    self._assert_damaged(reason, write=text)

  def test_a_bad_structure_entry_or_step_is_damage(self):
    self._assert_damaged("its meta's 'structure' is not a list of [path, "
                         'shape, dtype]', edit=lambda meta: meta[
                             'structure'].append(['.extra', [2], 5]))
    self._assert_damaged('its meta is that of step 1',
                         edit=lambda meta: meta.update(step=1))
    self._assert_damaged('its contents do not match the fingerprint recorded '
                         'when it was written', edit=lambda meta: meta['structure'].reverse())

  def test_other_versions_restore_with_a_note(self):
    step, damaged, warnings = self._resume(
        edit=lambda meta: meta.update(versions={'jax': '0.4.30'}))
    self.assertEqual((step, damaged), (2, ()))
    self.assertLen(warnings, 1)
    self.assertIn('checkpoint 2 in ', warnings[0])
    self.assertIn('was written with jax 0.4.30 (here ', warnings[0])
    self.assertIn('flax unknown (here ', warnings[0])

  def test_another_structure_or_a_newer_format_is_refused(self):
    for edit, says in (
        (lambda meta: meta['structure'][2][1].append(3),
         ".g_params['Dense_0']['bias'] is float32[4, 3] there vs "
         'float32[4] here'),
        (lambda meta: meta['structure'].pop(),
         "['kernel'] is absent there vs float32[4, 1] here"),
        (lambda meta: meta.update(format=3),
         'is of checkpoint format 3, written by gan_jax'),
        # A newer format without a field of this one is newer, not damaged.
        (lambda meta: (meta.update(format=3), meta.pop('structure')),
         'is of checkpoint format 3, written by gan_jax')):
      with self.assertRaisesRegex(checkpoint.ResumeRefused, re.escape(says)):
        self._resume(edit=edit)

  def test_format_1_resumes_when_its_fingerprint_matches(self):
    legacy = checkpoint_meta.legacy_fingerprint(checkpoint.latest(
        _tiny(self.original), self.state).state)

    def to_format_1(meta, fingerprint):
      for field in ('format', 'versions', 'structure'):
        del meta[field]
      meta['fingerprint'] = fingerprint

    self.assertEqual(self._resume(edit=lambda m: to_format_1(m, legacy)),
                     (2, (), []))
    # A mismatch may be damage or a jax that prints the tree otherwise:
    # refused, never moved aside.
    with self.assertRaisesRegex(checkpoint.ResumeRefused,
                                'checkpoint format 1'):
      self._resume(edit=lambda m: to_format_1(m, '0' * 64))

  def test_the_structure_and_fingerprint_ignore_the_printed_treedef(self):
    # An optax release that renames a state class changes the printed
    # treedef, not the arrays: such checkpoints stay intact.
    old = collections.namedtuple('ScaleByAdamState', 'count mu')
    new = collections.namedtuple('ScaleByAdamStateV2', 'count mu')
    trees = [{'opt': cls(np.int32(3), np.arange(2, dtype=np.float32))}
             for cls in (old, new)]
    self.assertNotEqual(*(str(jax.tree.structure(t)) for t in trees))
    self.assertEqual(*(checkpoint_meta.structure(t) for t in trees))
    self.assertEqual(*(checkpoint.fingerprint(t) for t in trees))
    self.assertNotEqual(*(checkpoint_meta.legacy_fingerprint(t)
                          for t in trees))  # what format 1 hashed
    # One changed bit changes the fingerprint.
    leaves, treedef = jax.tree.flatten(trees[0])
    leaves[1] = leaves[1].copy()
    leaves[1].view(np.uint32).flat[0] ^= 1
    self.assertNotEqual(checkpoint.fingerprint(jax.tree.unflatten(treedef,
                                                                  leaves)),
                        checkpoint.fingerprint(trees[0]))


if __name__ == '__main__':
  absltest.main()
