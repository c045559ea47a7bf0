"""`python -m analysis.reproduce --preset {tiny,cpu,gpu}`: the SCALE experiment end to end.

Train at one cluster size with SRR off, SRR on, log-N scaling, and both, over k
seeds; evaluate each greedy policy at larger N next to EFT and FATE-lite on the
evaluation harness's episodes; run the attention-feature shift analysis on
each variant; write a markdown report (results table with 95% CIs and the
change vs no-SRR at each N, the shift plots, the config used).

    python -m analysis.reproduce --preset tiny --out results/tiny   # CI: minutes, numbers meaningless
    python -m analysis.reproduce --preset cpu  --out results/cpu    # an afternoon on a laptop
    python -m analysis.reproduce --preset gpu  --out results/gpu    # the study (5 seeds), one GPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from analysis.shift import analyze, plot
from envs import EnvConfig, make_params
from envs.files import atomic_write_json, atomic_write_text
from jaxsched import baselines
from jaxsched.evaluation import METRICS, TEST, eval_config, mean_ci, rows_to_csv, run_jax_policies

VARIANTS = {
    "no_srr": {},
    "srr": {"srr_decorrelation": 0.3, "srr_kl": 0.05},
    "log_n": {"log_n_scaling": True},
    "srr+log_n": {"srr_decorrelation": 0.3, "srr_kl": 0.05, "log_n_scaling": True},
}


@dataclass(frozen=True)
class Protocol:
    train_preset: str
    train_servers: int
    eval_servers: tuple[int, ...]
    shift_servers: tuple[int, ...]
    seeds: int  # training seeds per variant
    eval_seeds: int  # evaluation episodes per N
    shift_seeds: int
    decisions: int  # per episode for the shift analysis
    permutations: int
    train_overrides: dict = field(default_factory=dict)


PRESETS = {
    "tiny": Protocol("cpu-quick", 4, (4, 8), (4, 8), seeds=1, eval_seeds=2, shift_seeds=2, decisions=32, permutations=20),
    "cpu": Protocol("cpu", 16, (16, 32, 48, 64, 128), (8, 16, 24, 32, 48, 64, 96, 128), seeds=2, eval_seeds=10,
                    shift_seeds=8, decisions=256, permutations=200),
    "gpu": Protocol("gpu", 16, (16, 32, 48, 64, 128), (8, 16, 24, 32, 48, 64, 96, 128), seeds=5, eval_seeds=20,
                    shift_seeds=16, decisions=256, permutations=500),
}


def train_argv(proto: Protocol, name: str, seed: int, out_dir: str, wandb_mode: str) -> list[str]:
    """The `python -m train.ppo` options of one (variant, seed); its run directory is `out_dir/runs/<name>-seed<seed>`."""
    argv = [f"--preset={proto.train_preset}", f"--seed={seed}", f"--train_servers={proto.train_servers}",
            f"--eval_servers={proto.train_servers}", f"--best_metric=eval/{proto.train_servers}/norm_mean_response",
            f"--checkpoint_dir={os.path.join(out_dir, 'runs')}", f"--wandb_name={name}-seed{seed}",
            f"--wandb_mode={wandb_mode}", f"--wandb_group=reproduce-{proto.train_preset}", "--progress=false"]
    return argv + [f"--{k}={v}" for k, v in {**proto.train_overrides, **VARIANTS[name]}.items()]


# options that say where and how a run is shown, not what it learns
_BOOKKEEPING = {"checkpoint_dir", "resume", "stop_after", "wandb_mode", "wandb_project", "wandb_entity", "wandb_name",
                "wandb_group", "progress", "distributed", "devices", "cpu_devices", "keep_best"}


def _check_saved(run_dir: str, saved: dict, wanted: dict) -> None:
    """Stop if a run found on disk was trained with other settings than this study asks for
    (another preset or variant written to the same --out), rather than silently reuse it."""
    diff = sorted(k for k in wanted if k not in _BOOKKEEPING and saved.get(k) != wanted[k])
    if diff:
        shown = ", ".join(f"{k}: saved {saved.get(k)!r}, wanted {wanted[k]!r}" for k in diff[:6])
        raise SystemExit(f"python -m analysis.reproduce: error: {run_dir} was trained with other settings ({shown}); "
                         "use another --out or delete that run")


def train_variant(proto: Protocol, name: str, seed: int, out_dir: str, wandb_mode: str) -> dict:
    """Train one (variant, seed), or pick it up where an earlier invocation left it, so an
    interrupted study is re-run with the same command: a run whose summary says it reached its
    last update is loaded, not retrained; a run with checkpoints short of that resumes exactly
    from its newest readable step. Either must have been trained with this study's settings."""
    from train.checkpoint import load_config, load_params
    from train.config import parse_args
    from train.ppo import main as run

    argv = train_argv(proto, name, seed, out_dir, wandb_mode)
    wanted = parse_args(argv)[0]
    wanted = wanted.replace(lr_decay_updates=wanted.lr_horizon_updates).to_dict()  # as train.ppo records it
    run_dir = os.path.abspath(os.path.join(out_dir, "runs", f"{name}-seed{seed}"))
    summary_path = os.path.join(run_dir, "summary.json")
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
        if summary["updates"] >= summary["config"]["total_updates"]:
            _check_saved(run_dir, summary["config"], wanted)
            step, params, _ = load_params(run_dir)
            if step != summary["updates"]:
                raise SystemExit(f"python -m analysis.reproduce: error: {run_dir}: the final checkpoint (update "
                                 f"{summary['updates']}) is unreadable (newest readable: {step}); delete the run to retrain it")
            print(f"[reproduce] {name} seed {seed}: finished earlier, loaded {run_dir}", file=sys.stderr, flush=True)
            return {**summary, "params": params, "run_dir": run_dir}
    if os.path.isdir(run_dir) and any(e.isdigit() for e in os.listdir(run_dir)):
        _check_saved(run_dir, load_config(run_dir)[1], wanted)
        print(f"[reproduce] {name} seed {seed}: resuming {run_dir}", file=sys.stderr, flush=True)
        return run([f"--resume={run_dir}", "--progress=false", f"--wandb_mode={wandb_mode}"])
    print(f"[reproduce] training {name} seed {seed}", file=sys.stderr, flush=True)
    return run(argv)


def evaluate_policies(proto: Protocol, trained: dict) -> dict:
    """variant -> N -> metric -> per-training-seed means (lists); also the heuristics (one 'seed')."""
    from jaxsched.policy import SchedulerNet
    from train.config import PPOConfig
    from train.policy_eval import PolicyEvaluator

    base = EnvConfig(workload_seed=TEST.workload_seed)  # reports on the test split; training validated on bank 1
    results: dict = {}
    evaluators: dict = {}
    for name, runs in trained.items():
        results[name] = {n: {m: [] for m in METRICS} for n in proto.eval_servers}
        for r in runs:
            pcfg = PPOConfig.from_dict(r["config"]).policy()
            if pcfg not in evaluators:  # one compiled program per architecture
                evaluators[pcfg] = PolicyEvaluator(SchedulerNet(pcfg), proto.eval_servers, proto.eval_seeds, base,
                                                 first_episode=TEST.first_episode)
            raw = evaluators[pcfg].raw(r["params"])
            for n in proto.eval_servers:
                for m in METRICS:
                    results[name][n][m].append(raw[n][m].tolist())
    heur = {"eft": baselines.earliest_finish, "fate_lite": baselines.fate_lite, "round_robin": baselines.round_robin}
    for n in proto.eval_servers:
        res = run_jax_policies(heur, make_params(eval_config(n, base)), proto.eval_seeds, TEST.first_episode)
        for name, metrics in res.items():
            results.setdefault(name, {})[n] = {m: [metrics[m].tolist()] for m in METRICS}
    return results


def _paired_change(metrics: dict, ref: dict) -> tuple[np.ndarray, str]:
    """Per-unit relative change in mean response vs the reference policy on the same episodes:
    per training-seed pair (seed i with seed i) when both have several seeds, else per episode
    (responses averaged over seeds first). Returns the changes and what the units are."""
    a, b = np.asarray(metrics["mean_response"], np.float64), np.asarray(ref["mean_response"], np.float64)  # [seeds, episodes]
    if len(a) > 1 and len(a) == len(b):
        return a.mean(axis=1) / b.mean(axis=1) - 1.0, "seeds"
    return a.mean(axis=0) / b.mean(axis=0) - 1.0, "episodes"


def summarize(results: dict, proto: Protocol) -> list[dict]:
    """Rows per (policy, N): mean response over training seeds (each the mean of its eval episodes) with a
    95% CI over training seeds when there are several, else over episodes (`ci_over`, `ci_n` say which);
    and the paired change vs no_srr in % with its 95% CI (`change_over`: seed pairs or episodes)."""
    rows = []
    for name, by_n in results.items():
        for n, metrics in sorted(by_n.items()):
            per_seed = np.array([np.mean(v) for v in metrics["mean_response"]])
            over = "seeds" if len(per_seed) > 1 else "episodes"
            values = per_seed if over == "seeds" else np.array(metrics["mean_response"][0])
            m, lo, hi = mean_ci(values)
            row = {"policy": name, "servers": n, "train_seeds": len(per_seed), "mean_response": m,
                   "ci_lo": lo, "ci_hi": hi, "ci_over": over, "ci_n": len(values)}
            for other in ("p95_response", "makespan", "slowdown"):
                row[other] = float(np.mean([np.mean(v) for v in metrics[other]]))
            row["change_vs_no_srr_pct"] = row["change_ci_lo"] = row["change_ci_hi"] = row["change_over"] = None
            ref = results.get("no_srr", {}).get(n)
            if ref is not None:
                change, unit = _paired_change(metrics, ref)
                c, clo, chi = (100.0 * v for v in mean_ci(change))
                row.update(change_vs_no_srr_pct=c, change_ci_lo=clo, change_ci_hi=chi, change_over=unit)
            rows.append(row)
    return rows


def _ci_note(rows: list[dict], names) -> str:
    kinds = sorted({(r["ci_over"], r["ci_n"]) for r in rows if r["policy"] in names})
    return ", ".join(f"over {n} {over}" for over, n in kinds)


def report(proto: Protocol, preset: str, rows: list[dict], shift_rows: list[dict], plots: list[str], out_dir: str,
           wall_s: float) -> str:
    ns = list(proto.eval_servers)
    heuristics = ["eft", "fate_lite", "round_robin"]
    order = list(VARIANTS) + heuristics
    by = {(r["policy"], r["servers"]): r for r in rows}
    lines = [f"# SCALE reproduction ({preset} preset)", "",
             f"Trained at N={proto.train_servers} with the `{proto.train_preset}` training preset, {proto.seeds} seed(s) per "
             f"variant; evaluated greedily on {proto.eval_seeds} held-out episodes per N (workload seed "
             f"{TEST.workload_seed} from episode {TEST.first_episode}: the test split, rho held). "
             f"Wall time of this invocation {wall_s / 60:.1f} min (runs loaded from "
             "an earlier invocation are not counted).", "",
             "## Mean response time (s) and 95% CI", "",
             f"CIs of the trained variants: {_ci_note(rows, VARIANTS)}; of the heuristics: {_ci_note(rows, heuristics)} "
             "(the same episodes for every policy).", "",
             "| policy | " + " | ".join(f"N={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
    for name in order:
        cells = [f"{r['mean_response']:.1f} [{r['ci_lo']:.1f}, {r['ci_hi']:.1f}]" if (r := by.get((name, n))) else ""
                 for n in ns]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", "## Change in mean response vs `no_srr` (%), paired, 95% CI", "",
              "Negative is better. Trained variants: seed i against `no_srr` seed i when there are several seeds, "
              "else per episode; heuristics: per episode against the seed-averaged `no_srr`.", "",
              "| policy | " + " | ".join(f"N={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
    for name in order:
        if name == "no_srr":
            continue
        cells = []
        for n in ns:
            r = by.get((name, n))
            ok = r is not None and r["change_vs_no_srr_pct"] is not None
            cells.append(f"{r['change_vs_no_srr_pct']:+.1f} [{r['change_ci_lo']:+.1f}, {r['change_ci_hi']:+.1f}]" if ok else "")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", "## Attention-feature shift (first training seed of each variant)", "",
              "Distances are to an independent sample at the training N, so its row is the noise floor; every N is "
              "subsampled to the same number of decisions; the MMD p-value permutes whole episodes.", "",
              "| variant | N | KL to N(0,I) | off-diag corr | eff. rank | MMD² | p | Fréchet | Fréchet (std.) | "
              "attn entropy / log k |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in shift_rows:
        lines.append(f"| `{r['checkpoint']}` | {r['servers']} | {r['gaussian_kl']:.3g} | {r['offdiag_correlation']:.3f} | "
                     f"{r['effective_rank']:.2f} | {r['mmd2']:.3g} | {r['mmd_p_value']:.3f} | {r['frechet']:.3g} | "
                     f"{r['frechet_standardized']:.3g} | {r['attention_entropy_over_log_n']:.3f} |")
    lines += ["", "Plots (one line per variant):", ""]
    lines += [f"![{os.path.basename(p)}](shift/{os.path.basename(p)})" for p in plots]
    lines += ["", "## Config", "", "```json", json.dumps({"preset": preset, **asdict(proto), "variants": VARIANTS}, indent=1,
                                                        default=list), "```", ""]
    text = "\n".join(lines)
    atomic_write_text(os.path.join(out_dir, "report.md"), text)
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m analysis.reproduce", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=list(PRESETS), default="tiny")
    ap.add_argument("--out", default=None, help="output directory (default results/reproduce-<preset>)")
    ap.add_argument("--seeds", type=int, default=None, help="training seeds per variant (default: the preset's)")
    ap.add_argument("--wandb-mode", default="disabled", choices=["online", "offline", "disabled"])
    a = ap.parse_args(argv)
    proto = PRESETS[a.preset]
    if a.seeds is not None:
        if a.seeds < 1:
            ap.error("--seeds: must be >= 1")
        proto = Protocol(**{**asdict(proto), "seeds": a.seeds})
    out_dir = a.out or os.path.join("results", f"reproduce-{a.preset}")
    t0 = time.perf_counter()
    trained = {name: [] for name in VARIANTS}
    for name in VARIANTS:
        for seed in range(proto.seeds):
            trained[name].append(train_variant(proto, name, seed, out_dir, a.wandb_mode))
    print("[reproduce] evaluating", file=sys.stderr, flush=True)
    results = evaluate_policies(proto, trained)
    rows = summarize(results, proto)
    atomic_write_json(os.path.join(out_dir, "results.json"), rows)
    atomic_write_text(os.path.join(out_dir, "results.csv"), rows_to_csv(rows))
    # every episode of every training seed: policy -> N -> metric -> [seeds][episodes]
    atomic_write_json(os.path.join(out_dir, "per_seed.json"), {p: {str(n): v for n, v in by_n.items()} for p, by_n in results.items()})
    print("[reproduce] shift analysis", file=sys.stderr, flush=True)
    from analysis.shift import load_checkpoint, write_moments

    shift_rows, moments = [], {}
    for name, runs in trained.items():
        _, net, params, train_n, base = load_checkpoint(f"{name}={runs[0]['run_dir']}")
        shift_rows += analyze(name, net, params, train_n, proto.shift_servers, proto.shift_seeds, proto.decisions,
                              base, proto.permutations, moments)
    shift_dir = os.path.join(out_dir, "shift")
    atomic_write_json(os.path.join(shift_dir, "shift.json"), shift_rows)
    atomic_write_text(os.path.join(shift_dir, "shift.csv"), rows_to_csv(shift_rows))
    write_moments(moments, os.path.join(shift_dir, "moments.npz"))
    plots = plot(shift_rows, shift_dir)
    text = report(proto, a.preset, rows, shift_rows, plots, out_dir, time.perf_counter() - t0)
    print(text)
    return rows, shift_rows


if __name__ == "__main__":
    main()
