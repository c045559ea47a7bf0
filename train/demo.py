"""`python -m train.demo`: every baseline on the same 16-server episodes, response-time summary.

A quick look at one cluster size: it plays each baseline on the same
`--seeds` episodes (common random numbers; every policy and seed in one
compiled program, `jaxsched.evaluation.run_jax_policies`) and prints mean / P95
response, makespan and utilization. `python -m train.evaluate` is the full
harness (several sizes, CIs, files).
"""

from __future__ import annotations

import argparse
import time

from envs import EnvConfig, make_params
from envs.sizes import episode_workflows
from jaxsched.baselines import BASELINES
from jaxsched.evaluation import run_jax_policies


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
    t0 = time.perf_counter()
    rows = run_jax_policies({name: BASELINES[name] for name in names}, params, a.seeds)  # one program, all policies
    print(f"{'policy':<14}{'mean resp (s)':>14}{'P95 resp (s)':>14}{'makespan (s)':>14}{'util':>7}")
    for name, m in rows.items():
        print(f"{name:<14}{m['mean_response'].mean():>14.1f}{m['p95_response'].mean():>14.1f}"
              f"{m['makespan'].mean():>14.1f}{m['utilization'].mean():>7.2f}")
    print(f"({time.perf_counter() - t0:.1f} s, compilation included)")
    return rows


if __name__ == "__main__":
    main()
