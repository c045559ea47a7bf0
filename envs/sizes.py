"""Episode sizes that follow the active cluster (data), within the static capacities (shapes)."""

from __future__ import annotations

import jax.numpy as jnp

from envs.types import EnvParams


def episode_workflows(params: EnvParams):
    """E: `n_workflows` if set (>= 0), else round(workflows_per_server * n_servers); within [1, max_workflows]."""
    scaled = jnp.round(params.workflows_per_server * params.n_servers).astype(jnp.int32)
    e = jnp.where(params.n_workflows >= 0, params.n_workflows, scaled)
    return jnp.clip(e, 1, params.max_workflows).astype(jnp.int32)


def active_slots(params: EnvParams):
    """Workflow slots in use: `slots` if set (>= 1), else max(8, 2 * n_servers); at most the static `window`.
    Tied to the active servers, not the padding, so a padded program runs the same world."""
    e = jnp.where(params.slots >= 1, params.slots, jnp.maximum(8, 2 * params.n_servers))
    return jnp.clip(e, 1, params.window).astype(jnp.int32)
