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
# # How the attention feature shifts with the number of servers
#
# Reads the `shift.json` written by `python -m analysis.shift` (or by
# `python -m analysis.reproduce`, under `<out>/shift/`) and plots every
# statistic against N, one line per checkpoint. Set `JAXSCHED_SHIFT` to the
# file (default: the committed `cpu` reproduction's, `docs/results/reproduce-cpu`);
# a relative path is taken from the repository root (`analysis.paths.repo_path`).

# %%
import json
import os

import matplotlib.pyplot as plt
import numpy as np

from analysis.paths import repo_path

path = repo_path(os.environ.get("JAXSCHED_SHIFT", "docs/results/reproduce-cpu/shift/shift.json"))
rows = json.load(open(path))
checkpoints = list(dict.fromkeys(r["checkpoint"] for r in rows))
print(f"{len(rows)} rows, checkpoints: {checkpoints}")

# %% [markdown]
# Distribution statistics of h (KL of its Gaussian fit to N(0, I), correlation
# between dimensions, effective rank) and distances to the features at the
# training N (MMD², Fréchet raw and in units of the training-N spread). The row
# at the training N compares two independent samples there: the noise floor. A
# size-agnostic representation would keep all of them flat in N.

# %%
stats = ["gaussian_kl", "offdiag_correlation", "effective_rank", "mmd2", "frechet", "frechet_standardized",
         "attention_entropy_over_log_n", "policy_entropy_over_log_n"]
fig, axes = plt.subplots(2, 4, figsize=(15, 6.5))
for ax, stat in zip(axes.flat, stats):
    for name in checkpoints:
        rs = sorted((r for r in rows if r["checkpoint"] == name), key=lambda r: r["servers"])
        ax.plot([r["servers"] for r in rs], [r[stat] for r in rs], marker="o", label=name)
    for t in sorted({r["train_servers"] for r in rows}):
        ax.axvline(t, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_title(stat.replace("_", " "))
    ax.set_xlabel("servers (N)")
    ax.grid(alpha=0.3)
axes.flat[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# The MMD permutation p-values (whole episodes permuted): below 0.05 means the
# features at that N are distinguishable from those at the training N.

# %%
for name in checkpoints:
    rs = sorted((r for r in rows if r["checkpoint"] == name), key=lambda r: r["servers"])
    print(name, {r["servers"]: round(r["mmd_p_value"], 3) for r in rs})
assert all(np.isfinite(r["frechet"]) for r in rows)
