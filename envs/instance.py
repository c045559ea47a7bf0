"""A concrete episode as plain data: cluster, arrivals, workflows, constants.

This is what the JAX env and the reference simulator share (never step
logic). `materialize` draws one from the JAX env's own reset sampling, so a
seed means the same episode on both sides; traces store exactly this.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from envs import catalog
from envs.config import EnvConfig, make_params
from envs.sizes import active_slots, episode_workflows
from envs.types import EnvParams, EpisodeDraw
from envs.workload import Bank, WorkflowSpec


@dataclass(frozen=True)
class Instance:
    gpus: tuple[catalog.GpuSpec, ...]
    models: tuple[catalog.ModelSpec, ...]
    server_gpus: tuple[int, ...]  # GPU type index of each active server
    initial_models: tuple[int, ...]  # model index resident on each server at reset
    arrivals: tuple[float, ...]  # float32 values, non-decreasing, first is 0
    workflows: tuple[WorkflowSpec, ...]  # workflow i arrives at arrivals[i]
    net_latency_s: float = catalog.NET_LATENCY_S
    task_overhead_s: float = catalog.TASK_OVERHEAD_S
    mem_headroom: float = catalog.MEM_HEADROOM
    prefix_cache_slots: int = catalog.PREFIX_CACHE_SLOTS
    window: int = 32
    queue_cap: int = 8
    reward_scale: float = 100.0
    rho: float = 0.7

    @property
    def n_servers(self) -> int:
        return len(self.server_gpus)

    @property
    def app_names(self) -> tuple[str, ...]:
        """Apps in order of first appearance (the JAX bank may number them differently;
        only equality of apps matters to the semantics)."""
        seen: list[str] = []
        for w in self.workflows:
            if w.app not in seen:
                seen.append(w.app)
        return tuple(seen)


def sample_episode(key, params: EnvParams) -> EpisodeDraw:
    """The random draws of `envs.env.reset`, as host arrays."""
    from envs.env import draw_episode

    return jax.device_get(draw_episode(key, params))


def materialize(key, config: EnvConfig, params: EnvParams | None = None, bank: Bank | None = None) -> Instance:
    """The episode that `envs.reset(key, params)` starts, as an Instance."""
    params = params if params is not None else make_params(config)
    bank = bank if bank is not None else config.make_bank()
    draw = sample_episode(key, params)
    gpu, init_model, arrivals, wf_bank = draw.gpu, draw.init_model, draw.arrivals, draw.wf_bank
    n = int(draw.active.sum())
    e = int(episode_workflows(params))
    return Instance(
        gpus=config.gpus, models=config.models,
        server_gpus=tuple(int(x) for x in gpu[:n]), initial_models=tuple(int(x) for x in init_model[:n]),
        arrivals=tuple(float(x) for x in arrivals[:e]),
        workflows=tuple(bank.workflow(int(b)) for b in wf_bank[:e]),
        net_latency_s=config.net_latency_s, task_overhead_s=config.task_overhead_s,
        mem_headroom=config.mem_headroom, prefix_cache_slots=config.prefix_cache_slots,
        window=int(active_slots(params)), queue_cap=config.queue_cap, reward_scale=config.reward_scale, rho=config.rho,
    )


def instance_draw(inst: Instance, params: EnvParams, bank_rows: np.ndarray | None = None) -> EpisodeDraw:
    """The `EpisodeDraw` that makes `envs.env.reset_from` replay `inst` (its workflows must be bank
    rows `bank_rows`, e.g. when the instance came from `materialize`)."""
    n = params.max_servers
    gpu = np.zeros(n, np.int32)
    gpu[: inst.n_servers] = inst.server_gpus
    active = np.arange(n) < inst.n_servers
    init = np.zeros(n, np.int32)
    init[: inst.n_servers] = inst.initial_models
    e = params.max_workflows
    arr = np.full(e + params.arrival_chunk, np.inf, np.float32)
    arr[: len(inst.arrivals)] = inst.arrivals
    rows = np.zeros(e, np.int32)
    if bank_rows is not None:
        rows[: len(bank_rows)] = bank_rows
    return EpisodeDraw(gpu=gpu, active=active, init_model=init, arrivals=arr, wf_bank=rows)


def config_for_instance(inst: Instance, max_servers: int | None = None, max_tasks: int = 16) -> EnvConfig:
    """An EnvConfig whose bank is the instance's workflows (row i = workflow i) and whose
    cluster is the instance's servers, so the JAX env can replay it exactly."""
    from envs.workload import bank_from_specs

    return EnvConfig(
        n_servers=inst.n_servers, max_servers=max_servers, gpus=inst.gpus, models=inst.models,
        gpu_types=tuple(inst.gpus[g].name for g in inst.server_gpus), max_tasks=max_tasks,
        window=inst.window, n_workflows=len(inst.workflows), net_latency_s=inst.net_latency_s,
        task_overhead_s=inst.task_overhead_s, mem_headroom=inst.mem_headroom,
        prefix_cache_slots=inst.prefix_cache_slots, queue_cap=inst.queue_cap, reward_scale=inst.reward_scale,
        rho=inst.rho, bank=bank_from_specs(list(inst.workflows), max_tasks),
    )


def replay(inst: Instance, max_servers: int | None = None, max_tasks: int = 16):
    """(params, obs, state) of the JAX env at the start of exactly this instance."""
    from envs.env import reset_from

    config = config_for_instance(inst, max_servers, max_tasks)
    params = make_params(config)
    draw = instance_draw(inst, params, bank_rows=np.arange(len(inst.workflows)))
    obs, state = jax.jit(reset_from)(params, draw)
    return params, obs, state
