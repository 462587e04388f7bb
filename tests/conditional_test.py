"""Class-conditional GANs: labels beside the data, conditional models and
their heads against hand computations, resume, and validation."""

import json
import os
import tempfile

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from gan_jax import conditional
from gan_jax import config as config_lib
from gan_jax import regularizers
from gan_jax import train
from gan_jax.config import Config, ConfigError
from gan_jax.data import images as images_lib
from gan_jax.data import toy
from gan_jax.game import Game
from gan_jax.losses import get as get_loss
from gan_jax.models import conditioning
from gan_jax.models import mlp

TINY = Config(workdir='/tmp/unused', dataset='ring8', model='mlp',
              conditional='projection', batch_size=16, z_dim=4,
              g_hidden=(8,), d_hidden=(8,), num_steps=6, log_every=2,
              g_lr=1e-3, d_lr=1e-3, seed=7, num_eval_samples=40)


def _np(tree):
  return jax.tree.map(np.asarray, tree)


def _log_softmax(a):
  a = a - a.max(-1, keepdims=True)
  return a - np.log(np.exp(a).sum(-1, keepdims=True))


class LabelsTest(absltest.TestCase):

  def test_mixture_labels_are_the_modes_of_the_same_draws(self):
    data = toy.ring8()
    key = jax.random.PRNGKey(3)
    x, y = data.sample_with_labels(key, 500)
    np.testing.assert_array_equal(np.asarray(x),
                                  np.asarray(data.sample(key, 500)))
    nearest = np.argmin(((np.asarray(x)[:, None] - data.means[None]) ** 2
                         ).sum(-1), axis=1)
    np.testing.assert_array_equal(np.asarray(y), nearest)

  def test_digits_labels_follow_their_images(self):
    from sklearn.datasets import load_digits
    data = images_lib.digits()
    key = jax.random.PRNGKey(5)
    x, y = data.sample_with_labels(key, 64)
    np.testing.assert_array_equal(np.asarray(x),
                                  np.asarray(data.sample(key, 64)))
    all_images = np.asarray(data.images).reshape(len(data), -1)
    targets = load_digits().target
    for image, label in zip(np.asarray(x).reshape(64, -1), np.asarray(y)):
      matches = np.flatnonzero((all_images == image).all(axis=1))
      self.assertIn(label, targets[matches])

  def test_fake_labels_uniform_or_from_class_frequencies(self):
    key = jax.random.PRNGKey(0)
    uniform = np.asarray(conditional.sample_labels(key, 20000, 4))
    np.testing.assert_allclose(np.bincount(uniform, minlength=4) / 20000,
                               0.25, atol=0.015)
    probs = np.array([0.7, 0.1, 0.1, 0.1])
    drawn = np.asarray(conditional.sample_labels(key, 20000, 4, probs))
    np.testing.assert_allclose(np.bincount(drawn, minlength=4) / 20000,
                               probs, atol=0.015)
    labels = np.array([0, 0, 1, 2, 2, 2])
    data = images_lib.InMemoryImages('t', jnp.zeros((6, 2, 2, 1)),
                                     jnp.asarray(labels))
    np.testing.assert_allclose(conditional.class_frequencies(data, 4),
                               [2 / 6, 1 / 6, 3 / 6, 0])

  def test_conditional_latents_keep_the_unconditional_z(self):
    _, plain = train.build_steps(TINY.replace(conditional='none'))
    _, cond = train.build_steps(TINY)
    key = jax.random.PRNGKey(11)
    z, y = cond.sample_z(key)
    np.testing.assert_array_equal(np.asarray(z),
                                  np.asarray(plain.sample_z(key)))
    self.assertEqual(y.dtype, jnp.int32)
    self.assertTrue(((np.asarray(y) >= 0) & (np.asarray(y) < 8)).all())

  def test_interrupted_and_resumed_run_is_bit_identical(self):
    root = tempfile.mkdtemp()
    whole = TINY.replace(workdir=os.path.join(root, 'whole'),
                         checkpoint_every=2, conditional='acgan',
                         fake_labels='data')
    parts = whole.replace(workdir=os.path.join(root, 'parts'))
    final = train.run(whole, out=None)
    self.assertEqual(final['label_classifier'], 'nearest_mode')
    self.assertBetween(final['label_accuracy'], 0.0, 1.0)
    train.run(parts.replace(num_steps=2), out=None)  # stopped at step 2
    train.run(parts, out=None)  # resumed to 6
    restore = ocp.StandardCheckpointer().restore
    a = restore(os.path.join(whole.workdir, 'checkpoints', '6', 'state'))
    b = restore(os.path.join(parts.workdir, 'checkpoints', '6', 'state'))
    leaves_a = jax.tree_util.tree_leaves_with_path(a)
    leaves_b = jax.tree_util.tree_leaves_with_path(b)
    self.assertEqual([p for p, _ in leaves_a], [p for p, _ in leaves_b])
    self.assertTrue(any('class_logits' in jax.tree_util.keystr(p)
                        for p, _ in leaves_a))
    for (path, x), (_, y) in zip(leaves_a, leaves_b):
      self.assertTrue(np.array_equal(x, y), jax.tree_util.keystr(path))
    for name in ('samples.npy', 'sample_labels.npy'):
      self.assertTrue(np.array_equal(
          np.load(os.path.join(whole.workdir, name)),
          np.load(os.path.join(parts.workdir, name))), name)


class HeadsTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.x = rng.normal(size=(5, 3)).astype(np.float32)
    self.y = np.array([0, 2, 1, 2, 0], np.int32)

  def _hidden(self, p):
    return np.maximum(self.x @ p['Dense_0']['kernel'] + p['Dense_0']['bias'],
                      0)

  def test_projection_head(self):
    d = mlp.Discriminator(hidden=(4,), conditional='projection',
                          num_classes=3)
    p = _np(d.init(jax.random.PRNGKey(1), (self.x, self.y))['params'])
    h = self._hidden(p)
    psi = h @ p['Dense_1']['kernel'][:, 0] + p['Dense_1']['bias'][0]
    v = p[conditioning.PROJECTION]['embedding'][self.y]
    expected = psi + np.sum(v * h, axis=1)
    out = d.apply({'params': p}, (self.x, self.y))
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5,
                               atol=1e-6)

  def test_spectrally_normalised_heads(self):
    # With --d_spectral_norm every matrix of D, the head's V (projection)
    # or W (ACGAN) included, is divided by its largest singular value: after
    # enough power iterations D equals the numpy forward pass with each
    # matrix over its SVD's sigma_max (Miyato & Koyama's SNEmbedID).
    sigma = lambda m: np.linalg.svd(np.asarray(m, np.float64),
                                    compute_uv=False)[0]
    for form in ('projection', 'acgan'):
      d = mlp.Discriminator(hidden=(4,), spectral_norm=True, conditional=form,
                            num_classes=3)
      variables = d.init(jax.random.PRNGKey(1), (self.x, self.y))
      params = variables['params']
      stats = variables['batch_stats']
      step = jax.jit(lambda s: d.apply({'params': params, 'batch_stats': s},
                                       (self.x, self.y),
                                       mutable=['batch_stats'])[1][
                                           'batch_stats'])
      for _ in range(200):
        stats = step(stats)
      out = d.apply({'params': params, 'batch_stats': stats},
                    (self.x, self.y), train=False)
      p = _np(params)
      k0, k1 = p['Dense_0']['kernel'], p['Dense_1']['kernel']
      h = np.maximum(self.x @ (k0 / sigma(k0)) + p['Dense_0']['bias'], 0)
      psi = h @ (k1 / sigma(k1))[:, 0] + p['Dense_1']['bias'][0]
      if form == 'projection':
        v = p[conditioning.PROJECTION]['embedding']
        self.assertGreater(abs(sigma(v) - 1), 0.05)  # the division matters
        np.testing.assert_allclose(
            np.asarray(out), psi + np.sum((v / sigma(v))[self.y] * h, axis=1),
            rtol=1e-4, atol=1e-5)
      else:
        w = p[conditioning.CLASS_LOGITS]['kernel']
        b = p[conditioning.CLASS_LOGITS]['bias']
        self.assertGreater(abs(sigma(w) - 1), 0.05)
        np.testing.assert_allclose(np.asarray(out[0]), psi, rtol=1e-4,
                                   atol=1e-5)
        np.testing.assert_allclose(np.asarray(out[1]), h @ (w / sigma(w)) + b,
                                   rtol=1e-4, atol=1e-5)

  def test_acgan_head(self):
    d = mlp.Discriminator(hidden=(4,), conditional='acgan', num_classes=3)
    p = _np(d.init(jax.random.PRNGKey(2), (self.x, self.y))['params'])
    h = self._hidden(p)
    out, logits = d.apply({'params': p}, (self.x, self.y))
    np.testing.assert_allclose(
        np.asarray(out),
        h @ p['Dense_1']['kernel'][:, 0] + p['Dense_1']['bias'][0],
        rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(logits),
        h @ p[conditioning.CLASS_LOGITS]['kernel']
        + p[conditioning.CLASS_LOGITS]['bias'], rtol=1e-5, atol=1e-6)

  def test_acgan_losses_add_the_weighted_cross_entropies(self):
    g = mlp.Generator(hidden=(4,), out_dim=3, num_classes=3)
    d = mlp.Discriminator(hidden=(4,), conditional='acgan', num_classes=3)
    rng = np.random.default_rng(1)
    z = (jnp.asarray(rng.normal(size=(5, 2)), jnp.float32),
         jnp.asarray([1, 1, 0, 2, 2], jnp.int32))
    batch = (jnp.asarray(self.x), jnp.asarray(self.y))
    gp = g.init(jax.random.PRNGKey(3), z)['params']
    dp = d.init(jax.random.PRNGKey(4), batch)['params']
    loss = get_loss('non_saturating')
    weight = 0.7
    with_ce = Game(g, d, loss, class_loss_weight=weight)
    fake = np.asarray(g.apply({'params': gp}, z))
    real_logits = np.asarray(d.apply({'params': dp}, batch)[1])
    fake_logits = np.asarray(d.apply({'params': dp}, (fake, z[1]))[1])
    ce = lambda logits, y: -np.mean(_log_softmax(logits.astype(np.float64))[
        np.arange(len(y)), np.asarray(y)])
    d_ce = weight * (ce(real_logits, self.y) + ce(fake_logits, z[1]))
    g_ce = weight * ce(fake_logits, z[1])
    # The adversarial part: the same game without the classifier's loss.
    plain = Game(g, d, loss)
    d_plain = float(plain.d_objective(dp, gp, batch, z)[0])
    g_plain = float(plain.g_objective(gp, dp, z)[0])
    np.testing.assert_allclose(float(with_ce.d_objective(dp, gp, batch, z)[0]),
                               d_plain + d_ce, rtol=1e-5)
    np.testing.assert_allclose(float(with_ce.g_objective(gp, dp, z)[0]),
                               g_plain + g_ce, rtol=1e-5)
    self.assertGreater(d_ce, 0.1)

  def test_penalty_differentiates_x_with_the_labels_held(self):
    # A linear projection D(x, y) = w.x + b + <V[y], x> has gradient
    # w + V[y] in x: R1 = 1/2 mean ||w + V[y]||^2.
    d = mlp.Discriminator(hidden=(), conditional='projection', num_classes=3)
    p = _np(d.init(jax.random.PRNGKey(5), (self.x, self.y))['params'])
    grads = p['Dense_0']['kernel'][:, 0] + p[conditioning.PROJECTION][
        'embedding'][self.y]
    expected = 0.5 * np.mean(np.sum(grads ** 2, axis=1))
    apply = lambda params, inputs: d.apply({'params': params}, inputs)
    r1 = regularizers.get('r1')(apply, p, (self.x, self.y), None, None)
    np.testing.assert_allclose(float(r1), expected, rtol=1e-5)
    x_hat, y_hat = regularizers.interpolates(
        (self.x, self.y), (self.x + 1.0, (self.y + 1) % 3),
        jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(y_hat), self.y)


class ConditionalBatchNormTest(absltest.TestCase):

  def test_against_hand_computation(self):
    rng = np.random.default_rng(2)
    h = rng.normal(size=(6, 2, 2, 3)).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1, 0], np.int32)
    cbn = conditioning.ConditionalBatchNorm(num_classes=2)
    variables = cbn.init(jax.random.PRNGKey(0), h, y, False)
    gain = rng.normal(size=(2, 3)).astype(np.float32)
    bias = rng.normal(size=(2, 3)).astype(np.float32)
    params = {'gain': {'embedding': gain}, 'bias': {'embedding': bias}}
    out, new = cbn.apply({'params': params,
                          'batch_stats': variables['batch_stats']}, h, y,
                         True, mutable=['batch_stats'])
    mu = h.mean(axis=(0, 1, 2))
    var = h.var(axis=(0, 1, 2))
    expected = (gain[y][:, None, None, :] * (h - mu) / np.sqrt(var + 1e-5)
                + bias[y][:, None, None, :])
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4,
                               atol=1e-5)
    stats = new['batch_stats']['BatchNorm_0']
    np.testing.assert_allclose(np.asarray(stats['mean']), 0.1 * mu,
                               rtol=1e-5, atol=1e-6)
    # Inference: the running statistics, the same per-class gain and bias.
    out = cbn.apply({'params': params, 'batch_stats': new['batch_stats']}, h,
                    y, False)
    run_mu = 0.1 * mu
    run_var = 0.9 + 0.1 * var
    expected = (gain[y][:, None, None, :] * (h - run_mu)
                / np.sqrt(run_var + 1e-5) + bias[y][:, None, None, :])
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4,
                               atol=1e-5)

  def test_conditional_models_build_and_step(self):
    for model, dataset, extra in (
        ('dcgan', 'digits', dict(g_batch_norm=True)),
        ('mlp', 'grid25', {})):
      for form in ('projection', 'acgan'):
        config = TINY.replace(model=model, dataset=dataset, conditional=form,
                              g_features=4, d_features=4, batch_size=4,
                              **extra)
        _, steps, state = train.build(config)
        new, metrics = jax.jit(steps.train_step)(state)
        self.assertTrue(all(np.isfinite(float(v)) for v in metrics.values()),
                        (model, form, metrics))
        if model == 'dcgan':
          self.assertIn('ConditionalBatchNorm_0', new.g_params)
          self.assertIn(conditioning.G_EMBEDDING, new.g_params)


class ValidationTest(absltest.TestCase):

  def _refused(self, **changes):
    with self.assertRaises(ConfigError) as e:
      config_lib.validate(TINY.replace(workdir=tempfile.mkdtemp(), **changes))
    return str(e.exception)

  def test_refusals_are_one_line_naming_the_choices(self):
    message = self._refused(dataset='celeb_a', model='dcgan')
    self.assertIn('needs a data set with labels; valid:', message)
    self.assertIn('digits', message)
    self.assertNotIn('\n', message)
    self.assertIn('valid: none, projection, acgan',
                  self._refused(conditional='bogus'))
    self.assertIn('--acgan_weight applies to --conditional=acgan',
                  self._refused(acgan_weight=2.0))
    self.assertIn('conditional runs only',
                  self._refused(conditional='none', fake_labels='data'))
    self.assertIn('drop --stream_data',
                  self._refused(dataset='mnist', model='dcgan',
                                stream_data=True))
    self.assertIn('needs a classifier trained',
                  self._refused(eval_metrics=('label_acc',)))
    self.assertIn('scores class-conditional samples',
                  self._refused(conditional='none',
                                eval_metrics=('intra_fid',)))

  def test_a_model_without_conditional_form_is_refused(self):
    from gan_jax import models
    models.register(models.ModelSpec(
        name='plain_for_test', build=mlp.build, needs='flat data',
        fits=lambda shape: len(shape) == 1))
    try:
      message = self._refused(model='plain_for_test')
      self.assertIn('applies to --model=dcgan or mlp or sngan_resnet',
                    message)
    finally:
      del models._REGISTRY.entries['plain_for_test']  # pylint: disable=protected-access


if __name__ == '__main__':
  absltest.main()
