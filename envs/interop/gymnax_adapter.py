"""The environment as a gymnax 1.0 `Environment` (imports gymnax; reach it through `envs.interop`).

gymnax's `step` splits the key, calls `step_env`, and where the episode ended swaps in
`reset_env` with the second half of the key (exact auto-reset), returning
(obs, state, reward, terminated, truncated, info). Episodes end by themselves (every
task placed), so nothing is ever truncated. Invalid actions behave as in the env:
redirected to the lowest-index valid server and flagged in `info["invalid_action"]`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from gymnax.environments import environment, spaces

from envs import EnvConfig, make_params
from envs.env import reset, step
from envs.interop.flat import flat_size, flatten
from envs.types import EnvParams, EnvState


class SchedulingEnv(environment.Environment):
    """Place each ready LLM call on one of `max_servers` servers; reward = minus response time / 100 s."""

    def __init__(self, params: EnvParams):
        super().__init__()
        self._params = params

    @property
    def default_params(self) -> EnvParams:
        return self._params

    @property
    def name(self) -> str:
        return "jaxsched-Scheduling-v2"

    @property
    def num_actions(self) -> int:
        return int(self._params.max_servers)

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        obs, state = reset(key, params)
        return flatten(obs), state

    def step_env(self, key: jax.Array, state: EnvState, action, params: EnvParams):
        obs, state, reward, done, info = step(key, state, jnp.asarray(action, jnp.int32), params)
        info = {"invalid_action": info["invalid_action"], "mean_response": info["mean_response"],
                "action_mask": obs.action_mask, "episode_done": info["episode_done"]}
        return flatten(obs), state, reward, done, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.bool_(False)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.done

    def observation_space(self, params: EnvParams) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (flat_size(params),), jnp.float32)

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(int((params or self._params).max_servers))

    @staticmethod
    def action_mask(obs: jax.Array, params: EnvParams) -> jax.Array:
        """The action mask from a flat observation (its last `max_servers` entries)."""
        return obs[..., -params.max_servers:] > 0.5


def make(**env_config) -> tuple[SchedulingEnv, EnvParams]:
    try:
        params = make_params(EnvConfig(**env_config))
    except TypeError as e:
        raise ValueError(f"gymnax_env: {e}") from None
    return SchedulingEnv(params), params
