"""`python -m train.demo`: every baseline on the same 16-server episodes, response-time summary.

The main job until PPO lands: it builds the default environment, plays each
baseline on the same `--seeds` episodes (common random numbers, all seeds at
once under jit + vmap) and prints mean / P95 response, makespan and
utilization.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from envs import EnvConfig, make_params
from envs.rollout import run_episode
from envs.sizes import episode_workflows
from jaxsched.baselines import BASELINES


def evaluate(policy, params, seeds: int, seed: int = 0) -> dict:
    keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
    metrics = jax.jit(jax.vmap(lambda k: run_episode(policy, k, params)[1]))(keys)
    return {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m train.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--rho", type=float, default=0.7)
    ap.add_argument("--policies", default=",".join(BASELINES))
    a = ap.parse_args(argv)
    names = [p for p in a.policies.split(",") if p]
    unknown = [p for p in names if p not in BASELINES]
    if unknown:
        ap.error(f"--policies: unknown {unknown}; choose from {', '.join(BASELINES)}")
    if a.servers < 1 or a.seeds < 1:
        ap.error("--servers and --seeds must be >= 1")
    try:
        params = make_params(EnvConfig(n_servers=a.servers, rho=a.rho))
    except ValueError as e:
        ap.error(str(e))
    print(f"{a.servers} servers, rho={a.rho}, {int(episode_workflows(params))} workflows per episode, {a.seeds} seeds")
    print(f"{'policy':<14}{'mean resp (s)':>14}{'P95 resp (s)':>14}{'makespan (s)':>14}{'util':>7}{'time (s)':>10}")
    rows = {}
    for name in names:
        t0 = time.perf_counter()
        m = evaluate(BASELINES[name], params, a.seeds)
        rows[name] = m
        print(f"{name:<14}{m['mean_response'].mean():>14.1f}{m['p95_response'].mean():>14.1f}"
              f"{m['makespan'].mean():>14.1f}{m['utilization'].mean():>7.2f}{time.perf_counter() - t0:>10.1f}")
    return rows


if __name__ == "__main__":
    main()
