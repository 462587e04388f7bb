"""The Dirac-GAN: its Jacobian against the closed form for every loss (with
and without R1), the field and penalties against hand-derived formulas, the
convergence verdicts of Mescheder et al. (2018) and the report writer."""

import dataclasses
import json
import os

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import dirac
from gan_jax import dirac_report
from gan_jax import losses

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
    jac = dirac.dirac_jacobian(dirac.DiracSetup(loss=loss))
    np.testing.assert_allclose(jac, [[0.0, -g1], [h1, 0.0]], atol=1e-6)
    f1 = np.sqrt(g1 * h1)  # f'(0) in Mescheder et al.'s notation
    np.testing.assert_allclose(_sorted(np.linalg.eigvals(jac)),
                               _sorted([1j * f1, -1j * f1]), atol=1e-6)

  @parameterized.product(loss=sorted(DERIVATIVES), gamma=[0.3, 3.0])
  def test_r1_eigenvalues_are_the_damped_closed_form(self, loss, gamma):
    g1, h1 = DERIVATIVES[loss]
    jac = dirac.dirac_jacobian(dirac.DiracSetup(
        loss=loss, regularizer='r1', gamma=gamma))
    np.testing.assert_allclose(jac, [[0.0, -g1], [h1, -gamma]], atol=1e-6)
    root = np.sqrt(complex(gamma**2 / 4 - g1 * h1))
    np.testing.assert_allclose(
        _sorted(np.linalg.eigvals(jac)),
        _sorted([-gamma / 2 + root, -gamma / 2 - root]), atol=1e-5)

  def test_field_away_from_equilibrium_matches_hand_derivation(self):
    # Non-saturating: L_G = softplus(-psi theta), L_D = log 2 + softplus(psi
    # theta), so v = (psi sigma(-psi theta), -theta sigma(psi theta)).
    field = jax.jit(dirac.dirac_field(dirac.DiracSetup()))
    sigma = lambda t: 1 / (1 + np.exp(-t))
    for theta, psi in ((1.0, 1.0), (-0.7, 2.0), (1.5, -0.4)):
      t = theta * psi
      np.testing.assert_allclose(
          field(jnp.array([theta, psi])),
          [psi * sigma(-t), -theta * sigma(t)], rtol=1e-6)

  @parameterized.parameters(('r1', lambda psi: 0.3 * psi**2),
                            ('wgan_gp', lambda psi: 0.6 * (abs(psi) - 1)**2))
  def test_penalty_on_the_linear_discriminator(self, name, closed_form):
    # D_psi(x) = psi x has grad_x D = psi everywhere: R1 = gamma/2 psi^2 and
    # WGAN-GP = gamma (|psi| - 1)^2, added to D's loss with weight gamma.
    setup = dirac.DiracSetup(regularizer=name, gamma=0.6)
    penalised = dirac.dirac_steps(setup)[0].game
    plain = dirac.dirac_steps(dataclasses.replace(setup,
                                                  regularizer='none'))[0].game
    batch, z = jnp.zeros((3, 1)), jnp.zeros((3, 1))
    g_params = {'theta': jnp.float32(0.8)}
    for psi in (-1.7, 0.4, 2.5):
      d_params = {'psi': jnp.float32(psi)}
      with_penalty, _ = penalised.d_objective(d_params, g_params, batch, z)
      without, _ = plain.d_objective(d_params, g_params, batch, z)
      np.testing.assert_allclose(with_penalty - without, closed_form(psi),
                                 rtol=1e-5)

  def test_unknown_regularizer_lists_the_valid_ones(self):
    with self.assertRaisesRegex(KeyError, 'valid regularizers: none, dragan, '
                                'r1, r2, wgan_gp'):
      dirac.dirac_steps(dirac.DiracSetup(regularizer='r3'))


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
      path = dirac.simulate(dirac.DiracSetup(
          loss=loss, regularizer=reg, update=update))
      self.assertEqual(dirac.classify(path) == 'converged', converges,
                       (loss, reg, update, path[-1]))

  def test_wgan_gp_stalls_where_the_loss_balances_the_penalty_slope(self):
    # Wasserstein, psi > 0: v = (psi, -theta + 2 gamma (1 - psi)) vanishes at
    # (2 gamma, 0+), and the exact |psi| of the penalty keeps it there.
    for update in ('alternating', 'simultaneous'):
      path = dirac.simulate(dirac.DiracSetup(
          loss='wasserstein', regularizer='wgan_gp', update=update))
      self.assertEqual(dirac.classify(path), 'stalled')
      np.testing.assert_allclose(path[-1], [2.0, 0.0], atol=1e-5)

  def test_classify(self):
    t = np.arange(501)[:, None]
    ones = np.ones((501, 2))
    self.assertEqual(dirac.classify(ones * 0.99**t), 'converged')
    self.assertEqual(dirac.classify(ones * 0.999**t), 'converging')
    self.assertEqual(dirac.classify(ones * 1.01**t), 'diverged')
    self.assertEqual(dirac.classify(ones), 'stalled')
    angle = 0.3 * t[:, 0]
    self.assertEqual(dirac.classify(
        np.stack([np.cos(angle), np.sin(angle)], 1)), 'cycling')
    self.assertEqual(dirac.classify(ones * np.nan), 'diverged')


class StabiliserTest(absltest.TestCase):
  """Weight clipping, instance noise and several D steps, against hand
  derivations."""

  def test_instance_noise_damps_the_minimax_jacobian(self):
    # Minimax, D sees eps and theta + eps', eps, eps' ~ N(0, s^2): at (0, 0)
    # dv_psi/dpsi = -E[eps^2]/4 - E[eps'^2]/4 = -s^2/2, and the off-diagonal
    # entries are the noiseless +-1/2.
    s = 0.7
    jac = dirac.dirac_jacobian(dirac.DiracSetup(loss='minimax',
                                                instance_noise=s))
    np.testing.assert_allclose(jac, [[0.0, 0.5], [-0.5, -s**2 / 2]],
                               atol=2e-3 * s**2)

  def test_weight_clip_and_d_steps_follow_the_hand_iteration(self):
    # Wasserstein: L_D = psi theta, L_G = -psi theta. Alternating: k D steps
    # psi <- clip(psi - h theta), then theta <- theta + h psi.
    h, k, c = 0.2, 5, 0.5
    path = dirac.simulate(dirac.DiracSetup(
        loss='wasserstein', update='alternating', d_steps=k, weight_clip=c,
        num_steps=40))
    theta, psi = 1.0, 1.0
    expected = [(theta, psi)]
    for _ in range(40):
      for _ in range(k):
        psi = float(np.clip(psi - h * theta, -c, c))
      theta = theta + h * psi
      expected.append((theta, psi))
    np.testing.assert_allclose(path, expected, atol=1e-5)
    self.assertLessEqual(np.abs(path[1:, 1]).max(), c)


class ReportTest(absltest.TestCase):

  def test_report_files_agree_with_the_simulations(self):
    out = self.create_tempdir().full_path
    base = dirac.DiracSetup(num_steps=60)
    rows = dirac_report.write_report(out, base, losses=('wasserstein',),
                                     plot_losses=('wasserstein',))
    # Rows: the unconstrained and the clipped critic; 5 sections; 6 columns.
    self.assertLen(rows, 2 * 5 * 6)
    self.assertCountEqual(os.listdir(out), [
        'RESULTS.md', 'dirac_table.json', 'dirac_wasserstein.png',
        'dirac_wgan_clipped.png'])
    table = json.load(open(os.path.join(out, 'dirac_table.json')))
    row = next(r for r in table if (r['loss'], r['regularizer'], r['gamma'],
                                    r['update'], r['weight_clip']) ==
               ('wasserstein', 'r1', 1.0, 'consensus', 0.0))
    path = dirac.simulate(dataclasses.replace(
        base, loss='wasserstein', regularizer='r1', update='consensus'))
    self.assertEqual((row['theta'], row['psi']),
                     (float(path[-1, 0]), float(path[-1, 1])))
    self.assertEqual(row['verdict'], dirac.classify(path))
    np.testing.assert_allclose(  # -1/2 +- i sqrt(3)/2 for gamma = 1
        sorted(row['eigenvalues']), [[-0.5, -np.sqrt(0.75)],
                                     [-0.5, np.sqrt(0.75)]], atol=1e-6)
    five = [r for r in table if r['d_steps'] == 5]
    self.assertLen(five, 2 * 5)
    self.assertTrue(all(r['update'] == 'alternating' for r in five))
    markdown = open(os.path.join(out, 'RESULTS.md')).read()
    self.assertIn('| wasserstein (unconstrained linear critic) | ', markdown)
    self.assertIn('| wasserstein, psi clipped to [-1, 1] (WGAN) | ', markdown)
    self.assertIn('![Dirac-GAN wasserstein](dirac_wasserstein.png)', markdown)
    # The findings are counted from the table: e.g. the clipped critic's
    # verdicts, quoted per scheme.
    clipped = [r for r in table if r['weight_clip'] and
               r['regularizer'] == 'none' and not r['instance_noise']]
    for r in clipped:
      self.assertIn(f'{r["column"]} '
                    f'{"DIVERGED" if r["verdict"] == "diverged" else r["verdict"]}'
                    f' {r["distance"]:.2g}', markdown)
    r1 = [r for r in table if r['regularizer'] == 'r1' and r['gamma'] == 0.3
          and r['update'] == 'simultaneous' and r['d_steps'] == 1]
    good = sum(r['verdict'] == 'converged' for r in r1)
    self.assertIn(f'Simultaneous steps (Theorem 4.1\'s schemes): '
                  f'{good}/{len(r1)} converged', markdown)


if __name__ == '__main__':
  absltest.main()
