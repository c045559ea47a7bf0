"""Devices for a training run: the env-batch mesh, where the runner state lives, CPU splitting.

Data parallelism only: the env batch is sharded over a one-axis mesh of every
device the run uses (across processes too, under `jax.distributed`);
parameters and optimizer state are replicated, and XLA averages gradients once
per minibatch (the loss is a mean over the global minibatch).

On a CPU host, XLA runs one program as a stream of small kernels; splitting
the host into several XLA devices (`jax_num_cpu_devices`) and sharding the
envs over them can use more cores (`--cpu_devices=N`; off by default, see
`cpu_split_count`). `split_cpu` does that before JAX starts its backends; the
training and benchmark commands call it, library code never does.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_split_count(config) -> int:
    """How many XLA CPU devices `split_cpu` asks for: `cpu_devices` (0 = auto = 1, no split), reduced
    until it divides num_envs and the minibatch size (so the batch shards evenly).

    Auto does not split: on the 2-core box a split gave ~1.3x on an isolated update but the same
    whole-run speed, and when other processes compete for the cores the devices' collectives can
    stall a run almost completely (docs/benchmarks.md). `--cpu_devices=N` opts in.
    """
    n = config.cpu_devices or 1
    mb = config.num_envs * config.num_steps // config.num_minibatches
    while n > 1 and (config.num_envs % n or mb % n):
        n -= 1
    return max(n, 1)


def split_cpu(config) -> int:
    """Ask for `cpu_split_count(config)` CPU devices if JAX has not started yet; returns the count
    asked for (1: nothing done). No effect on GPU runs (the CPU client is then unused)."""
    n = cpu_split_count(config)
    if n <= 1 or os.environ.get("XLA_FLAGS", "").find("xla_force_host_platform_device_count") >= 0:
        return 1
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # backends already running (a library caller, a test): leave the devices alone
        return 1
    return n


def data_sharding(config):
    """NamedSharding of the env-batch axis over the run's devices (None on one device)."""
    devices = jax.devices()
    local = jax.local_devices()
    if jax.process_count() > 1:
        if config.devices and config.devices != len(devices):
            raise ValueError(f"devices: with {jax.process_count()} processes every device of every process is used "
                             f"({len(devices)}); give --devices={len(devices)} or leave it at 0")
        use = devices
    else:
        n_local = config.devices or len(local)
        if n_local > len(local):
            raise ValueError(f"devices: {n_local} requested, {len(local)} available")
        use = local[:n_local]
    n = len(use)
    if n == 1:
        return None
    for name, size in (("num_envs", config.num_envs), ("minibatch size", config.num_envs * config.num_steps // config.num_minibatches)):
        if size % n:
            raise ValueError(f"{name}: {size} is not divisible by the {n} devices")
    mesh = Mesh(np.array(use), ("envs",))
    return NamedSharding(mesh, PartitionSpec("envs"))


def runner_shardings(abstract, sharding, seeds_axis: bool):
    """Shardings for a `RunnerState` pytree (e.g. from `jax.eval_shape`): the envs' states and
    observations sharded on their env axis (after the seed axis when `seeds_axis`), everything else
    (parameters, optimizer, RNG, the few fresh episodes of the auto-reset) replicated. None: one device."""
    if sharding is None:
        return None
    mesh = sharding.mesh
    replicated = NamedSharding(mesh, PartitionSpec())
    batched = NamedSharding(mesh, PartitionSpec(None, "envs") if seeds_axis else PartitionSpec("envs"))
    rep = jax.tree.map(lambda _: replicated, abstract)
    env = jax.tree.map(lambda _: batched, abstract.env_state.env)
    obs = jax.tree.map(lambda _: batched, abstract.obs)
    return rep._replace(env_state=rep.env_state.replace(env=env), obs=obs)
