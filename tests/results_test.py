"""Results tables against numpy: CSV rows, mean ± sample std, ranking."""

import csv
import json
import os

from absl.testing import absltest
import numpy as np

from gan_jax.analysis import results
from gan_jax.config import Config, ConfigError

# Two configurations x 3 seeds; one seed of `b` has no reverse KL (no
# high-quality sample) and one diverged.
FINALS = {
    'loss=a': [dict(seed=0, modes=8, hq_fraction=0.9, reverse_kl=0.01),
               dict(seed=1, modes=7, hq_fraction=0.8, reverse_kl=0.2),
               dict(seed=2, modes=8, hq_fraction=0.7, reverse_kl=0.05)],
    'loss=b': [dict(seed=0, modes=8, hq_fraction=0.5, reverse_kl=0.5),
               dict(seed=1, modes=8, hq_fraction=0.4, reverse_kl=None,
                    diverged_at=17),
               dict(seed=2, modes=8, hq_fraction=0.6, reverse_kl=0.3)],
}


def write_sweep(directory):
  for name, finals in FINALS.items():
    os.makedirs(os.path.join(directory, name))
    with open(os.path.join(directory, name, results.RESULTS), 'w') as f:
      json.dump({'point': {'loss': name[5:]}, 'wall_seconds': 1.5,
                 'program_runs': 3,
                 'finals': [dict(f, final=True, step=40, mode_counts=[1, 2])
                            for f in finals]}, f)
    if name == 'loss=a':
      open(os.path.join(directory, name, results.DONE), 'w').close()
  os.makedirs(os.path.join(directory, 'loss=c'))  # unfinished: not read


class ResultsTest(absltest.TestCase):

  def test_mean_std_is_numpys_with_ddof_1(self):
    values = [0.3, 1.7, 2.2, 0.9]
    mean, std, n = results.mean_std(values + [None, float('nan')])
    self.assertEqual((mean, std, n),
                     (np.mean(values), np.std(values, ddof=1), 4))
    self.assertEqual(results.mean_std([2.5]), (2.5, 0.0, 1))
    self.assertEqual(results.mean_std([None])[2], 0)

  def test_standard_errors_and_resolved_differences(self):
    a, b = [1.0, 2.0, 4.0], [5.0, 6.0, 9.0, None]
    mean, se, n = results.mean_se(a)
    self.assertEqual((mean, n), (np.mean(a), 3))
    self.assertAlmostEqual(se, np.std(a, ddof=1) / np.sqrt(3))
    diff, dse = results.difference(a, b)
    want = np.hypot(np.std(a, ddof=1) / np.sqrt(3),
                    np.std([5, 6, 9], ddof=1) / np.sqrt(3))
    self.assertAlmostEqual(diff, np.mean([5, 6, 9]) - np.mean(a))
    self.assertAlmostEqual(dse, want)
    self.assertEqual(results.resolved(diff, dse), abs(diff) > 2 * want)
    # One seed (the others diverged) resolves nothing.
    self.assertTrue(np.isnan(results.mean_se([6.0, float('nan')])[1]))
    self.assertFalse(results.resolved(*results.difference([6.0], [7.0])))

  def test_only_finished_configurations_are_read(self):
    directory = self.create_tempdir().full_path
    write_sweep(directory)
    self.assertEqual(results.finished(directory), ['loss=a'])
    open(os.path.join(directory, 'loss=b', results.DONE), 'w').close()
    self.assertEqual(results.finished(directory), ['loss=a', 'loss=b'])

  def test_csv_has_one_row_per_configuration_and_seed(self):
    directory = self.create_tempdir().full_path
    write_sweep(directory)
    open(os.path.join(directory, 'loss=b', results.DONE), 'w').close()
    results.write_tables(directory)
    with open(os.path.join(directory, 'results.csv')) as f:
      rows = list(csv.DictReader(f))
    expected = [(n, str(f['seed'])) for n in FINALS for f in FINALS[n]]
    self.assertEqual([(r['config'], r['seed']) for r in rows], expected)
    self.assertEqual([r['hq_fraction'] for r in rows],
                     [str(f['hq_fraction']) for n in FINALS
                      for f in FINALS[n]])
    self.assertEqual(rows[4]['reverse_kl'], '')
    self.assertEqual(rows[4]['diverged_at'], '17')
    self.assertEqual(rows[0]['loss'], 'a')
    self.assertEqual(rows[0]['wall_seconds'], '1.5')
    self.assertNotIn('mode_counts', rows[0])

  def test_summary_ranks_by_modes_then_reverse_kl(self):
    directory = self.create_tempdir().full_path
    write_sweep(directory)
    open(os.path.join(directory, 'loss=b', results.DONE), 'w').close()
    summary = results.summarize(results.load_rows(directory))
    # b: 8 modes on average beats a's 7.67, though a's reverse KL is lower.
    self.assertEqual([e['config'] for e in summary], ['loss=b', 'loss=a'])
    b = summary[0]
    self.assertEqual(b['metrics']['reverse_kl'],
                     (np.mean([0.5, 0.3]), np.std([0.5, 0.3], ddof=1), 2))
    self.assertEqual((b['seeds'], b['diverged']), (3, 1))
    table = results.markdown_table(summary)
    hq = [0.5, 0.4, 0.6]
    self.assertIn(f'| loss=b | 8.00 ± 0.00 | {100 * np.mean(hq):.1f} ± '
                  f'{100 * np.std(hq, ddof=1):.1f} | '
                  f'{np.mean([0.5, 0.3]):.3f} ± '
                  f'{np.std([0.5, 0.3], ddof=1):.3f} | '
                  '3 (reverse KL: 2), 1 diverged |', table)
    modes = [8, 7, 8]
    self.assertIn(f'| loss=a | {np.mean(modes):.2f} ± '
                  f'{np.std(modes, ddof=1):.2f} |', table)
    lines = table.splitlines()
    self.assertEqual(lines[0], '| configuration | modes | % HQ | reverse KL '
                     '| seeds (n) |')
    self.assertEqual(len(lines), 4)

  def test_a_conditional_image_sweep_is_ranked_by_label_accuracy(self):
    # An image run of several seeds keeps FID on its learning curve; its
    # finals carry only the conditional label accuracy, and the table shows
    # it as a percentage, higher first, with a plain seed count.
    directory = self.create_tempdir().full_path
    accuracies = {'conditional=acgan': [0.4, 0.695, 0.3],
                  'conditional=projection': [0.999, 0.997, 0.998]}
    for name, values in accuracies.items():
      os.makedirs(os.path.join(directory, name))
      with open(os.path.join(directory, name, results.RESULTS), 'w') as f:
        json.dump({'point': {'conditional': name.split('=')[1]},
                   'wall_seconds': 1.0, 'program_runs': 3,
                   'finals': [dict(seed=s, step=10, final=True,
                                   label_accuracy=v,
                                   label_classifier='digits_classifier')
                              for s, v in enumerate(values)]}, f)
      open(os.path.join(directory, name, results.DONE), 'w').close()
    table = results.markdown_table(
        results.summarize(results.load_rows(directory))).splitlines()
    self.assertEqual(table[0], '| configuration | % label accuracy | '
                     'seeds (n) |')
    projection = accuracies['conditional=projection']
    self.assertEqual(table[2], '| conditional=projection | '
                     f'{100 * np.mean(projection):.1f} ± '
                     f'{100 * np.std(projection, ddof=1):.1f} | 3 |')
    self.assertTrue(table[3].startswith('| conditional=acgan | 46.5 ± '))
    # With no metric columns at all the seed count stands alone.
    bare = results.markdown_table([{'config': 'x', 'seeds': 5, 'diverged': 0,
                                    'metrics': {}}])
    self.assertIn('| x | 5 |', bare)

  def test_config_of_a_multi_seed_run_loads_with_its_seeds_from_finals(self):
    directory = self.create_tempdir().full_path
    write_sweep(directory)
    saved = json.loads(Config(loss='hinge', g_hidden=(8, 4)).to_json())
    saved.update(num_seeds=3, seeds=[0, 1, 2])  # as seeds.run and sweep write
    with open(os.path.join(directory, 'loss=a', 'config.json'), 'w') as f:
      json.dump(saved, f)
    config = results.load_config(directory)
    self.assertEqual(config, Config(loss='hinge', g_hidden=(8, 4),
                                    workdir=os.path.join(directory, 'loss=a')))
    self.assertEqual([f['seed'] for f in results.load_result(
        directory, 'loss=a')['finals']], [0, 1, 2])
    with open(os.path.join(directory, 'loss=a', 'config.json'), 'w') as f:
      json.dump(dict(saved, lr=0.1), f)
    with self.assertRaisesRegex(ConfigError,
                                r'has fields this version does not know: lr$'):
      results.load_config(directory)

  def test_format_mean_std_scales_and_rounds_per_metric(self):
    self.assertEqual(results.format_mean_std('hq_fraction', (0.5, 0.125, 3)),
                     '50.0 ± 12.5')
    self.assertEqual(results.format_mean_std('modes', (7.666, 0.577, 3)),
                     '7.67 ± 0.58')
    self.assertEqual(results.format_mean_std('reverse_kl', (0.01234, 0.0, 1)),
                     '0.012 ± 0.000')
    self.assertEqual(results.format_mean_std('fid', (float('nan'),) * 2 + (0,)),
                     'n/a')

  def test_tables_are_written_without_temporaries(self):
    directory = self.create_tempdir().full_path
    write_sweep(directory)
    results.write_tables(directory)
    self.assertEqual(sorted(n for n in os.listdir(directory)
                            if os.path.isfile(os.path.join(directory, n))),
                     ['results.csv', 'results.md'])

  def test_lower_fid_ranks_first(self):
    rows = [{'config': 'x', 'fid': 30.0}, {'config': 'y', 'fid': 10.0},
            {'config': 'x', 'fid': 34.0}]
    summary = results.summarize(rows)
    self.assertEqual([e['config'] for e in summary], ['y', 'x'])
    self.assertEqual(summary[1]['metrics']['fid'],
                     (32.0, float(np.std([30.0, 34.0], ddof=1)), 2))


if __name__ == '__main__':
  absltest.main()
