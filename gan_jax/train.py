"""Training and evaluating one run: `run(config)` writes every artifact.

    config -> data, (G, D), loss -> Game -> Steps -> init_state
           -> loop.train (jitted scan chunks) -> evaluate -> artifacts

Artifacts in `config.workdir`:
  config.json    the resolved configuration;
  metrics.jsonl  one JSON object per log event (step, d_loss, g_loss, value,
                 gradient norms, steps_per_sec); the last line is the final
                 evaluation (`"final": true`);
  samples.npy    `num_eval_samples` generator samples, shape (N, dims);
  samples.png    the samples drawn over the data's modes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Optional

import jax
import numpy as np

from gan_jax import data as data_lib
from gan_jax import losses as losses_lib
from gan_jax import loop
from gan_jax import models as models_lib
from gan_jax import plots
from gan_jax.config import Config
from gan_jax.data.toy import GaussianMixture
from gan_jax.game import Game
from gan_jax.metrics import divergences
from gan_jax.metrics import toy as toy_metrics
from gan_jax.state import GANState, init_state
from gan_jax.steps import Steps, adam, scheme_optimizer


class TrainingDiverged(RuntimeError):
  """A loss or gradient became NaN or infinite."""


def build(config: Config):
  """The data set, the `Steps` of the configured game, and the initial state."""
  data = data_lib.build(config)
  generator, discriminator = models_lib.build(config, data)
  game = Game(generator, discriminator, losses_lib.get(config.loss))
  steps = Steps(
      game=game,
      g_opt=scheme_optimizer(config.update,
                             adam(config.g_lr, config.beta1, config.beta2)),
      d_opt=scheme_optimizer(config.update,
                             adam(config.d_lr, config.beta1, config.beta2)),
      sample_data=data.sample, batch_size=config.batch_size,
      z_dim=config.z_dim, d_steps=config.d_steps,
      d_weight_clip=config.d_weight_clip, update=config.update,
      consensus_weight=config.consensus_weight)
  state = jax.jit(lambda key: init_state(
      game, steps.g_opt, steps.d_opt, key, config.z_dim, data.shape))(
          jax.random.PRNGKey(config.seed))
  return data, steps, state


def eval_latents(config: Config) -> jax.Array:
  """The fixed latents used for evaluation samples: independent of training."""
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x65564C)
  return jax.random.normal(key, (config.num_eval_samples, config.z_dim))


def generate(steps: Steps, state: GANState, z: jax.Array) -> np.ndarray:
  return np.asarray(jax.jit(steps.game.generate)(state.g_params, z))


def evaluate(data, samples: np.ndarray) -> dict:
  """Final metrics of generator samples against the data set."""
  result = {}
  if isinstance(data, GaussianMixture):
    result.update(toy_metrics.mode_metrics(samples, data.means, data.std))
    if data.shape == (1,):
      lo = min(float(data.means.min() - 6 * data.std), float(samples.min()))
      hi = max(float(data.means.max() + 6 * data.std), float(samples.max()))
      result['jsd'] = divergences.jsd_to_samples(data.density, samples, lo, hi)
  return result


def _check_finite(record: dict) -> None:
  for name, value in record.items():
    if isinstance(value, float) and not math.isfinite(value):
      player = 'G' if name.startswith('g_') else 'D'
      raise TrainingDiverged(
          f'{name} is {value} at step {record["step"]} ({player}); training '
          'stopped')


def run(config: Config, out=sys.stdout) -> dict:
  """Trains `config` (already validated), writes its artifacts, returns the
  final evaluation record."""
  data, steps, state = build(config)
  os.makedirs(config.workdir, exist_ok=True)
  with open(os.path.join(config.workdir, 'config.json'), 'w') as f:
    f.write(config.to_json() + '\n')
  metrics_path = os.path.join(config.workdir, 'metrics.jsonl')
  start = time.perf_counter()
  with open(metrics_path, 'w') as log:

    def on_log(record: dict) -> None:
      log.write(json.dumps(record) + '\n')
      log.flush()
      _check_finite(record)

    print(f'training {config.loss} on {config.dataset} for {config.num_steps} '
          f'steps (compiling chunks of {config.log_every})', file=out,
          flush=True)
    state = loop.train(state, steps.train_step, config.num_steps,
                       config.log_every, on_log=on_log, out=out)
    train_seconds = time.perf_counter() - start
    samples = generate(steps, state, eval_latents(config))
    final = {'step': int(state.step), 'final': True,
             'train_seconds': train_seconds, **evaluate(data, samples)}
    log.write(json.dumps(final) + '\n')
  np.save(os.path.join(config.workdir, 'samples.npy'), samples)
  real = np.asarray(data.sample(jax.random.PRNGKey(config.seed), len(samples)))
  plots.toy_samples(os.path.join(config.workdir, 'samples.png'), samples, data,
                    title=_title(config, final), real=real)
  return final


def _title(config: Config, final: dict) -> str:
  text = f'{config.dataset} / {config.loss} / {final["step"]} steps'
  if 'modes' in final:
    text += (f'\nmodes {final["modes"]}/{final["num_modes"]}  '
             f'HQ {100 * final["hq_fraction"]:.1f}%')
  if 'jsd' in final:
    text += f'  JSD {final["jsd"]:.4f}'
  return text


def summary(config: Config, final: dict) -> str:
  """A few lines for the terminal: the result and where the artifacts are."""
  lines = [f'done in {final["train_seconds"]:.1f} s: ' + _title(
      config, final).replace('\n', ', ')]
  if final.get('reverse_kl') is not None:
    lines[0] += f', reverse KL {final["reverse_kl"]:.3f}'
  lines.append(f'artifacts in {os.path.abspath(config.workdir)}:')
  for name in ('config.json', 'metrics.jsonl', 'samples.npy', 'samples.png'):
    lines.append(f'  {os.path.join(config.workdir, name)}')
  return '\n'.join(lines)
