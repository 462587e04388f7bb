"""Game dynamics: the Dirac-GAN Jacobian against its closed form for every
loss (with and without R1), the field and penalties against hand-derived
formulas, matrix-free eigenvalues against the dense Jacobian, and the
checkpoint eigenvalue command end to end."""

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
from gan_jax import losses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# With D(0) = 0 on the real point and t = psi * theta on the fake one, G
# minimises g(t) and D ascends the fake part h(t) of the value. Derivatives at
# t = 0, by hand from each loss's formula (sigma(0) = 1/2):
#   minimax        g = -softplus(t)            h = -softplus(t)
#   non_saturating g = softplus(-t)            h = -softplus(t)
#   wasserstein    g = -t                      h = -t
#   hinge          g = -t                      h = -relu(1 + t)
#   least_squares  g = (t - 1)^2 / 2           h = -t^2 / 2
#   fgan_kl        g = -t                      h = -exp(t - 1)
#   fgan_reverse_kl g = exp(-t)                h = -(t - 1)
#   fgan_js        g = -log 2 - log sigma(t)   h = log 2 - softplus(t)
#   fgan_pearson   g = -t                      h = -(t^2 / 4 + t)
#   fgan_hellinger g = exp(-t) - 1             h = -(exp(t) - 1)
#   rasgan         g = 2 softplus(-t)          h = -2 softplus(t)
#   ralsgan        g = 2 (t - 1)^2             h = -2 (t + 1)^2
#   rahinge        g = 2 relu(1 - t)           h = -2 relu(1 + t)
DERIVATIVES = {  # loss: (g'(0), h'(0))
    'minimax': (-0.5, -0.5), 'non_saturating': (-0.5, -0.5),
    'wasserstein': (-1.0, -1.0), 'hinge': (-1.0, -1.0),
    'least_squares': (-1.0, 0.0), 'fgan_kl': (-1.0, -np.exp(-1.0)),
    'fgan_reverse_kl': (-1.0, -1.0), 'fgan_js': (-0.5, -0.5),
    'fgan_pearson': (-1.0, -1.0), 'fgan_hellinger': (-1.0, -1.0),
    'rasgan': (-1.0, -1.0), 'ralsgan': (-4.0, -4.0), 'rahinge': (-2.0, -2.0),
}


def _sorted(eig):
  eig = np.asarray(eig, np.complex128)
  return eig[np.lexsort((eig.imag, eig.real))]


class DiracJacobianTest(parameterized.TestCase):

  def test_every_registered_loss_has_a_closed_form(self):
    self.assertEqual(sorted(DERIVATIVES), losses.names())

  @parameterized.parameters(*sorted(DERIVATIVES))
  def test_unregularised_eigenvalues_are_plus_minus_i_f_prime(self, loss):
    g1, h1 = DERIVATIVES[loss]
    jac = dynamics.dirac_jacobian(dynamics.DiracSetup(loss=loss))
    np.testing.assert_allclose(jac, [[0.0, -g1], [h1, 0.0]], atol=1e-6)
    f1 = np.sqrt(g1 * h1)  # f'(0) in Mescheder et al.'s notation
    np.testing.assert_allclose(_sorted(np.linalg.eigvals(jac)),
                               _sorted([1j * f1, -1j * f1]), atol=1e-6)

  @parameterized.product(loss=sorted(DERIVATIVES), gamma=[0.3, 3.0])
  def test_r1_eigenvalues_are_the_damped_closed_form(self, loss, gamma):
    g1, h1 = DERIVATIVES[loss]
    jac = dynamics.dirac_jacobian(dynamics.DiracSetup(
        loss=loss, regularizer='r1', gamma=gamma))
    np.testing.assert_allclose(jac, [[0.0, -g1], [h1, -gamma]], atol=1e-6)
    root = np.sqrt(complex(gamma**2 / 4 - g1 * h1))
    np.testing.assert_allclose(
        _sorted(np.linalg.eigvals(jac)),
        _sorted([-gamma / 2 + root, -gamma / 2 - root]), atol=1e-5)

  def test_field_away_from_equilibrium_matches_hand_derivation(self):
    # Non-saturating: L_G = softplus(-psi theta), L_D = log 2 + softplus(psi
    # theta), so v = (psi sigma(-psi theta), -theta sigma(psi theta)).
    field = jax.jit(dynamics.dirac_field(dynamics.DiracSetup()))
    sigma = lambda t: 1 / (1 + np.exp(-t))
    for theta, psi in ((1.0, 1.0), (-0.7, 2.0), (1.5, -0.4)):
      t = theta * psi
      np.testing.assert_allclose(
          field(jnp.array([theta, psi])),
          [psi * sigma(-t), -theta * sigma(t)], rtol=1e-6)

  def test_penalties_on_a_linear_discriminator(self):
    # D_psi(x) = psi x has grad_x D = psi everywhere: R1 = gamma/2 psi^2 and
    # WGAN-GP = gamma (|psi| - 1)^2.
    steps, state = dynamics.dirac_steps(dynamics.DiracSetup())
    game = steps.game
    batch, z = jnp.zeros((3, 1)), jnp.zeros((3, 1))
    for psi in (-1.7, 0.4, 2.5):
      d = {'psi': jnp.float32(psi)}
      np.testing.assert_allclose(
          dynamics.zero_centered_penalty(game, 0.6)(d, state.g_params, batch,
                                                    z), 0.3 * psi**2,
          rtol=1e-6)
      np.testing.assert_allclose(
          dynamics.one_centered_penalty(game, 0.6)(d, state.g_params, batch,
                                                   z),
          0.6 * (abs(psi) - 1) ** 2, rtol=1e-5)
    with self.assertRaisesRegex(ValueError, 'valid regularizers: none, r1, '
                                'wgan_gp'):
      dynamics.penalty('r3', game, 1.0)


class MeschederExperimentTest(absltest.TestCase):
  """theta0 = psi0 = 1, step 0.2, 500 steps (Mescheder et al. 2018, Fig. 3)."""

  def test_which_combinations_converge(self):
    cases = {
        ('non_saturating', 'none', 'simultaneous'): False,
        ('wasserstein', 'none', 'simultaneous'): False,
        ('wasserstein', 'none', 'alternating'): False,
        ('wasserstein', 'wgan_gp', 'simultaneous'): False,
        ('non_saturating', 'r1', 'simultaneous'): True,
        ('non_saturating', 'r1', 'alternating'): True,
        ('non_saturating', 'none', 'consensus'): True,
        ('wasserstein', 'none', 'extragradient'): True,
    }
    for (loss, reg, update), converges in cases.items():
      path = dynamics.simulate(dynamics.DiracSetup(
          loss=loss, regularizer=reg, update=update))
      self.assertEqual(dynamics.classify(path) == 'converged', converges,
                       (loss, reg, update, path[-1]))

  def test_classify(self):
    t = np.arange(501)[:, None]
    ones = np.ones((501, 2))
    self.assertEqual(dynamics.classify(ones * 0.99**t), 'converged')
    self.assertEqual(dynamics.classify(ones * 0.999**t), 'converging')
    self.assertEqual(dynamics.classify(ones * 1.01**t), 'diverged')
    self.assertEqual(dynamics.classify(ones), 'stalled')
    angle = 0.3 * t[:, 0]
    self.assertEqual(dynamics.classify(
        np.stack([np.cos(angle), np.sin(angle)], 1)), 'cycling')
    self.assertEqual(dynamics.classify(ones * np.nan), 'diverged')


class NetworkEigenvaluesTest(parameterized.TestCase):

  @parameterized.parameters('LM', 'LR')
  def test_matrix_free_eigenvalues_match_dense_jacobian(self, which):
    from gan_jax import train  # pylint: disable=g-import-not-at-top
    from gan_jax.config import Config  # pylint: disable=g-import-not-at-top
    config = Config(workdir='/tmp/unused', dataset='ring8', loss='hinge',
                    batch_size=16, z_dim=2, g_hidden=(4,), d_hidden=(4,),
                    seed=4)
    _, steps, state = train.build(config)
    batch = steps.sample_data(jax.random.PRNGKey(1), 16)
    z = steps.sample_z(jax.random.PRNGKey(2))[:16]
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
    proc = _run('gan_jax.main', f'--workdir={workdir}', '--dataset=ring8',
                '--loss=non_saturating', '--update=extragradient',
                '--d_spectral_norm',
                '--num_steps=40', '--log_every=20', '--batch_size=16',
                '--z_dim=2', '--g_hidden=6', '--d_hidden=6',
                '--num_eval_samples=50', '--g_lr=1e-2', '--d_lr=1e-2')
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
    for args, message in (
        ([f'--workdir={missing}'], 'holds no config.json'),
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
