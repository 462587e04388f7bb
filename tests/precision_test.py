"""--compute_dtype: every built-in model computes in bfloat16 from float32
parameters, returns float32, and follows its float32 self closely."""

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
from jax.extend import core as jax_core
import jax.numpy as jnp
import numpy as np

from gan_jax.models import precision
import testing

# (model, sample shape, config fields): one of each built-in model, with the
# optional normalisations that carry state.
CASES = (
    ('mlp', (2,), {}),
    ('mlp_sn', (2,), {'d_spectral_norm': True}),
    ('dcgan', (16, 16, 1), {'g_batch_norm': True, 'g_features': 8,
                            'd_features': 8}),
    ('dcgan_sn', (32, 32, 3), {'d_spectral_norm': True, 'g_features': 8,
                               'd_features': 8}),
    ('sngan_resnet', (32, 32, 3), {'g_features': 8, 'd_features': 8}),
)


def build(model, shape, fields, dtype_name):
  tiny_config = (testing.tiny_toy_config if model.startswith('mlp')
                 else testing.tiny_image_config)
  return testing.build_models(tiny_config(
      model=model.removesuffix('_sn'), z_dim=8, compute_dtype=dtype_name,
      **fields), shape)


def input_dot_dtypes(fn, x) -> set:
  """Operand dtypes of every matmul and convolution in fn's jaxpr that
  depends on the input x (the layers; spectral norm's power iteration on the
  kernels alone does not)."""
  found = set()

  def visit(jaxpr, tainted):
    tainted = set(tainted)
    for eqn in jaxpr.eqns:
      hit = [not isinstance(v, jax_core.Literal) and v in tainted
             for v in eqn.invars]
      if not any(hit):
        continue
      if eqn.primitive.name in ('dot_general', 'conv_general_dilated'):
        found.update(str(v.aval.dtype) for v in eqn.invars)
      for sub in jax_core.jaxprs_in_params(eqn.params):
        # An inner jaxpr with one input per operand (pjit, custom
        # derivatives) takes them in order; otherwise all its inputs count.
        same = len(sub.invars) == len(hit)
        visit(sub, [v for v, h in zip(sub.invars, hit) if h] if same
              else sub.invars)
      tainted.update(eqn.outvars)

  closed = jax.make_jaxpr(fn)(x)
  visit(closed.jaxpr, closed.jaxpr.invars)
  return found


class PrecisionTest(parameterized.TestCase):

  def test_names(self):
    self.assertIsNone(precision.compute_dtype('float32'))
    self.assertEqual(precision.compute_dtype('bfloat16'), jnp.bfloat16)
    with self.assertRaisesRegex(ValueError, 'valid: float32, bfloat16'):
      precision.compute_dtype('float16')

  @parameterized.named_parameters(*[(case[0], *case) for case in CASES])
  def test_bfloat16_follows_float32(self, model, shape, fields):
    g32, d32 = build(model, shape, fields, 'float32')
    g16, d16 = build(model, shape, fields, 'bfloat16')
    z = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
    init = lambda module, key, x: jax.jit(
        lambda x: module.init(key, x, train=False))(x)
    g_vars = init(g32, jax.random.PRNGKey(1), z)
    # Same float32 parameters (and state) either way.
    for a, b in zip(jax.tree.leaves(init(g16, jax.random.PRNGKey(1), z)),
                    jax.tree.leaves(g_vars)):
      chex.assert_type(a, jnp.float32)
      np.testing.assert_array_equal(a, b)
    generate = lambda g: jax.jit(lambda z: g.apply(g_vars, z, train=False))
    self.assertEqual(input_dot_dtypes(generate(g16), z), {'bfloat16'})
    self.assertEqual(input_dot_dtypes(generate(g32), z), {'float32'})
    x32, x16 = generate(g32)(z), generate(g16)(z)
    chex.assert_type(x16, jnp.float32)
    self.assertGreater(np.abs(x16 - x32).max(), 0)
    np.testing.assert_allclose(x16, x32, atol=0.03 * np.abs(x32).max())

    d_vars = init(d32, jax.random.PRNGKey(2), x32)
    discriminate = lambda d: jax.jit(lambda x: d.apply(d_vars, x, train=False))
    self.assertEqual(input_dot_dtypes(discriminate(d16), x32), {'bfloat16'})
    self.assertEqual(input_dot_dtypes(discriminate(d32), x32), {'float32'})
    out32, out16 = discriminate(d32)(x32), discriminate(d16)(x32)
    chex.assert_type(out16, jnp.float32)
    np.testing.assert_allclose(out16, out32, atol=0.05 * np.abs(out32).max())
    grad = lambda d: np.ravel(jax.jit(jax.grad(
        lambda x: discriminate(d)(x).sum()))(x32))
    g_a, g_b = grad(d32), grad(d16)
    chex.assert_type(g_b, np.float32)
    self.assertGreater(g_a @ g_b / np.linalg.norm(g_a) / np.linalg.norm(g_b),
                       0.99)


if __name__ == '__main__':
  absltest.main()
