"""The observation as one flat float32 vector, for policies that take a vector (MLPs, most trainers).

Layout, in order: the task's features, the global features, every server's features
(`max_servers` rows, row-major), every DAG node's features (`T` rows), then the action
mask as 0/1. Every feature goes through symlog (`sign(x) log(1 + |x|)`), so seconds,
thousands of tokens and counts are all O(1); the mask is not scaled. What the flat view
drops compared with the structured `Observation`: the DAG's edges (the node features
keep each task's depth, remaining critical path and assigned/current flags, but not
who feeds whom) and the current node's index as a separate field (it is the node
whose `current` flag is set).
"""

from __future__ import annotations

import jax.numpy as jnp

from envs import features as F
from envs.types import EnvParams, Observation


def symlog(x):
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def flat_layout(params: EnvParams) -> list[tuple[str, int, int]]:
    """[(part, start, stop)] of the flat vector: task, globals, servers, nodes, action_mask."""
    n, t = params.max_servers, int(params.bank.model.shape[1])  # nodes: the bank's padded task count
    parts = [("task", F.task_dim(params.n_models)), ("globals", len(F.GLOBAL_FEATURES)),
             ("servers", n * F.server_dim(params.n_gpu_types)), ("nodes", t * F.node_dim(params.n_models)),
             ("action_mask", n)]
    out, at = [], 0
    for name, size in parts:
        out.append((name, at, at + size))
        at += size
    return out


def flat_size(params: EnvParams) -> int:
    return flat_layout(params)[-1][2]


def flatten(obs: Observation) -> jnp.ndarray:
    """Observation -> float32 [flat_size] (vmap it for a batch)."""
    return jnp.concatenate([
        symlog(obs.task), symlog(obs.globals), symlog(obs.servers).reshape(-1), symlog(obs.dag.nodes).reshape(-1),
        obs.action_mask.astype(jnp.float32),
    ]).astype(jnp.float32)
