"""The reproduction report and the sweep figures, on small made-up sweeps.

Nothing is trained: the sweeps are written as `gan_jax.sweep` writes them
(config.json with the seeds, results.json, metrics.jsonl, samples.npy, DONE),
and the report's statistics are checked against numpy and scipy.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
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


def sweep_runs(directory, base, points):
  """(point, run directory) of each grid point of a sweep in `directory`:
  sweep.json and each run's config.json (`base` with the point, SEEDS seeds)
  written as `gan_jax.sweep` writes them; the caller writes the rest."""
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
    yield point, run


def write_sweep(directory, dataset, points, seed=0, curves=False,
                **fields):
  """A finished sweep over grid `points` ({flag: value} each), SEEDS seeds
  each, with random numbers; with `curves`, mode metrics at every logged
  step (learning curves) and the saturation metrics."""
  rng = np.random.default_rng(seed)
  base = Config(dataset=dataset, num_steps=STEPS, log_every=EVERY,
                num_eval_samples=50, **fields)
  for point, run in sweep_runs(directory, base, points):
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



def write_digits_sweep(directory, points, samples_per_seed=50, **fields):
  """A finished digits sweep over `points` (SEEDS seeds each) as
  `gan_jax.sweep` writes it, with images of the digits test split as the
  samples and made-up learning curves (FID = step, label accuracy 0.5 in a
  conditional run); its scores come from `digits_scores`."""
  from gan_jax.metrics import reference  # pylint: disable=g-import-not-at-top
  images = reference.digits('test')[0][:samples_per_seed]
  steps = fields.pop('num_steps', STEPS)
  base = Config(dataset='digits', model='dcgan', num_steps=steps,
                log_every=EVERY, eval_every=EVERY,
                num_eval_samples=samples_per_seed, **fields)
  for point, run in sweep_runs(directory, base, points):
    finals = [dict(seed=s, final=True, step=steps) for s in range(SEEDS)]
    with open(os.path.join(run, 'metrics.jsonl'), 'w') as f:
      for s in range(SEEDS):
        for step in range(EVERY, steps, EVERY):
          record = dict(seed=s, step=step, d_loss=0.5, fid=float(step))
          if 'conditional' in point:
            record['label_acc'] = 0.5
          f.write(json.dumps(record) + '\n')
      f.writelines(json.dumps(final) + '\n' for final in finals)
    with open(os.path.join(run, results.RESULTS), 'w') as f:
      json.dump({'point': point, 'finals': finals, 'wall_seconds': 60.0,
                 'program_runs': SEEDS}, f)
    np.save(os.path.join(run, 'samples.npy'),
            np.stack([images] * SEEDS).astype(np.float32))
    open(os.path.join(run, results.DONE), 'w').close()
  return directory


def digits_scores(directory, name):
  """Made-up per-seed scores of a configuration (as `small_data.seed_scores`
  returns them), fixed by its name: an FID curve at every EVERY steps up to
  the configuration's num_steps whose last point is the final FID; label
  accuracy and intra-class FID for a conditional configuration, on its
  curve too."""
  rng = np.random.default_rng(sum(map(ord, os.path.basename(directory)
                                      + name)))
  steps = results.load_config(directory, name).num_steps
  out = []
  for s in range(SEEDS):
    curve = [{'step': step, 'fid': float(rng.uniform(20, 200))}
             for step in range(EVERY, steps + 1, EVERY)]
    scores = {'seed': s, 'fid': curve[-1]['fid'], 'curve': curve}
    if 'conditional' in name:
      for point in curve:
        point['label_acc'] = float(rng.uniform(0.3, 1.0))
      scores.update(label_acc=curve[-1]['label_acc'],
                    intra_fid=float(rng.uniform(30, 90)))
    out.append(scores)
  return out


class SmallDataSectionTest(absltest.TestCase):
  """Section (e): its arithmetic against numpy on made-up scores, its seed
  scores against an independent FID, and `--sections`."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    from gan_jax.analysis import small_data  # pylint: disable=g-import-not-at-top
    cls.small_data = small_data
    cls.runs = tempfile.mkdtemp()
    cls.dirs = {
        small_data.BASELINE: write_digits_sweep(
            os.path.join(cls.runs, small_data.BASELINE),
            [{'train_fraction': 0.1}, {'train_fraction': 1.0}]),
        small_data.AUGMENTED: write_digits_sweep(
            os.path.join(cls.runs, small_data.AUGMENTED),
            [{'train_fraction': 0.1, 'lecam_weight': w} for w in (0.0, 0.3)],
            augment=('translation', 'cutout')),
        small_data.CONDITIONAL: write_digits_sweep(
            os.path.join(cls.runs, small_data.CONDITIONAL),
            [{'conditional': c} for c in ('projection', 'acgan')]),
        small_data.LONG: write_digits_sweep(
            os.path.join(cls.runs, small_data.LONG),
            [{'lecam_weight': w} for w in (0.0, 0.3)], train_fraction=0.1,
            augment=('translation', 'cutout'), num_steps=2 * STEPS),
    }

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.runs)
    super().tearDownClass()

  def section(self, dirs=None):
    out = self.create_tempdir().full_path
    figure = lambda name: (os.path.join(out, name), f'results/{name}')
    lines = self.small_data.section(dirs or self.dirs, figure, digits_scores)
    return '\n'.join(lines), out

  def scores(self, sweep, name):
    return digits_scores(self.dirs[sweep], name)

  def test_tables_against_numpy(self):
    text, out = self.section()
    sd = self.small_data
    fmt = lambda v, k=1.0: '{:.1f} ± {:.1f}'.format(*(k * x for x in
                                                      _mean_se(v)))
    # Conditioning: the unconditional row is the baseline's 100% row.
    none = self.scores(sd.BASELINE, 'train_fraction=1.0')
    proj = self.scores(sd.CONDITIONAL, 'conditional=projection')
    curves = np.array([[p['fid'] for p in r['curve']] for r in proj])
    at = int(np.argmin(curves.mean(0)))
    change = curves[:, -1] - curves[:, -4]
    c, cse = _mean_se(change)
    verdict = ('flat' if abs(c) <= 2 * cse else
               'still falling' if c < 0 else 'rising')
    accuracy = np.array([[p['label_acc'] for p in r['curve']] for r in proj])
    peak = int(np.argmax(accuracy.mean(0)))
    self.assertIn(
        f'| projection | {fmt([r["fid"] for r in proj])} | '
        f'{fmt(curves[:, at])} ({EVERY * (at + 1)}) | '
        f'{fmt([r["label_acc"] for r in proj], 100)} % | '
        f'{fmt(accuracy[:, peak], 100)} % ({EVERY * (peak + 1)}) | '
        f'{fmt([r["intra_fid"] for r in proj])} | {verdict} ({c:+.1f} ± '
        f'{cse:.1f} from step {EVERY} to {STEPS}) | {SEEDS} |', text)
    self.assertIn(f'| unconditional | {fmt([r["fid"] for r in none])} |',
                  text)
    self.assertRegex(text, r'\| unconditional \|[^|]+\|[^|]+\| n/a \| n/a \| '
                     r'n/a \|')
    a = np.array([r['fid'] for r in none])
    b = np.array([r['fid'] for r in proj])
    diff = b.mean() - a.mean()
    se = np.sqrt(a.var(ddof=1) / SEEDS + b.var(ddof=1) / SEEDS)
    self.assertIn(f'- projection − unconditional: {diff:+.1f} ± {se:.1f} FID '
                  f'({"resolved" if abs(diff) > 2 * se else "not resolved"})',
                  text)
    # DiffAugment against none at 10%: the difference and the relative gain
    # 1 - b/a with its delta-method error.
    a = np.array([r['fid'] for r in self.scores(sd.BASELINE,
                                                'train_fraction=0.1')])
    b = np.array([r['fid'] for r in self.scores(
        sd.AUGMENTED, 'train_fraction=0.1,lecam_weight=0.0')])
    (ma, sa), (mb, sb) = _mean_se(a), _mean_se(b)
    gain = 1 - mb / ma
    gain_se = (mb / ma) * np.hypot(sa / ma, sb / mb)
    self.assertIn(f'- 10%, DiffAugment against none: final FID '
                  f'{mb - ma:+.1f} ± {np.hypot(sa, sb):.1f}', text)
    self.assertIn(f'a relative gain of {100 * gain:.0f} ± '
                  f'{100 * gain_se:.0f} %.', text)
    self.assertIn(f'{100 * gain:.0f} ± {100 * gain_se:.0f} %, '
                  f'{"met" if gain >= 0.3 else "not met"} by the mean', text)
    # The 25% row is missing from every sweep: no row is made up for it.
    self.assertNotIn('| 25% |', text)
    self.assertIn('| 100% | ' + fmt([r['fid'] for r in none]), text)
    self.assertIn('| 100% | ', text)
    self.assertIn('missing', text.split('| 100% |')[1].split('\n')[0])
    # The best configuration by mean final FID, over every row.
    finals = {}
    for sweep, d in self.dirs.items():
      for name in results.finished(d):
        finals[(sweep, name)] = np.mean([r['fid'] for r in
                                         digits_scores(d, name)])
    best = min(finals.values())
    self.assertIn(f', {best:.1f} ± ', text.split('Best configuration')[1])
    for name in ('digits_fid_curves.png', 'digits_class_grids.png'):
      with open(os.path.join(out, name), 'rb') as f:
        self.assertEqual(f.read(8), b'\x89PNG\r\n\x1a\n')
      self.assertIn(f'](results/{name})', text)

  def test_longer_runs_against_numpy(self):
    text, _ = self.section()
    sd = self.small_data
    fmt = lambda v: '{:.1f} ± {:.1f}'.format(*_mean_se(v))
    longer = {w: self.scores(sd.LONG, f'lecam_weight={w}')
              for w in (0.0, 0.3)}
    shorter = self.scores(sd.AUGMENTED, 'train_fraction=0.1,lecam_weight=0.0')
    runs = longer[0.0]
    curves = np.array([[p['fid'] for p in r['curve']] for r in runs])
    self.assertEqual(curves.shape, (SEEDS, 2 * STEPS // EVERY))
    at = int(np.argmin(curves.mean(0)))
    self.assertIn(f'### DiffAugment trained on to {2 * STEPS} steps', text)
    # The longer runs at the shorter runs' last step, STEPS, not at their
    # own end.
    at_end = curves[:, STEPS // EVERY - 1]
    self.assertIn(
        f'| 10% | DiffAugment | {fmt([r["fid"] for r in runs])} | '
        f'{fmt(curves[:, at])} ({EVERY * (at + 1)}) | {fmt(at_end)} '
        f'({STEPS}; that run\'s final: {fmt([r["fid"] for r in shorter])}) '
        '| ', text)
    # Why they run on: the shorter curves' verdicts over their last 3
    # intervals, computed here from the curves.
    verdicts = {}
    for name, method in (('train_fraction=0.1,lecam_weight=0.0',
                          'DiffAugment'),
                         ('train_fraction=0.1,lecam_weight=0.3',
                          'DiffAugment + LeCam')):
      short = np.array([[p['fid'] for p in r['curve']]
                        for r in self.scores(sd.AUGMENTED, name)])
      c, cse = _mean_se(short[:, -1] - short[:, -4])
      verdict = ('flat' if abs(c) <= 2 * cse else
                 'still falling' if c < 0 else 'rising')
      verdicts.setdefault(verdict, []).append(f'10% {method}')
    said = '; '.join(f'{" and ".join(v)} {"is" if len(v) == 1 else "are"} {k}'
                     for k, v in verdicts.items())
    self.assertIn('Over their last 3 evaluations, of the shorter runs above, '
                  f'{said}. The same configurations (same seeds) go on to '
                  f'{2 * STEPS} steps', text)
    self.assertIn(f'The longer runs of `{sd.LONG}` train for {2 * STEPS} '
                  'steps, otherwise under the same protocol.', text)
    a = np.array([r['fid'] for r in runs])
    b = np.array([r['fid'] for r in longer[0.3]])
    diff = b.mean() - a.mean()
    se = np.sqrt(a.var(ddof=1) / SEEDS + b.var(ddof=1) / SEEDS)
    self.assertIn(f'- 10% at {2 * STEPS} steps, DiffAugment + LeCam against '
                  f'DiffAugment: final FID {diff:+.1f} ± {se:.1f} '
                  f'({"resolved" if abs(diff) > 2 * se else "not resolved"})',
                  text)
    # The longer runs are rows of their own, not averaged into the
    # 10,000-step table.
    table = text.split('### DiffAugment and LeCam')[1].split('###')[0]
    self.assertIn('| 10% | ' + fmt([r['fid'] for r in self.scores(
        sd.BASELINE, 'train_fraction=0.1')]), table)
    self.assertIn(f' | {fmt([r["fid"] for r in shorter])} (', table)

  def test_a_fall_after_the_label_accuracy_peak_is_stated(self):
    # ACGAN's seeds peak at step 20 (0.95, 0.97) and end at 0.40, 0.30:
    # falls of 55 and 67 points, 61 ± 6 paired by seed (unpaired, the
    # standard error would be hypot(1, 5) = 5.1).
    def score(directory, name):
      runs = digits_scores(directory, name)
      if name == 'conditional=acgan':
        for run, values in zip(runs, ([0.9, 0.95, 0.5, 0.4],
                                      [0.8, 0.97, 0.6, 0.3])):
          for point, value in zip(run['curve'], values):
            point['label_acc'] = value
          run['label_acc'] = values[-1]
      return runs
    out = self.create_tempdir().full_path
    figure = lambda name: (os.path.join(out, name), f'results/{name}')
    text = '\n'.join(self.small_data.section(self.dirs, figure, score))
    self.assertIn('- ACGAN: label accuracy falls after its peak at step 20, '
                  'by 61.0 ± 6.0 points to its final value (paired by seed; '
                  'resolved).', text)
    # Falls of 5 and 85 points: 45 ± 40, not resolved, not stated.
    finals = iter([0.90, 0.12])
    def unresolved(directory, name):
      runs = score(directory, name)
      if name == 'conditional=acgan':
        for run in runs:
          run['label_acc'] = run['curve'][-1]['label_acc'] = next(finals)
      return runs
    text = '\n'.join(self.small_data.section(self.dirs, figure, unresolved))
    self.assertNotIn('- ACGAN: label accuracy falls', text)
    self.assertIn('| 96.0 ± 1.0 % (20) |', text)
    self.assertIn('| 96.0 ± 1.0 % (20) |', text)

  def test_highest_point_of_a_mean_curve_skips_steps_not_logged(self):
    # Step 10 holds the highest single value but seed 1 did not log it.
    runs = [{'curve': [{'step': 10, 'fid': 1, 'label_acc': 1.0},
                       {'step': 20, 'fid': 1, 'label_acc': 0.9},
                       {'step': 30, 'fid': 1, 'label_acc': 0.2}]},
            {'curve': [{'step': 10, 'fid': 1},
                       {'step': 20, 'fid': 1, 'label_acc': 0.7},
                       {'step': 30, 'fid': 1, 'label_acc': 0.4}]}]
    self.assertEqual(self.small_data.highest_on_curve(runs, 'label_acc'),
                     (20, [0.9, 0.7]))
    self.assertIsNone(self.small_data.highest_on_curve(runs, 'kid'))

  def test_lowest_point_and_flatness_of_the_mean_curve(self):
    # Seed 0's own minimum (10 at step 20) is not the mean curve's (step 30);
    # over the last 3 intervals seed 0 changes by +50 and seed 1 by -20:
    # +15 ± 35, flat.
    curve = lambda fids: [{'step': 10 * (i + 1), 'fid': f}
                          for i, f in enumerate(fids)]
    runs = [{'curve': curve([90, 10, 60, 70, 60])},
            {'curve': curve([90, 100, 40, 50, 80])}]
    self.assertEqual(self.small_data.lowest_on_curve(runs), (30, [60, 40]))
    self.assertEqual(self.small_data.flatness(runs),
                     'flat (+15.0 ± 35.0 from step 20 to 50)')
    runs[1]['curve'][-1]['fid'] = 200  # +50 and +100: +75 ± 25, resolved
    self.assertEqual(self.small_data.flatness(runs),
                     'rising (+75.0 ± 25.0 from step 20 to 50)')
    runs = [{'curve': curve([90, 100, 60, 70, 10])},
            {'curve': curve([90, 100, 60, 70, 20])}]
    self.assertEqual(self.small_data.flatness(runs),
                     'still falling (-85.0 ± 5.0 from step 20 to 50)')

  def test_missing_sweeps_are_named(self):
    sd = self.small_data
    dirs = dict(self.dirs)
    dirs[sd.CONDITIONAL] = os.path.join(self.runs, 'nowhere')
    text, out = self.section(dirs)
    self.assertIn('Not finished when this was written (their rows are '
                  'missing): `digits_conditional`.', text)
    self.assertNotIn('| projection |', text)
    self.assertNotIn('Class conditioning', text)
    self.assertFalse(os.path.exists(os.path.join(out,
                                                 'digits_class_grids.png')))

  def test_why_the_longer_runs_go_on_names_each_shorter_trend(self):
    # Two seeds each over the last 3 intervals: -10 and -12 (still
    # falling), +5 and -5 (flat); a one-seed row is not judged and not named.
    curve = lambda *fids: [{'step': 10 * (i + 1), 'fid': f}
                           for i, f in enumerate(fids)]
    run = lambda *fids: {'fid': fids[-1], 'curve': curve(*fids)}
    falling = [run(90, 50, 45, 42, 40), run(90, 60, 55, 50, 48)]
    flat = [run(90, 50, 45, 42, 55), run(90, 60, 55, 50, 50)]
    rows = {(0.1, 'DiffAugment'): falling, (0.1, 'DiffAugment + LeCam'): flat}
    longer = {k: [run(*range(100, 0, -10))] * 2 for k in rows}
    text = '\n'.join(self.small_data._longer_lines(rows, longer))
    self.assertIn('Over their last 3 evaluations, of the shorter runs above, '
                  '10% DiffAugment is still falling; 10% DiffAugment + LeCam '
                  'is flat. The same configurations', text)
    rows = {(0.1, 'DiffAugment'): falling,
            (0.1, 'DiffAugment + LeCam'): falling,
            (0.25, 'DiffAugment'): falling,
            (0.25, 'DiffAugment + LeCam'): falling[:1]}
    longer = {k: [run(*range(100, 0, -10))] * 2 for k in rows}
    text = '\n'.join(self.small_data._longer_lines(rows, longer))
    self.assertIn('of the shorter runs above, 10% DiffAugment, 10% '
                  'DiffAugment + LeCam and 25% DiffAugment are still falling. '
                  'The same', text)
    self.assertEqual(self.small_data.flatness(falling[:1]),
                     'not judged, one seed (-10.0 from step 20 to 50)')

  def test_subset_sizes_of_each_fraction(self):
    # Counted here from scikit-learn's labels: round(f n_c) of each class.
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
    counts = np.bincount(load_digits().target)
    keep = lambda f: int(sum(max(1, round(f * c)) for c in counts))
    rows = {(0.1, 'none'): [], (0.25, 'none'): [], (1.0, 'none'): []}
    self.assertEqual(self.small_data._subset_sizes(rows, {}),
                     f': 10% is {keep(0.1)} images, 25% is {keep(0.25)} '
                     'images')
    self.assertEqual(self.small_data._subset_sizes({(1.0, 'none'): []}, {}),
                     '')

  def test_every_seed_diverged_is_said(self):
    def score(directory, name):
      return [{'seed': s, 'diverged_at': 20} for s in range(SEEDS)]
    out = self.create_tempdir().full_path
    figure = lambda name: (os.path.join(out, name), f'results/{name}')
    text = '\n'.join(self.small_data.section(self.dirs, figure, score))
    self.assertNotIn('No sweep of this section has finished', text)
    self.assertIn('Every seed of the finished configurations diverged: 10% '
                  'DiffAugment: seed 0 (step 20), seed 1 (step 20); 10% '
                  'DiffAugment (longer run): seed 0 (step 20), ', text)
    self.assertIn('; 100% ACGAN: seed 0 (step 20), seed 1 (step 20); ', text)
    self.assertNotIn('Protocol:', text)

  def test_only_the_longer_runs_finished(self):
    # The section is written from the longer runs alone; their protocol is
    # their own (2 STEPS steps), and nothing calls the section empty.
    sd = self.small_data
    dirs = {s: os.path.join(self.runs, 'nowhere') for s in sd.SWEEPS}
    dirs[sd.LONG] = self.dirs[sd.LONG]
    text, out = self.section(dirs)
    self.assertNotIn('No sweep of this section has finished', text)
    self.assertIn(f', {2 * STEPS} steps of batch', text)
    self.assertNotIn('The longer runs of', text)
    self.assertIn(f'### DiffAugment trained on to {2 * STEPS} steps', text)
    self.assertIn('The same configurations (same seeds) go on to', text)
    self.assertNotIn('of the shorter runs above', text)
    # No shorter run to compare with at its last step.
    self.assertRegex(text, r'\| 10% \| DiffAugment \|[^|]+\|[^|]+\| n/a \|')
    self.assertIn('Not finished when this was written (their rows are '
                  'missing): `digits_data_efficiency`, `digits_diffaugment`, '
                  '`digits_conditional`.', text)
    self.assertIn('Best configuration by mean final FID', text)
    self.assertTrue(os.path.exists(os.path.join(out, 'digits_fid_curves.png')))
    dirs[sd.LONG] = os.path.join(self.runs, 'nowhere')
    text, _ = self.section(dirs)
    self.assertIn('No sweep of this section has finished', text)

  def test_subset_sizes_are_stated(self):
    # 10% of each digit class, rounded, counted here from scikit-learn's
    # labels: the images a 10% run trains on.
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
    counts = np.bincount(load_digits().target)
    expected = int(sum(max(1, round(0.1 * c)) for c in counts))
    text, _ = self.section()
    self.assertIn('The GANs train on all 1,797 digits; a fraction is a fixed '
                  'subset of them, stratified by class (`--train_fraction`, '
                  f'`--subset_seed=0`): 10% is {expected} images.', text)

  def test_seed_scores_against_an_independent_fid(self):
    # The final FID and label accuracy of a conditional configuration's
    # saved samples: the classifier's features and logits, then float64
    # numpy (tests/reference_metrics.py); the curve ends at the final FID.
    from gan_jax import features  # pylint: disable=g-import-not-at-top
    from gan_jax import train  # pylint: disable=g-import-not-at-top
    from gan_jax.metrics import reference  # pylint: disable=g-import-not-at-top
    import reference_metrics as independent  # pylint: disable=g-import-not-at-top
    sd = self.small_data
    name = 'conditional=projection'
    scores = sd.seed_scores(self.dirs[sd.CONDITIONAL], name)
    config = results.load_config(self.dirs[sd.CONDITIONAL], name)
    extractor = features.get('digits_classifier')
    real, _ = extractor.extract(reference.digits('train')[0])
    images = reference.digits('test')[0][:50]
    fake, logits = extractor.extract(images)
    labels = train.eval_labels(config)
    self.assertEqual([s['seed'] for s in scores], list(range(SEEDS)))
    for s in scores:
      np.testing.assert_allclose(s['fid'], independent.frechet(real, fake),
                                 rtol=1e-4)
      self.assertAlmostEqual(s['label_acc'],
                             float(np.mean(np.argmax(logits, 1) == labels)))
      self.assertEqual(s['curve'], [
          {'step': step, 'fid': float(step), 'label_acc': 0.5}
          for step in range(EVERY, STEPS, EVERY)] + [
              {'step': STEPS, 'fid': s['fid'], 'label_acc': s['label_acc']}])

  def test_diverged_seeds_are_named_not_averaged(self):
    sd = self.small_data
    def score(directory, name):
      runs = digits_scores(directory, name)
      if name == 'conditional=projection':
        runs[1] = {'seed': 1, 'diverged_at': 37}
      return runs
    out = self.create_tempdir().full_path
    figure = lambda name: (os.path.join(out, name), f'results/{name}')
    text = '\n'.join(sd.section(self.dirs, figure, score))
    seed0 = self.scores(sd.CONDITIONAL, 'conditional=projection')[0]
    # One seed left: its FID, and no standard error.
    self.assertIn(f'| projection | {seed0["fid"]:.1f} ± nan |', text)
    row = text.split('| projection |')[1].split('\n')[0]
    self.assertTrue(row.endswith(' | 1 |'), row)
    self.assertIn('Seeds that diverged are left out of their rows: 100% '
                  'projection: seed 1 (step 37).', text)

  def test_seed_scores_leave_out_diverged_and_non_finite_seeds(self):
    sd = self.small_data
    directory = write_digits_sweep(
        os.path.join(self.create_tempdir().full_path, sd.BASELINE),
        [{'train_fraction': 1.0}])
    run = os.path.join(directory, 'train_fraction=1.0')
    with open(os.path.join(run, results.RESULTS)) as f:
      saved = json.load(f)
    saved['finals'][1]['diverged_at'] = 30
    with open(os.path.join(run, results.RESULTS), 'w') as f:
      json.dump(saved, f)
    samples = np.load(os.path.join(run, 'samples.npy'))
    samples[0, 3, 0, 0, 0] = np.nan  # seed 0 did not diverge by its losses
    np.save(os.path.join(run, 'samples.npy'), samples)
    self.assertEqual(sd.seed_scores(directory, 'train_fraction=1.0'),
                     [{'seed': 0, 'diverged_at': STEPS},
                      {'seed': 1, 'diverged_at': 30}])

  def test_curves_of_unequal_steps_are_a_readable_error(self):
    runs = [{'seed': 0, 'curve': [{'step': 10, 'fid': 1.0},
                                  {'step': 20, 'fid': 2.0}]},
            {'seed': 1, 'curve': [{'step': 20, 'fid': 2.0}]}]
    with self.assertRaisesRegex(ValueError, r'^seed 1 evaluated at steps '
                                r'\[20\], seed 0 at \[10, 20\]'):
      self.small_data.curve_matrix(runs)

  def test_sections_keep_the_other_sections_text(self):
    out = self.create_tempdir().full_path
    old = ('# Reproduction report\n\nopening words\n\n## (a) Mode collapse\n\n'
           'table a\n\n## (e) Digits: old\n\nold e\n\n## (c) Digits: losses\n'
           '\nc text\n')
    with open(os.path.join(out, 'RESULTS.md'), 'w') as f:
      f.write(old)
    sweeps = self.create_tempdir().full_path
    for name in self.small_data.SWEEPS:
      open(os.path.join(sweeps, name + '.cfg'), 'w').close()
    with mock.patch.object(self.small_data, 'seed_scores', digits_scores):
      # (c)'s sweep is not among the runs: its earlier text stays.
      path = report.build(self.runs, out, sweeps, run=False,
                          sections=('c', 'e'))
    text = open(path).read()
    self.assertTrue(text.startswith('# Reproduction report\n\nopening words'
                                    '\n\n## (a) Mode collapse\n\ntable a\n\n'
                                    '## (c) Digits: losses\n\nc text\n\n'
                                    '## (e) Digits: class conditioning'), text)
    self.assertNotIn('old e', text)
    self.assertIn('| projection |', text)

  def test_unknown_section_is_a_usage_error(self):
    out = self.create_tempdir().full_path
    proc = subprocess.run(
        [sys.executable, '-m', 'gan_jax.report', '--sections=e,z',
         f'--out={out}', '--norun_sweeps'], capture_output=True, text=True,
        cwd=ROOT, timeout=300)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    self.assertEqual(proc.stderr.strip().splitlines(), [
        'error: --sections=e,z: valid sections are a, b, c, d, e'])
    self.assertEqual(os.listdir(out), [])


if __name__ == '__main__':
  absltest.main()
