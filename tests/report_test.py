"""The report's comparison of two configurations against scipy's t-tests."""

from absl.testing import absltest
import numpy as np
from scipy import stats

from gan_jax import report


class DifferenceLineTest(absltest.TestCase):

  def test_welch_and_paired_statistics(self):
    a = {0: 112.5, 1: 78.6, 2: 94.2, 3: 102.4, 4: 84.8}
    b = {0: 118.0, 1: 83.4, 2: 119.6, 3: 105.9, 4: 92.1}
    line = report.difference_line({'float32': a, 'bfloat16': b})
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    welch = stats.ttest_ind(y, x, equal_var=False).statistic
    paired = stats.ttest_rel(y, x).statistic
    diff = y.mean() - x.mean()
    self.assertIn(f'bfloat16 − float32: {diff:+.1f} FID, standard error '
                  f'{diff / welch:.1f} (difference / SE = {welch:+.1f})', line)
    self.assertIn(f'paired by seed {diff:+.1f} ± {diff / paired:.1f} '
                  f'(t = {paired:+.1f}, 4 df), bfloat16 higher in 5 of 5 '
                  'seeds', line)

  def test_pairs_by_seed_not_by_order(self):
    a = {0: 1.0, 1: 2.0, 2: 4.0}
    b = {2: 5.0, 0: 2.0, 1: 3.0}  # every seed +1, listed in another order
    line = report.difference_line({'a': a, 'b': b})
    self.assertIn('paired by seed +1.0 ± 0.0, b higher in 3 of 3 seeds', line)

  def test_one_seed_each_gives_the_difference_only(self):
    line = report.difference_line({'a': {0: 3.0}, 'b': {0: 5.0}})
    self.assertEqual(line, 'b − a: +2.0 FID. Per seed (0): a 3.0; b 5.0.')


if __name__ == '__main__':
  absltest.main()
