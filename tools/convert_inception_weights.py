"""Converts pytorch-fid's FID Inception weights to gan_jax's Flax msgpack.

    python tools/convert_inception_weights.py pt_inception-2015-12-05-6726825d.pth \
        [--out ~/.cache/gan_jax/weights/pt_inception-2015-12-05.msgpack]

The source is the PyTorch state dict that pytorch-fid uses for FID
(released as https://github.com/mseitzer/pytorch-fid/releases/download/
fid_weights/pt_inception-2015-12-05-6726825d.pth; ported from
TensorFlow's inception-2015-12-05.tgz). Obtain it yourself; this script
reads a local file only. As in torch.hub's naming, the 8 hex digits in the
file name are the start of the file's SHA-256; the script refuses a source
whose SHA-256 does not start with them (pass --any_source to convert another
state dict of the same architecture). Reading the .pth needs PyTorch
(`pip install torch`); nothing else here does.

Mapping (torch key -> Flax parameter path), 472 arrays:

    NAME.conv.weight (O, I, kh, kw)  -> NAME/conv/kernel (kh, kw, I, O)
    NAME.bn.weight / bias            -> NAME/bn/scale / bias
    NAME.bn.running_mean / _var      -> NAME/bn/mean / var
    fc.weight (1008, 2048) / fc.bias -> fc/kernel (2048, 1008) / fc/bias

`num_batches_tracked` counters are dropped. The output is written with
`flax.serialization.msgpack_serialize` (float32), with a JSON beside it that
records the source's SHA-256 and the output's SHA-256; `gan_jax.features`
checks the latter on every load, and every metric result records it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np

SOURCE_NAME = 'pt_inception-2015-12-05-6726825d.pth'
SOURCE_SHA256_PREFIX = '6726825d'


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def convert_state_dict(state_dict) -> dict:
  """Torch-layout arrays by torch key -> the nested Flax parameter dict.

  Raises ValueError naming the first missing, unexpected or misshapen key.
  """
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from gan_jax.features import inception_v3  # pylint: disable=g-import-not-at-top
  want = traverse_util.flatten_dict(inception_v3.abstract_params(), sep='/')
  flat = {}
  for key, value in state_dict.items():
    if key.endswith('num_batches_tracked'):
      continue
    value = np.asarray(value, np.float32)
    module, _, leaf = key.rpartition('.')
    path = module.replace('.', '/')
    if leaf == 'weight' and value.ndim == 4:      # conv OIHW -> HWIO
      flat[f'{path}/kernel'] = value.transpose(2, 3, 1, 0)
    elif leaf == 'weight' and value.ndim == 2:    # linear (out, in) -> (in, out)
      flat[f'{path}/kernel'] = value.T
    elif module.endswith('bn') and leaf in ('weight', 'bias', 'running_mean',
                                            'running_var'):
      name = {'weight': 'scale', 'bias': 'bias', 'running_mean': 'mean',
              'running_var': 'var'}[leaf]
      flat[f'{path}/{name}'] = value
    elif leaf == 'bias':
      flat[f'{path}/bias'] = value
    else:
      raise ValueError(f'unexpected key {key!r} with shape {value.shape}')
  missing = sorted(set(want) - set(flat))
  extra = sorted(set(flat) - set(want))
  if missing:
    raise ValueError(f'{len(missing)} parameters missing from the state dict, '
                     f'e.g. {missing[0]}')
  if extra:
    raise ValueError(f'{len(extra)} unexpected parameters, e.g. {extra[0]} '
                     '(not the FID Inception architecture)')
  for path, spec in want.items():
    if flat[path].shape != spec.shape:
      raise ValueError(f'{path}: shape {flat[path].shape}, expected '
                       f'{spec.shape}')
  return traverse_util.unflatten_dict(flat, sep='/')


def write(params: dict, out: str, metadata: dict) -> dict:
  """Writes params as msgpack and metadata (+ the output's SHA-256) as JSON."""
  from flax import serialization  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  tmp = f'{out}.tmp-{os.getpid()}'
  with open(tmp, 'wb') as f:
    f.write(serialization.msgpack_serialize(params))
  os.replace(tmp, out)
  metadata = {**metadata, 'sha256': _sha256(out),
              'file': os.path.basename(out)}
  with open(os.path.splitext(out)[0] + '.json', 'w') as f:
    f.write(json.dumps(metadata, indent=2, sort_keys=True) + '\n')
  return metadata


def load_torch_state_dict(path: str) -> dict:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise SystemExit('error: reading a .pth needs PyTorch: pip install torch') \
        from None
  state = torch.load(path, map_location='cpu', weights_only=True)
  return {k: v.numpy() for k, v in state.items()}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('source', help=f'path to {SOURCE_NAME}')
  parser.add_argument('--out', default=None, help='output msgpack (default: '
                      '$GAN_JAX_INCEPTION_WEIGHTS or ~/.cache/gan_jax/weights/'
                      'pt_inception-2015-12-05.msgpack)')
  parser.add_argument('--any_source', action='store_true',
                      help='convert a source whose SHA-256 does not start '
                      f'with {SOURCE_SHA256_PREFIX}')
  args = parser.parse_args(argv)
  from gan_jax.features import inception_v3  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(args.source):
    raise SystemExit(f'error: {args.source} is not a file')
  source_sha = _sha256(args.source)
  if not source_sha.startswith(SOURCE_SHA256_PREFIX) and not args.any_source:
    raise SystemExit(f'error: {args.source} has SHA-256 {source_sha}, which '
                     f'does not start with {SOURCE_SHA256_PREFIX} as '
                     f'{SOURCE_NAME} does; pass --any_source to convert it '
                     'anyway')
  try:
    params = convert_state_dict(load_torch_state_dict(args.source))
  except ValueError as e:
    raise SystemExit(f'error: {args.source}: {e}') from None
  out = os.path.expanduser(args.out or inception_v3.default_weights_path())
  meta = write(params, out, {
      'name': 'inception_v3', 'source_file': os.path.basename(args.source),
      'source_sha256': source_sha, 'num_classes': inception_v3.NUM_CLASSES,
      'feature_dim': inception_v3.FEATURE_DIM})
  print(f'wrote {out} (sha256 {meta["sha256"]}) from {args.source} '
        f'(sha256 {source_sha})')


if __name__ == '__main__':
  sys.exit(main())
