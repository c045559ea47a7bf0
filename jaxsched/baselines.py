"""Heuristic schedulers as jittable functions `policy(key, obs) -> server index`.

Each reads only the observation (features by name from `envs.features`) and
respects `obs.action_mask`; ties go to the lowest server index. FATE-lite adds
a score for the future state a placement leaves behind (see `FateLiteConfig`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from envs.features import GLOBAL, SERVER, TASK
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


def join_shortest_queue(key, obs: Observation):
    """Fewest tasks placed and not finished; ties go to the server that frees up first."""
    del key
    q = jnp.where(obs.action_mask, obs.servers[:, SERVER["queue_len"]], jnp.inf)
    return _argmin_masked(obs.servers[:, SERVER["wait_s"]], obs.action_mask & (q == jnp.min(q)))


def _eft_among(obs: Observation, preferred):
    """EFT over the preferred valid servers, or over all valid ones when none is preferred."""
    pref = obs.action_mask & preferred
    mask = jnp.where(jnp.any(pref), pref, obs.action_mask)
    return _argmin_masked(obs.servers[:, SERVER["est_finish_s"]], mask)


def residency_first(key, obs: Observation):
    """Servers with the model already loaded first (no load), then EFT among them."""
    del key
    return _eft_among(obs, obs.servers[:, SERVER["resident"]] > 0)


def locality_first(key, obs: Observation):
    """The servers holding the most parent output first (no remote prefill), then EFT.
    A root task (no parents) falls back to EFT."""
    del key
    local = jnp.where(obs.action_mask, obs.servers[:, SERVER["local_parent_ktok"]], -1.0)
    best = jnp.max(local)
    return _eft_among(obs, (local == best) & (best > 0))


@struct.dataclass
class FateLiteConfig:
    """Weights of FATE-lite's future-state penalties (each in seconds per second of estimated harm).

    score(s) = est_finish(s)
             + evict_weight    * evict_reload_s(s)
             + prefix_weight   * prefix_churn_ktok(s) / prefill_ktps(s)
             + locality_weight * min(expected_output_ktok, co-parent output elsewhere) / prefill_ktps(s)

    `evict_reload_s` is the reload time of models this placement evicts, each scaled by the
    pending window demand per server still holding it (capped at 1); `prefix_churn_ktok` the
    same for the prefix-cache keys it drops; the locality term is the remote prefill the task's
    children pay, at best, when this task runs away from their other parents' outputs.
    """

    evict_weight: float = 1.0
    prefix_weight: float = 1.0
    locality_weight: float = 1.0


def fate_lite_score(obs: Observation, config: FateLiteConfig = FateLiteConfig()):
    """FATE-lite's per-server score (lower is better; masked servers are +inf)."""
    srv = obs.servers
    prefill = jnp.maximum(srv[:, SERVER["prefill_ktps"]], 1e-6)
    co = srv[:, SERVER["child_colocated_ktok"]]
    co_elsewhere = jnp.sum(jnp.where(obs.action_mask, co, 0.0)) - co
    child_pull = jnp.minimum(obs.task[TASK["expected_output_ktok"]], co_elsewhere)
    score = (srv[:, SERVER["est_finish_s"]]
             + config.evict_weight * srv[:, SERVER["evict_reload_s"]]
             + config.prefix_weight * srv[:, SERVER["prefix_churn_ktok"]] / prefill
             + config.locality_weight * child_pull / prefill)
    return jnp.where(obs.action_mask, score, jnp.inf)


def fate_lite(key, obs: Observation, config: FateLiteConfig = FateLiteConfig()):
    """Horizon-aware EFT: immediate finish time plus penalties for the future state (see FateLiteConfig)."""
    del key
    return _argmin_masked(fate_lite_score(obs, config), obs.action_mask)


def make_fate_lite(**weights) -> object:
    """FATE-lite with non-default weights, e.g. `make_fate_lite(evict_weight=2.0)`."""
    return functools.partial(fate_lite, config=FateLiteConfig(**weights))


BASELINES = {
    "random": random_policy,
    "round_robin": round_robin,
    "least_loaded": least_loaded,
    "jsq": join_shortest_queue,
    "eft": earliest_finish,
    "residency_first": residency_first,
    "locality_first": locality_first,
    "fate_lite": fate_lite,
}


def get(name: str):
    """The jittable baseline called `name` (KeyError-free: a ValueError that lists the names)."""
    if name not in BASELINES:
        raise ValueError(f"policy: unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    return BASELINES[name]
