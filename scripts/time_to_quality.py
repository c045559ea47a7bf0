"""Time to a good policy: training wall time until the N=16 evaluation first beats EFT.

    python scripts/time_to_quality.py LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--servers 16] [--json]

Each RUN_DIR is a finished one-seed run directory (its `history.jsonl` and
`summary.json`; runs made at older commits work too). EFT's mean response is
computed here, on the run's own evaluation episodes (`eval_workload_seed`,
`eval_seeds`, `rho`, `workflows_per_server`), so every run is judged against
the same bar. Training time is the sum of the chunks' own times (compilation
included, evaluation excluded), read back from each history line's update
count and `perf/decisions_per_s`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def eft_mean_response(config: dict, n_servers: int) -> float:
    from envs import EnvConfig
    from jaxsched.evaluation import evaluate, resolve_policies

    base = EnvConfig(rho=config["rho"], workflows_per_server=config["workflows_per_server"],
                     workload_seed=config.get("eval_workload_seed", 1))
    results = evaluate(resolve_policies(["eft"]), [n_servers], int(config["eval_seeds"]), base=base)
    return float(results[n_servers]["eft"]["mean_response"].mean())


def first_beat(history: list[dict], config: dict, n_servers: int, bar: float) -> dict:
    per_update = config["num_envs"] * config["num_steps"]
    elapsed, prev = 0.0, 0
    evals = []
    for line in history:
        u = int(line["update"])
        dps = line.get("perf/decisions_per_s")
        if dps:
            elapsed += (u - prev) * per_update / dps
        prev = u
        key = f"eval/{n_servers}/mean_response"
        if key in line:
            evals.append({"update": u, "train_s": round(elapsed, 1), "mean_response": line[key]})
            if line[key] < bar:
                return {"beats_eft_at_update": u, "train_s": round(elapsed, 1), "evals": evals}
    return {"beats_eft_at_update": None, "train_s": None, "evals": evals, "total_train_s": round(elapsed, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    p.add_argument("--servers", type=int, default=16)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    out = {}
    for spec in a.runs:
        label, _, run_dir = spec.rpartition("=")
        label = label or run_dir
        try:
            with open(os.path.join(run_dir, "summary.json")) as f:
                config = json.load(f)["config"]
            with open(os.path.join(run_dir, "history.jsonl")) as f:
                history = [json.loads(x) for x in f if x.strip()]
        except (OSError, ValueError, KeyError) as e:
            print(f"error: {run_dir}: not a finished one-seed run directory ({e})", file=sys.stderr)
            return 2
        bar = eft_mean_response(config, a.servers)
        out[label] = {"run_dir": run_dir, "eft_mean_response": round(bar, 3), **first_beat(history, config, a.servers, bar)}
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        for label, r in out.items():
            when = (f"update {r['beats_eft_at_update']} after {r['train_s']} s of training"
                    if r["beats_eft_at_update"] else f"never (in {r['total_train_s']} s)")
            print(f"{label}: EFT {r['eft_mean_response']:.2f} s; first beaten at {when}")
            for e in r["evals"]:
                print(f"    update {e['update']:>4}  {e['train_s']:>7.1f} s  mean response {e['mean_response']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
