"""Vectorized environments with auto-reset.

`auto_reset_step` is exact and per-env (vmap it): a finished episode is
replaced by a fresh one drawn with the step's key. Under `vmap` that computes a
reset for every env at every step and selects over the whole state, which
costs more than the step itself.

`VecEnv` steps a batch and draws `num_envs // reset_ratio` fresh episodes per
step for the envs whose episode just ended, lowest env index first. With
`reset_ratio = 1` every ended env gets its own fresh episode at once (exact).
With r > 1 (Craftax's "optimistic resets", minus the duplicates): if more than
`num_envs // r` envs end in one step, the rest wait, frozen, and get a fresh
episode on a later step; their waiting steps return reward 0 and `done = False`,
are marked `info["valid"] = False` (no decision was made: learners must drop
them from losses, advantages and statistics) and `info["waiting"]` counts them. Episodes last hundreds of steps, so with
r = 16 and thousands of envs this almost never happens.

Why the fresh states travel in `VecState.fresh` for one step: the observation
of a fresh episode is returned at once (the step builds a new observation
buffer anyway, so writing into it is cheap), but writing fresh states into the
step's output would make XLA copy the whole batched state every step (about
half the step's cost on a CPU). Writing them into the loop-carried state at the
start of the next step is done in place.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from envs.env import reset, step
from envs.types import EnvParams, EnvState


def _where(cond, a, b):
    return jax.tree.map(lambda x, y: jnp.where(jnp.reshape(cond, cond.shape + (1,) * (x.ndim - cond.ndim)), x, y), a, b)


def auto_reset_step(key, state, action, params: EnvParams):
    """`step`, then a fresh episode where this one ended. `info` keeps the finished episode's metrics."""
    k_step, k_reset = jax.random.split(key)
    obs, state, reward, done, info = step(k_step, state, action, params)
    obs_r, state_r = reset(k_reset, params)
    return _where(done, obs_r, obs), _where(done, state_r, state), reward, done, info


@struct.dataclass
class VecState:
    env: EnvState  # [num_envs]; an env in `fresh_idx` still holds its finished episode
    fresh: EnvState  # [num_fresh] episodes whose first observation was already returned
    fresh_idx: jax.Array  # [num_fresh] env index each goes to (num_envs: unused)

    @property
    def done(self):
        """Envs with no episode in progress and none pending (waiting for a fresh one)."""
        pending = jnp.zeros(self.env.done.shape, bool).at[self.fresh_idx].set(True, mode="drop")
        return self.env.done & ~pending


def _per_env_servers_axes(params: EnvParams) -> EnvParams:
    """vmap in_axes for params whose `n_servers` is per env (everything else shared)."""
    data = {f: None for f, v in params.__dataclass_fields__.items() if v.metadata.get("pytree_node", True)}
    return params.replace(**dict(data, n_servers=0))


@struct.dataclass
class VecEnv:
    """A batch of environments with auto-reset. With `env_servers` ([num_envs] int32), env i always
    runs clusters of `env_servers[i]` active servers (a mix of sizes in one compiled batch, padded
    to `params.max_servers`); otherwise every env uses `params.n_servers`."""

    params: EnvParams
    num_envs: int = struct.field(pytree_node=False)
    reset_ratio: int = struct.field(pytree_node=False, default=1)  # 1: every ended env resets at once
    env_servers: jax.Array | None = None

    @property
    def num_fresh(self) -> int:
        return max(1, self.num_envs // max(1, self.reset_ratio))

    def _vmap(self, fn, in_axes, n_servers):
        """vmap `fn(..., params)` with params last; per-env sizes when `n_servers` is given."""
        if n_servers is None:
            return lambda *args: jax.vmap(fn, in_axes=in_axes + (None,))(*args, self.params)
        params = self.params.replace(n_servers=n_servers)
        return lambda *args: jax.vmap(fn, in_axes=in_axes + (_per_env_servers_axes(params),))(*args, params)

    def reset(self, key):
        obs, env = self._vmap(reset, (0,), self.env_servers)(jax.random.split(key, self.num_envs))
        fresh = jax.tree.map(lambda x: x[: self.num_fresh], env)
        return obs, VecState(env=env, fresh=fresh, fresh_idx=jnp.full(self.num_fresh, self.num_envs, jnp.int32))

    def step(self, key, state: VecState, action):
        """Returns (obs, state, reward, done, info); `done` marks episodes that ended at this step
        (their final metrics are in `info`), and `obs` already belongs to the next episode."""
        k_step, k_reset = jax.random.split(key)
        put = lambda idx: lambda x, r: x.at[idx].set(r, mode="drop")  # noqa: E731
        env = jax.tree.map(put(state.fresh_idx), state.env, state.fresh)  # last step's fresh episodes
        was_done = env.done
        obs, env, reward, done, info = self._vmap(step, (0, 0, 0), self.env_servers)(
            jax.random.split(k_step, self.num_envs), env, action)
        ended = done & ~was_done
        # the first num_fresh finished envs, lowest index first (top_k: nonzero's cumsum is quadratic on CPU)
        top, idx = jax.lax.top_k(jnp.where(env.done, self.num_envs - jnp.arange(self.num_envs), 0), self.num_fresh)
        idx = jnp.where(top > 0, idx, self.num_envs).astype(jnp.int32)
        fresh_servers = None if self.env_servers is None else self.env_servers[jnp.minimum(idx, self.num_envs - 1)]
        obs_r, fresh = self._vmap(reset, (0,), fresh_servers)(jax.random.split(k_reset, self.num_fresh))
        obs = jax.tree.map(put(idx), obs, obs_r)
        state = VecState(env=env, fresh=fresh, fresh_idx=idx)
        # a waiting env keeps its finished episode's metrics; only the step that ended it reports them
        info = dict(info, episode_done=ended, waiting=jnp.sum(state.done), valid=~was_done)
        return obs, state, reward, ended, info
