"""The workflow-scheduling environment (spec v2): JAX env, reference simulator, traces, adapters."""

from envs.config import EnvConfig, make_params
from envs.env import episode_metrics, reset, step
from envs.types import DagView, Decision, EnvParams, EnvState, Observation

__all__ = ["EnvConfig", "make_params", "reset", "step", "episode_metrics",
           "EnvParams", "EnvState", "Observation", "DagView", "Decision"]
