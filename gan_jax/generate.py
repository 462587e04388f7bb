"""Samples a trained run without retraining: `python -m gan_jax.generate --workdir=RUN`.

Reads RUN/config.json (`Config.load`) and G from the newest good checkpoint
(or `--step=N`; `gan_jax.checkpoint.read`), or, for a run of several seeds
(`--num_seeds`, which keeps no checkpoints), from the members' final
generators in RUN/generators.msgpack (`--seed_index=i` for one member, -1
for all). G's moving average is used when the run kept one
(`--weights=auto`; `ema` insists on it, `raw` takes G's own parameters).

Latents come from `--seed` alone, so the same command gives the same files:

* samples: `--num` latents z ~ N(0, I). With `--truncation=psi` > 0 every
  entry with |z_i| > psi is drawn again until all lie within psi (the
  truncation trick of Brock et al. 2019, BigGAN): each entry then follows a
  standard normal truncated to [-psi, psi], and entries already within psi
  stay as they were drawn. z is resampled, never rescaled.
* interpolation strips (`--interpolate=K`, K >= 2): `--num_strips` pairs of
  latents (a, b), each joined by K points of spherical linear interpolation
  (Shoemake 1985; White 2016, "Sampling generative networks")

      slerp(a, b; t) = sin((1 - t) W) / sin W a + sin(t W) / sin W b,
      cos W = a.b / (|a| |b|),      t = 0, 1/(K-1), ..., 1,

  which starts at a, ends at b and, for |a| = |b|, keeps the norm the
  Gaussian's mass lies at (linear interpolation passes near the origin,
  where it has none). Nearly parallel a, b (sin W < 1e-6) fall back to
  linear interpolation.

Files in `--out` (default RUN/generated/), written atomically, suffixed
`_seed{S}` per member of a run of several seeds:

    samples.npy        (N, dims) or (N, H, W, C) in [-1, 1]
    samples.png        toys: a scatter over the data's modes; images: a grid
    latents.npy        the (N, z_dim) latents used
    interpolation.npy  (strips, K, dims or H, W, C), with --interpolate
    interpolation.png  images: one strip a row; toys: the strips' points
    interpolation_latents.npy  (strips, K, z_dim)
    generated.json     what was generated from what (step, weights, seed,
                       truncation, members)

Bad input (no run, no checkpoint, a step that is not there, a bad flag)
prints one line and exits with status 2, writing nothing; exit statuses as
in `gan_jax.cli`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
from typing import Any, Optional

from absl import app
from absl import flags
import numpy as np

from gan_jax import cli
from gan_jax.config import MEMBER_KEYS, Config, ConfigError


def define_flags() -> None:
  """The command's flags (defined when it runs, not on import: other commands
  in the same process define --workdir, --seed and --out of their own)."""
  flags.DEFINE_string('workdir', None, 'The run to sample from (holding '
                      'config.json and checkpoints/ or generators.msgpack).')
  flags.DEFINE_integer('step', None, 'The checkpoint step (default: the '
                       'newest good one).')
  flags.DEFINE_integer('num', 64, 'Samples to generate.')
  flags.DEFINE_integer('seed', 0, 'Seed of the latents.')
  flags.DEFINE_float('truncation', 0.0, 'psi of the truncation trick: latent '
                     'entries with |z_i| > psi are resampled until within psi; '
                     '0 = none, else at least 0.05.')
  flags.DEFINE_integer('interpolate', 0, 'K >= 2: also write slerp strips of '
                       'K points between pairs of latents; 0 = none.')
  flags.DEFINE_integer('num_strips', 8, 'Interpolation strips (pairs of '
                       'latents) with --interpolate.')
  flags.DEFINE_enum('weights', 'auto', ['auto', 'ema', 'raw'], "G's weights: "
                    "auto = the moving average when the run kept one, else G's "
                    "own; ema = the moving average (refused without one); raw = "
                    "G's own parameters.")
  flags.DEFINE_integer('seed_index', -1, 'Runs of several seeds: the member '
                       '(0-based) to sample; -1 = every member.')
  flags.DEFINE_integer('class', -1, 'Class-conditional runs: the class K '
                       'of every sample; -1 = classes 0, 1, ..., K-1 in turn '
                       '(and a grid with a row per class).')
  flags.DEFINE_string('out', None, 'Output directory (default '
                      'WORKDIR/generated).')


FLAGS = flags.FLAGS

MIN_TRUNCATION = 0.05
MAX_COUNT = 1 << 20


@dataclasses.dataclass(frozen=True)
class Options:
  """What to generate: the flags of the same names."""
  step: Optional[int] = None
  num: int = 64
  seed: int = 0
  truncation: float = 0.0
  interpolate: int = 0
  num_strips: int = 8
  weights: str = 'auto'
  seed_index: int = -1
  out: Optional[str] = None
  label: int = -1  # the flag --class

  @classmethod
  def from_flags(cls) -> 'Options':
    return cls(**{f.name: FLAGS['class' if f.name == 'label' else f.name].value
                  for f in dataclasses.fields(cls)})


# ----------------------------------------------------------------------------
# Latents: truncation by resampling, slerp.
# ----------------------------------------------------------------------------


def truncated_normal(key, shape: tuple[int, ...], psi: float):
  """z ~ N(0, I) of `shape`, each entry with |z_i| > psi drawn again (from
  fresh keys) until all lie in [-psi, psi]; psi <= 0: no truncation.

  The first draw is `jax.random.normal(key, shape)`; entries already within
  psi keep their value, so the result is exactly that draw wherever it was
  within psi.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  z = jax.random.normal(key, shape, jnp.float32)
  if psi <= 0:
    return z

  def outside(carry):
    return jnp.any(jnp.abs(carry[1]) > psi)

  def redraw(carry):
    i, z = carry
    fresh = jax.random.normal(jax.random.fold_in(key, i), shape, jnp.float32)
    return i + 1, jnp.where(jnp.abs(z) > psi, fresh, z)

  return jax.lax.while_loop(outside, redraw, (jnp.int32(1), z))[1]


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Spherical linear interpolation between rows a, b (P, d) at the K
  fractions t: (P, K, d). Linear where a and b are nearly parallel."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  t = np.asarray(t, np.float64)[None, :, None]
  cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1)
                             * np.linalg.norm(b, axis=-1))
  omega = np.arccos(np.clip(cos, -1.0, 1.0))[:, None, None]
  sin = np.sin(omega)
  parallel = sin < 1e-6
  safe = np.where(parallel, 1.0, sin)
  wa = np.where(parallel, 1.0 - t, np.sin((1.0 - t) * omega) / safe)
  wb = np.where(parallel, t, np.sin(t * omega) / safe)
  return (wa * a[:, None] + wb * b[:, None]).astype(np.float32)


def latents(seed: int, num: int, z_dim: int, psi: float) -> np.ndarray:
  """The `num` sample latents of `--seed` (truncated at psi if psi > 0)."""
  import jax  # pylint: disable=g-import-not-at-top
  key = jax.random.fold_in(jax.random.PRNGKey(seed), 0)
  return np.asarray(truncated_normal(key, (num, z_dim), psi))


def strip_latents(seed: int, strips: int, points: int, z_dim: int,
                  psi: float) -> np.ndarray:
  """(strips, points, z_dim): slerp between pairs of latents of `--seed`
  (each end truncated at psi if psi > 0)."""
  import jax  # pylint: disable=g-import-not-at-top
  key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
  ends = np.asarray(truncated_normal(key, (2, strips, z_dim), psi))
  return slerp(ends[0], ends[1], np.linspace(0.0, 1.0, points))


# ----------------------------------------------------------------------------
# The run's generator(s).
# ----------------------------------------------------------------------------


def _data_for(config: Config):
  """Toy data is built (its picture draws the modes); for images only the
  shape is needed, so no image set is read."""
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  spec = data_lib.spec(config)
  if not spec.is_image:
    return data_lib.build(config)

  def unavailable(key, n):
    raise ValueError('gan_jax.generate does not read the data set')

  return types.SimpleNamespace(name=config.dataset, shape=spec.shape,
                               sample=unavailable,
                               sample_with_labels=unavailable)


def _members(workdir: str) -> Optional[list[int]]:
  """The seeds of a run of several seeds (from config.json), else None."""
  with open(os.path.join(workdir, 'config.json'), encoding='utf-8') as f:
    saved = json.load(f)
  seeds = saved.get(MEMBER_KEYS[1])
  return list(seeds) if isinstance(seeds, list) else None


def load(config: Config, step: Optional[int], seed_index: int):
  """`(steps, state, data, step, seeds)`: the run's `Steps`, the state to
  sample from (host arrays; with several members selected, a leading member
  axis, else none), the data (or its shape), the checkpoint step (None for
  the final generators of a run of several seeds) and the members' seeds
  (None for one run)."""
  import jax  # pylint: disable=g-import-not-at-top
  from gan_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from gan_jax import seeds as seeds_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  data = _data_for(config)
  _, steps = train.build_steps(config, data=data)
  template = jax.jit(lambda key: train.init(config, data, steps, key))(
      jax.random.PRNGKey(config.seed))
  seeds = _members(config.workdir)
  if seeds is None:
    if seed_index not in (-1, 0):
      raise ConfigError(f'--seed_index={seed_index}: {config.workdir} is a '
                        'run of one seed (valid: -1 or 0)')
    restored = checkpoint.read(config, checkpoint.to_host(template), step)
    return steps, restored.state, data, restored.step, None
  if step is not None:
    raise ConfigError(f'--step={step}: {config.workdir} is a run of '
                      f'{len(seeds)} seeds, which keeps only its final '
                      'generators (drop --step)')
  if not -1 <= seed_index < len(seeds):
    raise ConfigError(f'--seed_index={seed_index} is not a member of '
                      f'{config.workdir} (seeds {", ".join(map(str, seeds))}; '
                      f'valid: -1 for all, 0..{len(seeds) - 1})')
  path = os.path.join(config.workdir, seeds_lib.GENERATORS)
  if not os.path.isfile(path):
    raise ConfigError(f'{config.workdir} is a run of {len(seeds)} seeds '
                      f'without {seeds_lib.GENERATORS}, its final generators '
                      '(a run of an older gan_jax); train it again to sample')
  from flax import serialization  # pylint: disable=g-import-not-at-top
  one = checkpoint.to_host(seeds_lib.generator_tree(template))
  stacked = jax.tree.map(lambda x: np.stack([x] * len(seeds)), one)
  with open(path, 'rb') as f:
    raw = f.read()
  try:
    tree = serialization.from_bytes(stacked, raw)
    if jax.tree.structure(tree) != jax.tree.structure(stacked) or any(
        np.shape(a) != np.shape(b) for a, b in zip(
            jax.tree.leaves(tree), jax.tree.leaves(stacked))):
      raise ValueError('its arrays are not those of this run')
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f'{path} does not read back as the generators of '
                      f'{config.workdir}: {str(e).splitlines()[0]}') from None
  picked = list(range(len(seeds))) if seed_index == -1 else [seed_index]
  tree = jax.tree.map(lambda x: x[np.asarray(picked)], tree)
  return steps, tree, data, None, [seeds[i] for i in picked]


def generate(steps, state: Any, z: np.ndarray, weights: str) -> np.ndarray:
  """G(z) of one state (a `GANState`, or `seeds.generator_tree` of one
  member) in inference mode, with the moving average or G's own
  parameters (`weights`: 'ema' or 'raw')."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  tree = state if isinstance(state, dict) else {
      'g_params': state.g_params, 'g_ema': state.g_ema,
      'g_state': state.g_state}
  params = tree['g_ema'] if weights == 'ema' else tree['g_params']
  fake = types.SimpleNamespace(g_ema=params, g_params=params,
                               g_state=tree['g_state'])
  plain = dataclasses.replace(steps, g_ema_decay=0.0)
  return train.generate(plain, fake, jax.tree.map(jnp.asarray, z))


# ----------------------------------------------------------------------------
# The command.
# ----------------------------------------------------------------------------


def _check_options(o: Options, config: Config, has_ema: bool) -> str:
  """Refuses bad values (one line, status 2); returns the weights."""
  if not 1 <= o.num <= MAX_COUNT:
    raise ConfigError(f'--num={o.num} must lie in 1..{MAX_COUNT}')
  if o.seed < 0 or o.seed >= 2**32:
    raise ConfigError(f'--seed={o.seed} must lie in 0..2**32 - 1')
  psi = o.truncation
  if not math.isfinite(psi) or psi < 0 or 0 < psi < MIN_TRUNCATION:
    raise ConfigError(f'--truncation={psi} must be 0 (none) or at least '
                      f'{MIN_TRUNCATION}')
  if o.interpolate == 1 or not 0 <= o.interpolate <= 4096:
    raise ConfigError(f'--interpolate={o.interpolate} must be 0 (none) '
                      'or 2..4096 points a strip')
  if not 1 <= o.num_strips <= 4096:
    raise ConfigError(f'--num_strips={o.num_strips} must lie in 1..4096')
  if o.step is not None and o.step < 0:
    raise ConfigError(f'--step={o.step} must be a checkpoint step >= 0')
  if o.weights == 'ema' and not has_ema:
    raise ConfigError(f'--weights=ema: {config.workdir} kept no moving '
                      'average of G (--g_ema_decay=0); valid: auto, raw')
  if o.weights == 'auto':
    return 'ema' if has_ema else 'raw'
  return o.weights


def _check_out(out: str) -> None:
  if os.path.exists(out) and not os.path.isdir(out):
    raise ConfigError(f'--out={out} is a file, not a directory')


def _picture(path: str, samples: np.ndarray, data, title: str,
             rows: int, cols: int) -> None:
  from gan_jax import plots  # pylint: disable=g-import-not-at-top
  if samples.ndim == 4:
    plots.save_image_grid(path, samples, rows=rows, cols=cols)
  else:
    plots.toy_samples(path, samples, data, title=title)


def class_labels(o: Options, config: Config
                 ) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
  """The classes G is asked for in a conditional run: of the samples and of
  the interpolation strips (`--class`, else 0, 1, ..., K-1 in turn); (None,
  None) for an unconditional run, where `--class` is refused."""
  from gan_jax import conditional  # pylint: disable=g-import-not-at-top
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  k = train.num_classes(config)
  if not k:
    if o.label >= 0:
      raise ConfigError(f'--class={o.label}: {config.workdir} is not a '
                        'class-conditional run (valid: -1)')
    return None, None
  if not -1 <= o.label < k:
    raise ConfigError(f'--class={o.label} is not a class of '
                      f'{config.workdir} (valid: -1 for each in turn, '
                      f'0..{k - 1})')
  if o.label >= 0:
    return (np.full(o.num, o.label, np.int32),
            np.full(o.num_strips, o.label, np.int32))
  return (conditional.eval_labels(o.num, k),
          conditional.eval_labels(o.num_strips, k))


def num_classes(config: Config) -> int:
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  return train.num_classes(config)


def _paired(z: np.ndarray, labels: Optional[np.ndarray]):
  """G's input: z, or the pair (z, y) of a conditional run."""
  return z if labels is None else (z, labels)


def _class_grid(path: str, samples: np.ndarray, labels: np.ndarray,
                num_classes: int) -> str:
  """samples_by_class.png: a row per class (`plots.rows_by_class`)."""
  from gan_jax import plots  # pylint: disable=g-import-not-at-top
  per_class = max(1, min(8, len(samples) // num_classes))
  plots.save_image_grid(path, plots.rows_by_class(samples, labels,
                                                  num_classes, per_class),
                        rows=num_classes, cols=per_class)
  return path


def run(workdir: str, o: Options = Options()) -> list[str]:
  """The command: checks everything, then writes the files; returns their
  paths."""
  from gan_jax import artifacts  # pylint: disable=g-import-not-at-top
  from gan_jax import fileio  # pylint: disable=g-import-not-at-top
  if not workdir:
    raise ConfigError("--workdir must name a trained run's directory")
  if not os.path.isdir(workdir):
    raise ConfigError(f'--workdir={workdir} is not a directory')
  config = Config.load(workdir)
  out = o.out or os.path.join(workdir, 'generated')
  _check_out(out)
  # Flags whose check needs no checkpoint first, then the run's generator.
  _check_options(o, config, has_ema=True)
  steps, state, data, step, seeds = load(config, o.step, o.seed_index)
  weights = _check_options(o, config, has_ema=config.g_ema_decay > 0)
  psi = o.truncation
  z = latents(o.seed, o.num, config.z_dim, psi)
  strips = (strip_latents(o.seed, o.num_strips, o.interpolate,
                          config.z_dim, psi) if o.interpolate else None)
  labels, strip_labels = class_labels(o, config)
  members = [None] if seeds is None else list(range(len(seeds)))
  os.makedirs(out, exist_ok=True)
  written = []
  for m in members:
    import jax  # pylint: disable=g-import-not-at-top
    one = state if m is None else jax.tree.map(lambda x: x[m], state)
    suffix = '' if m is None else f'_seed{seeds[m]}'
    path = lambda name, ext: os.path.join(out, f'{name}{suffix}.{ext}')
    what = (f'{config.dataset} / {config.loss} / '
            + (f'step {step}' if step is not None else 'final')
            + (f' / seed {seeds[m]}' if m is not None else '')
            + f' / {weights}' + (f' / psi {psi:g}' if psi else ''))
    samples = generate(steps, one, _paired(z, labels), weights)
    artifacts.save_npy(path('samples', 'npy'), samples)
    artifacts.save_npy(path('latents', 'npy'), z)
    side = max(1, math.ceil(math.sqrt(len(samples))))
    _picture(path('samples', 'png'), samples, data, what,
             rows=math.ceil(len(samples) / side), cols=side)
    written += [path('samples', 'npy'), path('latents', 'npy'),
                path('samples', 'png')]
    if labels is not None:
      artifacts.save_npy(path('labels', 'npy'), labels)
      written.append(path('labels', 'npy'))
      if samples.ndim == 4 and o.label < 0:
        written.append(_class_grid(path('samples_by_class', 'png'), samples,
                                   labels, num_classes(config)))
    if strips is not None:
      flat = strips.reshape((-1, config.z_dim))
      flat_labels = (None if strip_labels is None else
                     np.repeat(strip_labels, strips.shape[1]))
      frames = generate(steps, one, _paired(flat, flat_labels), weights)
      frames = frames.reshape(strips.shape[:2] + frames.shape[1:])
      artifacts.save_npy(path('interpolation', 'npy'), frames)
      artifacts.save_npy(path('interpolation_latents', 'npy'), strips)
      _picture(path('interpolation', 'png'),
               frames.reshape((-1,) + frames.shape[2:]), data,
               what + ' / slerp', rows=strips.shape[0], cols=strips.shape[1])
      written += [path('interpolation', 'npy'),
                  path('interpolation_latents', 'npy'),
                  path('interpolation', 'png')]
  record = {'workdir': os.path.abspath(workdir), 'step': step,
            'weights': weights, 'seed': o.seed, 'num': o.num,
            'truncation': psi or None,
            'interpolate': o.interpolate or None,
            'num_strips': o.num_strips if o.interpolate else None,
            'members': seeds,
            'class': (None if labels is None else
                      (o.label if o.label >= 0 else 'every class in turn'))}
  fileio.atomic_write(os.path.join(out, 'generated.json'),
                      json.dumps(record, indent=2, sort_keys=True) + '\n')
  written.append(os.path.join(out, 'generated.json'))
  return written


def main(argv):
  cli.no_positional_arguments(argv)
  with cli.Failures() as failures:
    if FLAGS.workdir and os.path.isdir(FLAGS.workdir):
      failures.workdir = FLAGS.workdir
    from absl import logging  # pylint: disable=g-import-not-at-top
    logging.set_verbosity(logging.FATAL)
    written = run(FLAGS.workdir, Options.from_flags())
    print(f'wrote {len(written)} files to '
          f'{os.path.dirname(os.path.abspath(written[0]))}')


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
