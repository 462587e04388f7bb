"""The command line end to end, in real subprocesses: artifacts and flagfiles.

Bad input (one-line errors, exit status 2, nothing written) is in
tests/bad_input_test.py."""

import glob
import io
import json
import os
import struct
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import scipy.integrate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--num_steps=40', '--log_every=20', '--batch_size=32', '--z_dim=2',
        '--g_hidden=16,16', '--d_hidden=16,16', '--num_eval_samples=200']


def _main(*args, cwd=ROOT):
  return subprocess.run([sys.executable, '-m', 'gan_jax.main', *args],
                        capture_output=True, text=True, cwd=cwd, timeout=300)


class EndToEndTest(absltest.TestCase):

  def test_flagfile_run_writes_every_artifact(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    with tempfile.NamedTemporaryFile('w', suffix='.cfg', delete=False) as f:
      f.write('# a tiny test flagfile\n--dataset=grid25\n--loss=hinge\n'
              '--seed=7\n')
    # Flags after the flagfile override it.
    proc = _main(f'--flagfile={f.name}', f'--workdir={workdir}', *TINY,
                 '--loss=least_squares')
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertIn(os.path.abspath(workdir), proc.stdout)
    self.assertIn('steps/s', proc.stdout)
    self.assertIn('ETA', proc.stdout)

    config = json.load(open(os.path.join(workdir, 'config.json')))
    self.assertEqual((config['dataset'], config['loss'], config['seed']),
                     ('grid25', 'least_squares', 7))
    self.assertEqual(config['g_hidden'], [16, 16])

    lines = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
    self.assertEqual([l['step'] for l in lines], [20, 40, 40])
    for line in lines[:-1]:
      for key in ('d_loss', 'g_loss', 'value', 'steps_per_sec'):
        self.assertTrue(np.isfinite(line[key]), key)
    final = lines[-1]
    self.assertTrue(final['final'])
    self.assertEqual(final['num_modes'], 25)
    self.assertEqual(sum(final['mode_counts']),
                     round(final['hq_fraction'] * 200))

    samples = np.load(os.path.join(workdir, 'samples.npy'))
    self.assertEqual(samples.shape, (200, 2))
    with open(os.path.join(workdir, 'samples.png'), 'rb') as png:
      self.assertEqual(png.read(8), b'\x89PNG\r\n\x1a\n')

    # TensorBoard: every scalar of metrics.jsonl (train/ per chunk, eval/ in
    # the final line), at its step, as float32, and nothing else; the image
    # is samples.png's pixels.
    expected = {}
    for line in lines:
      prefix = 'eval/' if line.get('final') else 'train/'
      for key, value in line.items():
        if (key != 'step' and isinstance(value, (int, float))
            and not isinstance(value, bool) and np.isfinite(value)):
          expected[(prefix + key, line['step'])] = np.float32(value)
    events = glob.glob(os.path.join(workdir, 'events.out.tfevents.*'))
    self.assertLen(events, 1)
    scalars, images = {}, {}
    for event in _read_event_file(events[0]):
      for value in event.summary.value:
        if value.HasField('image'):
          images[(value.tag, event.step)] = value.image.encoded_image_string
        else:
          self.assertNotIn((value.tag, event.step), scalars)
          scalars[(value.tag, event.step)] = np.float32(value.simple_value)
    self.assertEqual(scalars, expected)
    self.assertEqual(list(images), [('samples', 40)])
    from PIL import Image  # pylint: disable=g-import-not-at-top
    with Image.open(io.BytesIO(images[('samples', 40)])) as logged, \
        Image.open(os.path.join(workdir, 'samples.png')) as saved:
      np.testing.assert_array_equal(np.asarray(logged.convert('RGB')),
                                    np.asarray(saved.convert('RGB')))

    # The checkpoint: step 40, G's parameters as the MLP 2-16-16-2, and they
    # give samples.npy from the evaluation latents (normal draws from
    # fold_in(PRNGKey(seed), 0x65564C)) through a numpy forward pass.
    self.assertEqual(os.listdir(os.path.join(workdir, 'checkpoints')), ['40'])
    import jax  # pylint: disable=g-import-not-at-top
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    state = ocp.StandardCheckpointer().restore(
        os.path.join(workdir, 'checkpoints', '40', 'state'))
    self.assertEqual(int(state['step']), 40)
    g = state['g_params']
    self.assertEqual({name: (g[name]['kernel'].shape, g[name]['bias'].shape)
                      for name in g},
                     {'Dense_0': ((2, 16), (16,)), 'Dense_1': ((16, 16), (16,)),
                      'Dense_2': ((16, 2), (2,))})
    z = np.asarray(jax.random.normal(
        jax.random.fold_in(jax.random.PRNGKey(7), 0x65564C), (200, 2)),
                   np.float64)
    h = np.maximum(z @ g['Dense_0']['kernel'] + g['Dense_0']['bias'], 0)
    h = np.maximum(h @ g['Dense_1']['kernel'] + g['Dense_1']['bias'], 0)
    np.testing.assert_allclose(
        samples, h @ g['Dense_2']['kernel'] + g['Dense_2']['bias'],
        rtol=1e-5, atol=1e-5)

  def test_mix1d_reports_jsd(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    proc = _main('--dataset=mix1d', f'--workdir={workdir}', *TINY)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    final = json.loads(open(os.path.join(workdir, 'metrics.jsonl')).readlines()[-1])
    samples = np.load(os.path.join(workdir, 'samples.npy'))
    self.assertEqual(samples.shape, (200, 1))
    np.testing.assert_allclose(final['jsd'], _mix1d_jsd(samples[:, 0]),
                               rtol=1e-4, atol=1e-5)


def _mix1d_jsd(samples):
  """JSD (nats) between mix1d, 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2), and a
  Gaussian KDE of `samples` with Scott's bandwidth (h = std * n^(-1/5)),
  by Simpson's rule on a grid covering both densities."""
  normal = lambda x, mu, sd: np.exp(-0.5 * ((x - mu) / sd)**2) / (
      sd * np.sqrt(2 * np.pi))
  h = np.std(samples, ddof=1) * len(samples)**(-1 / 5)
  x = np.linspace(min(-5.0, samples.min() - 8 * h),
                  max(5.0, samples.max() + 8 * h), 20001)
  p = 0.5 * normal(x, -2.0, 0.5) + 0.5 * normal(x, 2.0, 0.5)
  q = normal(x[:, None], samples[None, :], h).mean(axis=1)
  m = 0.5 * (p + q)
  with np.errstate(divide='ignore', invalid='ignore'):
    f = 0.5 * np.where(p > 0, p * np.log(p / m), 0.0) + 0.5 * np.where(
        q > 0, q * np.log(q / m), 0.0)
  return float(scipy.integrate.simpson(f, x=x))


def _read_event_file(path):
  """The Event protos of a TensorBoard event file: TFRecord framing (length
  u64, its masked CRC32C, data, the data's masked CRC32C) read here."""
  from tensorboardX.crc32c import crc32c  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  masked = lambda b: ((((crc32c(b) >> 15) | (crc32c(b) << 17)) + 0xa282ead8)
                      & 0xffffffff)
  with open(path, 'rb') as f:
    data = f.read()
  offset, events = 0, []
  while offset < len(data):
    header = data[offset:offset + 8]
    length, = struct.unpack('<Q', header)
    body = data[offset + 12:offset + 12 + length]
    assert struct.unpack('<I', data[offset + 8:offset + 12])[0] == masked(
        header), offset
    assert struct.unpack('<I', data[offset + 12 + length:
                                    offset + 16 + length])[0] == masked(body)
    event = event_pb2.Event()
    event.ParseFromString(body)
    events.append(event)
    offset += 16 + length
  assert offset == len(data), 'a cut-off record at the end'
  return events


class ExperimentsTest(parameterized.TestCase):

  def test_every_flagfile_resolves_to_a_valid_config(self):
    from absl import flags  # pylint: disable=g-import-not-at-top
    from gan_jax import config as config_lib  # pylint: disable=g-import-not-at-top
    from gan_jax import seeds as seeds_lib  # pylint: disable=g-import-not-at-top
    paths = sorted(glob.glob(os.path.join(ROOT, 'experiments', '*.cfg')))
    self.assertNotEmpty(paths)
    config_lib.define_flags()
    seeds_lib.define_flags()  # --num_seeds: the PacGAN protocol's 10 runs
    for path in paths:
      flags.FLAGS.unparse_flags()
      flags.FLAGS(['prog', f'--flagfile={path}'])
      config = config_lib.from_flags()
      header = open(path).read().splitlines()
      self.assertTrue(header[0].startswith('#'), path)
      text = '\n'.join(l for l in header if l.startswith('#'))
      self.assertIn('python -m gan_jax.main --flagfile=experiments/', text, path)
      self.assertIn('Measured', text, path)
      # DATASET_LOSS, DATASET_MODEL_LOSS or DATASET_MODEL_bench, MODEL
      # possibly shortened to its first word (sngan for sngan_resnet); a
      # published protocol's file is named after it: pacgan_{ring,grid}_gan;
      # a conditional run after its discriminator (DATASET_projection_LOSS),
      # an augmented one DATASET_diffaugment[_lecam]_LOSS.
      stem = os.path.basename(path)[:-len('.cfg')]
      model = config.model.split('_')[0]
      protocol = {'ring8': 'ring', 'grid25': 'grid'}.get(config.dataset)
      if config.conditional != 'none':
        names = (f'{config.dataset}_{config.conditional}_{config.loss}',)
      elif config.augment:
        lecam = '_lecam' if config.lecam_weight else ''
        names = (f'{config.dataset}_diffaugment{lecam}_{config.loss}',)
      else:
        names = (f'{config.dataset}_{config.loss}',
                 f'{config.dataset}_{model}_{config.loss}',
                 f'{config.dataset}_{model}_bench',
                 f'{config.toy_layout}_{protocol}_gan')
      self.assertIn(stem, names, path)


if __name__ == '__main__':
  absltest.main()
