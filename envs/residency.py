"""Model residency rule shared by the step (one server) and the observation (every server)."""

from __future__ import annotations

import jax.numpy as jnp


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
