"""Game dynamics: matrix-free eigenvalues against the dense Jacobian, and the
checkpoint eigenvalue command end to end (the Dirac-GAN's closed forms are in
dirac_test.py)."""

import json
import os
import subprocess
import sys

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import dynamics
import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class NetworkEigenvaluesTest(parameterized.TestCase):

  @parameterized.parameters('LM', 'LR')
  def test_matrix_free_eigenvalues_match_dense_jacobian(self, which):
    _, steps, state = testing.build(testing.tiny_toy_config(
        loss='hinge', batch_size=16, z_dim=2, g_hidden=(4,), d_hidden=(4,),
        seed=4))
    batch, z = testing.batch_and_latents(steps)
    x0, field = dynamics.flat_field(steps, state.g_params, state.d_params,
                                    batch, z)
    dense = np.linalg.eigvals(dynamics.dense_jacobian(field, x0))
    k = 4
    found = dynamics.leading_eigenvalues(field, x0, k, which)
    key = np.abs(dense) if which == 'LM' else dense.real
    expected = np.sort(key)[::-1][:k]
    got = np.abs(found) if which == 'LM' else found.real
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    for value in found:  # each one is an eigenvalue of the dense Jacobian
      self.assertLess(np.min(np.abs(dense - value)), 1e-4 * max(1, abs(value)))


def _run(module, *args):
  return subprocess.run([sys.executable, '-m', module, *args],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)


class CheckpointCommandTest(absltest.TestCase):

  def test_trained_run_eigenvalues_match_dense_jacobian(self):
    # Spectral norm gives D a state (its power-iteration vectors), held fixed.
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    proc = _run('gan_jax.main', f'--workdir={workdir}', *testing.argv(
        testing.tiny_toy_config(
            update='extragradient', d_spectral_norm=True, num_steps=40,
            log_every=20, batch_size=16, z_dim=2, g_hidden=(6,),
            d_hidden=(6,), num_eval_samples=50, g_lr=1e-2, d_lr=1e-2)))
    self.assertEqual(proc.returncode, 0, proc.stderr)
    proc = _run('gan_jax.dynamics', f'--workdir={workdir}',
                '--num_eigenvalues=3', '--eig_seed=5')
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertIn('rotation', proc.stdout)
    result = json.load(open(os.path.join(workdir, 'eigenvalues.json')))
    self.assertEqual(result['step'], 40)

    # The same field, rebuilt in this process from the checkpoint.
    config, steps, state = dynamics.load_run(workdir)
    self.assertEqual(config.update, 'extragradient')
    k_data, k_z = jax.random.split(jax.random.PRNGKey(5))
    batch = steps.sample_data(k_data, 16)
    z = jax.random.normal(k_z, (16, 2), jnp.float32)
    self.assertNotEmpty(jax.tree.leaves(state.d_state))
    x0, field = dynamics.flat_field(steps, state.g_params, state.d_params,
                                    batch, z, state.g_state, state.d_state)
    self.assertEqual(result['num_params'], x0.size)
    dense = np.linalg.eigvals(dynamics.dense_jacobian(field, x0))
    got = np.array([complex(*p) for p in result['largest_modulus']])
    np.testing.assert_allclose(np.abs(got), np.sort(np.abs(dense))[::-1][:3],
                               rtol=1e-3)
    got = np.array([complex(*p) for p in result['largest_real_part']])
    np.testing.assert_allclose(got.real, np.sort(dense.real)[::-1][:3],
                               rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(result['max_real_part'], dense.real.max(),
                               rtol=1e-3, atol=1e-5)

  def test_bad_input_is_one_line_with_status_2(self):
    missing = os.path.join(self.create_tempdir().full_path, 'nothing')
    penalised = self.create_tempdir().full_path
    with open(os.path.join(penalised, 'config.json'), 'w') as f:
      json.dump({'reg': 'r1', 'reg_weight': 1.0}, f)
    for args, message in (
        ([f'--workdir={missing}'], 'holds no config.json'),
        ([f'--workdir={penalised}'], 'was trained with --reg=r1'),
        ([], 'pass exactly one of'),
        ([f'--workdir={missing}', '--report_dir=x'], 'pass exactly one of'),
        (['--workdir=x', '--num_eigenvalues=0'], 'must be positive'),
        (['--no_such_flag=1'], 'no_such_flag')):
      proc = _run('gan_jax.dynamics', *args)
      self.assertEqual(proc.returncode, 2, (args, proc.stderr))
      lines = proc.stderr.strip().splitlines()
      self.assertLen(lines, 1, proc.stderr)
      self.assertIn(message, lines[0])
    self.assertFalse(os.path.exists(missing))
    self.assertFalse(os.path.exists('x'))


if __name__ == '__main__':
  absltest.main()
