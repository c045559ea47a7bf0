"""`python -m analysis.scale_study --preset {tiny,cpu,gpu}`: the pre-registered SCALE study.

The protocol is docs/analysis.md ("The SCALE study protocol"); this module
runs it and nothing else:

1. train each variant (no_srr, srr, log_n, srr+log_n) at the train N as one
   K-seed program (`train.ppo --num_seeds=K --seed=1000`), validating on bank
   1 only; an interrupted study resumes with the same command;
2. score the *final* parameters of every seed on the test split (bank 3,
   episode keys from 100,000) at every eval N: the mean over test episodes
   of (the seed's mean response ÷ EFT's on the same episode), next to
   FATE-lite's on the same episodes;
3. the primary endpoint (srr vs no_srr at N=48, IQM ratio with a stratified
   bootstrap interval over seeds) and the Holm-corrected secondaries
   (`analysis.study`), each variant's seed SD, and the h-dependence probe
   per seed at the train N and N=48;
4. the shift of h with N for every seed on two state sets (the policy's own
   rollouts, and EFT's states, the same for every policy), IQM over seeds with
   intervals, and the across-seed Spearman correlation of shift and loss;
5. `summary.json` (the fields the protocol names), `per_seed.json`,
   `shift_per_seed.json` and `report.md`, written atomically.

    python -m analysis.scale_study --preset tiny --out results/study-tiny   # minutes: checks the pipeline
    python -m analysis.scale_study --preset cpu  --out results/study-cpu    # the 2-core CPU, about 2 h 20 min (measured)
    python -m analysis.scale_study --preset gpu  --out results/study-gpu    # the study as registered
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from analysis import study as S
from envs.files import atomic_write_json, atomic_write_text
from jaxsched.evaluation import TEST, VALIDATION

VARIANTS = {
    "no_srr": {},
    "srr": {"srr_decorrelation": 0.3, "srr_kl": 0.05},
    "log_n": {"log_n_scaling": True},
    "srr+log_n": {"srr_decorrelation": 0.3, "srr_kl": 0.05, "log_n_scaling": True},
}
CONTROL = "no_srr"
SCALE_EFFECT_PCT = -8.9  # SCALE's reported change at N=48 when trained at 16


@dataclass(frozen=True)
class StudyPreset:
    train_preset: str
    train_servers: int
    eval_servers: tuple[int, ...]
    primary_n: int
    seeds: int  # per variant, one K-seed program each
    first_seed: int
    test_episodes: int  # per N
    probe_episodes: int
    probe_decisions: int  # per episode
    reps: int  # bootstrap replicates
    train_overrides: dict = field(default_factory=dict)


PRESETS = {
    "tiny": StudyPreset("cpu-quick", 4, (4, 8), 8, seeds=3, first_seed=1000, test_episodes=4, probe_episodes=2,
                        probe_decisions=16, reps=500),
    # the CPU budget (measured 2026-12-02 on 2 cores at abe0eab: training about 13-17 min a variant, then 17-23 min
    # per variant for test scoring, probe and shift, so about 2 h 20 min in all): 32 seeds at a third
    # of the cpu preset's updates; undertrained policies, so read its interval as what the CPU reaches, the gpu preset as the study
    "cpu": StudyPreset("cpu", 16, (16, 32, 48, 64, 128), 48, seeds=32, first_seed=1000, test_episodes=32,
                       probe_episodes=4, probe_decisions=64, reps=10_000, train_overrides={"total_updates": 24}),
    "gpu": StudyPreset("gpu", 16, (16, 32, 48, 64, 128), 48, seeds=32, first_seed=1000, test_episodes=32,
                       probe_episodes=8, probe_decisions=128, reps=10_000),
}


def train_argv(p: StudyPreset, variant: str, out_dir: str, wandb_mode: str) -> list[str]:
    """One variant's K-seed `train.ppo` options; the run directory is `out_dir/runs/<variant>`. Training
    validates (periodic evaluation, best checkpoint) on the validation bank only."""
    opts = {"preset": p.train_preset, "seed": p.first_seed, "num_seeds": p.seeds, "train_servers": p.train_servers,
            "eval_servers": p.train_servers, "best_metric": f"eval/{p.train_servers}/norm_mean_response",
            "eval_workload_seed": VALIDATION.workload_seed, "checkpoint_dir": os.path.join(out_dir, "runs"),
            "wandb_name": variant, "wandb_mode": wandb_mode, "wandb_group": f"scale-study-{p.train_preset}",
            "progress": False, **p.train_overrides, **VARIANTS[variant]}
    return [f"--{k}={v}" for k, v in opts.items()]


def _finished(run_dir: str) -> bool:
    """Every seed directory of a K-seed run holds a summary that reached the last update."""
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            seeds = json.load(f).get("seeds") or []
        for s in seeds:
            with open(os.path.join(run_dir, f"seed{s}", "summary.json")) as f:
                summary = json.load(f)
            if summary["updates"] < summary["config"]["total_updates"]:
                return False
        return bool(seeds)
    except (OSError, KeyError, ValueError):
        return False


def train_variant(p: StudyPreset, variant: str, out_dir: str, wandb_mode: str) -> str:
    """Train (or resume, or reuse) one variant; returns its run directory."""
    from train.ppo import main as run

    run_dir = os.path.abspath(os.path.join(out_dir, "runs", variant))
    if _finished(run_dir):
        print(f"[scale_study] {variant}: finished earlier, reusing {run_dir}", file=sys.stderr, flush=True)
    elif os.path.exists(os.path.join(run_dir, "run.json")):
        print(f"[scale_study] {variant}: resuming {run_dir}", file=sys.stderr, flush=True)
        run([f"--resume={run_dir}", "--progress=false", f"--wandb_mode={wandb_mode}"])
    else:
        print(f"[scale_study] training {variant}: {p.seeds} seeds in one program", file=sys.stderr, flush=True)
        run(train_argv(p, variant, out_dir, wandb_mode))
    return run_dir


def _check_variant(p: StudyPreset, variant: str, policies) -> None:
    """Refuse runs found under --out that this preset did not ask for (another preset or variant)."""
    want = dict(p.train_overrides, **VARIANTS[variant], train_servers=(p.train_servers,))
    seeds = sorted(pol.config.seed for pol in policies)
    expected = list(range(p.first_seed, p.first_seed + p.seeds))
    bad = [k for k, v in want.items() if any(getattr(pol.config, k) != v for pol in policies)]
    if seeds != expected or bad:
        what = f"seeds {seeds}, expected {expected}" if seeds != expected else f"field {bad[0]}"
        raise SystemExit(f"python -m analysis.scale_study: error: runs/{variant} was trained with other settings "
                         f"({what}); use another --out or delete that run")


_EVALUATORS: dict = {}  # (net, N, episodes, world) -> PolicyEvaluator, for the process


def _stacked(policies):
    """The seeds' parameters stacked on a leading axis, for one K-seed program."""
    import jax

    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *[pol.params for pol in policies])


def test_scores(p: StudyPreset, policies) -> dict[int, np.ndarray]:
    """N -> [seeds] test-split scores (mean per-episode ratio of mean response to EFT's), final parameters.

    One program per N, sized to that N, for all seeds at once. (A single program padded to the largest N,
    as periodic evaluation uses, steps every episode at the largest width until the longest episode
    ends: 2.5x slower at N=16..128 by `python -m analysis.bench_scoring`. A seed's episode is the same
    either way: tests/train/test_policy_eval.py.)"""
    from train.policy_eval import PolicyEvaluator

    base = policies[0].eval_env(TEST.workload_seed)
    stacked = _stacked(policies)
    out = {}
    for n in p.eval_servers:
        key = (policies[0].net, n, p.test_episodes, base)
        if key not in _EVALUATORS:  # variants of one architecture (srr and no_srr) share the compiled program
            _EVALUATORS[key] = PolicyEvaluator(policies[0].net, (n,), p.test_episodes, base,
                                               first_episode=TEST.first_episode)
        rows = _EVALUATORS[key].seeds_stacked(stacked)
        out[n] = np.array([r[f"eval/{n}/vs_eft_mean_response"] for r in rows])
    return out


def heuristic_scores(p: StudyPreset, base) -> dict[str, dict[int, float]]:
    """FATE-lite's and round-robin's scores (ratio to EFT, mean over the same test episodes)."""
    from envs import make_params
    from jaxsched import baselines
    from jaxsched.evaluation import eval_config, run_jax_policies

    pols = {"eft": baselines.earliest_finish, "fate_lite": baselines.fate_lite, "round_robin": baselines.round_robin}
    out: dict = {"fate_lite": {}, "round_robin": {}}
    for n in p.eval_servers:
        res = run_jax_policies(pols, make_params(eval_config(n, base)), p.test_episodes, TEST.first_episode)
        for name in out:
            out[name][n] = float(np.mean(res[name]["mean_response"] / np.maximum(res["eft"]["mean_response"], 1e-12)))
    return out


def probe(p: StudyPreset, policies) -> dict[int, dict[str, list[float]]]:
    """The h-dependence probe of every seed at the train N and the primary N (test episodes), all seeds
    of the variant in one program per N and pass."""
    from analysis.h_probe import h_dependence_seeds

    sizes = sorted({p.train_servers, p.primary_n})
    out = {n: {"changed_share": [], "policy_kl": []} for n in sizes}
    base = policies[0].eval_env(TEST.workload_seed)
    for rows in h_dependence_seeds(policies[0].net, _stacked(policies), sizes, p.probe_episodes, p.probe_decisions,
                                   base, first_episode=TEST.first_episode):
        for row in rows:
            for k in ("changed_share", "policy_kl"):
                out[row["servers"]][k].append(row[k])
    return out


def study_key(p: StudyPreset, preset: str) -> dict:
    """The study preset as saved results record it (JSON types: tuples as lists)."""
    return {"preset": preset, "study": json.loads(json.dumps(asdict(p)))}


def scored_key(p: StudyPreset, preset: str, variant: str) -> dict:
    """What a variant's test-split results depend on: the study preset and the variant's training options
    (training is deterministic given them; where the runs are written and logged is not part of it)."""
    argv = [a for a in train_argv(p, variant, "", "disabled")
            if not a.startswith(("--checkpoint_dir=", "--wandb_"))]
    return {**study_key(p, preset), "train": argv}


def params_digest(policies) -> str:
    """SHA-256 over every seed's parameters (tree paths, dtypes, shapes and bytes), in seed order."""
    import hashlib

    import jax

    h = hashlib.sha256()
    for pol in policies:
        for path, leaf in jax.tree_util.tree_flatten_with_path(pol.params)[0]:
            a = np.ascontiguousarray(np.asarray(leaf))
            h.update(f"{jax.tree_util.keystr(path)}:{a.dtype}:{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def load_scored(path: str, key: dict, digest: str | None) -> dict | None:
    """A variant's saved test-split results when they were made under `key` (and, when the run is here,
    from these parameters: `digest`); None otherwise, saying why when a file is there but does not fit."""
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        print(f"[scale_study] {path}: unreadable ({e}); scoring again", file=sys.stderr, flush=True)
        return None
    if not isinstance(saved, dict) or saved.get("key") != key:
        print(f"[scale_study] {path}: made under other study settings; scoring again", file=sys.stderr, flush=True)
        return None
    if digest is not None and saved.get("params_sha256") != digest:
        print(f"[scale_study] {path}: made from other parameters than the run here; scoring again",
              file=sys.stderr, flush=True)
        return None
    return saved


def _commit() -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


SHIFT_STATS = ("frechet_standardized", "mmd2", "kl_per_dim", "offdiag_correlation")
STATE_SETS = ("own", "eft")  # each policy's own greedy rollouts; EFT's states, the same for every policy


def shift_per_seed(p: StudyPreset, policies) -> dict[str, dict[int, dict[str, list[float]]]]:
    """State set -> N -> statistic -> one value per seed: h at N against the same seed's h at the train N on
    other test episodes (standardized Fréchet, MMD² at the reference's median bandwidth), h's KL to N(0, I) per dimension and
    mean |correlation|, on test episodes. On EFT's states every network reads the same decisions, so a
    change with N there is the representation's; on the policy's own states it is also the states'."""

    from analysis import stats as A
    from analysis.collect import collect_seeds
    from jaxsched.baselines import earliest_finish

    behaviours = {"own": None, "eft": earliest_finish}
    base = policies[0].eval_env(TEST.workload_seed)
    stacked = _stacked(policies)
    out = {s: {n: {k: [] for k in SHIFT_STATS} for n in p.eval_servers} for s in STATE_SETS}
    for name in STATE_SETS:  # all seeds of the variant in one program per N
        per_seed = collect_seeds(policies[0].net, stacked, p.eval_servers, p.probe_episodes, p.probe_decisions,
                                 base, first_seed=TEST.first_episode, behaviour=behaviours[name])
        # the reference: the train N on the next, disjoint test episodes, so the row at the train N is the
        # sampling noise the other rows are read against (as analysis.shift does)
        refs = collect_seeds(policies[0].net, stacked, [p.train_servers], p.probe_episodes, p.probe_decisions,
                             base, first_seed=TEST.first_episode + p.probe_episodes, behaviour=behaviours[name])
        for rec, ref_rec in zip(per_seed, refs, strict=True):
            ref = ref_rec[p.train_servers]["h"]
            bandwidth = A.median_bandwidth(ref)
            for n in p.eval_servers:
                h, row = rec[n]["h"], out[name][n]
                row["frechet_standardized"].append(A.frechet_distance(A.standardize(h, ref), A.standardize(ref, ref)))
                row["mmd2"].append(A.mmd2(h, ref, bandwidth=bandwidth))
                row["kl_per_dim"].append(A.gaussian_kl_to_standard(h) / h.shape[1])
                row["offdiag_correlation"].append(A.offdiag_correlation(h))
    return out


def shift_summary(p: StudyPreset, shifts: dict, scores: dict, reps: int) -> dict:
    """Variant -> state set -> N -> each statistic's IQM over seeds with a bootstrap interval, and (N other
    than the train N) the across-seed Spearman correlation of the seed's shift with its performance loss
    at N (score at N / score at the train N; higher is worse), with a bootstrap interval."""
    out: dict = {}
    for v, by_set in shifts.items():
        out[v] = {}
        for name, by_n in by_set.items():
            out[v][name] = {}
            for n, stats in by_n.items():
                entry = {k: S.iqm_interval(vals, reps=reps, seed=5) for k, vals in stats.items()}
                if n != p.train_servers:
                    loss = np.asarray(scores[v][n]) / np.asarray(scores[v][p.train_servers])
                    entry["spearman_with_loss"] = {k: S.spearman_interval(stats[k], loss, reps=reps, seed=6)
                                                   for k in ("frechet_standardized", "mmd2")}
                out[v][name][str(n)] = entry
    return out


def verdict(ci: list[float]) -> str:
    """The protocol's reading of the primary interval."""
    lo, hi = ci
    if hi < 0:
        if lo <= SCALE_EFFECT_PCT <= hi:
            return "confirmed"
        return "confirmed, larger" if hi < SCALE_EFFECT_PCT else "confirmed, smaller"
    if lo > SCALE_EFFECT_PCT:
        return "refuted"
    return "open"


def analyse(p: StudyPreset, scores: dict, heuristics: dict, reps: int) -> dict:
    """Primary, secondaries (Holm), seed SDs: everything summary.json holds besides the probe."""
    n48 = p.primary_n
    primary = S.relative_change(scores["srr"][n48], scores[CONTROL][n48], reps=reps, seed=0)
    tests = {}
    for n in p.eval_servers:
        if n not in (p.train_servers, n48):
            tests[f"srr_vs_no_srr@{n}"] = S.relative_change(scores["srr"][n], scores[CONTROL][n], reps=reps, seed=1)
    for v in ("log_n", "srr+log_n"):
        tests[f"{v}_vs_no_srr@{n48}"] = S.relative_change(scores[v][n48], scores[CONTROL][n48], reps=reps, seed=2)
    for v in VARIANTS:  # against the deterministic FATE-lite: only the variant's seeds vary
        fate = heuristics["fate_lite"][n48]
        tests[f"{v}_vs_fate_lite@{n48}"] = S.relative_change(scores[v][n48], np.full(2, fate), reps=reps, seed=3)
    adjusted = S.holm({k: t["p_value"] for k, t in tests.items()})
    for k, t in tests.items():
        t["p_holm"] = adjusted[k]
    return {
        "primary": {"n": n48, **primary, "verdict": verdict(primary["ci95_pct"]), "scale_effect_pct": SCALE_EFFECT_PCT},
        "secondary": tests,
        "seed_sd_pct": {v: {str(n): S.seed_sd_pct(scores[v][n]) for n in p.eval_servers} for v in VARIANTS},
        "iqm_score": {v: {str(n): S.iqm(scores[v][n]) for n in p.eval_servers} for v in VARIANTS},
        "half_width_pct": float(np.diff(primary["ci95_pct"])[0] / 2),
    }


def report(p: StudyPreset, preset: str, summary: dict) -> str:
    pr = summary["primary"]
    lines = [f"# SCALE study ({preset} preset)", "",
             f"Protocol: docs/analysis.md (pre-registered). {p.seeds} seeds per variant (seeds {p.first_seed}.."
             f"{p.first_seed + p.seeds - 1}), trained at N={p.train_servers}, validated on bank "
             f"{VALIDATION.workload_seed}, scored on {p.test_episodes} test episodes per N (bank {TEST.workload_seed}, "
             f"keys from {TEST.first_episode}). Score: mean per-episode ratio of mean response time to EFT's.", "",
             f"**Primary** (srr vs no_srr at N={pr['n']}): {pr['estimate_pct']:+.1f}% "
             f"[{pr['ci95_pct'][0]:+.1f}, {pr['ci95_pct'][1]:+.1f}] (half-width {summary['half_width_pct']:.1f} points; "
             f"target 4.45), {pr['method']}. Verdict against SCALE's {SCALE_EFFECT_PCT}%: **{pr['verdict']}**.", "",
             "## IQM score and seed SD per N", "",
             "| variant | " + " | ".join(f"N={n}" for n in p.eval_servers) + " |",
             "|---|" + "---:|" * len(p.eval_servers)]
    for v in VARIANTS:
        cells = [f"{summary['iqm_score'][v][str(n)]:.3f} (sd {summary['seed_sd_pct'][v][str(n)]:.1f}%)"
                 for n in p.eval_servers]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    h = summary["heuristics"]
    lines.append("| fate_lite | " + " | ".join(f"{h['fate_lite'][str(n)]:.3f}" for n in p.eval_servers) + " |")
    lines += ["", "## Secondary endpoints (Holm over the family)", "", "| comparison | change % | 95% CI | p | p (Holm) |",
              "|---|---:|---|---:|---:|"]
    for k, t in summary["secondary"].items():
        lines.append(f"| {k} | {t['estimate_pct']:+.1f} | [{t['ci95_pct'][0]:+.1f}, {t['ci95_pct'][1]:+.1f}] | "
                     f"{t['p_value']:.3g} | {t['p_holm']:.3g} |")
    lines += ["", "## How much decisions read h (mean ablation, IQM over seeds)", "", "| variant | N | changed share | policy KL |",
              "|---|---:|---:|---:|"]
    for v, by_n in summary["h_probe"].items():
        for n, d in by_n.items():
            lines.append(f"| {v} | {n} | {S.iqm(np.asarray(d['changed_share'])):.3f} | {S.iqm(np.asarray(d['policy_kl'])):.4f} |")
    lines += ["", "## Shift of h with N (IQM over seeds [95% CI]; Spearman over seeds of the shift with the loss)", "",
              "Against each seed's own h at the train N. *own*: each policy's greedy rollouts; *eft*: EFT's states, "
              "the same for every policy (the representation's part of the shift). Loss: score at N / score at the "
              "train N.", "",
              "| variant | states | N | Fréchet (std.) | MMD² | KL per dim | mean abs corr | Spearman(Fréchet, loss) |",
              "|---|---|---:|---|---|---|---|---|"]

    def cell(d, fmt=".3f"):
        return f"{d['iqm']:{fmt}} [{d['ci95'][0]:{fmt}}, {d['ci95'][1]:{fmt}}]"

    for v, by_set in summary["shift"].items():
        for name, by_n in by_set.items():
            for n, e in by_n.items():
                sp = e.get("spearman_with_loss", {}).get("frechet_standardized")
                rho = f"{sp['rho']:+.2f} [{sp['ci95'][0]:+.2f}, {sp['ci95'][1]:+.2f}]" if sp else "–"
                lines.append(f"| {v} | {name} | {n} | {cell(e['frechet_standardized'])} | {cell(e['mmd2'], '.4f')} | "
                             f"{cell(e['kl_per_dim'])} | {cell(e['offdiag_correlation'])} | {rho} |")
    lines += ["", f"Wall time of this invocation: {summary['wall_s'] / 60:.1f} min.", ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m analysis.scale_study", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=list(PRESETS), default="cpu")
    ap.add_argument("--out", required=True, help="output folder (re-run with the same one to resume)")
    ap.add_argument("--wandb-mode", default="disabled", choices=("online", "offline", "disabled"))
    a = ap.parse_args(argv)
    try:
        S._rliable()
    except ImportError as e:
        ap.error(str(e))
    from train.policies import load_policies

    p = PRESETS[a.preset]
    t0 = time.time()
    scores, per_seed, probes, shifts, scoring_s = {}, {}, {}, {}, {}
    heur_path = os.path.join(a.out, "scored", "heuristics.json")
    heur_key = study_key(p, a.preset)
    heur_saved = load_scored(heur_path, heur_key, None)
    heur = None if heur_saved is None else {k: {int(n): x for n, x in d.items()} for k, d in heur_saved["scores"].items()}
    for v in VARIANTS:  # each variant trained, scored and saved before the next: a study can span sessions
        path, key = os.path.join(a.out, "scored", f"{v}.json"), scored_key(p, a.preset, v)
        run_dir = os.path.abspath(os.path.join(a.out, "runs", v))
        saved = None
        if os.path.exists(path) and not _finished(run_dir):
            saved = load_scored(path, key, None)
            if saved is not None:
                print(f"[scale_study] {v}: scored earlier (commit {saved.get('commit')}), its run is not here; "
                      f"reusing {path}", file=sys.stderr, flush=True)
        if saved is None:
            pols = load_policies(f"{v}={train_variant(p, v, a.out, a.wandb_mode)}:latest")
            _check_variant(p, v, pols)
            digest = params_digest(pols)
            saved = load_scored(path, key, digest)
            if saved is not None:
                print(f"[scale_study] {v}: scored earlier, reusing {path}", file=sys.stderr, flush=True)
            else:
                t = time.time()
                print(f"[scale_study] scoring {v} on the test split", file=sys.stderr, flush=True)
                sc = test_scores(p, pols)
                pr = probe(p, pols)
                print(f"[scale_study] shift of h for {v} (own and EFT states)", file=sys.stderr, flush=True)
                sh = shift_per_seed(p, pols)
                saved = {"key": key, "params_sha256": digest, "commit": _commit(), "wall_s": time.time() - t,
                         "scores": {str(n): s.tolist() for n, s in sc.items()},
                         "probe": {str(n): d for n, d in pr.items()},
                         "shift": {s: {str(n): d for n, d in by_n.items()} for s, by_n in sh.items()}}
                atomic_write_json(path, saved)
            if heur is None:  # the heuristics play the same world as every variant: computed once
                heur = heuristic_scores(p, pols[0].eval_env(TEST.workload_seed))
                atomic_write_json(heur_path, {"key": heur_key, "commit": _commit(),
                                              "scores": {k: {str(n): x for n, x in d.items()} for k, d in heur.items()}})
        scores[v] = {int(n): np.asarray(s) for n, s in saved["scores"].items()}
        per_seed[v] = saved["scores"]
        probes[v] = saved["probe"]
        shifts[v] = {s: {int(n): d for n, d in by_n.items()} for s, by_n in saved["shift"].items()}
        scoring_s[v] = saved.get("wall_s")
    if heur is None:
        raise SystemExit(f"python -m analysis.scale_study: error: {heur_path} is missing and no run under "
                         f"{a.out}/runs to compute it from; delete {a.out}/scored to score again")
    summary = {"protocol": "docs/analysis.md#the-scale-study-protocol-pre-registered-v1-2026-12-01", "preset": a.preset,
               "study": asdict(p), "seeds_per_variant": p.seeds, "train_workload_seed": 0,
               "validation_workload_seed": VALIDATION.workload_seed, "test_workload_seed": TEST.workload_seed,
               "test_first_episode": TEST.first_episode, **analyse(p, scores, heur, p.reps),
               "heuristics": {k: {str(n): v for n, v in d.items()} for k, d in heur.items()}, "h_probe": probes,
               "shift": shift_summary(p, shifts, scores, p.reps)}
    summary["wall_s"] = time.time() - t0  # this invocation's; each variant's scoring time is in scoring_wall_s
    summary["scoring_wall_s"] = scoring_s
    os.makedirs(a.out, exist_ok=True)
    atomic_write_json(os.path.join(a.out, "per_seed.json"), per_seed)
    atomic_write_json(os.path.join(a.out, "shift_per_seed.json"),
                      {v: {s: {str(n): d for n, d in by_n.items()} for s, by_n in by_set.items()}
                       for v, by_set in shifts.items()})
    atomic_write_json(os.path.join(a.out, "summary.json"), summary)
    atomic_write_text(os.path.join(a.out, "report.md"), report(p, a.preset, summary))
    pr = summary["primary"]
    print(f"primary: srr vs no_srr at N={pr['n']}: {pr['estimate_pct']:+.1f}% [{pr['ci95_pct'][0]:+.1f}, "
          f"{pr['ci95_pct'][1]:+.1f}] ({pr['verdict']}); wrote {a.out}/summary.json, per_seed.json, report.md")
    return summary


if __name__ == "__main__":
    main()
