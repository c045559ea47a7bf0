"""`python -m train.trace --checkpoint DIR`: a trained policy's episode as a schedule trace.

The same trace, Gantt chart and reference re-simulation as `envs.trace` (which
records baselines and cannot import the trainer), for a `train.ppo` checkpoint:

    python -m train.trace --checkpoint runs/ppo/my-run --servers 32 --out t.json --gantt t.png --check
    python -m train.trace --checkpoint runs/ppo/k-run/seed1001:best --gpus H100,A100,L4,L4 --out t.json

The episode is drawn from the world the policy was trained in (its load,
workflows per server, catalog, GPU mix, workflow files, task bound) on the
test bank by default; `--servers`, `--gpus`, `--gpu-mix`, `--rho`,
`--workflows` and `--workload-seed` change it. The policy acts greedily
(argmax of its logits), as in evaluation.
"""

from __future__ import annotations

import argparse
import sys

from envs.files import atomic_write_json
from envs.trace import record_episode, report
from jaxsched.evaluation import TEST
from train.checkpoint import CheckpointError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.trace",
        description="Record a trained policy's greedy episode as a JSON schedule trace (the format of "
                    "envs.trace), draw its Gantt chart, or re-simulate it on the reference simulator.")
    p.add_argument("--checkpoint", required=True, metavar="[NAME=]DIR[:best|:latest|:STEP]",
                   help="a train.ppo run directory (one seed's directory for a K-seed run)")
    p.add_argument("--servers", type=int, metavar="N", help="active servers (default 16, or len(--gpus))")
    p.add_argument("--gpus", metavar="G1,G2,...", help="a fixed cluster, one GPU type per server")
    p.add_argument("--gpu-mix", metavar="G=W,...", help="sampling weights of GPU types (default: the checkpoint's)")
    p.add_argument("--rho", type=float, help="offered load (default: the checkpoint's)")
    p.add_argument("--workflows", nargs="+", metavar="FILE", help="workflow files instead of the checkpoint's bank")
    p.add_argument("--workload-seed", type=int, default=TEST.workload_seed,
                   help=f"bank seed (default {TEST.workload_seed}, the test bank)")
    p.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    p.add_argument("--out", required=True, metavar="FILE.json", help="where to write the trace")
    p.add_argument("--gantt", metavar="FILE.png", help="also draw the trace's Gantt chart here")
    p.add_argument("--check", action="store_true",
                   help="re-simulate the trace on the reference simulator and verify its numbers")
    return p


def checkpoint_world(loaded, *, servers=None, gpus=None, gpu_mix=None, rho=None, workflows=(),
                     workload_seed: int = TEST.workload_seed):
    """The EnvConfig a trace of `loaded` (a `train.policies.LoadedPolicy`) plays: its training world on
    `workload_seed`'s bank, with the given changes. ValueError names the option."""
    from envs.world import build_world

    if servers is not None and servers < 1:
        raise ValueError(f"--servers: must be >= 1, got {servers}")
    if rho is not None and not rho > 0:
        raise ValueError(f"--rho: must be > 0, got {rho}")
    config = loaded.eval_env(workload_seed)
    if rho is not None:
        config = config.replace(rho=float(rho))
    if servers is not None:
        config = config.replace(n_servers=int(servers))
    config = build_world(config, gpus=gpus, gpu_mix=gpu_mix, workflows=workflows or (),
                         max_tasks=config.max_tasks, seed=workload_seed)
    if gpus and servers is not None and servers != config.n_servers:
        raise ValueError(f"--gpus lists {config.n_servers} GPUs but --servers is {servers}")
    config.validate()
    return config


def record_checkpoint(spec: str, seed: int = 0, **world) -> tuple[dict, object, object]:
    """(trace, loaded policy, EnvConfig) of one greedy episode of the checkpoint `spec`."""
    from train.policies import load_policy

    loaded = load_policy(spec)
    config = checkpoint_world(loaded, **world)
    return record_episode(config, loaded.greedy(), seed), loaded, config


def main(argv=None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    try:
        trace, loaded, config = record_checkpoint(
            a.checkpoint, a.seed, servers=a.servers, gpus=a.gpus, gpu_mix=a.gpu_mix, rho=a.rho,
            workflows=a.workflows or (), workload_seed=a.workload_seed)
    except (ValueError, CheckpointError) as e:
        p.error(str(e))
    try:
        atomic_write_json(a.out, trace)
    except OSError as e:
        p.error(f"--out: cannot write {a.out}: {e.strerror or e}")
    label = f"{loaded.name} step {loaded.step} seed={a.seed}"
    print(f"{loaded.name}: step {loaded.step} of {loaded.path}; rho={config.rho}, bank seed {a.workload_seed}"
          + (" (the test bank)" if a.workload_seed == TEST.workload_seed else ""))
    code = report(trace, label, a.out, check=a.check, gantt=a.gantt, error=p.error)
    print(f"trace: {a.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
