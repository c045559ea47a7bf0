"""How much a policy's decisions depend on the attention feature h, per cluster size.

SCALE's argument runs through h: if h's distribution shifts with N and the
decisions read h, the shift can explain a generalization gap. The probe
mean-ablates h: at each N it plays the greedy policy on evaluation episodes,
and at every recorded decision it also computes the logits with h replaced by
its mean over that N's decisions. It reports the share of decisions whose
greedy server changes and the mean KL(pi || pi_ablated) of the action
distributions. A policy whose pointer bypasses h (`pointer_bypass=True`, v1)
scores near 0 on both; the default pointer reads h alone.
"""

from __future__ import annotations

import numpy as np

from analysis.collect import collect, collect_seeds


def _kl_rows(logits: np.ndarray, ablated: np.ndarray) -> np.ndarray:
    """KL(softmax(logits) || softmax(ablated)) per row over the finite (allowed) entries."""
    def log_softmax(x):
        finite = np.isfinite(x)
        z = np.where(finite, x, -np.inf)
        m = np.max(z, axis=1, keepdims=True)
        lse = m + np.log(np.sum(np.where(finite, np.exp(z - m), 0.0), axis=1, keepdims=True))
        return np.where(finite, z - lse, -np.inf), finite

    lp, finite = log_softmax(np.asarray(logits, np.float64))
    lq, _ = log_softmax(np.asarray(ablated, np.float64))
    p = np.where(finite, np.exp(lp), 0.0)
    diff = np.where(finite, lp, 0.0) - np.where(finite, lq, 0.0)  # masked entries stay out (no inf - inf)
    return np.sum(p * diff, axis=1)


def h_dependence(net, params, sizes, seeds: int, decisions: int, base, first_episode: int = 0) -> list[dict]:
    """One row per N: {servers, decisions, changed_share, policy_kl} (two passes per N: one to
    measure h's mean, one to ablate it on the same, deterministic, greedy trajectories)."""
    sizes = [int(n) for n in sizes]
    first = collect(net, params, sizes, seeds=seeds, decisions=decisions, base=base, first_seed=first_episode)
    means = {n: first[n]["h"].mean(axis=0) for n in sizes}
    probed = collect(net, params, sizes, seeds=seeds, decisions=decisions, base=base, first_seed=first_episode,
                     h_mean=means)
    return _rows(probed, sizes)


def h_dependence_seeds(net, stacked_params, sizes, seeds: int, decisions: int, base, first_episode: int = 0
                       ) -> list[list[dict]]:
    """`h_dependence` for K seeds of one architecture at once (`stacked_params`: leading axis K), one
    program per N and pass, each seed ablated to its own mean: one list of rows per seed, in order."""
    sizes = [int(n) for n in sizes]
    first = collect_seeds(net, stacked_params, sizes, seeds=seeds, decisions=decisions, base=base,
                          first_seed=first_episode)
    means = {n: np.stack([rec[n]["h"].mean(axis=0) for rec in first]) for n in sizes}
    probed = collect_seeds(net, stacked_params, sizes, seeds=seeds, decisions=decisions, base=base,
                           first_seed=first_episode, h_mean=means)
    return [_rows(rec, sizes) for rec in probed]


def _rows(probed: dict, sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        rec = probed[n]
        changed = np.argmax(rec["logits"], axis=1) != np.argmax(rec["ablated_logits"], axis=1)
        rows.append({"servers": n, "decisions": int(len(changed)), "changed_share": float(changed.mean()),
                     "policy_kl": float(_kl_rows(rec["logits"], rec["ablated_logits"]).mean())})
    return rows
