"""The environment behind other people's APIs: gymnax (JAX trainers) and Gymnasium (everyone else).

    from envs.interop import gymnax_env, gymnasium_env
    env, env_params = gymnax_env(n_servers=4)           # a gymnax.environments.Environment
    genv = gymnasium_env(n_servers=4)                    # a gymnasium.Env (NumPy in and out)
    venv = gymnasium_vector_env(64, n_servers=4)         # 64 clusters stepped in one jitted call

Both see a flat, symlog-scaled observation vector (`flat.flat_layout` names its
parts) that includes the action mask; actions are `Discrete(max_servers)`.
gymnax and gymnasium are optional (`pip install -e ".[interop]"`): importing
this package needs neither; each function imports what it needs.
"""

from __future__ import annotations

from envs.interop.flat import flat_layout, flat_size, flatten

__all__ = ["flat_layout", "flat_size", "flatten", "gymnax_env", "gymnasium_env", "gymnasium_vector_env"]


def gymnax_env(**env_config):
    """(env, env_params): a gymnax 1.0 `Environment` over `EnvConfig(**env_config)` and its params."""
    from envs.interop.gymnax_adapter import make

    return make(**env_config)


def gymnasium_env(flat: bool = False, **env_config):
    """A `gymnasium.Env` over `EnvConfig(**env_config)`; `flat=True` for a `Box` observation (the mask
    also through `action_masks()` and `info["action_mask"]`), else a `Dict` with "observation" and
    "action_mask" (Gymnasium's masking convention)."""
    from envs.interop.gymnasium_adapter import SchedulingEnv

    return SchedulingEnv(flat=flat, **env_config)


def gymnasium_vector_env(num_envs: int, **env_config):
    """A `gymnasium.vector.VectorEnv` of `num_envs` clusters stepped together in one jitted call."""
    from envs.interop.gymnasium_adapter import SchedulingVectorEnv

    return SchedulingVectorEnv(num_envs, **env_config)
