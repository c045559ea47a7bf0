"""Model residency rule shared by the step (one server) and the observation (every server)."""

from __future__ import annotations

import jax.numpy as jnp


def lru_evictions(resident, stamp, model, model_mem, cap):
    """Models that loading `model` on one server evicts: least recently used first, until it fits.

    `resident` bool [M] and `stamp` int32 [M] (last use) of that server, `cap` its usable memory.
    Returns bool [M]; all False when `model` is already resident.
    """
    midx = jnp.arange(resident.shape[-1])
    others = resident & (midx != model)
    older = others[None, :] & (stamp[None, :] < stamp[:, None])  # [i, j]: j was used before i
    freed_before = jnp.sum(jnp.where(older, model_mem[None, :], 0.0), axis=1)
    used = jnp.sum(jnp.where(resident, model_mem, 0.0))
    return ~resident[model] & others & (used - freed_before + model_mem[model] > cap)
