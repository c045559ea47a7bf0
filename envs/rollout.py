"""Run whole episodes under jit: one `lax.while_loop` per episode, vmappable over seeds.

A policy is any `policy(key, obs) -> action`. The loop stops when the episode
ends; decisions can be recorded into fixed-size buffers for traces.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from envs.env import episode_metrics, reset, step
from envs.types import Decision, EnvParams

Policy = Callable[[jax.Array, object], jax.Array]


def max_decisions(params: EnvParams) -> int:
    return params.max_workflows * params.max_tasks


def run_episode(policy: Policy, key, params: EnvParams, record: bool = False):
    """Play one episode from `reset(key)`. Returns (final state, metrics dict, decisions or None).

    With `record=True`, `decisions` is a `Decision` of arrays of length
    `max_decisions(params)`; rows past `state.decisions` are unused.
    """
    k_reset, k_run = jax.random.split(key)
    obs, state = reset(k_reset, params)
    return run_from(policy, k_run, obs, state, params, record)


def run_from(policy: Policy, key, obs, state, params: EnvParams, record: bool = False):
    cap = max_decisions(params)
    if record:
        dec0 = jax.eval_shape(lambda: step(key, state, jnp.int32(0), params)[4]["decision"])
        buf = jax.tree.map(lambda s: jnp.zeros((cap,) + s.shape, s.dtype), dec0)
    else:
        buf = None

    def body(carry):
        k, obs, state, buf = carry
        k, k_act, k_step = jax.random.split(k, 3)
        action = policy(k_act, obs)
        i = state.decisions
        obs, state, _, _, info = step(k_step, state, action, params)
        if record:
            buf = jax.tree.map(lambda b, v: b.at[i].set(v), buf, info["decision"])
        return k, obs, state, buf

    _, _, state, buf = jax.lax.while_loop(lambda c: ~c[2].done, body, (key, obs, state, buf))
    return state, episode_metrics(state, params), buf


def decisions_to_rows(dec: Decision, n: int) -> list[dict]:
    """The first `n` recorded decisions as a list of plain dicts."""
    host = jax.device_get(dec)
    rows = []
    for i in range(n):
        rows.append({f: getattr(host, f)[i].item() for f in Decision.__dataclass_fields__})
    return rows
