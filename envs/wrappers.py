"""Vectorized environments with auto-reset.

`auto_reset_step` is exact and per-env (vmap it): a finished episode is
replaced by a fresh one drawn with the step's key. Under `vmap` that computes a
reset for every env at every step and selects over the whole state, which
costs more than the step itself.

`VecEnv` steps a batch and draws `num_envs // reset_ratio` fresh episodes per
step, writing them in place (a scatter, not a select) into the envs whose
episode has ended, lowest env index first. With `reset_ratio = 1` every env
gets its own fresh episode the step it ends (exact). With r > 1 (Craftax's
"optimistic resets", minus the duplicates): if more than `num_envs // r` envs
end in one step, the rest wait, frozen, and get a fresh episode on the next
step; their waiting steps return reward 0 and `done = False`, and
`info["waiting"]` counts them. Episodes last hundreds of steps, so with r = 16
this almost never happens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from envs.env import reset, step
from envs.types import EnvParams


def _where(cond, a, b):
    return jax.tree.map(lambda x, y: jnp.where(jnp.reshape(cond, cond.shape + (1,) * (x.ndim - cond.ndim)), x, y), a, b)


def auto_reset_step(key, state, action, params: EnvParams):
    """`step`, then a fresh episode where this one ended. `info` keeps the finished episode's metrics."""
    k_step, k_reset = jax.random.split(key)
    obs, state, reward, done, info = step(k_step, state, action, params)
    obs_r, state_r = reset(k_reset, params)
    return _where(done, obs_r, obs), _where(done, state_r, state), reward, done, info


@struct.dataclass
class VecEnv:
    params: EnvParams
    num_envs: int = struct.field(pytree_node=False)
    reset_ratio: int = struct.field(pytree_node=False, default=1)  # 1: every ended env resets at once

    @property
    def num_fresh(self) -> int:
        return max(1, self.num_envs // max(1, self.reset_ratio))

    def reset(self, key):
        return jax.vmap(reset, in_axes=(0, None))(jax.random.split(key, self.num_envs), self.params)

    def step(self, key, state, action):
        """Returns (obs, state, reward, done, info); `done` marks episodes that ended at this step
        (their final metrics are in `info`), and `obs`/`state` already belong to the next episode."""
        k_step, k_reset = jax.random.split(key)
        was_done = state.done
        obs, state, reward, done, info = jax.vmap(step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_step, self.num_envs), state, action, self.params)
        ended = done & ~was_done
        obs_r, state_r = jax.vmap(reset, in_axes=(0, None))(jax.random.split(k_reset, self.num_fresh), self.params)
        idx = jnp.nonzero(state.done, size=self.num_fresh, fill_value=self.num_envs)[0]
        put = lambda x, r: x.at[idx].set(r, mode="drop")  # noqa: E731
        obs = jax.tree.map(put, obs, obs_r)
        state = jax.tree.map(put, state, state_r)
        info = dict(info, waiting=jnp.sum(state.done))
        return obs, state, reward, ended, info
