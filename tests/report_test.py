"""The reproduction report and the sweep figures, on small made-up sweeps.

Nothing is trained: the sweeps are written as `gan_jax.sweep` writes them
(config.json with the seeds, results.json, metrics.jsonl, samples.npy, DONE),
and the report's statistics are checked against numpy and scipy.
"""

import json
import os
import subprocess
import sys
from unittest import mock

from absl.testing import absltest
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from gan_jax import plots
from gan_jax.analysis import figures
from gan_jax.analysis import report
from gan_jax.analysis import results
from gan_jax.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, EVERY, SEEDS = 40, 10, 2


def write_sweep(directory, dataset, losses, seed=0, **fields):
  """A finished sweep over `losses`, SEEDS seeds each, with random numbers."""
  rng = np.random.default_rng(seed)
  base = Config(dataset=dataset, num_steps=STEPS, log_every=EVERY,
                num_eval_samples=50, **fields)
  names = [f'loss={loss}' for loss in losses]
  os.makedirs(directory)
  with open(os.path.join(directory, 'sweep.json'), 'w') as f:
    json.dump({'configurations': names}, f)
  for loss, name in zip(losses, names):
    run = os.path.join(directory, name)
    os.makedirs(run)
    saved = json.loads(base.replace(loss=loss).to_json())
    saved.update(num_seeds=SEEDS, seeds=list(range(SEEDS)))
    with open(os.path.join(run, 'config.json'), 'w') as f:
      json.dump(saved, f)
    finals = [dict(seed=s, final=True, step=STEPS,
                   modes=int(rng.integers(1, 9)),
                   hq_fraction=float(rng.uniform()),
                   reverse_kl=float(rng.uniform())) for s in range(SEEDS)]
    with open(os.path.join(run, 'metrics.jsonl'), 'w') as f:
      for s in range(SEEDS):
        for step in range(EVERY, STEPS + 1, EVERY):
          f.write(json.dumps(dict(
              seed=s, step=step, d_loss=float(rng.normal()),
              g_loss=float(rng.normal()), value=float(rng.normal()),
              g_grad_norm=float(rng.uniform(0.1, 2.0)))) + '\n')
      f.writelines(json.dumps(final) + '\n' for final in finals)
    with open(os.path.join(run, results.RESULTS), 'w') as f:
      json.dump({'point': {'loss': loss}, 'finals': finals,
                 'wall_seconds': 60.0, 'program_runs': SEEDS}, f)
    np.save(os.path.join(run, 'samples.npy'),
            rng.normal(size=(SEEDS, 50, 2)).astype(np.float32))
    open(os.path.join(run, results.DONE), 'w').close()
  return directory


class ReportTest(absltest.TestCase):

  def test_build_writes_the_tables_and_figures_of_the_sweeps(self):
    runs = self.create_tempdir().full_path
    sweeps = self.create_tempdir().full_path
    out = self.create_tempdir().full_path
    for k, (dataset, names) in enumerate(report.TOY_SWEEPS.items()):
      write_sweep(os.path.join(runs, names[0]), dataset,
                  ['minimax', 'non_saturating', 'hinge'], seed=2 * k)
      write_sweep(os.path.join(runs, names[1]), dataset, ['wasserstein'],
                  seed=2 * k + 1, d_weight_clip=0.01)
    with mock.patch.object(report, 'run_sweep',
                           lambda name, runs, sweeps: os.path.join(runs, name)):
      path = report.build(runs, out, sweeps)  # no digits flagfiles: (a), (b)
    with open(path) as f:
      text = f.read()
    # 2 data sets x 4 configurations x 2 seeds, 60 s each.
    self.assertIn('Its sweeps took 16 min of wall time', text)
    self.assertIn('### ring8 (8 modes)\n\nOurs: 2 seeds (vmapped in one '
                  'program per configuration), 40 steps of batch 256, Adam lr '
                  '0.0001/0.0001 (G/D), beta1 0.5, 1 D step(s) per G step, MLP '
                  'G 128x128x128 / D 128x128x128 (ReLU), z_dim 64, 50 samples '
                  'per evaluation.', text)
    self.assertIn('| wasserstein (clip 0.01) |', text)
    self.assertNotIn('## (c)', text)
    # (b): G's gradient norm over steps 1-10, 11-100 and 21-40 per seed, then
    # mean ± sample std over seeds, from the logs directly.
    logs = results.load_logs(os.path.join(runs, 'ring8_losses'),
                             'loss=minimax')
    cells = []
    for lo, hi in ((0, 10), (10, 100), (20, 40)):
      per_seed = [np.mean([r['g_grad_norm'] for r in log
                           if lo < r['step'] <= hi]) for log in logs]
      cells.append(f'{np.mean(per_seed):.3g} ± '
                   f'{np.std(per_seed, ddof=1):.2g}')
    self.assertIn('| ring8 | minimax | ' + ' | '.join(cells) + ' | ', text)
    written = sorted(os.listdir(os.path.join(out, 'results')))
    self.assertEqual(written, sorted(
        [f'{d}_{kind}.png' for d in ('ring8', 'grid25')
         for kind in ('boxes', 'samples', 'curves')]
        + ['saturation_curves.png']))
    for name in written:
      self.assertIn(f'](results/{name})', text)
      with open(os.path.join(out, 'results', name), 'rb') as f:
        self.assertEqual(f.read(8), b'\x89PNG\r\n\x1a\n')

  def test_protocol_states_the_image_architecture(self):
    config = Config(dataset='digits', model='dcgan', g_features=32,
                    g_batch_norm=True, g_ema_decay=0.999)
    self.assertEqual(report.architecture(config),
                     'dcgan (G/D features 32/default, batch norm in G, '
                     'G EMA 0.999)')
    self.assertTrue(report.protocol(config, 5).startswith(
        '5 seeds (vmapped in one program per configuration), 20000 steps'))

  def test_missing_sweep_flagfiles_are_a_usage_error(self):
    sweeps = self.create_tempdir().full_path
    runs = os.path.join(self.create_tempdir().full_path, 'runs')
    proc = subprocess.run(
        [sys.executable, '-m', 'gan_jax.report', f'--sweeps={sweeps}',
         f'--runs={runs}'], capture_output=True, text=True, cwd=ROOT,
        timeout=300)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    self.assertEqual(proc.stderr.strip().splitlines(), [
        f'error: --sweeps={sweeps} lacks ring8_losses.cfg, ring8_wgan.cfg, '
        'grid25_losses.cfg, grid25_wgan.cfg; point it at experiments/sweeps'])
    self.assertFalse(os.path.exists(runs))


class DifferenceLineTest(absltest.TestCase):

  def test_welch_and_paired_statistics(self):
    a = {0: 112.5, 1: 78.6, 2: 94.2, 3: 102.4, 4: 84.8}
    b = {0: 118.0, 1: 83.4, 2: 119.6, 3: 105.9, 4: 92.1}
    line = report.difference_line({'float32': a, 'bfloat16': b})
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    welch = stats.ttest_ind(y, x, equal_var=False).statistic
    paired = stats.ttest_rel(y, x).statistic
    diff = y.mean() - x.mean()
    self.assertIn(f'bfloat16 − float32: {diff:+.1f} FID, standard error '
                  f'{diff / welch:.1f} (difference / SE = {welch:+.1f})', line)
    self.assertIn(f'paired by seed {diff:+.1f} ± {diff / paired:.1f} '
                  f'(t = {paired:+.1f}, 4 df), bfloat16 higher in 5 of 5 '
                  'seeds', line)

  def test_pairs_by_seed_not_by_order(self):
    a = {0: 1.0, 1: 2.0, 2: 4.0}
    b = {2: 5.0, 0: 2.0, 1: 3.0}  # every seed +1, listed in another order
    line = report.difference_line({'a': a, 'b': b})
    self.assertIn('paired by seed +1.0 ± 0.0, b higher in 3 of 3 seeds', line)

  def test_one_seed_each_gives_the_difference_only(self):
    line = report.difference_line({'a': {0: 3.0}, 'b': {0: 5.0}})
    self.assertEqual(line, 'b − a: +2.0 FID. Per seed (0): a 3.0; b 5.0.')


class FiguresTest(absltest.TestCase):

  def test_boxes_draw_every_finite_value_as_a_dot(self):
    fig, ax = plt.subplots()
    plots.draw_boxes(ax, {'a': [1.0, None, 3.0, float('nan')], 'b': [2.0],
                          'c': [None]})
    dots = [c.get_offsets() for c in ax.collections]
    np.testing.assert_allclose(dots[0], [[0.88, 1.0], [1.12, 3.0]])
    np.testing.assert_allclose(dots[1], [[2.0, 2.0]])
    self.assertEqual(len(dots[2]), 0)
    self.assertEqual([t.get_text() for t in ax.get_xticklabels()],
                     ['a', 'b', 'c'])
    plt.close(fig)

  def test_image_panels_show_the_image_grid(self):
    images = np.random.default_rng(0).uniform(-1, 1, (20, 3, 3, 1))
    fig, ax = plt.subplots()
    plots.draw_images(ax, images)
    np.testing.assert_array_equal(ax.images[0].get_array(),
                                  plots.image_grid(images, 4, 4)[..., 0])
    plt.close(fig)

  def test_metric_panels_group_and_scale_the_rows(self):
    rows = [{'config': 'x', 'hq_fraction': 0.5, 'modes': 8},
            {'config': 'y', 'hq_fraction': None, 'modes': 7},
            {'config': 'x', 'hq_fraction': 0.25, 'modes': 6}]
    self.assertEqual(figures.metric_panels(rows, ['hq_fraction', 'modes']),
                     {'% HQ': {'x': [50.0, 25.0], 'y': [None]},
                      'modes': {'x': [8, 6], 'y': [7]}})

  def test_sweep_figures_are_written_whole(self):
    sweep_dir = write_sweep(
        os.path.join(self.create_tempdir().full_path, 'sweep'), 'ring8',
        ['minimax', 'hinge'])
    written = figures.sweep_figures(sweep_dir)
    names = ['box_modes.png', 'box_hq_fraction.png', 'box_reverse_kl.png',
             'samples_loss=minimax.png', 'samples_loss=hinge.png',
             'curves.png']
    self.assertEqual(written, [os.path.join(sweep_dir, 'figures', n)
                               for n in names])
    self.assertEqual(sorted(os.listdir(os.path.join(sweep_dir, 'figures'))),
                     sorted(names))


if __name__ == '__main__':
  absltest.main()
