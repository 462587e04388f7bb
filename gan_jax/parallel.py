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

Members: a program may also train several independent runs at once (seeds,
float hyperparameters; `gan_jax.seeds`). Their states are stacked on a
leading member axis, the chunk program is `vmap`ped over it, and the members
are split over a 1-D 'seed' mesh with `shard_map` (no communication: members
are independent). `Layout` says which of the two a program is; the training
loop (`gan_jax.loop`) is the same for both.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from gan_jax.config import ConfigError

DATA_AXIS = 'data'
# The mesh axis members are split over.
SEED_AXIS = 'seed'


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


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where a program's runs live, and the transform of its chunk program.

  One run (`member_axis` False, `Layout.one_run(mesh)`): the state is the
  run's own pytree and the program is the chunk itself (the identity
  transform); with a 'data' mesh the state is replicated over it and the
  batches are split over it (`shard_batches`).

  Members (`Layout.over_members(M)`): every leaf of the state has a leading
  axis of `padded` runs and the program is `vmap(chunk)`, wrapped in
  `shard_map(..., P('seed'))` when `split` spreads the members over several
  devices; runs `members .. padded - 1` pad the last device's block (copies
  of the last member, trained and discarded).

  Attributes:
    members: the runs the caller asked for (1 for one run).
    padded: the runs the program trains, padding included.
    member_axis: whether the state has a leading member axis.
    mesh: the 'data' mesh (one run) or 'seed' mesh (members), or None.
  """

  members: int = 1
  padded: int = 1
  member_axis: bool = False
  mesh: Optional[Mesh] = None

  @classmethod
  def one_run(cls, mesh: Optional[Mesh] = None) -> 'Layout':
    return cls(mesh=mesh)

  @classmethod
  def over_members(cls, num_members: int,
                   devices: Optional[Sequence[jax.Device]] = None
                   ) -> 'Layout':
    """`num_members` runs vmapped, split over the local devices (`split`)."""
    mesh = seed_mesh(num_members, devices)
    used, share = split(num_members, 1 if mesh is None else mesh.size)
    return cls(members=num_members, padded=used * share, member_axis=True,
               mesh=mesh)

  @property
  def state_sharding(self) -> Optional[NamedSharding]:
    """The sharding of the state (and of the per-step metrics) in and out of
    every chunk program; None leaves placement to JAX (one device)."""
    if self.mesh is None:
      return None
    return NamedSharding(self.mesh, P(SEED_AXIS) if self.member_axis else P())

  def transform(self, chunk: Callable) -> Callable:
    """The program of `chunk(state) -> (state, metrics)`: itself for one run,
    vmapped over the members (and split over the 'seed' mesh) otherwise."""
    if not self.member_axis:
      return chunk
    program = jax.vmap(chunk)
    if self.mesh is None:
      return program
    # Members never communicate: each device runs its block on its own.
    return jax.shard_map(program, mesh=self.mesh, in_specs=P(SEED_AXIS),
                         out_specs=P(SEED_AXIS))

  def place(self, state: Any) -> Any:
    """`state` on the devices, as `state_sharding` says."""
    sharding = self.state_sharding
    return state if sharding is None else jax.device_put(state, sharding)

  def pad(self, items: Sequence[Any]) -> list[Any]:
    """`items` (one per member) with the last repeated up to `padded`."""
    return list(items) + [items[-1]] * (self.padded - len(items))

  def unpad(self, tree: Any) -> Any:
    """`tree` without the padding members."""
    if self.padded == self.members:
      return tree
    return jax.tree.map(lambda x: x[:self.members], tree)

  def per_member(self, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """A chunk's metrics, one dict per member (padding dropped)."""
    if not self.member_axis:
      return [metrics]
    return [{k: v[m] for k, v in metrics.items()} for m in range(self.members)]

  def description(self) -> Optional[str]:
    """How the members are split over the devices; None on one device."""
    if not self.member_axis or self.mesh is None:
      return None
    padding = self.padded - self.members
    return (f'{self.members} runs split over {self.mesh.size} '
            f'{self.mesh.devices.flat[0].platform.upper()} devices, '
            f'{self.padded // self.mesh.size} per device'
            + (f' ({padding} padding run(s), discarded)' if padding else ''))


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
  """`steps` (a `gan_jax.steps.Steps`) with every batch it samples, real data
  and latents alike, constrained to be split over 'data' (its
  `batch_sharding`); the step functions themselves are untouched and see the
  same global batches as on one device."""
  return dataclasses.replace(steps, batch_sharding=batch_sharded(mesh))
