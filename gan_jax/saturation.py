"""Does G's minimax loss saturate when D wins? (E1 of the reproduction report.)

Goodfellow et al. (2014, Sec. 3) observe that early in training D rejects
G's samples with high confidence, where G's minimax loss
log(1 - D(G(z))) saturates, and propose the non-saturating loss
-log D(G(z)) instead. Arjovsky & Bottou (2017, Sec. 2.2, Fig. 2) make it
precise: with D = sigmoid(f), the minimax gradient

    grad_G E log(1 - D(G(z))) = -E[D(G(z)) grad_G f(G(z))]

vanishes as D(G(z)) -> 0, while the non-saturating one,

    grad_G -E log D(G(z)) = -E[(1 - D(G(z))) grad_G f(G(z))],

keeps the size of grad_G f. Their experiment freezes G at a few points of a
run, trains a fresh D from scratch against it, and plots both G-gradient
norms against D's training steps.

`run_e1` does that with the library's own pieces: the configured game is
trained for each snapshot step (`Steps.train_step` in one `lax.scan`); at a
snapshot G is frozen (its parameters and batch-norm statistics), D is
re-initialised from a key of its own with a fresh optimizer state, and D
alone takes `d_train_steps` updates (`Steps.d_step`). After every D update
both G-gradient norms (w.r.t. all of G's parameters), the mean D(G(z)) and
the fraction of fakes with D(G(z)) < 1e-3 are recorded on a fixed batch of
latents. Seeds run one after another through the same compiled programs.

    python -m gan_jax.saturation --flagfile=experiments/ring8_non_saturating.cfg \\
        --snapshots=500,2000,8000 --d_train_steps=2000 --e1_seeds=5 \\
        --out=experiments/saturation

writes `e1.json` (per snapshot: every seed's curves) and `e1.png`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Sequence

import numpy as np

SATURATED = 1e-3  # D(G(z)) below this counts as confidently rejected


def g_grad_norms(steps, g_params, d_params, z, g_state, d_state):
  """(|grad_G minimax|, |grad_G non-saturating|, mean D(G(z)), fraction of
  D(G(z)) < 1e-3) on latents z, G in training mode, D in inference mode."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from gan_jax import losses  # pylint: disable=g-import-not-at-top

  def norm(loss_name):
    game = dataclasses.replace(steps.game, loss=losses.get(loss_name))
    grads = jax.grad(lambda p: game.g_objective(p, d_params, z, None, g_state,
                                                d_state)[0])(g_params)
    return optax.tree.norm(grads)

  fake = steps.game.generate(g_params, z, g_state, train=True)
  prob = jax.nn.sigmoid(steps.game.discriminate(d_params, fake, d_state))
  return (norm('minimax'), norm('non_saturating'), jnp.mean(prob),
          jnp.mean(prob < SATURATED))


def run_e1(config, snapshots: Sequence[int], d_train_steps: int,
           seeds: Sequence[int], log=print) -> dict:
  """The E1 curves for every snapshot and seed (see the module docstring)."""
  import jax  # pylint: disable=g-import-not-at-top
  from gan_jax import train  # pylint: disable=g-import-not-at-top

  data, steps = train.build_steps(config)
  init = jax.jit(lambda key: train.init(config, data, steps, key))

  def advance(state, n):
    return jax.lax.scan(lambda s, _: (steps.train_step(s)[0], None), state,
                        None, length=n)[0]

  advance = jax.jit(advance, static_argnums=1)

  def d_only(state, z_eval):
    def body(s, i):
      key = jax.random.fold_in(jax.random.fold_in(s.rng, 7), i)
      k_data, k_z, k_reg = jax.random.split(key, 3)
      s, _ = steps.d_step(s, steps.sample_batch(k_data), steps.sample_z(k_z),
                          k_reg)
      return s, g_grad_norms(steps, s.g_params, s.d_params, z_eval,
                             s.g_state, s.d_state)
    return jax.lax.scan(body, state, np.arange(d_train_steps))[1]

  d_only = jax.jit(d_only)
  out = {'snapshots': list(snapshots), 'd_train_steps': d_train_steps,
         'seeds': list(seeds), 'dataset': config.dataset,
         'model': config.model, 'batch_size': config.batch_size,
         'runs': []}
  for seed in seeds:
    state = init(jax.random.PRNGKey(seed))
    z_eval = steps.sample_z(jax.random.PRNGKey(10_000 + seed))
    done = 0
    for snap in sorted(snapshots):
      if snap > done:
        state = advance(state, snap - done)
        done = snap
      fresh = init(jax.random.PRNGKey(20_000 + seed))
      frozen = state.replace(d_params=fresh.d_params,
                             d_opt_state=fresh.d_opt_state,
                             d_state=fresh.d_state)
      mm, ns, prob, sat = (np.asarray(a, np.float64)
                           for a in d_only(frozen, z_eval))
      out['runs'].append(dict(seed=seed, snapshot=snap,
                              minimax=mm.tolist(), non_saturating=ns.tolist(),
                              d_fake_prob=prob.tolist(),
                              saturated=sat.tolist()))
      log(f'seed {seed} snapshot {snap}: after {d_train_steps} D steps '
          f'|grad minimax| {mm[-1]:.3g}, |grad non-saturating| {ns[-1]:.3g}, '
          f'mean D(G(z)) {prob[-1]:.3g}, {100 * sat[-1]:.0f}% < {SATURATED:g}')
  return out


def summarise(e1: dict) -> list[dict]:
  """Per snapshot: over seeds, at the last D step, the mean and standard
  error of each norm, of their ratio minimax / non-saturating, of the mean
  D(G(z)) and of the saturated fraction."""
  rows = []
  for snap in e1['snapshots']:
    runs = [r for r in e1['runs'] if r['snapshot'] == snap]
    last = lambda key: np.array([r[key][-1] for r in runs])
    ratio = last('minimax') / last('non_saturating')
    row = dict(snapshot=snap, seeds=len(runs))
    for name, values in (('minimax', last('minimax')),
                         ('non_saturating', last('non_saturating')),
                         ('ratio', ratio), ('d_fake_prob', last('d_fake_prob')),
                         ('saturated', last('saturated'))):
      row[name] = float(np.mean(values))
      row[name + '_se'] = float(np.std(values, ddof=1) / np.sqrt(len(values))
                                if len(values) > 1 else float('nan'))
    rows.append(row)
  return rows


def plot_e1(e1: dict, path: str) -> None:
  """Both G-gradient norms (log scale) and the saturated fraction against D's
  training steps, one colour per snapshot, every seed drawn thin."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from gan_jax import fileio  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
  colours = plt.cm.viridis(np.linspace(0, 0.85, len(e1['snapshots'])))
  titles = {'minimax': '|grad_G| of minimax E log(1 - D(G(z)))',
            'non_saturating': '|grad_G| of non-saturating -E log D(G(z))',
            'saturated': f'fraction of fakes with D(G(z)) < {SATURATED:g}'}
  for ax, key in zip(axes, titles):
    for colour, snap in zip(colours, e1['snapshots']):
      for i, r in enumerate(r for r in e1['runs'] if r['snapshot'] == snap):
        ax.plot(np.arange(1, len(r[key]) + 1), r[key], color=colour, lw=0.7,
                alpha=0.8, label=f'G at step {snap}' if i == 0 else None)
    if key != 'saturated':
      ax.set_yscale('log')
    ax.set_title(titles[key], fontsize=9)
    ax.set_xlabel('steps of a fresh D against the frozen G', fontsize=8)
  axes[0].legend(fontsize=7)
  fig.suptitle(f'E1 ({e1["dataset"]}, {e1["model"]}): G frozen, D trained '
               f'from scratch; {len(e1["seeds"])} seeds', fontsize=10)
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=70)
  plt.close(fig)


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  from gan_jax import cli  # pylint: disable=g-import-not-at-top
  from gan_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import fileio  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.FATAL)
  cli.no_positional_arguments(argv)
  f = flags.FLAGS
  try:
    snapshots = [int(s) for s in f.snapshots]
  except ValueError:
    cli.usage_error(f'--snapshots={",".join(f.snapshots)} must be '
                    'comma-separated step counts, e.g. 500,2000,8000')
  if not snapshots or min(snapshots) < 0:
    cli.usage_error('--snapshots needs step counts >= 0')
  if f.d_train_steps < 1 or f.e1_seeds < 1:
    cli.usage_error('--d_train_steps and --e1_seeds must be >= 1')
  if not f.out:
    cli.usage_error('--out=DIR is required (e1.json and e1.png go there)')
  with cli.Failures():
    config = config_lib.from_flags()
    e1 = run_e1(config, snapshots, f.d_train_steps,
                list(range(config.seed, config.seed + f.e1_seeds)),
                log=lambda m: print(m, flush=True))
    os.makedirs(f.out, exist_ok=True)
    e1['summary'] = summarise(e1)
    e1['config'] = json.loads(config.to_json())
    fileio.atomic_write(os.path.join(f.out, 'e1.json'), json.dumps(e1))
    plot_e1(e1, os.path.join(f.out, 'e1.png'))
    for row in e1['summary']:
      print(f'G at step {row["snapshot"]}: ratio minimax/non-saturating '
            f'{row["ratio"]:.3g} +- {row["ratio_se"]:.2g}, '
            f'{100 * row["saturated"]:.0f}% of fakes < {SATURATED:g}')
    print(f'wrote {os.path.join(f.out, "e1.json")}', file=sys.stdout)


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags as absl_flags  # pylint: disable=g-import-not-at-top
  from gan_jax import cli as cli_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import config as config_lib_  # pylint: disable=g-import-not-at-top
  config_lib_.define_flags()
  absl_flags.DEFINE_list('snapshots', ['500', '2000', '8000'], 'Training '
                         'steps at which G is frozen.')
  absl_flags.DEFINE_integer('d_train_steps', 2000, 'Steps of the fresh D '
                            'against each frozen G.')
  absl_flags.DEFINE_integer('e1_seeds', 5, 'Seeds --seed .. --seed + N - 1.')
  absl_flags.DEFINE_string('out', None, 'Output directory.')
  app.run(main, flags_parser=cli_lib.parse_flags)
