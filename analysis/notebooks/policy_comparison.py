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
# # Policies across cluster sizes
#
# Reads the rows written by `python -m train.evaluate --out DIR` (`results.json`)
# or by `python -m analysis.reproduce` (`results.json` in its output directory)
# and compares policies across N. Set `JAXSCHED_RESULTS` to the file (default:
# the committed baseline table); a relative path is taken from the repository root.

# %%
import json
import os

import matplotlib.pyplot as plt

from analysis.paths import repo_path

path = repo_path(os.environ.get("JAXSCHED_RESULTS", "docs/results/evaluate/results.json"))
rows = json.load(open(path))
policies = list(dict.fromkeys(r["policy"] for r in rows))
sizes = sorted({r["servers"] for r in rows})
print(f"{len(rows)} rows; policies {policies}; N {sizes}")

# %% [markdown]
# Mean response time against N, with the 95% interval when the file has one
# (`*_ci_lo/_ci_hi` from `train.evaluate`, `ci_lo/ci_hi` from `analysis.reproduce`).

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
for name in policies:
    rs = sorted((r for r in rows if r["policy"] == name), key=lambda r: r["servers"])
    x = [r["servers"] for r in rs]
    y = [r["mean_response"] for r in rs]
    lo = [r.get("mean_response_ci_lo", r.get("ci_lo", v)) for r, v in zip(rs, y)]
    hi = [r.get("mean_response_ci_hi", r.get("ci_hi", v)) for r, v in zip(rs, y)]
    ax.errorbar(x, y, yerr=[[v - a for v, a in zip(y, lo)], [b - v for v, b in zip(y, hi)]], marker="o", capsize=3, label=name)
ax.set_xlabel("servers (N)")
ax.set_ylabel("mean response time (s)")
ax.set_yscale("log")
ax.grid(alpha=0.3)
ax.legend(fontsize=8, ncol=2)
fig.tight_layout()

# %% [markdown]
# The best policy at each N, and each policy relative to it.

# %%
for n in sizes:
    at_n = {r["policy"]: r["mean_response"] for r in rows if r["servers"] == n}
    best = min(at_n, key=at_n.get)
    print(f"N={n:>4}: best {best:<16} " + "  ".join(f"{p}={v / at_n[best]:.2f}x" for p, v in sorted(at_n.items(), key=lambda kv: kv[1])))
