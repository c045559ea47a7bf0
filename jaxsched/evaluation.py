"""The evaluation harness as a library: every policy on the same episodes, across cluster sizes.

For each cluster size N, seed i draws one episode (cluster, arrivals, workflows)
that every policy plays: common random numbers, so per-seed ratios to
round-robin are paired comparisons. The offered load `rho` is held as N grows
(the arrival rate scales with the cluster's capacity) and the episode length is
`workflows_per_server * N`.

Jittable policies run fully vectorized: one compiled program per N plays every
(policy, seed) pair at once (`lax.switch` over the policies, `vmap` over the
pairs). Host policies (FATE-CP) play the same episodes through the reference
simulator (`envs.reference`), so their numbers are comparable; a test checks
that both paths give the same metrics for the same policy and seed.

`python -m train.evaluate` is the command line over this module.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from envs import EnvConfig, make_params
from envs.env import reset
from envs.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from envs.instance import materialize
from envs.reference import run_episode as run_reference_episode
from envs.rollout import run_from
from envs.sizes import episode_workflows
from jaxsched import baselines

METRICS = ("mean_response", "p95_response", "makespan", "slowdown", "utilization")
LOWER_IS_BETTER = {"mean_response": True, "p95_response": True, "makespan": True, "slowdown": True, "utilization": False}
DEFAULT_SERVERS = (8, 16, 32, 48, 64)
NORMALIZER = "round_robin"
EVAL_WORKLOAD_SEED = 1  # a bank other than training's default (0): held-out workflows (the validation bank)


@dataclass(frozen=True)
class EpisodeSplit:
    """A set of evaluation episodes: a workflow bank and the first episode key, disjoint from the
    other splits' (other workflows, other clusters and arrivals)."""

    name: str
    workload_seed: int
    first_episode: int


# Training draws from bank 0 (PPOConfig.workload_seed). Validation serves everything that selects
# (periodic evaluation, best checkpoints, sweeps, early stopping); test serves final reports only.
VALIDATION = EpisodeSplit("validation", workload_seed=EVAL_WORKLOAD_SEED, first_episode=0)
TEST = EpisodeSplit("test", workload_seed=3, first_episode=100_000)
SPLITS = {s.name: s for s in (VALIDATION, TEST)}


def check_reporting_bank(workload_seed: int, trained: dict, who: str) -> None:
    """Refuse to report a trained policy on episodes that chose it: `trained` holds its run's
    `workload_seed` (training bank) and `eval_workload_seed` (validation bank)."""
    if workload_seed == trained.get("eval_workload_seed"):
        raise ValueError(f"--workload-seed: bank {workload_seed} is {who}'s validation set (its evaluations and best "
                         "checkpoint were chosen on it); report on the test split (--split test)")
    if workload_seed == trained.get("workload_seed") and not trained.get("workflows"):
        raise ValueError(f"--workload-seed: bank {workload_seed} is {who}'s training bank; report on the test split "
                         "(--split test)")
HOST_POLICY_NAMES = ("fate_cp",)


# ----------------------------------------------------------------------------- policies

@dataclass
class PolicySet:
    """What to evaluate: jittable `policy(key, obs)` functions and host `policy(obs, sim)` factories."""

    jax: dict[str, Callable] = field(default_factory=dict)
    host: dict[str, Callable[[], Callable]] = field(default_factory=dict)  # name -> () -> policy(obs, sim)

    @property
    def names(self) -> list[str]:
        return list(self.jax) + list(self.host)


def known_policies() -> list[str]:
    return list(baselines.BASELINES) + list(HOST_POLICY_NAMES)


def resolve_policies(names: Sequence[str], fate_cp_options: dict | None = None) -> PolicySet:
    """Policy names -> PolicySet; a ValueError names any unknown or unavailable one."""
    out = PolicySet()
    for name in names:
        if name in baselines.BASELINES:
            out.jax[name] = baselines.BASELINES[name]
        elif name == "fate_cp":
            from jaxsched import fate_cp

            fate_cp.require_ortools()
            opts = dict(fate_cp_options or {})
            out.host[name] = lambda opts=opts: fate_cp.FateCP(fate_cp.FateCPConfig(**opts))
        elif ":" in name:  # your own jittable policy(key, obs) -> server, as envs.trace takes it
            from envs.trace import resolve_policy

            try:
                out.jax[name] = resolve_policy(name)
            except ValueError as e:
                raise ValueError(f"--policies: {e}") from None
        else:
            raise ValueError(f"--policies: unknown policy {name!r}; choose from {', '.join(known_policies())}, "
                             "or give module:function")
    return out


def host_adapter(policy) -> Callable:
    """A jittable `policy(key, obs)` as a host `policy(obs, sim)` (deterministic policies only:
    the key is fixed)."""
    fn = jax.jit(policy)
    key = jax.random.PRNGKey(0)
    return lambda obs, sim: int(fn(key, obs.as_observation()))


# ----------------------------------------------------------------------------- episodes

def eval_config(n_servers: int, base: EnvConfig | None = None) -> EnvConfig:
    """The environment at N servers: `base` (default: held-out workload, default load) resized."""
    base = base if base is not None else EnvConfig(workload_seed=EVAL_WORKLOAD_SEED)
    return base.replace(n_servers=int(n_servers), max_servers=None, window=None, max_workflows=None)


def episode_keys(seeds: int, first: int = 0) -> jax.Array:
    """Seed i -> the key of its episode (reset) and of the policy's own randomness, for
    i in first .. first+seeds-1 (a later `first` gives a disjoint, independent set)."""
    return jnp.stack([jax.random.PRNGKey(i) for i in range(first, first + seeds)])


def _split(key):
    k_reset, k_policy = jax.random.split(key)
    return k_reset, k_policy


def play(policy: Callable, key, params) -> dict:
    """One episode of a jittable policy from `key` (the reset and the policy's own randomness),
    as the harness's metrics (METRICS -> scalar). Traceable: vmap it over keys or policies."""
    k_reset, k_policy = _split(key)
    obs, state = reset(k_reset, params)
    _, metrics, _ = run_from(policy, k_policy, obs, state, params)
    return harness_metrics(metrics)


def harness_metrics(env_metrics: dict) -> dict:
    """The env's episode metrics under the harness's names (`mean_slowdown` -> `slowdown`)."""
    return {m: env_metrics["mean_slowdown" if m == "slowdown" else m] for m in METRICS}


def run_jax_policies(policies: dict[str, Callable], params, seeds: int,
                     first_episode: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Every (policy, seed) episode in one compiled, vmapped program. Returns name -> metric -> [seeds]."""
    names = list(policies)
    fns = [policies[n] for n in names]

    def one(pid, key):
        return play(lambda k, o: jax.lax.switch(pid, fns, k, o), key, params)

    pid = jnp.repeat(jnp.arange(len(names)), seeds)
    ks = jnp.tile(episode_keys(seeds, first_episode), (len(names), 1))
    metrics = jax.device_get(jax.jit(jax.vmap(one))(pid, ks))
    out = {}
    for i, n in enumerate(names):
        sl = slice(i * seeds, (i + 1) * seeds)
        out[n] = {m: np.asarray(metrics[m][sl], np.float64) for m in METRICS}
    return out


def _host_episode(args):
    make_policy, inst, max_servers, max_tasks, max_edges = args
    info = run_reference_episode(inst, make_policy(), max_servers=max_servers, max_tasks=max_tasks, max_edges=max_edges)
    return {m: float(v) for m, v in harness_metrics(info).items()}


def instances(config: EnvConfig, seeds: int, params=None, first_episode: int = 0):
    """The episodes the JAX path plays, as reference-simulator Instances (same keys)."""
    params = params if params is not None else make_params(config)
    bank = config.make_bank()
    return [materialize(_split(k)[0], config, params, bank) for k in episode_keys(seeds, first_episode)]


def run_host_policy(make_policy: Callable, config: EnvConfig, seeds: int, params=None, workers: int = 1,
                    insts=None) -> dict[str, np.ndarray]:
    """One host policy on the same episodes through the reference simulator. metric -> [seeds]."""
    params = params if params is not None else make_params(config)
    insts = insts if insts is not None else instances(config, seeds, params)
    jobs = [(make_policy, inst, params.max_servers, params.max_tasks, params.bank.edges.shape[1]) for inst in insts]
    if workers > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
            rows = list(ex.map(_host_episode, jobs))
    else:
        rows = [_host_episode(j) for j in jobs]
    return {m: np.array([r[m] for r in rows]) for m in METRICS}


# ----------------------------------------------------------------------------- statistics

def mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval over seeds (a point for one seed)."""
    from scipy import stats

    x = np.asarray(x, np.float64)
    m = float(x.mean())
    if len(x) < 2:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - half, m + half


def ratio_ci(r: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Geometric mean of positive ratios and its interval: a Student-t interval on log ratios, mapped
    back, so it stays positive (a t-interval on the ratios themselves goes negative for few, spread
    seeds) and is symmetric between "half as long" and "twice as long"."""
    m, lo, hi = mean_ci(np.log(np.maximum(np.asarray(r, np.float64), 1e-300)), level)
    return math.exp(m), math.exp(lo), math.exp(hi)


def summarize(results: dict[int, dict[str, dict[str, np.ndarray]]], normalizer: str = NORMALIZER) -> list[dict]:
    """Rows per (policy, N): each metric's mean and 95% CI over seeds, and its ratio to `normalizer`'s on
    the same seeds (geometric mean of the per-seed ratios, 95% CI from `ratio_ci`)."""
    rows = []
    for n, by_policy in sorted(results.items()):
        ref = by_policy.get(normalizer)
        for name, metrics in by_policy.items():
            row = {"policy": name, "servers": int(n), "seeds": int(len(metrics["mean_response"]))}
            for m in METRICS:
                row[m], row[f"{m}_ci_lo"], row[f"{m}_ci_hi"] = mean_ci(metrics[m])
            if ref is not None:
                for m in METRICS:
                    ratio = metrics[m] / np.maximum(ref[m], 1e-12)
                    row[f"norm_{m}"], row[f"norm_{m}_ci_lo"], row[f"norm_{m}_ci_hi"] = ratio_ci(ratio)
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- the whole evaluation

def evaluate(policies: PolicySet, servers: Sequence[int], seeds: int, base: EnvConfig | None = None,
             workers: int = 1, log=None, first_episode: int = 0) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """N -> policy -> metric -> per-seed values over episodes first_episode .. first_episode+seeds-1
    (a split's `first_episode`). Round-robin is always run (the normalizer)."""
    jax_pols = dict(policies.jax)
    if NORMALIZER not in jax_pols:
        jax_pols[NORMALIZER] = baselines.BASELINES[NORMALIZER]
    results = {}
    for n in servers:
        config = eval_config(n, base)
        params = make_params(config)
        t0 = time.perf_counter()
        res = run_jax_policies(jax_pols, params, seeds, first_episode)
        if log:
            log(f"N={n}: {len(jax_pols)} jittable policies x {seeds} seeds, "
                f"{int(episode_workflows(params))} workflows each, {time.perf_counter() - t0:.1f} s")
        if policies.host:
            insts = instances(config, seeds, params, first_episode)
            for name, make in policies.host.items():
                t0 = time.perf_counter()
                res[name] = run_host_policy(make, config, seeds, params, workers, insts)
                if log:
                    log(f"N={n}: {name} x {seeds} seeds on the host, {time.perf_counter() - t0:.1f} s")
        order = [p for p in policies.names] + [p for p in res if p not in policies.names]
        results[n] = {p: res[p] for p in order}
    return results


def format_table(rows: list[dict]) -> str:
    head = (f"{'policy':<16}{'N':>4}{'mean resp':>11}{'P95 resp':>10}{'makespan':>10}{'slowdown':>9}{'util':>6}"
            f"{'norm mean resp [95% CI]':>26}{'norm makespan':>15}")
    lines = [head, "-" * len(head)]
    for r in rows:
        norm = (f"{r['norm_mean_response']:.3f} [{r['norm_mean_response_ci_lo']:.3f}, {r['norm_mean_response_ci_hi']:.3f}]"
                if "norm_mean_response" in r else "")
        nm = f"{r['norm_makespan']:.3f}" if "norm_makespan" in r else ""
        lines.append(f"{r['policy']:<16}{r['servers']:>4}{r['mean_response']:>11.1f}{r['p95_response']:>10.1f}"
                     f"{r['makespan']:>10.1f}{r['slowdown']:>9.2f}{r['utilization']:>6.2f}{norm:>26}{nm:>15}")
    return "\n".join(lines)


def rows_to_csv(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def plot_normalized(rows: list[dict], path: str, metric: str = "mean_response") -> None:
    """Normalized `metric` (to round-robin) against N, one line per policy, 95% CI bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["policy"] for r in rows):
        rs = sorted((r for r in rows if r["policy"] == name and f"norm_{metric}" in r), key=lambda r: r["servers"])
        if not rs:
            continue
        x = [r["servers"] for r in rs]
        y = np.array([r[f"norm_{metric}"] for r in rs])
        err = np.array([[y[i] - r[f"norm_{metric}_ci_lo"], r[f"norm_{metric}_ci_hi"] - y[i]] for i, r in enumerate(rs)]).T
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(sorted({r["servers"] for r in rows}))  # cluster sizes are integers: tick exactly those
    ax.set_xlabel("servers (N)")
    ax.set_ylabel(f"{metric.replace('_', ' ')} / round-robin's")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_outputs(rows: list[dict], out_dir: str) -> dict[str, str]:
    paths = {"json": os.path.join(out_dir, "results.json"), "csv": os.path.join(out_dir, "results.csv"),
             "plot": os.path.join(out_dir, "normalized_mean_response.png")}
    atomic_write_json(paths["json"], rows)
    atomic_write_text(paths["csv"], rows_to_csv(rows))
    plot_normalized(rows, paths["plot"])
    return paths


def parse_servers(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--servers: expected a comma-separated list of integers, got {text!r}") from None
    if not vals:
        raise ValueError("--servers: empty list")
    bad = [v for v in vals if v < 1]
    if bad:
        raise ValueError(f"--servers: cluster sizes must be >= 1, got {bad}")
    if len(set(vals)) != len(vals):
        raise ValueError(f"--servers: duplicate sizes in {vals}")
    return vals
