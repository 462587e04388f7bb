"""Training steps: chunking invariance, scan vs Python loop, separate
optimizers, weight clipping and a golden one-step regression."""

import json
import os

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import loop
from gan_jax import train
from gan_jax.config import Config

TINY = Config(workdir='/tmp/unused', dataset='ring8', loss='non_saturating',
              model='mlp', batch_size=32, z_dim=4, g_hidden=(16, 16),
              d_hidden=(16, 16), num_steps=12, log_every=4, g_lr=1e-3,
              d_lr=1e-3, seed=3)
GOLDEN = os.path.join(os.path.dirname(__file__), 'golden', 'one_step.json')


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _run_chunks(config, chunks):
  _, steps, state = train.build(config)
  runner = loop.ChunkRunner(steps.train_step)
  for n in chunks:
    state, _ = runner(state, n)
  return state


class StepsTest(absltest.TestCase):

  def test_result_does_not_depend_on_chunking(self):
    a = _run_chunks(TINY, [12])
    b = _run_chunks(TINY, [4, 4, 4])
    c = _run_chunks(TINY, [5, 7])
    self.assertEqual(int(a.step), 12)
    for x, y, z in zip(_leaves(a), _leaves(b), _leaves(c)):
      np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
      np.testing.assert_allclose(x, z, rtol=1e-6, atol=1e-7)

  def test_scan_matches_python_loop_of_jitted_steps(self):
    a = _run_chunks(TINY, [6])
    _, steps, state = train.build(TINY)
    step = jax.jit(steps.train_step)
    for _ in range(6):
      state, _ = step(state)
    for x, y in zip(_leaves(a), _leaves(state)):
      np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)

  def test_each_player_has_its_own_learning_rate(self):
    # Adam's first update is -lr * g / (|g| + eps): every parameter with a
    # non-negligible gradient moves by (almost exactly) its player's rate.
    config = TINY.replace(g_lr=1e-5, d_lr=3e-2)
    _, steps, state = train.build(config)
    new, _ = jax.jit(steps.train_step)(state)
    for player, lr in (('d_params', 3e-2), ('g_params', 1e-5)):
      delta = np.concatenate([np.abs(a - b).ravel() for a, b in zip(
          _leaves(getattr(new, player)), _leaves(getattr(state, player)))])
      np.testing.assert_allclose(delta.max(), lr, rtol=5e-3)

  def test_d_steps_runs_that_many_d_updates(self):
    config = TINY.replace(d_steps=3)
    _, steps, state = train.build(config)
    new, _ = jax.jit(steps.train_step)(state)
    self.assertEqual(int(new.d_opt_state[0].count), 3)
    self.assertEqual(int(new.g_opt_state[0].count), 1)
    self.assertEqual(int(new.step), 1)

  def test_weight_clipping_bounds_every_d_parameter(self):
    config = TINY.replace(loss='wasserstein', d_weight_clip=0.01, d_lr=0.1)
    _, steps, state = train.build(config)
    new, _ = jax.jit(steps.train_step)(state)
    flat = np.concatenate([x.ravel() for x in _leaves(new.d_params)])
    self.assertLessEqual(np.abs(flat).max(), 0.01)
    np.testing.assert_allclose(np.abs(flat).max(), 0.01)  # and it binds

  def test_golden_one_step(self):
    """Regression: one train_step from a fixed seed, every parameter leaf of
    both players (by its path in the tree) and the step's losses.

    To update the reference after an intended change, run
        GAN_JAX_UPDATE_GOLDEN=one_step python -m pytest tests/steps_test.py -k golden
    which rewrites tests/golden/one_step.json, prints what changed and fails
    with 'golden updated' (an updating run never counts as a pass)."""
    _, steps, state = train.build(TINY)
    new, metrics = jax.jit(steps.train_step)(state)
    observed = _golden_record(new, metrics)
    with open(GOLDEN) as f:
      expected = json.load(f)
    if os.environ.get('GAN_JAX_UPDATE_GOLDEN') == 'one_step':
      changes = _golden_diff(expected, observed)
      with open(GOLDEN, 'w') as f:
        f.write(_golden_text(observed))
      print('\n'.join(changes) or 'golden: nothing changed')
      self.fail(f'golden updated: {GOLDEN} rewritten ({len(changes)} '
                'entries changed, listed above); rerun without '
                'GAN_JAX_UPDATE_GOLDEN to test against it')
    self.assertEqual(sorted(observed), sorted(expected))
    for key in ('d_loss', 'g_loss', 'value'):
      np.testing.assert_allclose(observed[key], expected[key], rtol=1e-5,
                                 atol=1e-6, err_msg=key + _UPDATE_HINT)
    for player in ('g_params', 'd_params'):
      self.assertEqual(sorted(observed[player]), sorted(expected[player]),
                       player + _UPDATE_HINT)
      for path, leaf in expected[player].items():
        got = np.asarray(observed[player][path])
        self.assertEqual(got.shape, np.shape(leaf), f'{player}{path}')
        np.testing.assert_allclose(got, np.asarray(leaf), rtol=1e-5, atol=1e-6,
                                   err_msg=f'{player}{path}' + _UPDATE_HINT)


_UPDATE_HINT = (' changed; if intended, update the reference with '
                'GAN_JAX_UPDATE_GOLDEN=one_step python -m pytest '
                'tests/steps_test.py -k golden')


def _golden_record(state, metrics):
  """{d_loss, g_loss, value, g_params, d_params}: each player's parameters as
  {path in the tree: nested list of the leaf's float32 values}."""
  def leaves(params):
    return {jax.tree_util.keystr(path): np.asarray(leaf, np.float32).tolist()
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
  return {'d_loss': float(metrics['d_loss']),
          'g_loss': float(metrics['g_loss']),
          'value': float(metrics['value']),
          'g_params': leaves(state.g_params),
          'd_params': leaves(state.d_params)}


def _golden_text(record):
  """`record` as JSON, one line a leaf, each float32 in the 9 significant
  digits that give it back exactly."""
  def compact(value):
    return json.dumps(jax.tree.map(lambda x: float(f'{x:.9g}'), value),
                      separators=(',', ':'))
  lines = [f'  "{key}": {compact(record[key])}'
           for key in ('d_loss', 'g_loss', 'value')]
  for player in ('g_params', 'd_params'):
    leaves = [f'    {json.dumps(path)}: {compact(leaf)}'
              for path, leaf in sorted(record[player].items())]
    lines.append(f'  "{player}": {{\n' + ',\n'.join(leaves) + '\n  }')
  return '{\n' + ',\n'.join(lines) + '\n}\n'


def _golden_diff(old, new):
  """One line per entry of `new` that differs from (or is missing in) `old`."""
  changes = []
  for key in sorted(set(old) | set(new)):
    if key in ('g_params', 'd_params'):
      a, b = old.get(key, {}), new.get(key, {})
      for path in sorted(set(a) | set(b)):
        if path not in a or path not in b:
          changes.append(f'{key}{path}: {"added" if path in b else "removed"}')
        elif np.shape(a[path]) != np.shape(b[path]):
          changes.append(f'{key}{path}: shape {np.shape(a[path])} -> '
                         f'{np.shape(b[path])}')
        else:
          delta = np.abs(np.asarray(a[path]) - np.asarray(b[path]))
          if delta.max() > 0:
            changes.append(f'{key}{path}: {int((delta > 0).sum())} of '
                           f'{delta.size} values changed, by up to '
                           f'{delta.max():.3g}')
    elif old.get(key) != new.get(key):
      changes.append(f'{key}: {old.get(key)} -> {new.get(key)}')
  return changes

if __name__ == '__main__':
  absltest.main()
