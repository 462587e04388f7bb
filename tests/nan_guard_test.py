"""The NaN/Inf guard: a diverging run stops with one line naming the step and
the player, exit status 1, and its last good checkpoint is kept, never
overwritten by the bad state.

The divergence is real, not injected: a WGAN critic without clipping and with
an absurd learning rate grows its weights by about d_lr per Adam step until
G's gradient overflows float32, a few chunks into the run.
"""

import json
import os
import re
import subprocess
import sys

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from gan_jax import loop
from gan_jax import train
from gan_jax.config import Config

import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIVERGING = ['--loss=wasserstein', '--d_lr=3e3', '--num_steps=300',
             '--log_every=10', '--checkpoint_every=20', '--keep_checkpoints=3',
             '--batch_size=32', '--z_dim=2', '--g_hidden=16,16',
             '--d_hidden=16,16', '--num_eval_samples=100']
LINE = re.compile(r'error: (\w+) is (nan|inf|-inf) at step (\d+) \(([DG])\); '
                  r'training stopped; the last good checkpoint \(step (\d+)\) '
                  r'is kept in (.+)$')


def _fingerprints(workdir):
  ckpts = os.path.join(workdir, 'checkpoints')
  return {int(s): json.load(open(os.path.join(ckpts, s, 'meta', 'metadata')))
                  ['fingerprint'] for s in os.listdir(ckpts)}


class DivergingRunTest(absltest.TestCase):

  def test_stops_with_one_line_exit_1_and_keeps_the_good_checkpoint(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    command = [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}',
               *DIVERGING]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env=subprocess_env.env(), timeout=300)
    self.assertEqual(proc.returncode, 1, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    self.assertLen(lines, 1, proc.stderr)
    match = LINE.fullmatch(lines[0])
    self.assertIsNotNone(match, lines[0])
    metric, _, step, player, good, where = match.groups()
    step, good = int(step), int(good)
    self.assertEqual(player, loop.player_of(metric))
    self.assertEqual(where, os.path.join(workdir, 'checkpoints'))
    # The guard fires within the chunk where the first non-finite value
    # appears; the good checkpoint is the newest chunk end before it.
    self.assertBetween(step, 21, 299)
    self.assertEqual(good, (step - 1) // 20 * 20)
    steps = sorted(_fingerprints(workdir))
    self.assertEqual(steps, [good - 40, good - 20, good])
    state = ocp.StandardCheckpointer().restore(
        os.path.join(workdir, 'checkpoints', str(good), 'state'))
    self.assertEqual(int(state['step']), good)
    for leaf in jax.tree.leaves(state):
      self.assertTrue(np.all(np.isfinite(leaf)))
    # metrics.jsonl ends with the chunk that diverged, in strict JSON: the
    # non-finite mean is null and named in `nonfinite`; no samples are written.
    def strict(token):
      raise ValueError(f'bare {token} in metrics.jsonl')
    records = [json.loads(l, parse_constant=strict)
               for l in open(os.path.join(workdir, 'metrics.jsonl'))]
    self.assertEqual(records[-1]['step'], (step + 9) // 10 * 10)
    self.assertIsNone(records[-1][metric])
    self.assertIn(records[-1]['nonfinite'][metric], ('nan', 'inf', '-inf'))
    self.assertFalse(os.path.exists(os.path.join(workdir, 'samples.npy')))

    # The same command resumes from the good checkpoint, meets the same
    # non-finite value at the same step, and again leaves the checkpoints be.
    before = _fingerprints(workdir)
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                           env=subprocess_env.env(), timeout=300)
    self.assertEqual(again.returncode, 1, again.stderr)
    self.assertEqual(again.stderr, proc.stderr)
    self.assertIn(f'resuming from the checkpoint at step {good}', again.stdout)
    self.assertEqual(_fingerprints(workdir), before)


class FirstNonFiniteTest(absltest.TestCase):

  def test_earliest_step_and_d_before_g_within_a_step(self):
    metrics = {'d_loss': np.array([0.1, 0.2, np.inf, 0.3]),
               'g_loss': np.array([0.1, np.nan, np.nan, 0.3]),
               'value': np.zeros(4)}
    step, name, value = loop.first_non_finite(metrics, 11)
    self.assertEqual((step, name), (12, 'g_loss'))
    self.assertTrue(np.isnan(value))
    metrics['d_grad_norm'] = np.array([0.0, -np.inf, 0.0, 0.0])
    self.assertEqual(loop.first_non_finite(metrics, 11),
                     (12, 'd_grad_norm', -np.inf))
    self.assertIsNone(loop.first_non_finite({'g_loss': np.ones(3)}, 1))

  def test_non_finite_parameters_name_the_player(self):
    config = Config(workdir='/unused', batch_size=8, z_dim=2, g_hidden=(4,),
                    d_hidden=(4,))
    _, _, state = train.build(config)
    finite = {'g_loss': np.zeros(2)}
    loop.check_finite(state, finite, 1)  # no error
    bad = state.replace(step=jnp.int32(40), g_params=jax.tree.map(
        lambda x: x.at[..., 0].set(jnp.nan), state.g_params))
    with self.assertRaisesRegex(loop.TrainingDiverged,
                                r'^g_params are not finite at step 40 \(G\); '
                                'training stopped$'):
      loop.check_finite(bad, finite, 39)


if __name__ == '__main__':
  absltest.main()
