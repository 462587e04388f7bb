"""Feature extractors: the shipped digits classifier, its training code, and
the FID Inception network's architecture, converter and loader."""

import hashlib
import importlib.util
import json
import os
import shutil
from unittest import mock

from absl.testing import absltest
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import features
from gan_jax.features import classifier
from gan_jax.features import inception_v3
from gan_jax.metrics import reference

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def inception_converter():
  """tools/convert_inception_weights.py, imported as a module."""
  spec = importlib.util.spec_from_file_location(
      'convert_inception_weights',
      os.path.join(_ROOT, 'tools', 'convert_inception_weights.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


class RegistryTest(absltest.TestCase):

  def test_names_and_unknown_name(self):
    self.assertEqual(features.names(), ['digits_classifier', 'identity',
                                        'inception_v3', 'mnist_classifier'])
    with self.assertRaises(features.FeatureError) as cm:
      features.get('vgg16')
    self.assertEqual(str(cm.exception),
                     "unknown feature extractor 'vgg16'; valid: "
                     'digits_classifier, identity, inception_v3, '
                     'mnist_classifier')

  def test_defaults(self):
    self.assertEqual([features.default_for(d) for d in
                      ('digits', 'mnist', 'ring8', 'cifar10')],
                     ['digits_classifier', 'mnist_classifier', 'identity',
                      'inception_v3'])

  def test_missing_weights_say_how_to_make_them(self):
    with self.assertRaisesRegex(
        features.FeatureError,
        'python -m gan_jax.train_classifier --dataset=mnist$'):
      features.get('mnist_classifier', '/nonexistent/mnist.msgpack')
    with self.assertRaisesRegex(features.FeatureError,
                                'tools/convert_inception_weights.py'):
      features.get('inception_v3', '/nonexistent/inception.msgpack')


class DigitsClassifierTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.extractor = features.get('digits_classifier')
    cls.test_x, cls.test_y = reference.digits('test')

  def test_shipped_weights_hash(self):
    # The package's pin is the hash of the file it ships (computed here
    # independently of gan_jax), the JSON beside it agrees, and the loaded
    # extractor reports it.
    path = os.path.join(features.WEIGHTS_DIR, 'digits_classifier.msgpack')
    with open(path, 'rb') as f:
      digest = hashlib.sha256(f.read()).hexdigest()
    self.assertEqual(features.SHIPPED_SHA256, {
        'digits_classifier.msgpack': digest})
    self.assertEqual(features.pinned_sha256(path), digest)
    self.assertEqual(features.read_metadata(path)['sha256'], digest)
    self.assertEqual(self.extractor.weights_sha256, digest)
    self.assertLess(os.path.getsize(path), 1 << 20)

  def _changed_copy(self):
    """A directory with a copy of the shipped weights and their JSON, four
    bytes of the weights changed; (directory, weights path)."""
    tmp = self.create_tempdir().full_path
    for ext in ('.msgpack', '.json'):
      shutil.copy(os.path.join(features.WEIGHTS_DIR, 'digits_classifier' + ext),
                  os.path.join(tmp, 'digits_classifier' + ext))
    path = os.path.join(tmp, 'digits_classifier.msgpack')
    with open(path, 'r+b') as f:
      f.seek(-4, os.SEEK_END)
      f.write(b'\x00\x01\x02\x03')
    return tmp, path

  def test_modified_shipped_weights_are_refused_by_the_pin(self):
    # A changed copy in the shipped place, with its JSON rewritten to match:
    # the metadata check alone would pass it, the pin does not.
    tmp, path = self._changed_copy()
    found = features.sha256_file(path)
    meta = features.read_metadata(path)
    with open(os.path.join(tmp, 'digits_classifier.json'), 'w') as f:
      json.dump({**meta, 'sha256': found}, f)
    pinned = features.SHIPPED_SHA256['digits_classifier.msgpack']
    self.assertEqual(features.get('digits_classifier', path).weights_sha256,
                     found)  # elsewhere, only the metadata is checked
    with mock.patch.object(features, 'WEIGHTS_DIR', tmp):
      with self.assertRaises(features.FeatureError) as cm:
        features.get('digits_classifier')
    self.assertEqual(
        str(cm.exception),
        f'digits_classifier: {path} has SHA-256 {found}, but gan_jax pins '
        f'{pinned}; the weights were changed or corrupted')
    # Through the evaluator (what gan_jax.evaluate and gan_jax.main call),
    # the same one line, as the error both print with exit status 2.
    from gan_jax import evaluation  # pylint: disable=g-import-not-at-top
    with mock.patch.object(features, 'WEIGHTS_DIR', tmp):
      with self.assertRaises(evaluation.EvaluationError) as cm2:
        evaluation.Evaluator('digits', metrics=('fid',))
    self.assertEqual(str(cm2.exception), str(cm.exception))

  def test_held_out_accuracy(self):
    feats, logits = self.extractor.extract(self.test_x)
    self.assertEqual((feats.shape, logits.shape), ((360, 128), (360, 10)))
    acc = float(np.mean(np.argmax(logits, axis=1) == self.test_y))
    meta = features.read_metadata(
        os.path.join(features.WEIGHTS_DIR, 'digits_classifier.json'))
    self.assertEqual(acc, meta['test_accuracy'])
    self.assertGreaterEqual(acc, 0.97)

  def test_batches_and_resizing(self):
    feats, _ = self.extractor.extract(self.test_x)
    small, _ = self.extractor.extract(self.test_x[:50], batch_size=7)
    np.testing.assert_allclose(small, feats[:50], rtol=1e-5, atol=1e-5)
    # 8x8 inputs are resized to the classifier's 16x16 the way the
    # reference loader resizes them.
    x8, _ = reference.digits('test', size=8)
    f8, _ = self.extractor.extract(x8[:20])
    np.testing.assert_allclose(f8, feats[:20], rtol=1e-4, atol=1e-4)

  def test_split_is_fixed_and_disjoint(self):
    idx = reference.digits_split_indices()
    self.assertEqual((len(idx['train']), len(idx['test'])), (1437, 360))
    self.assertEmpty(np.intersect1d(idx['train'], idx['test']))
    self.assertEqual(idx['test'][:5].tolist(),
                     np.sort(np.random.default_rng(0).permutation(1797)[:360])
                     [:5].tolist())

  def test_changed_weights_are_refused(self):
    _, path = self._changed_copy()
    with self.assertRaisesRegex(features.FeatureError,
                                'changed or corrupted$'):
      features.get('digits_classifier', path)


class ClassifierTrainingTest(absltest.TestCase):

  def test_few_steps_save_and_load(self):
    x, y = reference.digits('train')
    tx, ty = reference.digits('test')
    a = classifier.train(x[:128], y[:128], tx[:64], ty[:64], steps=4,
                         batch_size=16, seed=3)
    self.assertEqual(a.steps, 4)
    shapes = jax.tree.map(np.shape, a.params)
    self.assertEqual(shapes['Dense_0']['kernel'], (4 * 4 * 64, 128))
    self.assertEqual(shapes['Dense_1']['kernel'], (128, 10))
    # Accuracy is the arg-max logit against the labels.
    model = classifier.Classifier()
    logits = model.apply({'params': a.params}, tx[:64])[1]
    self.assertEqual(a.test_accuracy,
                     float(np.mean(np.argmax(logits, 1) == ty[:64])))
    path = os.path.join(self.create_tempdir().full_path, 'digits_classifier.msgpack')
    meta = classifier.save(path, a.params, {'name': 'digits_classifier',
                                            'image_size': [16, 16, 1],
                                            'num_classes': 10})
    self.assertEqual(meta['sha256'], features.sha256_file(path))
    ext = features.get('digits_classifier', path)
    feats, got = ext.extract(tx[:64])
    want_feats, want_logits = model.apply({'params': a.params}, tx[:64])
    np.testing.assert_allclose(feats, want_feats, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, want_logits, rtol=1e-5, atol=1e-6)


# torchvision's Inception3 has 27,161,264 parameters; without the auxiliary
# head (3,326,696) and with 1008 instead of 1000 classes (+8 x 2049).
_TORCH_PARAMETERS = 27_161_264 - 3_326_696 + 8 * 2049
# A few keys and shapes of pytorch-fid's state dict (torch layout).
_TORCH_KEYS = {
    'Conv2d_1a_3x3.conv.weight': (32, 3, 3, 3),
    'Conv2d_4a_3x3.bn.running_var': (192,),
    'Mixed_5b.branch_pool.conv.weight': (32, 192, 1, 1),
    'Mixed_5d.branch5x5_2.conv.weight': (64, 48, 5, 5),
    'Mixed_6a.branch3x3.conv.weight': (384, 288, 3, 3),
    'Mixed_6b.branch7x7_2.conv.weight': (128, 128, 1, 7),
    'Mixed_6e.branch7x7dbl_5.conv.weight': (192, 192, 1, 7),
    'Mixed_7a.branch3x3_2.conv.weight': (320, 192, 3, 3),
    'Mixed_7b.branch3x3dbl_1.conv.weight': (448, 1280, 1, 1),
    'Mixed_7c.branch3x3dbl_3b.conv.weight': (384, 384, 3, 1),
    'Mixed_7c.branch_pool.conv.weight': (192, 2048, 1, 1),
    'fc.weight': (1008, 2048),
    'fc.bias': (1008,),
}


def _torch_state_dict(rng):
  """A random state dict in pytorch-fid's key names and torch layouts."""
  state = {}
  flat = traverse_util.flatten_dict(inception_v3.abstract_params())
  for path, spec in flat.items():
    module, leaf = '.'.join(path[:-1]), path[-1]
    if leaf == 'kernel' and len(spec.shape) == 4:   # HWIO -> OIHW
      kh, kw, i, o = spec.shape
      state[f'{module}.weight'] = rng.normal(size=(o, i, kh, kw)).astype(
          np.float32)
    elif leaf == 'kernel':
      state[f'{module}.weight'] = rng.normal(size=spec.shape[::-1]).astype(
          np.float32)
    else:
      name = {'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean',
              'var': 'running_var'}[leaf]
      value = rng.uniform(0.5, 1.5, spec.shape).astype(np.float32)
      state[f'{module}.{name}'] = value
      if leaf == 'var':
        state[f'{module}.num_batches_tracked'] = np.array(0)
  return state


class InceptionTest(absltest.TestCase):

  def test_parameter_count_and_torch_shapes(self):
    flat = traverse_util.flatten_dict(inception_v3.abstract_params(), sep='/')
    self.assertLen(flat, 472)
    self.assertEqual(sum(int(np.prod(v.shape)) for k, v in flat.items()
                         if not k.endswith(('/mean', '/var'))),
                     _TORCH_PARAMETERS)
    state = _torch_state_dict(np.random.default_rng(0))
    for key, shape in _TORCH_KEYS.items():
      self.assertEqual(state[key].shape, shape, key)

  def test_output_shapes(self):
    params = inception_v3.abstract_params()
    for shape in ((2, 299, 299, 3), (3, 16, 16, 1), (1, 64, 48, 3)):
      pool3, logits = jax.eval_shape(
          lambda p, x: inception_v3.FIDInceptionV3().apply({'params': p}, x),
          params, jax.ShapeDtypeStruct(shape, jnp.float32))
      self.assertEqual((pool3.shape, logits.shape),
                       ((shape[0], 2048), (shape[0], 1008)))

  def test_preprocess_matches_pytorch_fid_resize(self):
    # Bilinear, align_corners=False: output pixel i samples input coordinate
    # (i + 0.5) * in / out - 0.5, clamped to the border.
    x = np.random.default_rng(1).uniform(-1, 1, (1, 5, 4, 1)).astype(np.float32)
    got = np.asarray(inception_v3.preprocess(x))
    self.assertEqual(got.shape, (1, 299, 299, 3))

    def weights(n_in, n_out):
      w = np.zeros((n_out, n_in))
      for i in range(n_out):
        c = min(max((i + 0.5) * n_in / n_out - 0.5, 0), n_in - 1)
        lo = int(np.floor(c))
        hi = min(lo + 1, n_in - 1)
        w[i, lo] += 1 - (c - lo)
        w[i, hi] += c - lo
      return w
    want = weights(5, 299) @ x[0, :, :, 0] @ weights(4, 299).T
    for c in range(3):
      np.testing.assert_allclose(got[0, :, :, c], want, atol=1e-5)

  def test_conversion_round_trip(self):
    conv = inception_converter()
    state = _torch_state_dict(np.random.default_rng(2))
    params = conv.convert_state_dict(state)
    flat = traverse_util.flatten_dict(params, sep='/')
    np.testing.assert_array_equal(
        flat['Mixed_6b/branch7x7_2/conv/kernel'],
        state['Mixed_6b.branch7x7_2.conv.weight'].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(flat['fc/kernel'], state['fc.weight'].T)
    np.testing.assert_array_equal(flat['Mixed_7c/branch_pool/bn/var'],
                                  state['Mixed_7c.branch_pool.bn.running_var'])
    tmp = self.create_tempdir().full_path
    path = os.path.join(tmp, 'inception.msgpack')
    meta = conv.write(params, path, {'name': 'inception_v3'})
    ext = features.get('inception_v3', path)
    self.assertEqual(ext.weights_sha256, meta['sha256'])
    self.assertEqual(meta['sha256'], features.sha256_file(path))
    self.assertEqual((ext.feature_dim, ext.num_classes), (2048, 1008))
    loaded = traverse_util.flatten_dict(inception_v3.load_params(path),
                                        sep='/')
    self.assertEqual(set(loaded), set(flat))
    for key in flat:
      np.testing.assert_array_equal(loaded[key], flat[key])
    del state['Mixed_5c.branch1x1.bn.running_mean']
    with self.assertRaisesRegex(ValueError, '1 parameters missing'):
      conv.convert_state_dict(state)
    state['Mixed_5c.branch1x1.bn.running_mean'] = np.zeros(64, np.float32)
    state['AuxLogits.fc.weight'] = np.zeros((1008, 768), np.float32)
    with self.assertRaisesRegex(ValueError, 'unexpected parameters'):
      conv.convert_state_dict(state)

  def test_basic_conv_matches_torch_semantics(self):
    # conv2d (cross-correlation, OIHW weights, symmetric zero padding), then
    # inference batch norm with eps 1e-3, then ReLU, written out in numpy.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 9, 3)).astype(np.float32)
    w = rng.normal(size=(4, 3, 1, 7)).astype(np.float32)    # torch OIHW
    bn = {k: rng.uniform(0.5, 1.5, 4).astype(np.float32)
          for k in ('weight', 'bias', 'running_mean', 'running_var')}
    state = {'m.conv.weight': w, **{f'm.bn.{k}': v for k, v in bn.items()}}
    flat = {}
    for key, value in state.items():
      module, _, leaf = key.rpartition('.')
      flat[module.replace('.', '/') + '/' + {
          'weight': 'kernel' if value.ndim == 4 else 'scale', 'bias': 'bias',
          'running_mean': 'mean', 'running_var': 'var'}[leaf]] = (
              value.transpose(2, 3, 1, 0) if value.ndim == 4 else value)
    params = traverse_util.unflatten_dict(flat, sep='/')['m']
    got = inception_v3.BasicConv(4, (1, 7), padding=(0, 3)).apply(
        {'params': params}, x)
    xp = np.pad(x, ((0, 0), (0, 0), (3, 3), (0, 0)))
    conv = np.zeros((2, 6, 9, 4))
    for i in range(6):
      for j in range(9):
        patch = xp[:, i:i + 1, j:j + 7, :]               # (B, 1, 7, C)
        conv[:, i, j, :] = np.einsum('bhwc,ochw->bo', patch, w)
    want = np.maximum((conv - bn['running_mean']) / np.sqrt(
        bn['running_var'] + 1e-3) * bn['weight'] + bn['bias'], 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

  def test_fid_pools(self):
    # Average pool 3x3/1/1 without padded zeros: a corner averages 4 values.
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    avg = np.asarray(inception_v3._avg_pool_same(x))[0, :, :, 0]
    self.assertEqual(avg[0, 0], np.mean([0, 1, 4, 5]))
    self.assertEqual(avg[1, 1], np.mean([0, 1, 2, 4, 5, 6, 8, 9, 10]))
    # Max pool 3x3/1/1 pads with -inf: negative inputs stay negative.
    mx = np.asarray(inception_v3._max_pool(-x - 1, 1, 1))[0, :, :, 0]
    self.assertEqual(mx[0, 0], -1.0)
    self.assertEqual(mx[3, 3], -11.0)



class MnistClassifierPipelineTest(absltest.TestCase):
  """The mnist_classifier path end to end on `tfds.testing.mock_data`: TFDS
  MNIST -> classifier training -> weights with their hash -> the extractor
  (the accuracy on random mock images means nothing; the plumbing does)."""

  def test_train_save_load_extract(self):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    from gan_jax import features  # pylint: disable=g-import-not-at-top
    from gan_jax.features import classifier  # pylint: disable=g-import-not-at-top
    from gan_jax.metrics import reference  # pylint: disable=g-import-not-at-top
    with tfds.testing.mock_data(num_examples=48,
                                policy=tfds.testing.MockPolicy.USE_CODE):
      train_x, train_y = reference.mnist('train')
      test_x, test_y = reference.mnist('test')
    self.assertEqual(train_x.shape, (48, 28, 28, 1))
    self.assertBetween(float(train_x.min()), -1.0, 1.0)
    result = classifier.train(train_x, train_y, test_x, test_y, steps=3,
                              batch_size=16)
    path = os.path.join(self.create_tempdir().full_path,
                        'mnist_classifier.msgpack')
    meta = classifier.save(path, result.params, {
        'name': 'mnist_classifier', 'dataset': 'mnist',
        'image_size': list(train_x.shape[1:]), 'num_classes': 10,
        'test_accuracy': result.test_accuracy})
    extractor = features.get('mnist_classifier', path)
    self.assertEqual(extractor.weights_sha256, meta['sha256'])
    feats, logits = extractor.extract(test_x[:10])
    self.assertEqual(feats.shape, (10, classifier.FEATURE_DIM))
    self.assertEqual(logits.shape, (10, 10))


if __name__ == '__main__':
  absltest.main()
