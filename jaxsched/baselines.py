"""Heuristic schedulers as jittable functions `policy(key, obs) -> server index`.

Each reads only the observation (features by name from `envs.features`) and
respects `obs.action_mask`; ties go to the lowest server index.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.features import GLOBAL, SERVER
from envs.types import Observation


def _argmin_masked(score, mask):
    return jnp.argmin(jnp.where(mask, score, jnp.inf)).astype(jnp.int32)


def random_policy(key, obs: Observation):
    """Uniform over valid servers."""
    return jax.random.categorical(key, jnp.where(obs.action_mask, 0.0, -jnp.inf)).astype(jnp.int32)


def round_robin(key, obs: Observation):
    """Cycle through the active servers by decision number, skipping ones the model does not fit."""
    del key
    n_active = jnp.maximum(obs.globals[GLOBAL["n_active"]], 1.0).astype(jnp.int32)
    k = obs.globals[GLOBAL["decision_index"]].astype(jnp.int32) % n_active
    offset = (jnp.arange(obs.action_mask.shape[0]) - k) % n_active
    return _argmin_masked(offset.astype(jnp.float32), obs.action_mask)


def least_loaded(key, obs: Observation):
    """The server that frees up first (shortest wait)."""
    del key
    return _argmin_masked(obs.servers[:, SERVER["wait_s"]], obs.action_mask)


def earliest_finish(key, obs: Observation):
    """Greedy EFT: the cost model with the expected output length (load, prefix hit, locality included)."""
    del key
    return _argmin_masked(obs.servers[:, SERVER["est_finish_s"]], obs.action_mask)


BASELINES = {
    "random": random_policy,
    "round_robin": round_robin,
    "least_loaded": least_loaded,
    "eft": earliest_finish,
}


def get(name: str):
    if name not in BASELINES:
        raise ValueError(f"policy: unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    return BASELINES[name]
