"""Data parallelism over every device, on one host or many.

The mesh has one axis, 'data', over all devices (of all processes). Both
players' parameters and optimizer states are replicated (`P()`); every batch
drawn inside the training scan, real data and latents alike, is split along
its first dimension (`P('data')`). XLA's SPMD partitioner then runs each
device's share of the forward and backward passes and inserts the all-reduce
that makes the batch means, hence the gradients, those of the full batch. So
the result equals the single-device one up to float summation order, and a
run can move between device counts freely.

Because the batches are sampled on the device inside the scan (from
`fold_in(rng, step)`), sharding is a constraint on the sampled arrays
(`jax.lax.with_sharding_constraint`), not a host-side split of an input
pipeline: every device derives the same global batch and keeps its rows.

Multi-host: `initialize()` calls `jax.distributed.initialize()`, after which
`jax.devices()` lists every process's devices and the same program runs in
every process (SPMD). Only process 0 writes files; orbax coordinates the
checkpoint writes itself.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from gan_jax.config import ConfigError

DATA_AXIS = 'data'


def initialize(coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> None:
  """Joins the multi-process JAX runtime; call before any other JAX work.

  With no arguments JAX detects the cluster (SLURM, Open MPI, Kubernetes,
  Cloud TPU) or reads JAX_COORDINATOR_ADDRESS; the arguments override that.
  """
  jax.distributed.initialize(coordinator_address=coordinator_address or None,
                             num_processes=num_processes or None,
                             process_id=process_id)


def is_primary() -> bool:
  """True in the process that writes files (process 0)."""
  return jax.process_index() == 0


def make_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A 1-D 'data' mesh over `devices` (default: every device of every process).

  The axis is `Auto`: shardings are constraints that XLA propagates, so the
  model code needs no sharding annotations of its own.
  """
  devices = list(devices) if devices is not None else jax.devices()
  return jax.make_mesh((len(devices),), (DATA_AXIS,),
                       axis_types=(AxisType.Auto,), devices=devices)


def check_batch(batch_size: int, num_devices: int) -> None:
  """Raises ConfigError unless the batch splits evenly over the devices."""
  if batch_size % num_devices:
    lower = batch_size - batch_size % num_devices
    choices = ', '.join(str(b) for b in (lower, lower + num_devices) if b > 0)
    raise ConfigError(
        f'--batch_size={batch_size} is not divisible by the {num_devices} '
        f'devices it is split over; valid nearby: {choices}')


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (parameters, optimizer states, step)."""
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Rows split over the 'data' axis (batches of data and latents)."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree, mesh: Mesh):
  """Places every leaf of `tree` on every device of `mesh`."""
  return jax.device_put(tree, replicated(mesh))


def shard_batches(steps, mesh: Mesh):
  """`steps` with every sampled batch constrained to be split over 'data'.

  `steps` is a `gan_jax.steps.Steps` (or a subclass): its `sample_data` is
  wrapped and its `sample_z` overridden, so the step functions themselves are
  untouched and see the same global batches as on one device.
  """
  sharding = batch_sharded(mesh)

  def constrain(x):
    return jax.lax.with_sharding_constraint(x, sharding)

  base = type(steps)

  class DataParallel(base):  # pylint: disable=missing-class-docstring

    def sample_z(self, key):
      return constrain(base.sample_z(self, key))

  DataParallel.__name__ = DataParallel.__qualname__ = f'DataParallel{base.__name__}'
  sample_data = steps.sample_data
  fields = {f.name: getattr(steps, f.name)
            for f in dataclasses.fields(steps) if f.init}
  fields['sample_data'] = lambda key, n: constrain(sample_data(key, n))
  return DataParallel(**fields)
