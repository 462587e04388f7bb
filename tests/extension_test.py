"""Extending gan_jax from outside the package: a model, a data set and a loss
defined here, each registered in one call, train through the normal build
(config validation, `train.build`, the scanned step), and evaluation finds
the data set's extractor and reference through its registration."""

from unittest import mock

from absl.testing import absltest
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data
from gan_jax import features
from gan_jax import loop
from gan_jax import losses
from gan_jax import models
from gan_jax import train
from gan_jax.config import Config, ConfigError, validate
from gan_jax.metrics import reference

# ---------------------------------------------------------------------------
# The extension: what a user's own module would hold.
# ---------------------------------------------------------------------------


class Segment:
  """Uniform on the segment from (-1, 0) to (1, 0): not a mixture."""

  name = 'segment'
  shape = (2,)

  def sample(self, key, n):
    t = jax.random.uniform(key, (n, 1), minval=-1.0, maxval=1.0)
    return jnp.concatenate([t, jnp.zeros_like(t)], axis=1)


class LinearGenerator(nn.Module):
  out_dim: int

  @nn.compact
  def __call__(self, z, train=True):
    del train
    return nn.Dense(self.out_dim)(z)


class ReluDiscriminator(nn.Module):
  """A zero-initialised output layer: D's outputs are 0 before any step."""
  hidden: int

  @nn.compact
  def __call__(self, x, train=True):
    del train
    h = nn.relu(nn.Dense(self.hidden)(x))
    return nn.Dense(1, kernel_init=nn.initializers.zeros)(h)[..., 0]


def build_linear(config, data_set):
  return (LinearGenerator(out_dim=data_set.shape[0]),
          ReluDiscriminator(hidden=config.d_hidden[0]))


def _half_squares(out, target):
  return 0.5 * jnp.mean((out - target) ** 2)


def register_extension():
  models.register(models.ModelSpec(
      name='linear', build=build_linear, needs='flat data',
      fits=lambda shape: len(shape) == 1))
  data.register(data.DatasetSpec(
      name='segment', shape=(2,), build=lambda config: Segment()))
  losses.register(losses.Loss(
      name='half_squares',
      value=lambda r, f: -_half_squares(r, 1.0) - _half_squares(f, 0.0),
      d_loss=lambda r, f: _half_squares(r, 1.0) + _half_squares(f, 0.0),
      g_loss=lambda f, r=None: _half_squares(f, 1.0)))


# ---------------------------------------------------------------------------

TINY = Config(workdir='/tmp/unused', dataset='segment', model='linear',
              loss='half_squares', batch_size=16, z_dim=3, g_hidden=(8,),
              d_hidden=(8,), num_steps=4, log_every=4, g_lr=1e-2, d_lr=1e-2,
              num_eval_samples=64)


class ExtensionTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Registered for this class only, so other tests see the built-ins alone.
    for entries in (models._REGISTRY.entries, data._REGISTRY.entries,  # pylint: disable=protected-access
                    losses._REGISTRY.entries):  # pylint: disable=protected-access
      cls.enterClassContext(mock.patch.dict(entries))
    register_extension()

  def test_config_accepts_the_new_names(self):
    self.assertIs(validate(TINY), TINY)
    self.assertIn('linear', models.fitting((2,)))
    self.assertEqual(data.SHAPES['segment'], (2,))
    self.assertFalse(data.is_image('segment'))

  def test_trains_through_the_normal_build(self):
    data_set, steps, state = train.build(TINY)
    self.assertIsInstance(data_set, Segment)
    self.assertIsInstance(steps.game.generator, LinearGenerator)
    self.assertIsInstance(steps.game.discriminator, ReluDiscriminator)
    self.assertIs(steps.game.loss, losses.get('half_squares'))
    new, metrics = jax.jit(lambda s: loop.scan_steps(steps.train_step, s, 4))(
        state)
    self.assertEqual(int(new.step), 4)
    # D's outputs are 0 at the first step: half_squares gives D the loss
    # 1/2 (1 - 0)^2 + 1/2 0^2 and the value -1/2.
    np.testing.assert_allclose(metrics['d_loss'][0], 0.5, rtol=1e-6)
    np.testing.assert_allclose(metrics['value'][0], -0.5, rtol=1e-6)
    for name in ('d_loss', 'g_loss'):
      self.assertTrue(np.all(np.isfinite(metrics[name])), name)
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                         state.g_params, new.g_params)
    self.assertGreater(max(jax.tree.leaves(moved)), 0.0)
    samples = train.generate(steps, new, train.eval_latents(TINY))
    self.assertEqual(samples.shape, (64, 2))

  def test_evaluation_reads_the_registration(self):
    self.assertEqual(features.default_for('segment'), 'identity')
    self.assertEqual(reference.splits('segment'), ('train',))
    ref = reference.load('segment', 'train')
    self.assertEqual(ref.shape, (reference.SAMPLED_REFERENCE_SIZE, 2))
    want = Segment().sample(jax.random.PRNGKey(reference.REFERENCE_SEED),
                            reference.SAMPLED_REFERENCE_SIZE)
    np.testing.assert_array_equal(ref, np.asarray(want))
    spec = data.get('segment')
    self.assertEqual((spec.num_classes, spec.has_modes, spec.streamable),
                     (0, False, False))

  def test_unknown_names_list_the_valid_ones(self):
    with self.assertRaisesRegex(
        KeyError, "unknown model 'resnet'; valid models: dcgan, linear, mlp, "
        'sngan_resnet'):
      models.get('resnet')
    with self.assertRaisesRegex(
        KeyError, "unknown dataset 'moons'; valid datasets: celeb_a, cifar10, "
        'digits, fashion_mnist, grid25, mix1d, mnist, ring8, segment'):
      data.get('moons')
    with self.assertRaisesRegex(ConfigError, "--model='resnet' is not a known "
                                'model; valid: dcgan, linear, mlp, '
                                'sngan_resnet$'):
      validate(TINY.replace(model='resnet'))
    with self.assertRaisesRegex(ValueError, 'already registered'):
      register_extension()

  def test_a_model_refuses_a_data_shape_in_one_line(self):
    with self.assertRaises(ConfigError) as cm:
      validate(TINY.replace(dataset='digits'))
    self.assertEqual(
        str(cm.exception), '--model=linear cannot train on --dataset=digits '
        '(samples of shape (16, 16, 1)); valid models for it: dcgan')
    with self.assertRaises(ConfigError) as cm:
      validate(TINY.replace(model='dcgan'))
    self.assertEqual(
        str(cm.exception), '--model=dcgan cannot train on --dataset=segment '
        '(samples of shape (2,)); valid models for it: linear, mlp')
    with self.assertRaises(ValueError) as cm:
      models.build(TINY.replace(dataset='digits'), data.get('digits'))
    self.assertEqual(
        str(cm.exception), 'model linear needs flat data, but digits has '
        'shape (16, 16, 1); models for it: dcgan')


if __name__ == '__main__':
  absltest.main()
