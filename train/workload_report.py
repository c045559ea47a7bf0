"""`python -m train.workload_report`: where busy server time goes, per policy (the spec's realism check).

Splits every task's duration into model loading, app-prefix prefill,
remote-parent prefill, other prefill (own input) and decoding (plus the fixed
overhead), summed over `--seeds` episodes, for round-robin and greedy EFT by
default. The FATE world needs the first three to matter: under round-robin each
should be at least 5% of busy time. Residency must make choices too: of the
loads that evict anything, the share that evicts only part of the server's
resident set ("partial evictions", where LRU order decides what stays) should
be at least 20% under EFT; the report splits evicting loads by GPU type, since
only servers that hold several models can keep part of their set.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from envs import EnvConfig, make_params
from envs.rollout import run_episode
from jaxsched.baselines import BASELINES

PARTS = ("load_s", "prefix_s", "remote_s", "prefill_s", "decode_s")
LABELS = ("model load", "app prefix", "remote parents", "own input", "decode")


def busy_shares(policy, params, seeds: int, seed: int = 0) -> dict:
    keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
    state, _, dec = jax.jit(jax.vmap(lambda k: run_episode(policy, k, params, record=True)))(keys)
    n = np.asarray(state.decisions)
    valid = np.arange(dec.seq.shape[1])[None, :] < n[:, None]
    sums = {p: float(np.asarray(getattr(dec, p))[valid].sum()) for p in PARTS}
    busy = float((np.asarray(dec.finish) - np.asarray(dec.start))[valid].sum())
    evicting = valid & (np.asarray(dec.n_evicted) > 0)
    partial = evicting & (np.asarray(dec.n_kept) > 0)
    # the GPU type of the server each decision used: where partial evictions can happen at all
    gpu = np.take_along_axis(np.asarray(state.servers.gpu), np.asarray(dec.server), axis=1)
    by_gpu = {int(g): (int((evicting & (gpu == g)).sum()), int((partial & (gpu == g)).sum()))
              for g in range(params.n_gpu_types)}
    # the rest of busy time is the fixed per-task overhead
    return {p: sums[p] / busy for p in PARTS} | {
        "overhead": 1 - sum(sums.values()) / busy,
        "evicting_loads": int(evicting.sum()),
        # of the loads that evict anything, the share that keeps part of the server's set (LRU chose)
        "partial_eviction": float(partial.sum() / max(evicting.sum(), 1)),
        "evictions_by_gpu": by_gpu,  # GPU type index -> (evicting loads, partial ones)
    }


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m train.workload_report", description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--policies", default="round_robin,eft")
    a = ap.parse_args(argv)
    config = EnvConfig(n_servers=a.servers)
    params = make_params(config)
    print(f"share of busy server time, N={a.servers}, default load, {a.seeds} episodes")
    print(f"{'policy':<14}" + "".join(f"{lab:>16}" for lab in LABELS) + f"{'partial evictions':>20}")
    out = {}
    for name in a.policies.split(","):
        if name not in BASELINES:
            ap.error(f"--policies: unknown {name!r}; choose from {', '.join(BASELINES)}")
        s = busy_shares(BASELINES[name], params, a.seeds)
        out[name] = s
        print(f"{name:<14}" + "".join(f"{100 * s[p]:>15.1f}%" for p in PARTS)
              + f"{100 * s['partial_eviction']:>14.1f}% of {s['evicting_loads']}")
    print("evicting loads (partial ones) by GPU type:")
    gpus = [g.name for g in config.gpus]
    for name, s in out.items():
        print(f"{name:<14}" + "  ".join(f"{gpus[g]} {e} ({p})" for g, (e, p) in s["evictions_by_gpu"].items()))
    return out


if __name__ == "__main__":
    main()
