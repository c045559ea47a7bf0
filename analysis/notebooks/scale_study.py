# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The SCALE study: scores, the primary endpoint and the shift of h, over seeds
#
# Reads the output folder of `python -m analysis.scale_study` (`summary.json`,
# `per_seed.json`, `shift_per_seed.json`). Set `JAXSCHED_STUDY` to that folder
# (default: the committed study, `docs/results/scale-study`); a relative path is
# taken from the repository root. Every band is a 95% bootstrap interval over
# training seeds; every line is the IQM over seeds (the protocol's aggregate,
# docs/analysis.md).

# %%
import json
import os

import matplotlib.pyplot as plt
import numpy as np

from analysis import study as S
from analysis.paths import repo_path

folder = repo_path(os.environ.get("JAXSCHED_STUDY", "docs/results/scale-study"))
if not os.path.exists(os.path.join(folder, "summary.json")):
    raise SystemExit(f"{folder}: no summary.json; run python -m analysis.scale_study --preset tiny --out DIR "
                     "and set JAXSCHED_STUDY=DIR")
summary = json.load(open(os.path.join(folder, "summary.json")))
per_seed = json.load(open(os.path.join(folder, "per_seed.json")))
shift = json.load(open(os.path.join(folder, "shift_per_seed.json")))
variants = list(per_seed)
sizes = sorted(int(n) for n in per_seed[variants[0]])
train_n = summary["study"]["train_servers"]
pr = summary["primary"]
print(f"{summary['preset']} preset: {summary['seeds_per_variant']} seeds per variant, trained at N={train_n}, "
      f"validation bank {summary['validation_workload_seed']}, test bank {summary['test_workload_seed']}")
print(f"primary (srr vs no_srr at N={pr['n']}): {pr['estimate_pct']:+.1f}% "
      f"[{pr['ci95_pct'][0]:+.1f}, {pr['ci95_pct'][1]:+.1f}] -> {pr['verdict']} "
      f"(half-width {summary['half_width_pct']:.1f} points, target 4.45)")

# %% [markdown]
# ## Score against N
#
# The score of a seed is the mean over test episodes of its mean response time
# divided by EFT's on the same episode (below 1 beats EFT). FATE-lite is
# deterministic: one line, no band.

# %%
def band(values_by_n, reps=2000):
    rows = [S.iqm_interval(np.asarray(values_by_n[str(n)]), reps=reps, seed=0) for n in sizes]
    return (np.array([r["iqm"] for r in rows]), np.array([r["ci95"][0] for r in rows]),
            np.array([r["ci95"][1] for r in rows]))


fig, ax = plt.subplots(figsize=(7, 4.5))
for v in variants:
    mid, lo, hi = band(per_seed[v])
    ax.plot(sizes, mid, marker="o", label=v)
    ax.fill_between(sizes, lo, hi, alpha=0.2)
fate = summary["heuristics"]["fate_lite"]
ax.plot(sizes, [fate[str(n)] for n in sizes], "k--", label="fate_lite")
ax.axhline(1.0, color="grey", lw=0.8)
ax.set_xticks(sizes)
ax.set_xlabel(f"servers N (trained at {train_n})")
ax.set_ylabel("mean response / EFT's (IQM over seeds)")
ax.legend()
plt.show()

# %% [markdown]
# ## The primary endpoint and the secondaries
#
# Relative change of the IQM score against `no_srr` (or FATE-lite), with the
# bootstrap interval; the grey line is SCALE's reported −8.9% at N=48. The
# secondaries' Holm-adjusted p-values are in the labels.

# %%
tests = {f"srr vs no_srr @{pr['n']} (primary)": pr}
tests.update({f"{k} (p_Holm {t['p_holm']:.2g})": t for k, t in summary["secondary"].items()})
fig, ax = plt.subplots(figsize=(7, 0.4 * len(tests) + 1))
for i, t in enumerate(tests.values()):
    lo, hi = t["ci95_pct"]
    ax.errorbar(t["estimate_pct"], i, xerr=[[t["estimate_pct"] - lo], [hi - t["estimate_pct"]]], fmt="o", capsize=3)
ax.axvline(0, color="k", lw=0.8)
ax.axvline(summary["primary"]["scale_effect_pct"], color="grey", ls="--")
ax.set_yticks(range(len(tests)), list(tests))
ax.invert_yaxis()
ax.set_xlabel("change of the IQM score, % (95% bootstrap CI over seeds)")
plt.show()

# %% [markdown]
# ## Key statistics against N, every variant (small multiples)
#
# The score, the shift of h from the train N (standardized Fréchet distance,
# MMD²) on the policies' own states and on EFT's (where every policy reads the
# same decisions, so what moves is the representation), and h's KL to N(0, I)
# per dimension and mean |correlation| (what SRR penalizes).

# %%
panels = [("score", None, None), ("frechet_standardized", "own", "Fréchet (std.), own states"),
          ("frechet_standardized", "eft", "Fréchet (std.), EFT's states"), ("mmd2", "eft", "MMD², EFT's states"),
          ("kl_per_dim", "own", "KL to N(0, I) per dim, own"), ("offdiag_correlation", "own", "mean |corr|, own")]
fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
for ax, (stat, states, title) in zip(axes.flat, panels):
    for v in variants:
        values = per_seed[v] if stat == "score" else {n: shift[v][states][n][stat] for n in shift[v][states]}
        mid, lo, hi = band(values)
        ax.plot(sizes, mid, marker="o", label=v)
        ax.fill_between(sizes, lo, hi, alpha=0.2)
    ax.set_title(title or "score (mean response / EFT's)")
    ax.set_xticks(sizes)
for ax in axes[-1]:
    ax.set_xlabel("servers N")
axes.flat[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Does a seed's shift predict its loss?
#
# Across seeds at the primary N: the shift of h (standardized Fréchet) against
# the loss (score at N ÷ score at the train N), with the Spearman correlation
# and its bootstrap interval from `summary.json`.

# %%
n = str(pr["n"])
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, states in zip(axes, ("own", "eft")):
    for v in variants:
        x = np.asarray(shift[v][states][n]["frechet_standardized"])
        y = np.asarray(per_seed[v][n]) / np.asarray(per_seed[v][str(train_n)])
        sp = summary["shift"][v][states][n]["spearman_with_loss"]["frechet_standardized"]
        ax.scatter(x, y, s=14, label=f"{v}: ρ {sp['rho']:+.2f} [{sp['ci95'][0]:+.2f}, {sp['ci95'][1]:+.2f}]")
    ax.set_title(f"N={n}, {states} states")
    ax.set_xlabel("Fréchet (std.) to the train N")
    ax.legend(fontsize=8)
axes[0].set_ylabel("score at N / score at the train N")
plt.show()
for v in variants:
    for states in ("own", "eft"):
        sp = summary["shift"][v][states][n]["spearman_with_loss"]["frechet_standardized"]
        print(f"{v:10s} {states:3s} states: Spearman(shift, loss) at N={n} {sp['rho']:+.2f} "
              f"[{sp['ci95'][0]:+.2f}, {sp['ci95'][1]:+.2f}] over {sp['seeds']} seeds")
