"""GPU and model catalogs and the simulator's constants.

Plain data, no logic. Every number here is a default: `envs.config.EnvConfig`
can replace any of them. Rates are for an 8B-parameter model serving one
request at a time; a model with `params_b` billions of parameters runs at
`rate_8b * 8 / params_b`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuSpec:
    name: str
    mem_gb: float
    prefill_tps_8b: float  # prompt tokens per second, 8B model
    decode_tps_8b: float  # generated tokens per second, 8B model
    load_gbps: float  # weight-loading bandwidth, GB/s


@dataclass(frozen=True)
class ModelSpec:
    name: str
    params_b: float  # billions of parameters (sets the speed)
    mem_gb: float  # resident footprint (sets what fits where)


DEFAULT_GPUS: tuple[GpuSpec, ...] = (
    GpuSpec("H100", 80.0, 12000.0, 150.0, 5.0),
    GpuSpec("A100", 80.0, 6000.0, 100.0, 4.0),
    GpuSpec("L40S", 48.0, 4000.0, 70.0, 3.0),
    GpuSpec("L4", 24.0, 1500.0, 30.0, 2.0),
    GpuSpec("H200", 141.0, 13000.0, 210.0, 5.0),
    GpuSpec("B200", 180.0, 24000.0, 330.0, 6.0),
)

DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("8B", 8.0, 16.0),
    ModelSpec("14B", 14.0, 28.0),
    ModelSpec("32B", 32.0, 64.0),
    ModelSpec("70B-fp8", 70.0, 70.0),
    ModelSpec("3B", 3.0, 6.0),  # light roles: routers, guards, query rewriting (appended: indices stay)
)

# Default share of each GPU type when a cluster is sampled (same order as DEFAULT_GPUS).
DEFAULT_GPU_WEIGHTS: tuple[float, ...] = (0.25, 0.25, 0.15, 0.10, 0.15, 0.10)

SPEC_VERSION = 2

NET_LATENCY_S = 0.02  # a remote parent's output arrives this long after it finishes
TASK_OVERHEAD_S = 0.01  # fixed cost of every call
MEM_HEADROOM = 0.9  # share of GPU memory usable for weights
PREFIX_CACHE_SLOTS = 4  # (app, model) keys kept per server
