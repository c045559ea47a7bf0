"""`python -m analysis.shift`: how the attention feature's distribution shifts with N, per checkpoint.

    python -m analysis.shift --checkpoint runs/ppo/srr-off --checkpoint runs/ppo/srr-on \
        --servers 8,16,32,48,64,128 --out results/shift

For each checkpoint (a `train.ppo` run directory; `NAME=DIR` names it) and each
N, it collects h, the attention weights and the pointer logits over the test
split's episodes (`analysis.collect`), computes the statistics of `analysis.stats`,
and the distances (MMD with a permutation p-value, Fréchet) to the features at
the checkpoint's training N (a second, independent sample there, so that N's
row is the noise floor). The environment is the checkpoint's (its rho and
workflows per server) on the test split (bank 3, episodes from 100,000). Writes `shift.json`,
`shift.csv`, `moments.npz` (per-dimension mean and variance of h per
checkpoint and N, keys `NAME/N/mean|variance`) and one plot per statistic
against N (one line per checkpoint), atomically.
"""

from __future__ import annotations

import argparse
import io
import os
import sys

import numpy as np

from analysis import stats as S
from envs import EnvConfig
from envs.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from jaxsched.evaluation import TEST, parse_servers, rows_to_csv

STATISTICS = ("mean_abs_mean", "mean_variance", "mean_norm", "gaussian_kl", "offdiag_correlation", "effective_rank",
              "mmd2", "mmd_p_value", "frechet", "frechet_standardized", "attention_entropy_over_log_n", "attention_max",
              "policy_entropy_over_log_n", "policy_max_prob")


def load_checkpoint(spec: str):
    """A run directory spec (`train.policies`) -> (name, net, params, training N, the environment it
    was trained on with the test split's workload)."""
    from train.policies import load_policy

    p = load_policy(spec)
    return p.name, p.net, p.params, int(p.config.train_servers[0]), p.eval_env(TEST.workload_seed)


def _subsample(rec: dict, n: int, seed: int = 0) -> dict:
    if len(rec["h"]) <= n:
        return rec
    keep = np.sort(np.random.default_rng(seed).choice(len(rec["h"]), n, replace=False))
    return {k: v[keep] for k, v in rec.items()}


def analyze(name, net, params, train_n: int, sizes, seeds: int, decisions: int, base: EnvConfig,
            permutations: int = 200, moments_out: dict | None = None, first_episode: int = TEST.first_episode) -> list[dict]:
    """One row of statistics per N (the training N included).

    Distances are to a reference sample at the training N drawn from `seeds` other episodes, so the
    row at the training N is the noise floor, not a sample compared with itself. Every N (and the
    reference) is subsampled to the same number of decisions, as correlation, effective rank, KL and
    Fréchet carry a bias that depends on it; the MMD bandwidth is the reference's median distance,
    one kernel for all N. `moments_out` gets the per-dimension mean and variance per N."""
    from analysis.collect import collect

    sizes = sorted(set(sizes) | {train_n})
    samples = collect(net, params, sizes, seeds=seeds, decisions=decisions, base=base, first_seed=first_episode)
    ref = collect(net, params, [train_n], seeds=seeds, decisions=decisions, base=base,
                  first_seed=first_episode + seeds)[train_n]
    common = min(len(r["h"]) for r in [ref, *samples.values()])
    ref = _subsample(ref, common)
    bandwidth = S.median_bandwidth(ref["h"])
    rows = []
    for n in sizes:
        s = _subsample(samples[n], common)
        row = {"checkpoint": name, "servers": n, "train_servers": train_n, "samples": int(len(s["h"])),
               "episodes": int(len(np.unique(s["episode"])))}
        row.update(S.feature_stats(s["h"]))
        row.update(S.shift_stats(s["h"], ref["h"], permutations=permutations, bandwidth=bandwidth,
                                 groups=s["episode"], reference_groups=ref["episode"]))
        row.update(S.attention_stats(s["attention"], s["n_allowed"]))
        row.update(S.pointer_stats(s["logits"], s["n_allowed"]))
        rows.append(row)
        if moments_out is not None:
            mu, cov = S.moments(s["h"])
            moments_out[f"{name}/{n}/mean"], moments_out[f"{name}/{n}/variance"] = mu, np.diag(cov)
    return rows


def write_moments(moments: dict, path: str) -> None:
    buf = io.BytesIO()
    np.savez(buf, **moments)
    atomic_write_bytes(path, buf.getvalue())


def plot(rows: list[dict], out_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for stat in STATISTICS:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for name in dict.fromkeys(r["checkpoint"] for r in rows):
            rs = sorted((r for r in rows if r["checkpoint"] == name), key=lambda r: r["servers"])
            ax.plot([r["servers"] for r in rs], [r[stat] for r in rs], marker="o", label=name)
        train_ns = sorted({r["train_servers"] for r in rows})
        for t in train_ns:
            ax.axvline(t, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("servers (N)")
        ax.set_ylabel(stat.replace("_", " "))
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        path = os.path.join(out_dir, f"{stat}.png")
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m analysis.shift", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", required=True, metavar="[NAME=]DIR",
                    help="a train.ppo run directory (its newest step); repeat for several")
    ap.add_argument("--servers", default="8,16,24,32,48,64,96,128",
                    help="cluster sizes, comma-separated; the training N is always added (default: %(default)s)")
    ap.add_argument("--seeds", type=int, default=8, help="test episodes per N (default: %(default)s)")
    ap.add_argument("--decisions", type=int, default=256,
                    help="decisions recorded per episode, evenly spaced over it (default: %(default)s)")
    ap.add_argument("--permutations", type=int, default=200, help="for the MMD p-value (default: %(default)s)")
    ap.add_argument("--out", required=True, help="output folder")
    a = ap.parse_args(argv)
    from train.checkpoint import CheckpointError

    try:
        sizes = parse_servers(a.servers)
        if a.seeds < 1 or a.decisions < 2:
            raise ValueError("--seeds must be >= 1 and --decisions >= 2")
        loaded = [load_checkpoint(spec) for spec in a.checkpoint]
    except (ValueError, CheckpointError) as e:
        ap.error(str(e))
    rows, moments = [], {}
    for name, net, params, train_n, base in loaded:
        print(f"{name}: collecting at N={sizes} (trained at {train_n})", file=sys.stderr)
        rows += analyze(name, net, params, train_n, sizes, a.seeds, a.decisions, base, a.permutations, moments)
    atomic_write_json(os.path.join(a.out, "shift.json"), rows)
    atomic_write_text(os.path.join(a.out, "shift.csv"), rows_to_csv(rows))
    write_moments(moments, os.path.join(a.out, "moments.npz"))
    plots = plot(rows, a.out)
    cols = ("checkpoint", "servers", "gaussian_kl", "offdiag_correlation", "effective_rank", "mmd2", "mmd_p_value", "frechet",
            "frechet_standardized", "attention_entropy_over_log_n")
    print("".join(f"{c[:14]:>15}" for c in cols))
    for r in rows:
        print("".join(f"{r[c]:>15.4g}" if isinstance(r[c], float) else f"{r[c]!s:>15}" for c in cols))
    print(f"wrote {os.path.join(a.out, 'shift.json')}, shift.csv, moments.npz and {len(plots)} plots", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
