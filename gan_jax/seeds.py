"""Many runs as one compiled program: seeds (and float hyperparameters) vmapped.

A run's whole state is a pytree (`GANState`), and `train_step` is a pure
function of it, so M independent runs are one run of

    vmap(lambda s: lax.scan(train_step, s, None, n))

over a state whose every leaf has a leading member axis. Each member m has
its own key `PRNGKey(seed_m)`, hence its own initialisation, batches and
latents (all drawn from `fold_in(rng_m, step)`), and its own optimizer
hyperparameters: the players' optimizers are wrapped by
`optax.inject_hyperparams`, so `learning_rate` (and Adam's `b1` and `b2`)
live in the optimizer state as arrays instead of Python constants baked into
the program. Members may therefore differ in `g_lr`, `d_lr`, `beta1`,
`beta2` and `seed`; everything else (loss, `d_steps`, update scheme,
optimizer and momentum, widths, batch size, step count) fixes the program's
shape or control flow and must agree (`static_key`).

Under vmap each member computes exactly what it would alone: the same
initial parameters (the same keys), the same batches, the same arithmetic,
so member m equals the run `--seed=seed_m` trained by `gan_jax.train` up to
float reassociation (checked to 1e-5 in tests/seeds_test.py; training
amplifies such rounding differences, so after hundreds of steps the same
seed alone and vmapped are two equally valid runs, not equal bits). On an
accelerator the M members fill the device that one small MLP leaves idle;
on a CPU they turn M small matrix products into M-times-larger ones and
share one program's dispatch (bench/seeds_throughput.py measures both).

It is the training loop of one run (`gan_jax.loop.train`) with another
program transform (`gan_jax.parallel.Layout.over_members`). Members are split
over the host's devices: with D local devices and M members, the program is
`shard_map(vmap(scan), P('seed'))` over the d <= D devices that
`parallel.split` chooses, each running ceil(M/d) members with no
communication between them (members are independent); an M that d does not
divide is padded with copies of the last member, trained and discarded,
which costs less than leaving devices idle. On a multi-GPU or TPU host those
are the accelerators. On a CPU host, `parallel.configure_cpu_devices`
(`--cpu_devices`, default one per core for multi-member runs) makes JAX
expose the cores as separate CPU devices, each executing its share of the
members on its own thread: the small products of a toy MLP leave a core idle
when one program splits each of them across both, and independent programs
fill it (bench/seeds_throughput.py: 16 seeds, 2 cores, 1.6x the sequential
throughput with the seeds split over 2 devices, 1.1x in one).

`run(config, num_seeds)` is `gan_jax.main --num_seeds=S`: seeds
`config.seed, ..., config.seed + S - 1` in one program, artifacts with a seed
axis, written by the writer of one run (`gan_jax.artifacts`). Such a run
writes no checkpoints (the sweep runner, `gan_jax.sweep`, resumes at the
granularity of whole configurations instead), so options that need them, and
data parallelism within a member, are refused.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from flax import serialization

from gan_jax import artifacts
from gan_jax import data as data_lib
from gan_jax import config as config_lib
from gan_jax import fileio
from gan_jax import loop
from gan_jax import parallel
from gan_jax import schedules
from gan_jax import workdir_lock
from gan_jax.config import Config, ConfigError
from gan_jax.state import GANState

# Config fields that may differ between members of one program.
FLOAT_HYPERPARAMS = ('g_lr', 'd_lr', 'beta1', 'beta2')
MEMBER_FIELDS = ('workdir', 'seed') + FLOAT_HYPERPARAMS


def define_flags() -> None:
  """Defines `--num_seeds` on absl's global FLAGS (idempotent)."""
  if 'num_seeds' not in flags.FLAGS:
    flags.DEFINE_integer(
        'num_seeds', 1, 'Independent runs (seeds --seed, --seed+1, ...) '
        'trained as one vmapped program; artifacts get a leading seed axis.')
  if 'cpu_devices' not in flags.FLAGS:
    flags.DEFINE_integer(
        'cpu_devices', 0, 'CPU hosts, --num_seeds > 1: virtual CPU devices '
        'the seeds are split over, each running its share on its own thread '
        '(0: one per core; 1: one program on all cores). No effect on GPU/TPU '
        'hosts, where the accelerators are the devices.')


def static_key(config: Config) -> Config:
  """`config` with the per-member fields blanked: members of one program must
  have equal static keys."""
  return config.replace(workdir='', seed=0, g_lr=1.0, d_lr=1.0, beta1=0.0,
                        beta2=0.0)


def check(config: Config, num_seeds: int) -> None:
  """Raises ConfigError (one line) for options a multi-seed run cannot honour."""
  if num_seeds < 1:
    raise ConfigError(f'--num_seeds={num_seeds} must be at least 1')
  last = config.seed + num_seeds - 1
  if num_seeds > 1 and last >= config_lib.SEED_LIMIT.bound:
    raise ConfigError(f'--seed={config.seed} --num_seeds={num_seeds} reach '
                      f'seed {last}, which {config_lib.SEED_LIMIT}')
  if num_seeds == 1:
    return
  refused = []
  if config.checkpoint_every:
    refused.append(f'--checkpoint_every={config.checkpoint_every}')
  if config.multihost:
    refused.append('--multihost')
  if refused:
    raise ConfigError(
        f'--num_seeds={num_seeds} writes no checkpoints and runs on one '
        f'host; drop '
        f'{", ".join(refused)} '
        'or use --num_seeds=1')
  if os.path.isdir(os.path.join(config.workdir, 'checkpoints')):
    raise ConfigError(
        f'--workdir={config.workdir} holds checkpoints of a single-seed run; '
        f'--num_seeds={num_seeds} needs a new --workdir')


def build(configs: Sequence[Config]):
  """Data, `Steps` and the stacked initial state of members `configs`.

  Returns `(data, steps, state)` where every leaf of `state` has a leading
  axis of len(configs). The static pieces come from
  `gan_jax.train.build_steps` of the first config, with each player's
  optimizer in its hyperparameter-injected form (same arithmetic, hyperparameters read
  from the optimizer state), so each member starts from its own values.
  """
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  first = configs[0]
  for c in configs[1:]:
    if static_key(c) != static_key(first):
      diff = [f.name for f in dataclasses.fields(Config)
              if getattr(static_key(c), f.name) != getattr(static_key(first),
                                                             f.name)]
      raise ValueError(f'members differ in {", ".join(diff)}; only '
                       f'{", ".join(MEMBER_FIELDS)} may differ within one '
                       'program')
  data, steps = train.build_steps(first, injected=True)

  def init_one(key, g_lr, d_lr, b1, b2):
    opt = lambda lr, player='g': train.player_optimizer(
        first, lr, b1, b2, injected=True, player=player)
    member = dataclasses.replace(
        steps, g_opt=schedules.player_optimizer(first, opt(g_lr), 'g'),
        d_opt=schedules.player_optimizer(first, opt(d_lr, 'd'), 'd'))
    return train.init(first, data, member, key)

  column = lambda name: jnp.asarray([getattr(c, name) for c in configs],
                                    jnp.float32)
  keys = jnp.stack([jax.random.PRNGKey(c.seed) for c in configs])
  state = jax.jit(jax.vmap(init_one))(keys, *map(column, FLOAT_HYPERPARAMS))
  return data, steps, state


@dataclasses.dataclass
class Result:
  """What `train_members` returns; index i belongs to member i.

  Attributes:
    state: the final stacked state.
    samples: (M, N, dims) evaluation samples.
    logs: per member, one record per chunk (as one run logs it: `step`, the
      chunk's mean of each step metric, `steps_per_sec`, that member's steps
      per second, which is the program's, every member advancing together,
      and `elapsed_sec`).
    finals: per member, the final evaluation record (as `gan_jax.train`
      writes it, with the member's `seed`), with `diverged_at` (the first
      step whose losses were not finite) when that happened.
    train_seconds: wall time of the compiled chunks, without compilation.
    compile_seconds: time spent compiling.
    compilations: programs compiled (one per distinct chunk length).
    devices: devices the members were split over (1: one vmapped program).
    data: the data set the members trained on.
  """

  state: GANState
  samples: np.ndarray
  logs: list[list[dict]]
  finals: list[dict]
  train_seconds: float
  compile_seconds: float
  compilations: int
  devices: int = 1
  data: Any = None


def train_members(configs: Sequence[Config], out=None) -> Result:
  """Trains the members `configs` (equal `static_key`) as one program.

  A member whose losses become NaN/Inf does not stop the others (under vmap
  they cannot influence each other); its final record gets `diverged_at`.
  """
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  first = configs[0]
  layout = parallel.Layout.over_members(len(configs))
  data, steps, state = build(layout.pad(configs))
  state = layout.place(state)
  if out is not None and layout.description():
    print(layout.description(), file=out, flush=True)
  logs: list[list[dict]] = [[] for _ in configs]

  def on_log(records: list[dict]) -> None:
    for log, record in zip(logs, records):
      log.append(record)

  z = jax.tree.map(lambda *zs: jnp.stack(zs),
                   *[train.eval_inputs(c) for c in configs])

  evaluate = curve_evaluator(first, data)
  stats = loop.Stats()

  def on_chunk(state) -> bool:
    # Learning curves (`--eval_every`): every member's scores on its own
    # evaluation latents, added to the chunk's record. A member that has
    # diverged (or whose samples are not finite) is not scored: its record
    # holds no scores from then on, and the others go on.
    step = int(np.ravel(jax.device_get(state.step))[0])
    if evaluate and step % first.eval_every == 0 and step < first.num_steps:
      samples = train.generate(steps, layout.unpad(state), z,
                               member_axis=True)
      for m, c in enumerate(configs):
        if m not in stats.diverged and np.all(np.isfinite(samples[m])):
          logs[m][-1].update(evaluate(c, samples[m]))
    return False

  state = loop.train(state, steps.train_step, first.num_steps,
                     first.log_every, on_log=on_log, out=out, layout=layout,
                     stats=stats, on_chunk=on_chunk)
  state = layout.unpad(state)
  samples = train.generate(steps, state, z, member_axis=True)
  finals = []
  for m, c in enumerate(configs):
    final = train.final_record(c, data, samples[m], first.num_steps,
                               stats.train_seconds, seed=c.seed)
    if m in stats.diverged:
      final['diverged_at'] = stats.diverged[m]
    finals.append(final)
  return Result(state, samples, logs, finals, stats.train_seconds,
                stats.compile_seconds, stats.compilations,
                1 if layout.mesh is None else layout.mesh.size, data)


def curve_evaluator(config: Config, data):
  """`(member config, samples) -> scores` for the `--eval_every` learning
  curves of a several-seed run, or None without `--eval_every`: a
  mixture's mode coverage, sample quality and reverse KL
  (`train.toy_sample_metrics`); an image set's `--eval_metrics` against
  its reference (`gan_jax.evaluation`, the extractor and reference
  statistics loaded once; numbers only, as the chunk's record holds
  numbers), each member's samples judged alone."""
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  if not config.eval_every:
    return None
  if data_lib.spec(config).has_modes:
    return lambda c, samples: train.toy_sample_metrics(c, data, samples)
  from gan_jax import evaluation  # pylint: disable=g-import-not-at-top
  evaluator = evaluation.make_in_training_evaluator(config)

  def scores(c: Config, samples: np.ndarray) -> dict:
    record = evaluator(0, samples, train.eval_labels(c))
    return {k: v for k, v in record.items()
            if k not in ('step', 'eval') and isinstance(v, (int, float))}

  return scores


def member_configs(config: Config, num_seeds: int) -> list[Config]:
  """Seeds `config.seed, ..., config.seed + num_seeds - 1` of `config`."""
  return [config.replace(seed=config.seed + s) for s in range(num_seeds)]


def write(config: Config, result: Result,
          members: Optional[Sequence[int]] = None, picture: bool = True
          ) -> None:
  """The artifacts of `members` of `result` (default: all) in
  `config.workdir`, by the writer of one run with a seed axis: config.json
  (`config` plus `num_seeds` and `seeds`), metrics.jsonl (every record with
  its `seed`: per chunk by step then seed, the finals last), samples.npy
  (seed axis first), with `picture` samples.png (a panel per seed), and
  the final generators (`save_generators`)."""
  members = list(range(len(result.finals)) if members is None else members)
  files = artifacts.RunFiles(
      config, data=result.data if picture else None,
      seeds=[result.finals[m]['seed'] for m in members])
  try:
    for chunk in zip(*(result.logs[m] for m in members)):
      files.log(chunk)
    files.final([result.finals[m] for m in members], result.samples[members])
    save_generators(config.workdir, result.state, members)
  finally:
    files.close()


# The members' final generators (a run of several seeds keeps no
# checkpoints): what `gan_jax.generate` samples from.
GENERATORS = 'generators.msgpack'


def generator_tree(state: GANState) -> dict:
  """What sampling needs of a state: G's parameters, its moving average
  and its model state (batch-norm statistics)."""
  return {'g_params': state.g_params, 'g_ema': state.g_ema,
          'g_state': state.g_state}


def save_generators(workdir: str, state: GANState,
                    members: Sequence[int]) -> None:
  """WORKDIR/generators.msgpack: `generator_tree` of `members` of the
  stacked `state` (seed axis first), Flax's msgpack, written atomically."""
  index = np.asarray(members)
  tree = jax.tree.map(lambda leaf: np.asarray(leaf)[index],
                      generator_tree(state))
  fileio.atomic_write(os.path.join(workdir, GENERATORS),
                      serialization.to_bytes(tree))


def run(config: Config, num_seeds: int, out=sys.stdout) -> list[dict]:
  """`gan_jax.main --num_seeds=S`: S seeds in one program; returns the finals
  and writes their artifacts (`write`) to `config.workdir`, holding its lock
  (`gan_jax.workdir_lock`) from the start."""
  check(config, num_seeds)
  with workdir_lock.hold(config.workdir):
    configs = member_configs(config, num_seeds)
    print(f'training {config.loss} on {config.dataset} for '
          f'{config.num_steps} steps, seeds {configs[0].seed}..'
          f'{configs[-1].seed} vmapped in one program (chunks of '
          f'{config.log_every})', file=out, flush=True)
    result = train_members(configs, out=out)
    write(config, result)
  return result.finals


def summary(config: Config, finals: list[dict]) -> str:
  """Terminal lines: each seed's result, the mean, and the artifacts."""
  lines = [f'done in {finals[0]["train_seconds"]:.1f} s ({len(finals)} seeds '
           'in one program):']
  keys = [k for k in ('modes', 'hq_fraction', 'reverse_kl', 'jsd', 'fid',
                      'label_accuracy') if k in finals[0]]
  for f in finals:
    lines.append(f'  seed {f["seed"]}: ' + ', '.join(
        f'{k} {f[k]:.4g}' if f.get(k) is not None else f'{k} n/a'
        for k in keys) + (f' (diverged at step {f["diverged_at"]})'
                          if 'diverged_at' in f else ''))
  lines.append(f'artifacts in {os.path.abspath(config.workdir)}: config.json, '
               'metrics.jsonl, samples.npy (seed axis first), samples.png, '
               f'{GENERATORS}')
  return '\n'.join(lines)
