"""gan_jax's FID Inception against pytorch-fid's, end to end.

pytorch-fid (the `torch-reference` extra: torch, torchvision, pytorch-fid;
`make test` installs it) builds its FID network, `InceptionV3` over
`fid_inception_v3()`, with its weight download patched out: its
`load_state_dict_from_url` returns a seeded random state dict made here from
pytorch-fid's own module tree (He-normal convolutions, an fc layer, and
batch-norm running statistics measured on a calibration batch and then
perturbed, so every layer's activations stay O(1) and vary across images
instead of dying or exploding through 94 conv layers). That state dict is
converted with tools/convert_inception_weights.py, and gan_jax's
`FIDInceptionV3` and pytorch-fid's network then see the same images at five
sizes: 299x299x3 (no resize), 32x32x3 and 28x28x1 (upsampled; the gray image
is repeated to RGB for pytorch-fid), 64x48x3 and 400x320x3 (non-square,
up and down). Each implementation does its own resizing to 299x299
(`jax.image.resize(..., 'bilinear', antialias=False)` on [-1, 1] images,
`F.interpolate(..., mode='bilinear', align_corners=False)` then `2x - 1` on
[0, 1] images) and its own [0, 1] -> [-1, 1] mapping.

Measured on a shared 2-core x86-64 CPU (torch 2.13.0 CPU, jax 0.10.2),
float32, over all five sizes:

  * resized input, gan_jax vs F.interpolate: max abs error 2.4e-7
    (identical up to float rounding: the same sampling positions and border
    clamping, no antialiasing on either side);
  * pool3 (2048-d, mean ~2, largest values ~10-24): max abs error 1.3e-4,
    max relative error (to the largest |value| at that size) 6.9e-6;
  * logits (1008-d, largest ~8-19): max abs error 7.7e-5, relative 4.5e-6;
  * FID between the two image sets (10 vs 10 images, FID ~ 1826):
    pytorch-fid's `calculate_frechet_distance` on pytorch-fid's features vs
    `gan_jax.metrics.frechet_distance` on gan_jax's features: relative
    difference 2.3e-6; the two formulas on the same features: 8e-9. Both
    are computed in the features' span coordinates (`_span_coordinates`,
    exact): pytorch-fid's 2048-d sqrtm of this rank-19 product took 100 s
    and was itself off by 3.2e-6 relative.

The asserted tolerances are about ten times these. Wrong networks are far
outside them: with Mixed_5b's first two branches swapped pool3 moved by 15.7,
with an antialiased resize by 2.3 (at 400x320, the one downsampled size).
"""

import os
import sys
import unittest
from unittest import mock

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.features import inception_v3
from gan_jax.metrics import frechet
from tests import features_test

_INSTALL = ("pip install -e '.[dev,torch-reference]' (make test does this)")

torch = None   # imported by the tests' setUpClass (`_require_torch`), not
               # at collection: other tests in the same worker never load it

# Sizes (H, W, C) the images come in; both networks resize to 299x299.
SIZES = ((299, 299, 3), (32, 32, 3), (28, 28, 1), (64, 48, 3), (400, 320, 3))
IMAGES_PER_SET = 2     # per size and per image set (two sets, for FID)
POOL3_ATOL, POOL3_RTOL = 1e-3, 1e-4
LOGITS_ATOL, LOGITS_RTOL = 5e-4, 5e-5
RESIZE_ATOL = 3e-6
FID_RTOL = 3e-5


def _require_torch():
  """Imports torch, part of `make test`'s install: in CI its absence is an
  error; elsewhere the tests skip, saying why and how to install it."""
  global torch
  try:
    import torch as torch_module  # pylint: disable=g-import-not-at-top
  except ImportError:
    torch_module = None
  if torch_module is not None:
    torch = torch_module
    return
  if os.environ.get('CI'):
    raise ImportError('the pytorch-fid comparison needs torch, which is not '
                      f'installed: {_INSTALL}')
  raise unittest.SkipTest('NOT RUN: gan_jax vs pytorch-fid needs torch, '
                          f'torchvision and pytorch-fid: {_INSTALL}')


def _import_pytorch_fid():
  """pytorch_fid.inception and .fid_score.

  PyPI's torchvision wheel links its C++ operators against PyPI's (CUDA)
  build of torch. Beside a CPU build of the same torch release those
  operators do not load, and `import torchvision` then fails registering
  fake kernels for the undeclared `torchvision::nms` and `::qnms`. Only
  torchvision's pure-Python Inception blocks are used here, so the two
  schemas are declared (as torchvision's own library declares them) and the
  import retried; with matching builds the first import succeeds and
  nothing is declared.
  """
  try:
    import torchvision  # pylint: disable=g-import-not-at-top,unused-import
  except RuntimeError as e:
    if 'torchvision::nms' not in str(e):
      raise
    for name in [m for m in sys.modules if m.startswith('torchvision')]:
      del sys.modules[name]
    lib = torch.library.Library('torchvision', 'DEF')
    lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    lib.define('qnms(Tensor dets, Tensor scores, float iou_threshold) -> '
               'Tensor')
    _import_pytorch_fid.keep_alive = lib
    import torchvision  # pylint: disable=g-import-not-at-top,unused-import,redefined-outer-name
  from pytorch_fid import fid_score  # pylint: disable=g-import-not-at-top
  from pytorch_fid import inception  # pylint: disable=g-import-not-at-top
  return inception, fid_score


def _images(rng, n, shape, high_frequency):
  """n images (n, C, H, W) in [0, 1]: a squashed sum of six random plane
  waves (low or high spatial frequency) plus pixel noise."""
  h, w, c = shape
  yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w),
                       indexing='ij')
  out = np.zeros((n, c, h, w))
  top = 9.0 if high_frequency else 3.0
  for i in range(n):
    for ch in range(c):
      field = np.zeros((h, w))
      for _ in range(6):
        fy, fx = rng.uniform(-top, top, 2)
        field += rng.normal() * np.sin(2 * np.pi * (fy * yy + fx * xx)
                                       + rng.uniform(0, 2 * np.pi))
      noise = (0.15 if high_frequency else 0.05) * rng.normal(size=(h, w))
      out[i, ch] = 1 / (1 + np.exp(-0.8 * field)) + noise
  return np.clip(out, 0, 1).astype(np.float32)


def _seeded_state_dict(pfi, seed):
  """A random state dict for pytorch-fid's `fid_inception_v3`, in its keys.

  The key set and shapes come from pytorch-fid's module tree (built once
  with the download and the load patched out). Convolutions are He-normal,
  N(0, 2 / fan_in); batch-norm scale U(0.8, 1.2), shift N(0, 0.1); fc
  N(0, 1 / 2048). The running means and variances are the batch statistics
  of a calibration batch (cumulative averages in training mode), then
  perturbed (mean + 0.2 sd N(0, 1), variance x U(0.7, 1.4)) so inference
  does not see exactly standardised activations.
  """
  rng = np.random.default_rng(seed)
  with mock.patch.object(pfi, 'load_state_dict_from_url',
                         lambda *a, **k: {}), \
       mock.patch.object(torch.nn.Module, 'load_state_dict',
                         lambda self, *a, **k: None):
    net = pfi.fid_inception_v3()
  state = {}
  for key, value in net.state_dict().items():
    shape = tuple(value.shape)
    if key.endswith(('running_mean', 'running_var', 'num_batches_tracked')):
      state[key] = value.clone()
      continue
    if key.endswith('conv.weight'):
      array = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
    elif key.endswith('bn.weight'):
      array = rng.uniform(0.8, 1.2, shape)
    elif key.endswith('bn.bias'):
      array = rng.normal(0, 0.1, shape)
    elif key == 'fc.weight':
      array = rng.normal(0, np.sqrt(1.0 / shape[1]), shape)
    elif key == 'fc.bias':
      array = rng.normal(0, 0.1, shape)
    else:
      raise KeyError(f'unexpected key {key} in pytorch-fid\'s network')
    state[key] = torch.from_numpy(array.astype(np.float32))
  net.load_state_dict(state)
  for module in net.modules():
    if isinstance(module, torch.nn.BatchNorm2d):
      module.momentum = None      # cumulative average over the batch
      module.reset_running_stats()
  calibration = np.concatenate([
      _images(rng, 2, (299, 299, 3), high_frequency=False),
      _images(rng, 2, (299, 299, 3), high_frequency=True)])
  net.train()
  with torch.no_grad():
    net(torch.from_numpy(2 * calibration - 1))
  state = {k: v.detach().clone() for k, v in net.state_dict().items()}
  for key in [k for k in state if k.endswith('running_mean')]:
    var_key = key[:-len('mean')] + 'var'
    sd = torch.sqrt(state[var_key])
    noise = rng.normal(size=tuple(sd.shape)).astype(np.float32)
    state[key] = state[key] + 0.2 * sd * torch.from_numpy(noise)
    scale = rng.uniform(0.7, 1.4, tuple(sd.shape)).astype(np.float32)
    state[var_key] = state[var_key] * torch.from_numpy(scale)
  return state


def _span_coordinates(a, b):
  """The rows of a (n, d) and b (m, d) in an orthonormal basis of the span
  of their differences from a[0], a (n + m)-d subspace: a translation and an
  isometry onto a subspace holding every centred feature and the mean
  difference, so ||mu_a - mu_b||^2, Tr S and Tr (S_a S_b)^(1/2), and with
  them the Frechet distance, are unchanged."""
  x = np.concatenate([a, b]).astype(np.float64)
  x = x - x[0]
  basis, _ = np.linalg.qr(x.T)            # (d, n + m), orthonormal columns
  y = x @ basis
  return y[:len(a)], y[len(a):]


def _max_errors(got, want):
  err = float(np.max(np.abs(np.asarray(got, np.float64) - want)))
  return err, err / float(np.max(np.abs(want)))


class PytorchFidAgreementTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    _require_torch()
    cls.pfi, cls.fid_score = _import_pytorch_fid()
    state = _seeded_state_dict(cls.pfi, seed=0)
    with mock.patch.object(cls.pfi, 'load_state_dict_from_url',
                           lambda *a, **k: state):
      cls.torch_pool3_net = cls.pfi.InceptionV3(
          [cls.pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
      cls.torch_fc = cls.pfi.fid_inception_v3().eval().fc
    params = features_test.inception_converter().convert_state_dict(
        {k: v.numpy() for k, v in state.items()})
    params = jax.tree.map(jnp.asarray, params)
    # Not jitted: op by op, the 299x299 layers compile once for all sizes.
    def network(x):
      return inception_v3.FIDInceptionV3().apply({'params': params}, x)
    rng = np.random.default_rng(1)
    cls.results = {}
    for shape in SIZES:
      images01 = np.concatenate([
          _images(rng, IMAGES_PER_SET, shape, high_frequency=False),
          _images(rng, IMAGES_PER_SET, shape, high_frequency=True)])
      rgb01 = np.repeat(images01, 3, axis=1) if shape[2] == 1 else images01
      with torch.no_grad():
        pool3 = cls.torch_pool3_net(torch.from_numpy(rgb01))[0][:, :, 0, 0]
        logits = cls.torch_fc(pool3)
      ours = 2 * images01.transpose(0, 2, 3, 1) - 1     # NHWC in [-1, 1]
      our_pool3, our_logits = network(jnp.asarray(ours))
      cls.results[shape] = dict(
          images01=images01, ours=ours,
          torch_pool3=pool3.numpy().astype(np.float64),
          torch_logits=logits.numpy().astype(np.float64),
          our_pool3=np.asarray(our_pool3), our_logits=np.asarray(our_logits))

  def test_activations_are_not_degenerate(self):
    # The comparison means something only if the random network's pool3
    # varies across images and is neither all zero nor huge.
    for shape, r in self.results.items():
      pool3 = r['torch_pool3']
      self.assertLess(np.mean(pool3 == 0), 0.05, shape)
      self.assertBetween(float(np.mean(pool3)), 0.1, 10.0)
      self.assertGreater(float(np.mean(np.std(pool3, axis=0))), 0.05, shape)

  def test_resize_matches_f_interpolate(self):
    for shape, r in self.results.items():
      x = torch.from_numpy(np.repeat(r['images01'], 3, axis=1)
                           if shape[2] == 1 else r['images01'])
      want = 2 * torch.nn.functional.interpolate(
          x, size=(299, 299), mode='bilinear', align_corners=False) - 1
      got = inception_v3.preprocess(jnp.asarray(r['ours']))
      err, _ = _max_errors(np.asarray(got).transpose(0, 3, 1, 2),
                           want.numpy().astype(np.float64))
      self.assertLess(err, RESIZE_ATOL, shape)

  def test_pool3_and_logits_match_pytorch_fid(self):
    for shape, r in self.results.items():
      self.assertEqual(r['our_pool3'].shape, (2 * IMAGES_PER_SET, 2048))
      self.assertEqual(r['our_logits'].shape, (2 * IMAGES_PER_SET, 1008))
      err, rel = _max_errors(r['our_pool3'], r['torch_pool3'])
      self.assertLess(err, POOL3_ATOL, f'pool3 at {shape}')
      self.assertLess(rel, POOL3_RTOL, f'pool3 at {shape}')
      err, rel = _max_errors(r['our_logits'], r['torch_logits'])
      self.assertLess(err, LOGITS_ATOL, f'logits at {shape}')
      self.assertLess(rel, LOGITS_RTOL, f'logits at {shape}')

  def _sets(self, key):
    first = np.concatenate([r[key][:IMAGES_PER_SET]
                            for r in self.results.values()])
    second = np.concatenate([r[key][IMAGES_PER_SET:]
                             for r in self.results.values()])
    return first, second

  def _pytorch_fid(self, a, b):
    """pytorch-fid's statistics (as in calculate_activation_statistics) and
    its calculate_frechet_distance (which passes `disp=False` to
    scipy.linalg.sqrtm, deprecated since SciPy 1.16 and announced for
    removal in 1.18)."""
    return float(self.fid_score.calculate_frechet_distance(
        np.mean(a, axis=0), np.cov(a, rowvar=False),
        np.mean(b, axis=0), np.cov(b, rowvar=False)))

  def test_fid_matches_pytorch_fid(self):
    # Each implementation's FID on its own features, both taken to their
    # span coordinates (the same FID; 19-d instead of 2048-d statistics).
    want = self._pytorch_fid(*_span_coordinates(*self._sets('torch_pool3')))
    self.assertGreater(want, 100.0)   # the two image sets differ
    got = frechet.frechet_distance(*_span_coordinates(*self._sets('our_pool3')))
    self.assertLess(abs(got - want) / want, FID_RTOL, (got, want))
    # The two formulas alone, on the same (pytorch-fid's) features.
    same = frechet.frechet_distance(
        *_span_coordinates(*self._sets('torch_pool3')))
    self.assertLess(abs(same - want) / want, 1e-7, (same, want))


if __name__ == '__main__':
  absltest.main()
