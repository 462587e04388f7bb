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


def write_sweep(directory, dataset, points, seed=0, curves=False,
                **fields):
  """A finished sweep over grid `points` ({flag: value} each), SEEDS seeds
  each, with random numbers; with `curves`, mode metrics at every logged
  step (learning curves) and the saturation metrics."""
  rng = np.random.default_rng(seed)
  base = Config(dataset=dataset, num_steps=STEPS, log_every=EVERY,
                num_eval_samples=50, **fields)
  names = [','.join(f'{k}={v}' for k, v in point.items()) for point in points]
  os.makedirs(directory)
  with open(os.path.join(directory, 'sweep.json'), 'w') as f:
    json.dump({'configurations': names}, f)
  for point, name in zip(points, names):
    run = os.path.join(directory, name)
    os.makedirs(run)
    saved = json.loads(base.replace(**point).to_json())
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
          record = dict(seed=s, step=step, d_loss=float(rng.normal()),
                        g_loss=float(rng.normal()), value=float(rng.normal()),
                        g_grad_norm=float(rng.uniform(0.1, 2.0)),
                        d_fake_prob=float(rng.uniform()),
                        d_fake_saturated_frac=float(rng.uniform()))
          if curves and step < STEPS:
            record.update(modes=int(rng.integers(1, 9)),
                          hq_fraction=float(rng.uniform()))
          f.write(json.dumps(record) + '\n')
      f.writelines(json.dumps(final) + '\n' for final in finals)
    with open(os.path.join(run, results.RESULTS), 'w') as f:
      json.dump({'point': point, 'finals': finals,
                 'wall_seconds': 60.0, 'program_runs': SEEDS}, f)
    np.save(os.path.join(run, 'samples.npy'),
            rng.normal(size=(SEEDS, 50, 2)).astype(np.float32))
    open(os.path.join(run, results.DONE), 'w').close()
  return directory


def _mean_se(values):
  values = np.asarray(values, np.float64)
  return values.mean(), values.std(ddof=1) / np.sqrt(len(values))


class ReportTest(absltest.TestCase):

  def test_build_writes_the_tables_and_figures_of_the_sweeps(self):
    runs = self.create_tempdir().full_path
    sweeps = self.create_tempdir().full_path
    out = self.create_tempdir().full_path
    packs = [{'pack': 1}, {'pack': 2}]
    write_sweep(os.path.join(runs, 'pacgan_grid'), 'grid25', packs, seed=1,
                curves=True, toy_layout='pacgan')
    write_sweep(os.path.join(runs, 'pacgan_grid_unrolled'), 'grid25',
                [{'unroll_steps': 5}], seed=2, curves=True,
                toy_layout='pacgan')
    write_sweep(os.path.join(runs, 'saturation_e2_adam'), 'ring8',
                [{'loss': l, 'd_steps': k} for l in ('minimax',
                                                     'non_saturating')
                 for k in (1, 5)], seed=3)
    os.makedirs(os.path.join(out, 'saturation'))
    e1 = {'snapshots': [0, 10], 'd_train_steps': 5, 'seeds': [0, 1],
          'dataset': 'ring8', 'model': 'mlp', 'batch_size': 8,
          'summary': [dict(snapshot=s, seeds=2, minimax=1.0, minimax_se=0.1,
                           non_saturating=4.0, non_saturating_se=0.2,
                           ratio=0.25, ratio_se=0.05, d_fake_prob=0.01,
                           d_fake_prob_se=0.001, saturated=sat,
                           saturated_se=0.02)
                      for s, sat in ((0, 0.8), (10, 0.1))]}
    with open(os.path.join(out, 'saturation', 'e1.json'), 'w') as f:
      json.dump(e1, f)
    path = report.build(runs, out, sweeps, run=False)
    with open(path) as f:
      text = f.read()
    # Missing sweeps are named, finished ones are not.
    self.assertIn('`pacgan_ring`, `pacgan_ring_unrolled`, '
                  '`pacgan_grid_losses`, `saturation_e2_sgd`', text)
    self.assertIn('No row finished within this budget', text)
    # (a): GAN, PacGAN2, then the unrolled row; mean ± standard error of the
    # finals, from the files directly.
    rows = []
    for sweep, name in (('pacgan_grid', 'pack=1'), ('pacgan_grid', 'pack=2'),
                        ('pacgan_grid_unrolled', 'unroll_steps=5')):
      finals = json.load(open(os.path.join(runs, sweep, name,
                                           results.RESULTS)))['finals']
      m, se = _mean_se([f['modes'] for f in finals])
      h, hse = _mean_se([100 * f['hq_fraction'] for f in finals])
      rows.append((m, se, h, hse))
    gan, pac2, unrolled = rows
    self.assertIn(f'| GAN | {gan[0]:.2f} ± {gan[1]:.2f} | {gan[2]:.1f} ± '
                  f'{gan[3]:.1f} |', text)
    self.assertLess(text.index('| GAN |'), text.index('| PacGAN2 |'))
    self.assertLess(text.index('| PacGAN2 |'),
                    text.index('| Unrolled GAN (k = 5) |'))
    # Against PacGAN's 17.3 ± 0.8: within two combined standard errors?
    diff, both = gan[0] - 17.3, np.hypot(gan[1], 0.8)
    verdict = 'within' if abs(diff) <= 2 * both else 'outside'
    hq_diff, hq_both = gan[2] - 94.8, np.hypot(gan[3], 0.7)
    hq_verdict = 'within' if abs(hq_diff) <= 2 * hq_both else 'outside'
    self.assertIn(f'* GAN: modes {gan[0]:.2f} ± {gan[1]:.2f} against 17.3 ± '
                  f'0.8 ({verdict} two combined standard errors); % HQ '
                  f'{gan[2]:.2f} ± {gan[3]:.2f} against 94.8 ± 0.7 '
                  f'({hq_verdict}', text)
    self.assertIn('| PacGAN4 | 24.8 ± 0.2 | 93.6 ± 0.6 | 0.04 ± 0.01 | '
                  'PacGAN Table 1', text)
    # The curve's last interval: per-seed change of modes from step 30 to 40.
    logs = results.load_logs(os.path.join(runs, 'pacgan_grid'), 'pack=1')
    finals = json.load(open(os.path.join(runs, 'pacgan_grid', 'pack=1',
                                         results.RESULTS)))['finals']
    change = [f['modes'] - [r for r in log if r['step'] == 30][0]['modes']
              for log, f in zip(logs, finals)]
    c, cse = _mean_se(change)
    self.assertIn(f'modes {c:+.2f} ± {cse:.2f}, % HQ ', text)
    self.assertIn(' over steps 30–40 (', text)
    # (b): E1's table and the regime sentence; E2's who-learns line.
    self.assertIn('| 0 | 80 ± 2 % | 0.010 ± 0.001 |', text)
    self.assertIn('reached for G frozen at step 0 (80% of fakes)', text)
    e2 = os.path.join(runs, 'saturation_e2_adam')
    mm = json.load(open(os.path.join(e2, 'loss=minimax,d_steps=5',
                                     results.RESULTS)))['finals']
    ns = json.load(open(os.path.join(e2, 'loss=non_saturating,d_steps=5',
                                     results.RESULTS)))['finals']
    (a, sa), (b, sb) = (_mean_se([f['modes'] for f in x]) for x in (mm, ns))
    self.assertIn(f'adam, 5 D steps: non-saturating − minimax = '
                  f'{b - a:+.2f} ± {np.hypot(sa, sb):.2f} modes', text)
    self.assertIn('Missing: E2 with sgd', text)
    self.assertNotIn('## (c)', text)
    written = sorted(os.listdir(os.path.join(out, 'results')))
    self.assertEqual(written, ['grid25_pacgan_curves.png'])
    self.assertIn('](results/grid25_pacgan_curves.png)', text)
    with open(os.path.join(out, 'results', written[0]), 'rb') as f:
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
        f'error: --sweeps={sweeps} lacks pacgan_ring.cfg, '
        'pacgan_ring_unrolled.cfg, pacgan_grid.cfg, pacgan_grid_unrolled.cfg, '
        'pacgan_grid_losses.cfg, saturation_e2_adam.cfg, '
        'saturation_e2_sgd.cfg, saturation_e2_sgd_small_lr.cfg; point it at '
        'experiments/sweeps'])
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
        [{'loss': 'minimax'}, {'loss': 'hinge'}])
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
