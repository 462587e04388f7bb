"""The matmul convolutions against flax's reference layers; spectral norm vs SVD."""

from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import layers

# (name, input shape, features, kernel, strides, padding)
CONV_CASES = (
    ('dcgan_d1', (3, 28, 28, 1), 8, (4, 4), 2, 'SAME'),
    ('dcgan_d2', (3, 14, 14, 16), 32, (4, 4), 2, 'SAME'),
    ('dcgan_d2_per_tap', (2, 14, 14, 64), 8, (4, 4), 2, 'SAME'),
    ('wide_s1_per_tap', (2, 6, 6, 130), 3, (3, 3), 1, 'SAME'),
    ('odd_same_s1', (2, 9, 11, 3), 5, (3, 3), 1, 'SAME'),
    ('odd_valid_s2', (2, 9, 11, 3), 5, (3, 3), 2, 'VALID'),
    ('valid_4x4_s2', (2, 10, 10, 3), 4, (4, 4), 2, 'VALID'),
    ('pointwise', (2, 8, 8, 6), 4, (1, 1), 1, 'SAME'),
    ('explicit_mixed', (2, 9, 9, 3), 4, (3, 2), (2, 1), ((1, 0), (2, 1))),
)
CONV_TRANSPOSE_CASES = (
    ('dcgan_g1', (3, 7, 7, 32), 16, (4, 4), 2, 'SAME'),
    ('dcgan_g2', (3, 14, 14, 16), 1, (4, 4), 2, 'SAME'),
    ('k3_s2_valid', (2, 5, 6, 3), 4, (3, 3), 2, 'VALID'),
    ('k3_s1_same', (2, 5, 6, 3), 4, (3, 3), 1, 'SAME'),
    ('explicit', (2, 5, 6, 3), 4, (3, 3), 2, ((1, 2), (0, 1))),
    ('k5_s3_same', (2, 4, 5, 3), 4, (5, 5), 3, 'SAME'),
    ('k4_s2_valid', (2, 3, 4, 5), 2, (4, 4), 2, 'VALID'),
)


def assert_close(got, want):
  """Equal to 1e-5 relative to the reference's largest magnitude."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  np.testing.assert_allclose(got, want, rtol=1e-5,
                             atol=1e-5 * np.max(np.abs(want)))


def compare(test, reference, layer, x_shape):
  """Init both from one key; outputs and input/kernel/bias gradients of
  <layer(x), r> must match the reference's."""
  x = jax.random.normal(jax.random.PRNGKey(0), x_shape, jnp.float32)
  variables = reference.init(jax.random.PRNGKey(1), x)
  mine = layer.init(jax.random.PRNGKey(1), x)
  test.assertEqual(jax.tree.structure(mine), jax.tree.structure(variables))
  for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(a, b)  # same initialisers, same draws
  r = jax.random.normal(jax.random.PRNGKey(2),
                        jax.eval_shape(reference.apply, variables, x).shape)

  def forward_backward(module):
    """y, d<y, r>/dvariables, d<y, r>/dx in one compiled program."""
    def f(variables, x):
      y, pull = jax.vjp(module.apply, variables, x)
      return (y,) + pull(r)
    return jax.jit(f)(variables, x)

  want, dv_want, dx_want = forward_backward(reference)
  got, dv_got, dx_got = forward_backward(layer)
  test.assertEqual(got.shape, want.shape)
  assert_close(got, want)
  assert_close(dx_got, dx_want)
  assert_close(dv_got['params']['kernel'], dv_want['params']['kernel'])
  assert_close(dv_got['params']['bias'], dv_want['params']['bias'])


class ConvTest(parameterized.TestCase):

  @parameterized.named_parameters(*CONV_CASES)
  def test_matches_flax(self, x_shape, features, kernel, strides, padding):
    compare(self, nn.Conv(features, kernel, strides, padding),
            layers.Conv(features, kernel, strides, padding,
                        implementation='matmul'), x_shape)

  @parameterized.named_parameters(CONV_CASES[1], CONV_CASES[2])
  def test_per_tap_accumulation_matches_flax(self, x_shape, features, kernel,
                                             strides, padding):
    with mock.patch.object(layers, 'PATCHES_LIMIT', 0):
      compare(self, nn.Conv(features, kernel, strides, padding),
              layers.Conv(features, kernel, strides, padding,
                          implementation='matmul'), x_shape)

  def test_xla_implementation_matches_flax(self):
    compare(self, nn.Conv(4, (4, 4), 2, 'SAME'),
            layers.Conv(4, (4, 4), 2, 'SAME', implementation='xla'),
            (2, 8, 8, 3))

  def test_no_bias(self):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
    variables = nn.Conv(4, (4, 4), 2, use_bias=False).init(
        jax.random.PRNGKey(1), x)
    self.assertEqual(list(variables['params']), ['kernel'])
    assert_close(
        layers.Conv(4, (4, 4), 2, use_bias=False).apply(variables, x),
        nn.Conv(4, (4, 4), 2, use_bias=False).apply(variables, x))

  def test_no_convolution_instruction_on_matmul_path(self):
    layer = layers.Conv(8, (4, 4), 2, implementation='matmul')
    x = jnp.zeros((2, 8, 8, 3))
    variables = layer.init(jax.random.PRNGKey(0), x)
    hlo = jax.jit(jax.grad(lambda v, x: jnp.sum(layer.apply(v, x)), (0, 1))
                  ).lower(variables, x).as_text()
    self.assertNotIn('convolution', hlo)
    self.assertIn('dot_general', hlo)

  def test_errors(self):
    x = jnp.zeros((1, 4, 4, 1))
    with self.assertRaisesRegex(
        ValueError, "unknown convolution implementation 'cudnn'; valid "
        'implementations: auto, matmul, xla'):
      layers.Conv(2, implementation='cudnn').init(jax.random.PRNGKey(0), x)
    with self.assertRaisesRegex(ValueError, "unsupported padding 'CIRCULAR'; "
                                'valid paddings: SAME, VALID'):
      layers.Conv(2, padding='CIRCULAR').init(jax.random.PRNGKey(0), x)
    with self.assertRaisesRegex(ValueError, 'NHWC inputs'):
      layers.Conv(2).init(jax.random.PRNGKey(0), jnp.zeros((4, 4, 1)))


class ConvTransposeTest(parameterized.TestCase):

  @parameterized.named_parameters(*CONV_TRANSPOSE_CASES)
  def test_matches_flax(self, x_shape, features, kernel, strides, padding):
    compare(self, nn.ConvTranspose(features, kernel, strides, padding),
            layers.ConvTranspose(features, kernel, strides, padding,
                                 implementation='matmul'), x_shape)

  def test_xla_implementation_matches_flax(self):
    compare(self, nn.ConvTranspose(4, (4, 4), 2, 'SAME'),
            layers.ConvTranspose(4, (4, 4), 2, 'SAME', implementation='xla'),
            (2, 4, 4, 3))

  def test_doubles_resolution(self):
    layer = layers.ConvTranspose(5, (4, 4), 2, 'SAME')
    y, _ = layer.init_with_output(jax.random.PRNGKey(0), jnp.zeros((2, 7, 7, 3)))
    self.assertEqual(y.shape, (2, 14, 14, 5))


class PaddingTest(absltest.TestCase):

  def test_same_padding_is_lax(self):
    for n, k, s in [(28, 4, 2), (14, 4, 2), (9, 3, 2), (11, 3, 1), (7, 1, 1),
                    (5, 4, 3)]:
      want = jax.lax.padtype_to_pads((n, n), (k, k), (s, s), 'SAME')
      got = layers.conv_padding('SAME', (n, n), (k, k), (s, s))
      self.assertEqual([tuple(p) for p in want], list(got))

  def test_conv_transpose_padding(self):
    # 4x4 stride 2 'SAME': pa + pb = 4, pa = 2 -> output 2n
    self.assertEqual(layers.conv_transpose_padding('SAME', (4, 4), (2, 2)),
                     ((2, 2), (2, 2)))
    self.assertEqual(layers.conv_transpose_padding('VALID', (3, 3), (2, 2)),
                     ((2, 2), (2, 2)))


class SpectralNormTest(absltest.TestCase):

  def test_sigma_is_the_largest_singular_value(self):
    """After power iterations, sigma = top singular value of the kernel as a
    (kh kw C, O) matrix, and the layer computes conv(x, K / sigma)."""
    conv = layers.Conv(6, (3, 3), 2, 'SAME', implementation='matmul')
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 4))

    class Net(nn.Module):

      @nn.compact
      def __call__(self, x, train):
        return layers.spectral_norm(conv.clone(), n_steps=1)(x, train)

    net = Net()
    variables = net.init(jax.random.PRNGKey(1), x, False)
    step = jax.jit(lambda v: net.apply(v, x, True, mutable=['batch_stats']))
    for _ in range(60):
      y, stats = step(variables)
      variables = {'params': variables['params'], **stats}
    kernel = np.asarray(variables['params']['SpectralNorm_0']['layer_instance']
                        ['kernel'], np.float64)
    top = np.linalg.svd(kernel.reshape(-1, 6), compute_uv=False)[0]
    stats = variables['batch_stats']['SpectralNorm_0']
    self.assertEqual(sorted(stats), ['layer_instance/kernel/sigma',
                                     'layer_instance/kernel/u'])
    sigma = float(stats['layer_instance/kernel/sigma'])
    np.testing.assert_allclose(sigma, top, rtol=1e-4)
    normalised = kernel.reshape(-1, 6) / sigma
    np.testing.assert_allclose(
        np.linalg.svd(normalised, compute_uv=False)[0], 1.0, rtol=1e-4)
    want = jax.lax.conv_general_dilated(
        x, jnp.asarray(kernel / top, jnp.float32), (2, 2), 'SAME',
        dimension_numbers=layers.DIMENSION_NUMBERS)
    assert_close(y, want)
    # without train the stored u is used and not updated
    _, frozen = net.apply(variables, x, False, mutable=['batch_stats'])
    np.testing.assert_array_equal(
        frozen['batch_stats']['SpectralNorm_0']['layer_instance/kernel/u'],
        stats['layer_instance/kernel/u'])

  def test_disabled_is_the_plain_layer(self):
    conv = layers.Conv(3, (3, 3), 1, implementation='matmul')
    x = jnp.ones((1, 4, 4, 2))
    variables = conv.init(jax.random.PRNGKey(0), x)
    f = layers.spectral_norm(conv.bind(variables), enabled=False)
    np.testing.assert_array_equal(f(x, True), conv.apply(variables, x))


if __name__ == '__main__':
  absltest.main()
