"""Top-k G updates: the mask against numpy, k's schedule against the
formula of Sinha et al. 2020, the loss against the loss of the kept
samples."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import losses
from gan_jax import topk


def numpy_mask(logits, k):
  keep = np.argsort(-np.asarray(logits), kind='stable')[:k]
  m = np.zeros(len(logits), np.float32)
  m[keep] = 1.0
  return m


class TopKTest(parameterized.TestCase):

  def test_mask_against_numpy(self):
    rng = np.random.default_rng(0)
    for _ in range(20):
      logits = rng.normal(size=32).astype(np.float32)
      for k in (1, 7, 16, 31, 32):
        np.testing.assert_array_equal(
            np.asarray(topk.mask(jnp.asarray(logits), k)),
            numpy_mask(logits, k))

  def test_mask_on_given_logits_and_ties(self):
    logits = jnp.array([0.3, -2.0, 5.0, 0.3, 1.0, 0.3])
    np.testing.assert_array_equal(np.asarray(topk.mask(logits, 3)),
                                  [1, 0, 1, 0, 1, 0])  # the first 0.3 wins
    np.testing.assert_array_equal(np.asarray(topk.mask(logits, 4)),
                                  [1, 0, 1, 1, 1, 0])

  def test_mask_with_traced_k_under_jit(self):
    logits = jnp.asarray(np.random.default_rng(1).normal(size=16),
                         jnp.float32)
    f = jax.jit(topk.mask)
    for k in (3, 9):
      np.testing.assert_array_equal(np.asarray(f(logits, jnp.int32(k))),
                                    numpy_mask(np.asarray(logits), k))

  @parameterized.parameters((64, 0.99, 10, 0.5), (50, 0.9, 3, 0.3),
                            (7, 0.8, 1, 0.5), (64, 1.0, 5, 0.5),
                            (10, 0.5, 2, 0.0))
  def test_k_schedule_against_the_formula(self, batch, gamma, every, nu):
    f = jax.jit(lambda t: topk.k_at(t, batch, gamma, every, nu))
    for t in range(0, 2000, 7):
      e = t // every
      want = max(math.floor(batch * max(gamma**e, nu)), 1)
      self.assertEqual(int(f(jnp.int32(t))), want, (t, e))

  def test_k_starts_at_the_batch_and_ends_at_the_floor(self):
    self.assertEqual(int(topk.k_at(0, 64, 0.99, 100, 0.5)), 64)
    self.assertEqual(int(topk.k_at(10**9, 64, 0.99, 100, 0.5)), 32)

  def test_loss_is_the_loss_of_the_kept_samples(self):
    rng = np.random.default_rng(2)
    fake = rng.normal(size=24).astype(np.float32)
    for name in ('non_saturating', 'minimax', 'hinge', 'wasserstein',
                 'least_squares', 'fgan_kl'):
      loss = losses.get(name)
      for k in (1, 10, 24):
        kept = fake[np.argsort(-fake, kind='stable')[:k]]
        got = topk.topk_loss(loss, jnp.int32(k)).g_loss(jnp.asarray(fake),
                                                        None)
        want = loss.g_loss(jnp.asarray(kept), None)
        np.testing.assert_allclose(float(got), float(want), rtol=1e-5,
                                   err_msg=f'{name} k={k}')

  def test_non_saturating_by_hand(self):
    # -log sigmoid(f) of the two largest of [2, -1, 0.5]: softplus(-2),
    # softplus(-0.5).
    got = topk.topk_loss(losses.get('non_saturating'), 2).g_loss(
        jnp.array([2.0, -1.0, 0.5]), None)
    want = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-0.5))) / 2
    self.assertAlmostEqual(float(got), want, places=6)

  def test_only_kept_samples_get_gradient(self):
    fake = jnp.array([2.0, -1.0, 0.5, -3.0])
    g = jax.grad(lambda f: topk.topk_loss(
        losses.get('wasserstein'), 2).g_loss(f, None))(fake)
    np.testing.assert_allclose(np.asarray(g), [-0.5, 0.0, -0.5, 0.0])

  def test_refuses_relativistic_losses(self):
    with self.assertRaisesRegex(ValueError, 'rasgan compares'):
      topk.topk_loss(losses.get('rasgan'), 2)


if __name__ == '__main__':
  absltest.main()
