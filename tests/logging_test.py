"""What a run reports, from real processes: TensorBoard event files (read back
record by record, CRCs checked) that agree with metrics.jsonl, the sample
image, a purge marker on resume, and the progress display on a terminal
versus a pipe."""

import glob
import json
import os
import pty
import subprocess
import sys

from absl.testing import absltest
import numpy as np

from gan_jax import logging_utils

import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--log_every=10', '--batch_size=32', '--z_dim=2', '--g_hidden=16',
        '--d_hidden=16', '--num_eval_samples=100']


def _command(workdir, num_steps):
  return [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}',
          f'--num_steps={num_steps}', *TINY]


def _events(path):
  scalars, images, purges = {}, {}, []
  for event in logging_utils.read_events(path):
    if event.HasField('session_log'):
      purges.append(event.step)
    for value in event.summary.value:
      if value.HasField('image'):
        images[(value.tag, event.step)] = value.image
      else:
        scalars[(value.tag, event.step)] = value.simple_value
  return scalars, images, purges


class TensorBoardTest(absltest.TestCase):

  def test_events_match_metrics_and_resume_purges(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    proc = subprocess.run(_command(workdir, 30), capture_output=True,
                          text=True, cwd=ROOT, timeout=300,
                          env=subprocess_env.env())
    self.assertEqual(proc.returncode, 0, proc.stderr)
    # Not a terminal (a pipe): one plain line per chunk, no redrawing.
    self.assertNotIn('\r', proc.stdout)
    lines = [l for l in proc.stdout.splitlines() if l.startswith('step ')]
    self.assertEqual([l.split()[1] for l in lines], ['10/30', '20/30', '30/30'])
    for line in lines:
      self.assertRegex(line, r'steps/s  ETA \d+:\d\d$')
    files = glob.glob(os.path.join(workdir, 'events.out.tfevents.*'))
    self.assertLen(files, 1)
    scalars, images, purges = _events(files[0])
    self.assertEqual(purges, [])
    records = [json.loads(l) for l in open(os.path.join(workdir,
                                                        'metrics.jsonl'))]
    for record in records[:-1]:
      for name in ('d_loss', 'g_loss', 'value', 'd_grad_norm', 'g_grad_norm',
                   'steps_per_sec'):
        self.assertEqual(scalars[(f'train/{name}', record['step'])],
                         np.float32(record[name]))
    self.assertEqual(sorted(s for t, s in scalars if t == 'train/d_loss'),
                     [10, 20, 30])
    final = records[-1]
    self.assertEqual(scalars[('eval/hq_fraction', 30)],
                     np.float32(final['hq_fraction']))
    image = images[('samples', 30)]
    png = open(os.path.join(workdir, 'samples.png'), 'rb').read()
    self.assertEqual(image.encoded_image_string[:8], b'\x89PNG\r\n\x1a\n')
    from PIL import Image  # pylint: disable=g-import-not-at-top
    with Image.open(os.path.join(workdir, 'samples.png')) as expected:
      self.assertEqual((image.width, image.height), expected.size)
    self.assertGreater(len(png), 1000)

    # Resuming to 50 steps starts a second file that tells TensorBoard to
    # drop the older events from step 31 on, then logs steps 40 and 50.
    proc = subprocess.run(_command(workdir, 50), capture_output=True,
                          text=True, cwd=ROOT, timeout=300,
                          env=subprocess_env.env())
    self.assertEqual(proc.returncode, 0, proc.stderr)
    files = sorted(glob.glob(os.path.join(workdir, 'events.out.tfevents.*')),
                   key=os.path.getmtime)
    self.assertLen(files, 2)
    scalars, _, purges = _events(files[1])
    self.assertEqual(purges, [31])
    self.assertEqual(sorted(s for t, s in scalars if t == 'train/d_loss'),
                     [40, 50])


class ProgressTest(absltest.TestCase):

  def test_bar_on_a_terminal(self):
    # (Plain lines when not a terminal: see the TensorBoard test's run.)
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    leader, follower = pty.openpty()
    proc = subprocess.Popen(_command(workdir, 30), stdout=follower,
                            stderr=subprocess.PIPE, cwd=ROOT,
                            env=subprocess_env.env())
    os.close(follower)
    chunks = []
    while True:
      try:
        data = os.read(leader, 4096)
      except OSError:  # the terminal closes when the process exits
        break
      if not data:
        break
      chunks.append(data)
    self.assertEqual(proc.wait(timeout=300), 0, proc.stderr.read())
    proc.stderr.close()
    os.close(leader)
    text = b''.join(chunks).decode()
    redraws = [r for r in text.split('\r') if r.startswith('[')]
    self.assertLen(redraws, 3)
    self.assertTrue(redraws[0].startswith('[' + '#' * 8 + '.' * 16 + '] 10/30'))
    self.assertTrue(redraws[-1].startswith('[' + '#' * 24 + '] 30/30 100%'))
    for line in redraws:
      self.assertIn(' steps/s  ETA ', line)
      self.assertIn('\x1b[K', line)
    self.assertNotIn('step      10/30', text)


if __name__ == '__main__':
  absltest.main()
