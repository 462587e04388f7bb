"""DiffAugment against numpy transcriptions of the reference
(mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py), fed the same
random numbers (`augment.draws`)."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import augment


def _images(shape=(6, 12, 10, 3), seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


# The reference's operations written out in numpy on NCHW arrays, each
# taking the random numbers the reference would draw (torch.rand / randint).


def ref_brightness(x, u):
  return x + (u[:, None, None, None] - 0.5)


def ref_saturation(x, u):
  mean = x.mean(axis=1, keepdims=True)
  return (x - mean) * (u[:, None, None, None] * 2) + mean


def ref_contrast(x, u):
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (u[:, None, None, None] + 0.5) + mean


def ref_translation(x, t_x, t_y):
  """Index the zero-padded image at clamp(grid + t + 1, 0, size + 1)."""
  b, _, h, w = x.shape
  grid_b, grid_x, grid_y = np.meshgrid(np.arange(b), np.arange(h),
                                       np.arange(w), indexing='ij')
  grid_x = np.clip(grid_x + t_x[:, None, None] + 1, 0, h + 1)
  grid_y = np.clip(grid_y + t_y[:, None, None] + 1, 0, w + 1)
  x_pad = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
  return x_pad.transpose(0, 2, 3, 1)[grid_b, grid_x, grid_y].transpose(
      0, 3, 1, 2)


def ref_cutout(x, o_x, o_y, ratio=0.5):
  """Zero mask[b, clamp(grid + o - c//2)] over the cutout's grid."""
  b, _, h, w = x.shape
  c = int(h * ratio + 0.5), int(w * ratio + 0.5)
  grid_b, grid_x, grid_y = np.meshgrid(np.arange(b), np.arange(c[0]),
                                       np.arange(c[1]), indexing='ij')
  grid_x = np.clip(grid_x + o_x[:, None, None] - c[0] // 2, 0, h - 1)
  grid_y = np.clip(grid_y + o_y[:, None, None] - c[1] // 2, 0, w - 1)
  mask = np.ones((b, h, w), x.dtype)
  mask[grid_b, grid_x, grid_y] = 0
  return x * mask[:, None]


def nchw(x):
  return np.asarray(x).transpose(0, 3, 1, 2)


def nhwc(x):
  return np.asarray(x).transpose(0, 2, 3, 1)


def reference(x, drawn):
  """The reference's DiffAugment of NHWC `x` with the numbers of `drawn`."""
  x = nchw(x)
  for op, numbers in drawn:
    numbers = [np.asarray(n) for n in numbers]
    x = {'brightness': ref_brightness, 'saturation': ref_saturation,
         'contrast': ref_contrast, 'translation': ref_translation,
         'cutout': ref_cutout}[op](x, *numbers)
  return nhwc(x)


class AugmentTest(parameterized.TestCase):

  @parameterized.parameters(['translation'], ['cutout'], ['color'],
                            ['color', 'translation', 'cutout'],
                            ['translation', 'cutout', 'color'])
  def test_matches_the_reference_on_the_same_draws(self, *policy):
    x = _images()
    key = jax.random.PRNGKey(7)
    drawn = augment.draws(key, policy, x.shape)
    self.assertEqual([op for op, _ in drawn], list(augment.operations(policy)))
    got = augment.augment(key, jnp.asarray(x), policy)
    np.testing.assert_allclose(np.asarray(got), reference(x, drawn),
                               rtol=1e-6, atol=1e-6)

  def test_translation_and_cutout_are_exact(self):
    # Pure index operations: the same bits as the reference.
    x = _images((16, 9, 16, 1), seed=1)
    for policy in (['translation'], ['cutout']):
      key = jax.random.PRNGKey(3)
      got = augment.augment(key, jnp.asarray(x), policy)
      np.testing.assert_array_equal(
          np.asarray(got), reference(x, augment.draws(key, policy, x.shape)))

  def test_offsets_cover_the_reference_ranges(self):
    key = jax.random.PRNGKey(0)
    # 16 rows: shift up to int(16/8 + 1/2) = 2; 9 columns: int(9/8 + 1/2) = 1.
    t_h, t_w = augment.translation_offsets(key, 4000, 16, 9)
    self.assertEqual(set(np.asarray(t_h).tolist()), {-2, -1, 0, 1, 2})
    self.assertEqual(set(np.asarray(t_w).tolist()), {-1, 0, 1})
    # Cutout 8 of 16 rows (even: centres 0..16), 5 of 9 columns (odd: 0..8).
    o_h, o_w = augment.cutout_offsets(key, 4000, 16, 9)
    self.assertEqual(set(np.asarray(o_h).tolist()), set(range(17)))
    self.assertEqual(set(np.asarray(o_w).tolist()), set(range(9)))

  def test_cutout_zeroes_a_rectangle_of_the_reference_size(self):
    x = np.ones((64, 16, 12, 2), np.float32)
    got = np.asarray(augment.augment(jax.random.PRNGKey(2), jnp.asarray(x),
                                     ['cutout']))
    zero = got[..., 0] == 0
    rows, cols = zero.any(axis=2).sum(axis=1), zero.any(axis=1).sum(axis=1)
    # A centre away from the edges cuts the whole 8 x 6 rectangle.
    full = (rows == 8) & (cols == 6)
    self.assertGreater(full.sum(), 0)
    np.testing.assert_array_equal(zero.sum(axis=(1, 2)), rows * cols)
    self.assertTrue((rows <= 8).all() and (cols <= 6).all())

  def test_keeps_shape_and_dtype(self):
    for dtype in (jnp.float32, jnp.bfloat16):
      x = jnp.asarray(_images(), dtype)
      y = augment.augment(jax.random.PRNGKey(0), x,
                          ['color', 'translation', 'cutout'])
      self.assertEqual(y.shape, x.shape)
      self.assertEqual(y.dtype, x.dtype)

  def test_zero_strength_is_the_identity(self):
    x = jnp.asarray(_images())
    off = augment.Strengths(brightness=0.0, saturation=0.0, contrast=0.0,
                            translation_ratio=0.0, cutout_ratio=0.0)
    for policy in ([], ['color', 'translation', 'cutout']):
      y = augment.augment(jax.random.PRNGKey(1), x, policy,
                          off if policy else augment.Strengths())
      np.testing.assert_array_equal(np.asarray(y), np.asarray(x))

  def test_each_strength_scales_its_range(self):
    # brightness b: shift 2b(u - 1/2); saturation s, contrast c: factor
    # 1 + s(2u - 1), against the formulas on the drawn u.
    x = _images()
    key = jax.random.PRNGKey(5)
    strengths = augment.Strengths(brightness=0.2, saturation=0.3,
                                  contrast=0.7)
    drawn = augment.draws(key, ['color'], x.shape, strengths)
    (u_b,), (u_s,), (u_c,) = [np.asarray(n) for _, n in drawn]
    want = x + (2 * 0.2 * (u_b - 0.5))[:, None, None, None]
    m = want.mean(axis=3, keepdims=True)
    want = (want - m) * (1 + 0.3 * (2 * u_s - 1))[:, None, None, None] + m
    m = want.mean(axis=(1, 2, 3), keepdims=True)
    want = (want - m) * (1 + 0.7 * (2 * u_c - 1))[:, None, None, None] + m
    got = augment.augment(key, jnp.asarray(x), ['color'], strengths)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)

  def test_differs_per_key_and_per_image(self):
    x = jnp.asarray(np.repeat(_images((1, 12, 10, 3)), 8, axis=0))
    policy = ['color', 'translation', 'cutout']
    a = np.asarray(augment.augment(jax.random.PRNGKey(0), x, policy))
    b = np.asarray(augment.augment(jax.random.PRNGKey(1), x, policy))
    self.assertFalse(np.array_equal(a, b))
    # One image repeated: each copy is augmented with its own numbers.
    self.assertFalse(np.array_equal(a[0], a[1]))
    c = np.asarray(augment.augment(jax.random.PRNGKey(0), x, policy))
    np.testing.assert_array_equal(a, c)

  def test_gradients_flow_to_the_images(self):
    x = jnp.asarray(_images())
    key = jax.random.PRNGKey(4)
    policy = ['color', 'translation', 'cutout']
    w = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), x.dtype)

    def f(images):
      return jnp.sum(w * augment.augment(key, images, policy))

    g = jax.grad(f)(x)
    self.assertGreater(float(jnp.abs(g).sum()), 0.0)
    # The augmentation is affine in the images for fixed draws: the
    # gradient is exact against a central difference along a direction.
    v = jnp.asarray(np.random.default_rng(2).normal(size=x.shape), x.dtype)
    eps = 1e-2
    fd = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(float(jnp.sum(g * v)), float(fd), rtol=2e-3)

  def test_translation_gradient_is_the_shifted_mask(self):
    # d sum(out) / d x[i, j] is 1 where the pixel lands inside the image.
    x = jnp.asarray(_images((4, 8, 8, 1)))
    key = jax.random.PRNGKey(9)
    g = np.asarray(jax.grad(
        lambda images: jnp.sum(augment.augment(key, images, ['translation'])))(
            x))
    (_, (t_h, t_w)), = augment.draws(key, ['translation'], x.shape)
    want = ref_translation(np.ones((4, 1, 8, 8), np.float32),
                           -np.asarray(t_h), -np.asarray(t_w))
    np.testing.assert_array_equal(g, nhwc(want))

  def test_vmaps(self):
    x = jnp.asarray(_images((3, 5, 8, 8, 1)))
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    policy = ['translation', 'cutout', 'color']
    got = jax.vmap(lambda k, i: augment.augment(k, i, policy))(keys, x)
    for m in range(3):
      np.testing.assert_allclose(
          np.asarray(got[m]),
          np.asarray(augment.augment(keys[m], x[m], policy)), atol=1e-6)

  def test_unknown_policy_names_the_valid_ones(self):
    with self.assertRaisesRegex(ValueError, 'color, translation, cutout'):
      augment.draws(jax.random.PRNGKey(0), ['flip'], (2, 8, 8, 1))


if __name__ == '__main__':
  absltest.main()
