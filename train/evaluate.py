"""`python -m train.evaluate`: every policy on the same workloads across cluster sizes.

The command line over the harness library `jaxsched.evaluation` (see there for
the protocol: common random numbers per seed, load held as N grows, jittable
policies vectorized, host policies through the reference simulator).
"""

from __future__ import annotations

import argparse
import json
import sys

from envs import EnvConfig
from envs.world import build_world
from jaxsched import baselines
from jaxsched.evaluation import (
    DEFAULT_SERVERS,
    SPLITS,
    TEST,
    check_reporting_bank,
    eval_config,
    evaluate,
    format_table,
    known_policies,
    parse_servers,
    resolve_policies,
    summarize,
    write_outputs,
)
from train.checkpoint import CheckpointError
from train.policies import load_policies

# ----------------------------------------------------------------------------- CLI

def _world_key(config) -> tuple:
    """What a checkpoint's evaluation world depends on besides the load."""
    return (config.catalog, config.gpu_mix, config.eval_workflows or config.workflows, config.max_tasks)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default=",".join(baselines.BASELINES),
                    help=f"comma-separated, from: {', '.join(known_policies())}; or module:function, "
                         "a jittable policy(key, obs) -> server of your own")
    ap.add_argument("--servers", default=None, help=f"cluster sizes, e.g. 8,16,32 (default {','.join(map(str, DEFAULT_SERVERS))}, "
                    "or the length of --gpus)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--rho", type=float, default=None,
                    help="offered load (default: the checkpoints' training load, else the env's 0.7)")
    ap.add_argument("--split", choices=list(SPLITS), default=TEST.name,
                    help="episode set: test (final reports; the default) or validation (what training selects on; "
                         "refused for checkpoints)")
    ap.add_argument("--workload-seed", type=int, default=None,
                    help="workflow bank seed (default: the split's, test 3, validation 1; training uses 0)")
    ap.add_argument("--workflows", nargs="+", metavar="FILE", help="workflow files (own JSON or WfFormat) to "
                    "evaluate on instead of the generated bank")
    ap.add_argument("--max-tasks", type=int, default=None, help="largest workflow allowed (default 16; up to 1024)")
    ap.add_argument("--catalog", metavar="FILE.json", help="extra GPU types and models (docs/environment.md)")
    ap.add_argument("--gpus", metavar="G1,G2,...", help="a fixed cluster, one GPU type per server (sets --servers)")
    ap.add_argument("--gpu-mix", metavar="G=W,...", help="sampling weights of GPU types, e.g. H100=2,L4=1")
    ap.add_argument("--out", default=None, help="directory for results.json, results.csv and the plot")
    ap.add_argument("--json", action="store_true", help="print the rows as one JSON list instead of the table")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="[NAME=]DIR[:best|:latest|:STEP]",
                    help="a trained policy (a train.ppo run directory; a K-seed run gives one policy per seed); "
                         "repeat for several")
    ap.add_argument("--workers", type=int, default=1, help="processes for host policies (FATE-CP)")
    ap.add_argument("--cp-time-limit", type=float, default=None, help="FATE-CP seconds per solve")
    return ap


def main(argv=None):
    ap = build_parser()
    a = ap.parse_args(argv)
    try:
        servers = parse_servers(a.servers or ",".join(map(str, DEFAULT_SERVERS)))
        if a.seeds < 1:
            raise ValueError(f"--seeds: must be >= 1, got {a.seeds}")
        if a.workers < 1:
            raise ValueError(f"--workers: must be >= 1, got {a.workers}")
        names = [p.strip() for p in a.policies.split(",") if p.strip()]
        if not names:
            raise ValueError("--policies: empty list")
        split = SPLITS[a.split]
        if a.workload_seed is None:
            a.workload_seed = split.workload_seed
        cp_opts = {} if a.cp_time_limit is None else {"time_limit_s": a.cp_time_limit}
        policies = resolve_policies(names, cp_opts)
        loaded = [p for spec in a.checkpoint for p in load_policies(spec)]
        for p in loaded:
            if p.name in policies.jax:
                raise ValueError(f"--checkpoint: two policies are called {p.name!r}; name them (NAME=DIR)")
            policies.jax[p.name] = p.greedy()
            check_reporting_bank(a.workload_seed, p.config.to_dict(), f"checkpoint {p.name!r}")
        world_opts = dict(catalog_file=a.catalog, gpus=a.gpus, gpu_mix=a.gpu_mix, workflows=a.workflows or (),
                          max_tasks=a.max_tasks, seed=a.workload_seed)
        base = EnvConfig(workload_seed=a.workload_seed)
        worlds = {(p.config.rho, p.config.workflows_per_server) for p in loaded}
        trained_in = {_world_key(p.config) for p in loaded}
        if len(trained_in) == 1 and not any(v for k, v in world_opts.items() if k != "seed"):
            base = loaded[0].eval_env(a.workload_seed)  # the checkpoints' catalog, GPU mix and workflow files
        if a.rho is not None:
            base = base.replace(rho=a.rho)
        elif len(worlds) == 1:
            rho, wps = worlds.pop()
            base = base.replace(rho=rho, workflows_per_server=wps)
        elif len(worlds) > 1:
            raise ValueError(f"--checkpoint: the checkpoints were trained at different loads {sorted(worlds)}; "
                             "give --rho to evaluate them at one")
        base = build_world(base, **world_opts)
        if a.gpus:
            if a.servers is not None and servers != [base.n_servers]:
                raise ValueError(f"--gpus lists {base.n_servers} GPUs but --servers is {a.servers}")
            servers = [base.n_servers]
        for p in loaded:  # a network reads one-hot GPU types and models: the catalogs' sizes must match
            trained = p.config.env(n_servers=1)
            if (len(trained.gpus), len(trained.models)) != (len(base.gpus), len(base.models)):
                raise ValueError(f"--checkpoint {p.path}: trained with {len(trained.gpus)} GPU types and "
                                 f"{len(trained.models)} models; this world has {len(base.gpus)} and {len(base.models)} "
                                 "(give the catalog it was trained with)")
        eval_config(servers[0], base).validate()
    except (ValueError, ImportError, CheckpointError) as e:
        ap.error(str(e))
    log = (lambda s: print(s, file=sys.stderr)) if a.json else print
    if loaded and a.rho is None:
        log(f"evaluating at the checkpoints' training load: rho={base.rho}, {base.workflows_per_server:g} workflows "
            f"per server ({a.split} split: workload seed {a.workload_seed}, episodes from {split.first_episode})")
    results = evaluate(policies, servers, a.seeds, base, workers=a.workers, log=log, first_episode=split.first_episode)
    rows = summarize(results)
    if a.json:
        print(json.dumps(rows))
    else:
        print(format_table(rows))
    if a.out:
        paths = write_outputs(rows, a.out)
        log(f"wrote {', '.join(paths.values())}")
    return rows


if __name__ == "__main__":
    main()
