"""DCGAN and SN-GAN ResNet: shapes, parameter counts; spectral norm (DCGAN
and MLP discriminators) against the SVD; what each model's registration
declares and its builder reads of the config."""

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data
from gan_jax import models
from gan_jax.models import dcgan
from gan_jax.models import mlp
from gan_jax.models import sngan_resnet
import testing

Z = 16


def num_params(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def kernel_shapes(params) -> list[tuple[int, ...]]:
  """Kernel shapes in layer order (flattened tree paths sort by name)."""
  leaves = jax.tree_util.tree_leaves_with_path(params)
  return [tuple(v.shape) for path, v in leaves
          if jax.tree_util.keystr(path).endswith("['kernel']")]


class DcganTest(parameterized.TestCase):

  @parameterized.parameters((16, 1, 2), (28, 1, 2), (32, 3, 3), (64, 3, 4))
  def test_shapes_and_channels(self, size, channels, n):
    """n up-samplings from size / 2^n; channels 64 2^(n-1), ..., 64, C in G
    and 64, ..., 64 2^(n-1) in D."""
    self.assertEqual(dcgan.num_upsamplings(size), n)
    g = dcgan.Generator((size, size, channels), batch_norm=True)
    d = dcgan.Discriminator(spectral_norm=True)
    z = jnp.zeros((2, Z))
    g_vars = g.init(jax.random.PRNGKey(0), z)
    x, _ = g.apply(g_vars, z, mutable=['batch_stats'])
    chex.assert_shape(x, (2, size, size, channels))
    d_vars = d.init(jax.random.PRNGKey(1), x)
    out, _ = d.apply(d_vars, x, mutable=['batch_stats'])
    chex.assert_shape(out, (2,))
    s0 = size // 2 ** n
    g_channels = [64 * 2 ** (n - 1 - i) for i in range(n)]
    self.assertEqual(
        kernel_shapes(g_vars['params']),
        [(4, 4, g_channels[i], g_channels[i + 1]) for i in range(n - 1)]
        + [(4, 4, 64, channels), (Z, s0 * s0 * g_channels[0])])
    d_channels = [channels] + [64 * 2 ** i for i in range(n)]
    d_kernels = [(4, 4, d_channels[i], d_channels[i + 1]) for i in range(n)]
    self.assertEqual(
        kernel_shapes(d_vars['params']),
        d_kernels + [(s0 * s0 * d_channels[-1], 1)])
    # one power-iteration vector per spectrally normalised layer
    self.assertLen(d_vars['batch_stats'], n + 1)

  def test_bench_architecture(self):
    g, d = dcgan.bench_models()
    z = jnp.zeros((2, 100))
    g_params = g.init(jax.random.PRNGKey(0), z)['params']
    d_params = d.init(jax.random.PRNGKey(1), jnp.zeros((2, 28, 28, 1)))['params']
    self.assertEqual(
        jax.tree.map(jnp.shape, g_params),
        {'Dense_0': {'kernel': (100, 7 * 7 * 128), 'bias': (7 * 7 * 128,)},
         'ConvTranspose_0': {'kernel': (4, 4, 128, 64), 'bias': (64,)},
         'ConvTranspose_1': {'kernel': (4, 4, 64, 1), 'bias': (1,)}})
    self.assertEqual(
        jax.tree.map(jnp.shape, d_params),
        {'Conv_0': {'kernel': (4, 4, 1, 64), 'bias': (64,)},
         'Conv_1': {'kernel': (4, 4, 64, 128), 'bias': (128,)},
         'Dense_0': {'kernel': (7 * 7 * 128, 1), 'bias': (1,)}})

  def test_fast_and_flax_layers_are_the_same_function(self):
    fast_g, fast_d = dcgan.bench_models('fast')
    flax_g, flax_d = dcgan.bench_models('flax')
    z = jax.random.normal(jax.random.PRNGKey(2), (3, 100))
    g_vars = flax_g.init(jax.random.PRNGKey(0), z)
    chex.assert_trees_all_equal(fast_g.init(jax.random.PRNGKey(0), z), g_vars)
    x = flax_g.apply(g_vars, z)
    np.testing.assert_allclose(fast_g.apply(g_vars, z), x, rtol=1e-5,
                               atol=1e-6)
    d_vars = flax_d.init(jax.random.PRNGKey(1), x)
    np.testing.assert_allclose(fast_d.apply(d_vars, x), flax_d.apply(d_vars, x),
                               rtol=1e-5, atol=1e-6)

  def test_bfloat16_computation_follows_float32(self):
    """dtype=bfloat16 computes in bfloat16 from the same float32 parameters:
    outputs within bfloat16's precision of the float32 model's, returned as
    float32, and D's input gradient pointing the same way."""
    g32, d32 = dcgan.bench_models('fast')
    g16, d16 = dcgan.bench_models('fast', jnp.bfloat16)
    z = jax.random.normal(jax.random.PRNGKey(2), (4, 100))
    g_vars = g32.init(jax.random.PRNGKey(0), z)
    g16_vars = g16.init(jax.random.PRNGKey(0), z)
    chex.assert_type(jax.tree.leaves(g16_vars), jnp.float32)
    chex.assert_trees_all_equal(g16_vars, g_vars)
    x32, x16 = g32.apply(g_vars, z), g16.apply(g_vars, z)
    chex.assert_type(x16, jnp.float32)
    np.testing.assert_allclose(x16, x32, atol=0.02)
    self.assertGreater(np.abs(x16 - x32).max(), 0)  # it did compute in bf16
    d_vars = d32.init(jax.random.PRNGKey(1), x32)
    out32, out16 = d32.apply(d_vars, x32), d16.apply(d_vars, x32)
    chex.assert_type(out16, jnp.float32)
    np.testing.assert_allclose(out16, out32, atol=0.05 * np.abs(out32).max())
    grad = lambda d: jax.grad(lambda x: d.apply(d_vars, x).sum())(x32)
    g_a, g_b = np.ravel(grad(d32)), np.ravel(grad(d16))
    cosine = g_a @ g_b / np.linalg.norm(g_a) / np.linalg.norm(g_b)
    self.assertGreater(cosine, 0.99)

  def test_errors(self):
    with self.assertRaisesRegex(ValueError,
                                'dcgan supports image sizes 16, 28, 32, 64; got 24'):
      dcgan.num_upsamplings(24)
    with self.assertRaisesRegex(ValueError,
                                "unknown layers 'torch'; valid layers: fast, flax"):
      dcgan.conv_classes('torch')


def sngan_generator_params() -> int:
  """Miyato et al.'s CIFAR-10 G, layer by layer (with biases, BN scale+bias)."""
  z, c = 128, 256
  dense = z * 4 * 4 * c + 4 * 4 * c
  conv3 = 9 * c * c + c
  block = 2 * (2 * c) + 2 * conv3 + (c * c + c)  # 2 BN, 2 conv3x3, 1x1 shortcut
  final = 2 * c + (9 * c * 3 + 3)  # BN, conv3x3 -> 3
  return dense + 3 * block + final


def sngan_discriminator_params() -> int:
  c = 128
  conv3 = 9 * c * c + c
  sc = c * c + c
  optimized = (9 * 3 * c + c) + conv3 + (3 * c + c)
  down = 2 * conv3 + sc
  plain = 2 * conv3
  return optimized + down + 2 * plain + (c + 1)


class SpectralNormTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('dcgan', dcgan.Discriminator(features=8, spectral_norm=True),
       (2, 16, 16, 1), ['Conv_0', 'Conv_1', 'Dense_0']),
      ('mlp', mlp.Discriminator(hidden=(16, 16), spectral_norm=True), (2, 2),
       ['Dense_0', 'Dense_1', 'Dense_2']))
  def test_gives_unit_top_singular_value(self, d, shape, names):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    variables = d.init(jax.random.PRNGKey(1), x)
    step = jax.jit(lambda v: d.apply(v, x, mutable=['batch_stats'])[1])
    for _ in range(80):
      variables = {'params': variables['params'], **step(variables)}
    # the wrapped layers keep their own names: params D/Conv_0/kernel, its
    # power-iteration state D/SpectralNorm_0/'Conv_0/kernel/{u,sigma}'
    self.assertEqual(sorted(variables['params']), names)
    for i, name in enumerate(names):
      kernel = np.asarray(variables['params'][name]['kernel'], np.float64)
      matrix = kernel.reshape(-1, kernel.shape[-1])
      stats = variables['batch_stats'][f'SpectralNorm_{i}']
      sigma = float(stats[f'{name}/kernel/sigma'])
      top = np.linalg.svd(matrix, compute_uv=False)[0]
      np.testing.assert_allclose(sigma, top, rtol=1e-3, err_msg=name)
      np.testing.assert_allclose(
          np.linalg.svd(matrix / sigma, compute_uv=False)[0], 1.0, rtol=1e-3,
          err_msg=name)

  def test_flag_builds_a_normalised_mlp_discriminator(self):
    _, d = testing.build_models(testing.tiny_toy_config(d_spectral_norm=True),
                                (2,))
    self.assertTrue(d.spectral_norm)
    _, plain = testing.build_models(testing.tiny_toy_config(), (2,))
    self.assertFalse(plain.spectral_norm)


class RegistrationTest(parameterized.TestCase):

  def test_models_for_each_data_set(self):
    self.assertEqual(
        {name: models.fitting(data.get(name).shape) for name in data.names()},
        {'celeb_a': ['dcgan'], 'cifar10': ['dcgan', 'sngan_resnet'],
         'digits': ['dcgan'], 'fashion_mnist': ['dcgan'],
         'grid25': ['mlp'], 'mix1d': ['mlp'], 'mnist': ['dcgan'],
         'ring8': ['mlp']})
    self.assertEqual(models.fitting((24, 24, 1)), [])
    self.assertEqual(models.fitting((32, 16, 3)), [])

  def test_options(self):
    self.assertEqual(models.accepting('g_batch_norm'), ['dcgan', 'mlp'])
    self.assertEqual(models.accepting('d_maxout'), ['mlp'])
    self.assertEqual(models.accepting('init_std'), ['mlp'])
    self.assertEqual(models.accepting('d_spectral_norm'), ['dcgan', 'mlp'])

  @parameterized.parameters(('dcgan', (16, 16, 1), 64, 64),
                            ('sngan_resnet', (32, 32, 3), 256, 128))
  def test_builder_reads_widths_and_dtype(self, name, shape, g_width, d_width):
    g, d = testing.build_models(
        testing.tiny_image_config(model=name, g_features=8, d_features=4,
                                  compute_dtype='bfloat16'), shape)
    self.assertEqual((g.features, d.features, g.dtype, d.dtype),
                     (8, 4, jnp.bfloat16, jnp.bfloat16))
    g, d = testing.build_models(testing.tiny_image_config(
        model=name, g_features=0, d_features=0), shape)  # the model's default
    self.assertEqual((g.features, d.features, g.dtype, d.dtype),
                     (g_width, d_width, None, None))

  def test_refused_shape_is_one_line(self):
    with self.assertRaises(ValueError) as cm:
      models.build(testing.tiny_image_config(model='sngan_resnet'),
                   data.get('digits'))
    self.assertEqual(str(cm.exception),
                     'model sngan_resnet needs 32x32 images, but digits has '
                     'shape (16, 16, 1); models for it: dcgan')

  def test_unknown_and_repeated_names(self):
    with self.assertRaisesRegex(KeyError, "unknown model 'vit'; valid models: "
                                'dcgan, mlp, sngan_resnet'):
      models.get('vit')
    with self.assertRaisesRegex(ValueError, "a model named 'mlp' is already "
                                'registered'):
      models.register(models.get('mlp'))


class SnganResnetTest(absltest.TestCase):

  def test_parameter_counts(self):
    g, d = sngan_resnet.Generator(), sngan_resnet.Discriminator()
    g_vars = jax.eval_shape(g.init, jax.random.PRNGKey(0), jnp.zeros((1, 128)))
    d_vars = jax.eval_shape(d.init, jax.random.PRNGKey(0),
                            jnp.zeros((1, 32, 32, 3)))
    self.assertEqual(num_params(g_vars['params']), sngan_generator_params())
    self.assertEqual(num_params(g_vars['params']), 4_276_739)
    self.assertEqual(num_params(d_vars['params']), sngan_discriminator_params())
    self.assertEqual(num_params(d_vars['params']), 1_053_825)
    # every D layer is spectrally normalised: 3 + 3 + 2 + 2 convolutions, 1 dense
    sn_vectors = [k for k in jax.tree_util.tree_leaves_with_path(
        d_vars['batch_stats']) if jax.tree_util.keystr(k[0]).endswith("/u']")]
    self.assertLen(sn_vectors, 11)

  def test_shapes(self):
    g = sngan_resnet.Generator(features=16)
    d = sngan_resnet.Discriminator(features=8)
    z = jax.random.normal(jax.random.PRNGKey(0), (2, 128))
    g_vars = g.init(jax.random.PRNGKey(1), z)
    x, _ = g.apply(g_vars, z, mutable=['batch_stats'])
    chex.assert_shape(x, (2, 32, 32, 3))
    self.assertLessEqual(float(jnp.max(jnp.abs(x))), 1.0)
    d_vars = d.init(jax.random.PRNGKey(2), x)
    out, _ = d.apply(d_vars, x, mutable=['batch_stats'])
    chex.assert_shape(out, (2,))
    x_eval = g.apply(g_vars, z, train=False)
    chex.assert_shape(x_eval, (2, 32, 32, 3))

  def test_resampling(self):
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(
        sngan_resnet.avgpool(x)[0, ..., 0],
        [[(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4],
         [(8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]])
    up = sngan_resnet.upsample(x)
    chex.assert_shape(up, (1, 8, 8, 1))
    np.testing.assert_array_equal(up[0, ::2, ::2, 0], x[0, ..., 0])
    np.testing.assert_array_equal(up[0, 1::2, 1::2, 0], x[0, ..., 0])


if __name__ == '__main__':
  absltest.main()
