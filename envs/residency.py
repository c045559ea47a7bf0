"""Model residency rule shared by the step (one server) and the observation (every server).

What loading each model would evict depends only on that server's resident set and last-use
stamps, which a step changes on one server only. So the state keeps the answer for every
(server, incoming model) pair as a bitmask (`ServerState.evict_if`, `eviction_bits`), the step
refreshes the placed server's row, and the observation reads one word per server instead of
running the LRU rule for every server at every decision.
"""

from __future__ import annotations

import jax.numpy as jnp

MAX_MODELS = 31  # `eviction_bits` keeps one bit per model in an int32 word (EnvConfig validates the catalog)


def lru_evictions(resident, stamp, model, model_mem, cap):
    """Models that loading `model` on one server evicts: least recently used first, until it fits.

    `resident` bool [M] and `stamp` int32 [M] (last use) of that server, `cap` its usable memory.
    Returns bool [M]; all False when `model` is already resident.
    """
    m = resident.shape[-1]
    midx = jnp.arange(m)
    others = resident & (midx != model)
    # Memory freed by evicting every model used before model i; M is small, so the sums over
    # models are unrolled: one fused elementwise pass instead of an [M, M] temporary and a reduce.
    freed_before = sum(jnp.where(others[j] & (stamp[j] < stamp), model_mem[j], 0.0) for j in range(m))
    used = sum(jnp.where(resident[j], model_mem[j], 0.0) for j in range(m))
    return ~resident[model] & others & (used - freed_before + model_mem[model] > cap)


def eviction_bits(resident, stamp, model_mem, cap):
    """int32 [M] for one server: entry i has bit j set when loading model i would evict model j."""
    m = resident.shape[-1]
    rows = [lru_evictions(resident, stamp, i, model_mem, cap) for i in range(m)]
    return jnp.stack([sum(jnp.where(r[j], jnp.int32(1 << j), jnp.int32(0)) for j in range(m)) for r in rows])


def evicted(bits, m: int):
    """bool [..., M] from eviction bitmasks [...] (see `eviction_bits`)."""
    return ((bits[..., None] >> jnp.arange(m, dtype=jnp.int32)) & 1) == 1
