"""Many runs as one compiled program: seeds (and float hyperparameters) vmapped.

A run's whole state is a pytree (`GANState`), and `train_step` is a pure
function of it, so M independent runs are one run of

    vmap(lambda s: lax.scan(train_step, s, None, n))

over a state whose every leaf has a leading member axis. Each member m has
its own key `PRNGKey(seed_m)`, hence its own initialisation, batches and
latents (all drawn from `fold_in(rng_m, step)`), and its own optimizer
hyperparameters: the players' Adam is wrapped by `optax.inject_hyperparams`,
so `learning_rate`, `b1` and `b2` live in the optimizer state as arrays
instead of Python constants baked into the program. Members may therefore
differ in `g_lr`, `d_lr`, `beta1`, `beta2` and `seed`; everything else (loss,
`d_steps`, update scheme, widths, batch size, step count) fixes the program's
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

Members are split over the host's devices: with D local devices and M
members, the program is `shard_map(vmap(scan), P('seed'))` over the d <= D
devices that `split` chooses, each running ceil(M/d) members with no
communication between them (members are independent); an M that d does not
divide is padded with copies of the last member, trained and discarded,
which costs less than leaving devices idle. On a multi-GPU or TPU
host those are the accelerators. On a CPU host, `configure_cpu_devices`
(`--cpu_devices`, default one per core for multi-member runs) makes JAX
expose the cores as separate CPU devices, each executing its share of the
members on its own thread: the small products of a toy MLP leave a core idle
when one program splits each of them across both, and independent programs
fill it (bench/seeds_throughput.py: 16 seeds, 2 cores, 1.6x the sequential
throughput with the seeds split over 2 devices, 1.1x in one).

`run(config, num_seeds)` is `gan_jax.main --num_seeds=S`: seeds
`config.seed, ..., config.seed + S - 1` in one program, artifacts with a seed
axis. Such a run writes no checkpoints (the sweep runner, `gan_jax.sweep`,
resumes at the granularity of whole configurations instead), so options
that need them, and data parallelism within a member, are refused.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan_jax import loop
from gan_jax.config import Config, ConfigError
from gan_jax.state import GANState, init_state
from gan_jax.steps import Steps, scheme_optimizer

# Config fields that may differ between members of one program.
FLOAT_HYPERPARAMS = ('g_lr', 'd_lr', 'beta1', 'beta2')
MEMBER_FIELDS = ('workdir', 'seed') + FLOAT_HYPERPARAMS
# The mesh axis members are split over.
SEED_AXIS = 'seed'


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


def configure_cpu_devices(cpu_devices: int, multi_member: bool) -> int:
  """Sets how many devices JAX's CPU backend exposes; returns that number.

  Call before JAX initialises a backend (anything that lists devices or
  computes). Single-member runs keep the default (one device, all cores for
  each operation, 0 returned) unless `cpu_devices` asks otherwise;
  multi-member programs get `cpu_devices` devices, 0 meaning one per core
  available to this process, unless XLA_FLAGS already fixes the count
  (--xla_force_host_platform_device_count).
  """
  if cpu_devices < 0:
    raise ConfigError(f'--cpu_devices={cpu_devices} must be 0 (one per core) '
                      'or a positive count')
  if not cpu_devices:
    if not multi_member or ('xla_force_host_platform_device_count'
                            in os.environ.get('XLA_FLAGS', '')):
      return 0
    cpu_devices = len(os.sched_getaffinity(0))
  jax.config.update('jax_num_cpu_devices', cpu_devices)
  return cpu_devices


def split(num_members: int, num_devices: int) -> tuple[int, int]:
  """(devices d, members per device k) for `num_members` over at most
  `num_devices` devices.

  A device's time grows with its share k = ceil(M / d), so d is the fewest
  devices that reach the smallest share ceil(M / min(D, M)); when d does not
  divide M, the program is padded to d k members (copies of the last one,
  trained and discarded): 5 members on 2 devices run as 2 x 3.
  """
  share = -(-num_members // max(1, min(num_devices, num_members)))
  devices = -(-num_members // share)
  return devices, share


def seed_mesh(num_members: int,
              devices: Optional[Sequence[jax.Device]] = None) -> Optional[Mesh]:
  """A 1-D 'seed' mesh over the local devices `split` chooses for
  `num_members` (None when that is one device)."""
  devices = list(devices) if devices is not None else jax.local_devices()
  used, _ = split(num_members, len(devices))
  if used == 1:
    return None
  return Mesh(np.asarray(devices[:used]), (SEED_AXIS,))


def place(state: GANState, mesh: Optional[Mesh]) -> GANState:
  """`state` with its member axis split over `mesh` (unchanged if None)."""
  if mesh is None:
    return state
  return jax.device_put(state, NamedSharding(mesh, P(SEED_AXIS)))


def static_key(config: Config) -> Config:
  """`config` with the per-member fields blanked: members of one program must
  have equal static keys."""
  return config.replace(workdir='', seed=0, g_lr=1.0, d_lr=1.0, beta1=0.0,
                        beta2=0.0)


def check(config: Config, num_seeds: int) -> None:
  """Raises ConfigError (one line) for options a multi-seed run cannot honour."""
  if num_seeds < 1:
    raise ConfigError(f'--num_seeds={num_seeds} must be at least 1')
  if num_seeds == 1:
    return
  refused = []
  if config.checkpoint_every:
    refused.append(f'--checkpoint_every={config.checkpoint_every}')
  if config.multihost:
    refused.append('--multihost')
  if getattr(config, 'eval_every', 0):
    refused.append(f'--eval_every={config.eval_every}')
  if refused:
    raise ConfigError(
        f'--num_seeds={num_seeds} writes no checkpoints and runs on one '
        f'host without in-training evaluation; drop {", ".join(refused)} '
        'or use --num_seeds=1')
  if os.path.isdir(os.path.join(config.workdir, 'checkpoints')):
    raise ConfigError(
        f'--workdir={config.workdir} holds checkpoints of a single-seed run; '
        f'--num_seeds={num_seeds} needs a new --workdir')


def _adam(lr, b1, b2) -> optax.GradientTransformation:
  return optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=b2)


def build(configs: Sequence[Config]):
  """Data, `Steps` and the stacked initial state of members `configs`.

  Returns `(data, steps, state)` where every leaf of `state` has a leading
  axis of len(configs). The static pieces come from `gan_jax.train.build` of
  the first config, with each player's Adam replaced by its
  hyperparameter-injected form (same arithmetic, hyperparameters read from
  the optimizer state).
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
  data, steps, _ = train.build(first)
  template = _adam(first.g_lr, first.beta1, first.beta2)
  steps = dataclasses.replace(
      steps, g_opt=scheme_optimizer(first.update, template),
      d_opt=scheme_optimizer(first.update, template))

  def init_one(key, g_lr, d_lr, b1, b2):
    g_opt = scheme_optimizer(first.update, _adam(g_lr, b1, b2))
    d_opt = scheme_optimizer(first.update, _adam(d_lr, b1, b2))
    return init_state(steps.game, g_opt, d_opt, key, first.z_dim, data.shape,
                      g_ema=first.g_ema_decay > 0)

  column = lambda name: jnp.asarray([getattr(c, name) for c in configs],
                                    jnp.float32)
  keys = jnp.stack([jax.random.PRNGKey(c.seed) for c in configs])
  state = jax.jit(jax.vmap(init_one))(keys, *map(column, FLOAT_HYPERPARAMS))
  return data, steps, state


class ChunkRunner:
  """One compiled `vmap(scan(train_step))` program per chunk length, its
  member axis split over `mesh` (`shard_map`) when one is given."""

  def __init__(self, train_step: Callable, mesh: Optional[Mesh] = None):
    self._train_step = train_step
    self._mesh = mesh
    self._compiled: dict[int, Callable] = {}
    self.compile_seconds = 0.0
    self.compilations = 0

  def compiled(self, state: GANState, length: int) -> Callable:
    if length not in self._compiled:
      start = time.perf_counter()
      members = jax.vmap(lambda s: loop.scan_steps(self._train_step, s, length))
      if self._mesh is not None:
        # Members never communicate: each device runs its block on its own.
        members = jax.shard_map(members, mesh=self._mesh,
                                in_specs=P(SEED_AXIS), out_specs=P(SEED_AXIS))
      fn = jax.jit(members, donate_argnums=0)
      self._compiled[length] = fn.lower(state).compile()
      self.compile_seconds += time.perf_counter() - start
      self.compilations += 1
    return self._compiled[length]

  def __call__(self, state: GANState, length: int):
    return self.compiled(state, length)(state)


@dataclasses.dataclass
class Result:
  """What `train_members` returns; index i belongs to member i.

  Attributes:
    state: the final stacked state.
    samples: (M, N, dims) evaluation samples.
    logs: per member, one record per chunk (`step`, the chunk's mean of each
      step metric, and `steps_per_sec`, that member's steps per second, which
      is the program's, every member advancing together).
    finals: per member, the final evaluation record (as `gan_jax.train`
      writes it), with `diverged_at` (the first step whose losses were not
      finite) when that happened.
    train_seconds: wall time of the compiled chunks, without compilation.
    compile_seconds: time spent compiling.
    compilations: programs compiled (one per distinct chunk length).
    devices: devices the members were split over (1: one vmapped program).
  """

  state: GANState
  samples: np.ndarray
  logs: list[list[dict]]
  finals: list[dict]
  train_seconds: float
  compile_seconds: float
  compilations: int
  devices: int = 1


def train_members(configs: Sequence[Config], out=None,
                  on_chunk: Optional[Callable[[int], None]] = None) -> Result:
  """Trains the members `configs` (equal `static_key`) as one program.

  A member whose losses become NaN/Inf does not stop the others (under vmap
  they cannot influence each other); its final record gets `diverged_at`.
  """
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  first = configs[0]
  mesh = seed_mesh(len(configs))
  per_device = split(len(configs), 1 if mesh is None else mesh.size)[1]
  padding = [configs[-1]] * ((1 if mesh is None else mesh.size) * per_device
                             - len(configs))
  data, steps, state = build(list(configs) + padding)
  state = place(state, mesh)
  runner = ChunkRunner(steps.train_step, mesh)
  if out is not None and mesh is not None:
    print(f'{len(configs)} runs split over {mesh.size} '
          f'{mesh.devices.flat[0].platform.upper()} devices, '
          f'{per_device} per device'
          + (f' ({len(padding)} padding run(s), discarded)' if padding
             else ''), file=out, flush=True)
  logs: list[list[dict]] = [[] for _ in configs]
  diverged: list[Optional[int]] = [None] * len(configs)
  step, seconds = 0, 0.0
  while step < first.num_steps:
    length = loop.next_chunk(step, first.num_steps, first.log_every)
    program = runner.compiled(state, length)  # compiled outside the timing
    start = time.perf_counter()
    state, metrics = program(state)
    metrics = jax.device_get(metrics)
    took = time.perf_counter() - start
    seconds += took
    for m in range(len(configs)):
      mine = {k: v[m] for k, v in metrics.items()}
      record = {'step': step + length}
      record.update({k: float(np.mean(v)) for k, v in mine.items()})
      record['steps_per_sec'] = length / took
      logs[m].append(record)
      bad = loop.first_non_finite(mine, step + 1)
      if bad is not None and diverged[m] is None:
        diverged[m] = bad[0]
    step += length
    if out is not None:
      print(f'step {step}/{first.num_steps}: {len(configs)} runs at '
            f'{length / took:.0f} steps/s each', file=out, flush=True)
    if on_chunk is not None:
      on_chunk(step)
  if padding:
    state = jax.tree.map(lambda x: x[:len(configs)], state)
  z = jnp.stack([train.eval_latents(c) for c in configs])
  params = state.g_ema if steps.g_ema_decay else state.g_params
  generate = jax.jit(jax.vmap(lambda p, s, z: steps.game.generate(p, z, s)))
  samples = np.concatenate([
      np.asarray(generate(params, state.g_state,
                          z[:, i:i + train.GENERATE_BATCH]))
      for i in range(0, z.shape[1], train.GENERATE_BATCH)], axis=1)
  finals = []
  for m, c in enumerate(configs):
    final = {'step': int(step), 'final': True, 'seed': c.seed,
             'train_seconds': seconds, **train.evaluate(data, samples[m])}
    if diverged[m] is not None:
      final['diverged_at'] = diverged[m]
    finals.append(final)
  return Result(state, samples, logs, finals, seconds, runner.compile_seconds,
                runner.compilations, 1 if mesh is None else mesh.size)


def member_configs(config: Config, num_seeds: int) -> list[Config]:
  """Seeds `config.seed, ..., config.seed + num_seeds - 1` of `config`."""
  return [config.replace(seed=config.seed + s) for s in range(num_seeds)]


def save_npy(path: str, array: np.ndarray) -> None:
  from gan_jax import logging_utils  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  np.save(buffer, array)
  logging_utils.atomic_write(path, buffer.getvalue())


def write_metrics(path: str, result: Result) -> None:
  """metrics.jsonl of a multi-member run: every record carries its `seed`;
  the per-chunk records come first (by step, then seed), the finals last."""
  from gan_jax import logging_utils  # pylint: disable=g-import-not-at-top
  lines = []
  for chunk in range(len(result.logs[0])):
    for m, log in enumerate(result.logs):
      lines.append({'seed': result.finals[m]['seed'], **log[chunk]})
  lines.extend(result.finals)
  logging_utils.atomic_write(
      path, ''.join(json.dumps(r) + '\n' for r in lines).encode())


def run(config: Config, num_seeds: int, out=sys.stdout) -> list[dict]:
  """`gan_jax.main --num_seeds=S`: S seeds in one program; returns the finals.

  Writes to `config.workdir`: `config.json` (the config of the first seed
  plus `num_seeds` and the list of `seeds`), `metrics.jsonl` (every record
  with its `seed`), `samples.npy` (shape (S, N, dims), seed-major) and
  `samples.png` (one panel per seed).
  """
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import logging_utils  # pylint: disable=g-import-not-at-top
  from gan_jax import plots  # pylint: disable=g-import-not-at-top
  check(config, num_seeds)
  configs = member_configs(config, num_seeds)
  os.makedirs(config.workdir, exist_ok=True)
  resolved = json.loads(config.to_json())
  resolved.update(num_seeds=num_seeds, seeds=[c.seed for c in configs])
  logging_utils.atomic_write(
      os.path.join(config.workdir, 'config.json'),
      (json.dumps(resolved, indent=2, sort_keys=True) + '\n').encode())
  print(f'training {config.loss} on {config.dataset} for {config.num_steps} '
        f'steps, seeds {configs[0].seed}..{configs[-1].seed} vmapped in one '
        f'program (chunks of {config.log_every})', file=out, flush=True)
  result = train_members(configs, out=out)
  write_metrics(os.path.join(config.workdir, 'metrics.jsonl'), result)
  save_npy(os.path.join(config.workdir, 'samples.npy'), result.samples)
  data = data_lib.build(config)
  png = os.path.join(config.workdir, 'samples.png')
  tmp = f'{png[:-4]}.tmp-{os.getpid()}.png'
  plots.samples_grid(
      tmp, result.samples, data,
      [f'seed {f["seed"]}' + (f': {f["modes"]}/{f["num_modes"]} modes, HQ '
                              f'{100 * f["hq_fraction"]:.0f}%'
                              if 'modes' in f else '')
       for f in result.finals],
      title=f'{config.dataset} / {config.loss} / {config.num_steps} steps')
  os.replace(tmp, png)
  return result.finals


def summary(config: Config, finals: list[dict]) -> str:
  """Terminal lines: each seed's result, the mean, and the artifacts."""
  lines = [f'done in {finals[0]["train_seconds"]:.1f} s ({len(finals)} seeds '
           'in one program):']
  keys = [k for k in ('modes', 'hq_fraction', 'reverse_kl', 'jsd')
          if k in finals[0]]
  for f in finals:
    lines.append(f'  seed {f["seed"]}: ' + ', '.join(
        f'{k} {f[k]:.4g}' if f.get(k) is not None else f'{k} n/a'
        for k in keys) + (f' (diverged at step {f["diverged_at"]})'
                          if 'diverged_at' in f else ''))
  lines.append(f'artifacts in {os.path.abspath(config.workdir)}: config.json, '
               'metrics.jsonl, samples.npy (seed axis first), samples.png')
  return '\n'.join(lines)
