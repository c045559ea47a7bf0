"""The environment as Gymnasium envs (imports gymnasium; reach them through `envs.interop`).

`SchedulingEnv` is one cluster, NumPy in and out, for any Gymnasium trainer (CleanRL,
Stable-Baselines3; sb3-contrib's MaskablePPO reads `action_masks()`). Each reset draws
the episode from a JAX key taken from the env's `np_random` (seeded by `reset(seed=...)`
as Gymnasium's rules say), so a seed fixes the sequence of episodes. The transitions run
jitted; one call per step is the cost of the NumPy interface.

`SchedulingVectorEnv` steps `num_envs` clusters in one jitted call (`vmap`) and resets
finished ones in the same call (autoreset mode "same step": the returned observation
is the fresh episode's; `info["final_obs"]` holds the finished one's last).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import Env, spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from envs import EnvConfig, make_params
from envs.env import reset, step
from envs.interop.flat import flat_size, flatten

BOUND = 30.0  # symlog-scaled features: |x| <= 30 means raw values below 1e13


def _params(env_config: dict):
    try:
        return make_params(EnvConfig(**env_config))
    except TypeError as e:
        raise ValueError(f"gymnasium_env: {e}") from None


def _spaces(params, flat: bool):
    vec = spaces.Box(-BOUND, BOUND, (flat_size(params),), np.float32)
    if flat:
        return vec
    return spaces.Dict({"observation": vec, "action_mask": spaces.MultiBinary(int(params.max_servers))})


def _compiled(params):
    """Jitted reset and step for one cluster. Each returns the state and ONE float32 vector on the
    host side, [flat observation, action mask, reward, done, invalid, mean response]: one
    device-to-host copy per step instead of six (the per-step cost of a NumPy interface is
    dispatch and transfers, not the transition)."""
    def pack(obs, *scalars):
        return jnp.concatenate([flatten(obs), obs.action_mask.astype(jnp.float32),
                                jnp.stack([jnp.asarray(x, jnp.float32) for x in scalars])])

    def first(key):
        obs, state = reset(key, params)
        return pack(obs, 0.0, False, False, 0.0), state

    def move(state, action):
        obs, state, reward, done, info = step(jax.random.PRNGKey(0), state, action, params)
        return pack(obs, reward, done, info["invalid_action"], info["mean_response"]), state

    return jax.jit(first), jax.jit(move)


class SchedulingEnv(Env):
    """One cluster: place each ready LLM call on a server. Reward: minus response time / 100 s."""

    metadata = {"render_modes": []}

    def __init__(self, flat: bool = False, **env_config):
        self.flat = flat
        self.params = _params(env_config)
        self.observation_space = _spaces(self.params, flat)
        self.action_space = spaces.Discrete(int(self.params.max_servers))
        self._reset, self._step = _compiled(self.params)
        self._size = flat_size(self.params)
        self._state = None
        self._mask = None

    def _unpack(self, packed):
        packed = np.asarray(packed)
        n, size = int(self.params.max_servers), self._size
        vec, self._mask = packed[:size], packed[size:size + n].astype(np.int8)
        reward, done, invalid, mean_resp = packed[size + n:]
        obs = vec if self.flat else {"observation": vec, "action_mask": self._mask}
        return obs, float(reward), bool(done), bool(invalid), float(mean_resp)

    def action_masks(self) -> np.ndarray:
        """bool [max_servers]: the servers this task may go to (active, and its model fits)."""
        return self._mask.astype(bool)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        key = jax.random.PRNGKey(int(self.np_random.integers(0, 2**31 - 1)))
        packed, self._state = self._reset(key)
        obs = self._unpack(packed)[0]
        return obs, {"action_mask": self._mask.astype(bool)}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("step() before reset()")
        packed, self._state = self._step(self._state, np.int32(action))
        obs, reward, done, invalid, mean_resp = self._unpack(packed)
        info = {"action_mask": self._mask.astype(bool), "invalid_action": invalid}
        if done:
            info["mean_response"] = mean_resp
        return obs, reward, done, False, info


class SchedulingVectorEnv(VectorEnv):
    """`num_envs` clusters stepped in one jitted call; finished ones reset in the same step."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, **env_config):
        if num_envs < 1:
            raise ValueError(f"num_envs: must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.params = params = _params(env_config)
        self.single_observation_space = _spaces(params, flat=False)
        self.single_action_space = spaces.Discrete(int(params.max_servers))
        self.observation_space = spaces.Dict({
            "observation": spaces.Box(-BOUND, BOUND, (self.num_envs, flat_size(params)), np.float32),
            "action_mask": spaces.MultiBinary((self.num_envs, int(params.max_servers)))})
        self.action_space = spaces.MultiDiscrete(np.full(self.num_envs, int(params.max_servers)))

        def first(keys):
            obs, state = jax.vmap(reset, in_axes=(0, None))(keys, params)
            return jax.vmap(flatten)(obs), obs.action_mask, state

        def move(state, actions, keys):
            obs, state, reward, done, info = jax.vmap(step, in_axes=(None, 0, 0, None))(
                jax.random.PRNGKey(0), state, actions, params)
            obs_r, state_r = jax.vmap(reset, in_axes=(0, None))(keys, params)
            pick = lambda a, b: jnp.where(done.reshape(done.shape + (1,) * (a.ndim - 1)), a, b)  # noqa: E731
            final = jax.vmap(flatten)(obs)
            new_obs = jax.tree.map(pick, obs_r, obs)
            state = jax.tree.map(pick, state_r, state)
            return (jax.vmap(flatten)(new_obs), new_obs.action_mask, state, reward, done, final,
                    info["invalid_action"], info["mean_response"])

        self._reset, self._step = jax.jit(first), jax.jit(move)
        self._state = None
        self._key = None

    def _keys(self):
        self._key, sub = jax.random.split(self._key)
        return jax.random.split(sub, self.num_envs)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None or self._key is None:
            self._key = jax.random.PRNGKey(0 if seed is None else int(seed))
        vec, mask, self._state = self._reset(self._keys())
        return {"observation": np.asarray(vec), "action_mask": np.asarray(mask, np.int8)}, {}

    def step(self, actions):
        if self._state is None:
            raise RuntimeError("step() before reset()")
        vec, mask, self._state, reward, done, final, invalid, mean_resp = self._step(
            self._state, jnp.asarray(actions, jnp.int32), self._keys())
        done = np.asarray(done)
        info = {"invalid_action": np.asarray(invalid), "final_obs": np.asarray(final),
                "mean_response": np.where(done, np.asarray(mean_resp), np.nan), "_final_obs": done}
        obs = {"observation": np.asarray(vec), "action_mask": np.asarray(mask, np.int8)}
        return obs, np.asarray(reward, np.float32), done, np.zeros_like(done), info
