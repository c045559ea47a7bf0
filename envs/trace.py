"""Schedule traces: one episode as self-contained JSON, its re-simulation, its Gantt chart.

A trace holds everything needed to replay an episode without this code's
random streams: the catalogs, the constants, the cluster, every workflow
(true output lengths included) with its arrival, and the decisions in order.
`check_trace` replays the decisions' server choices on the independent
reference simulator (`envs.reference`) and demands the same starts, finishes
and summary, so a trace is evidence rather than a claim.

    python -m envs.trace --policy eft --servers 16 --seed 0 --out t.json --gantt t.png --check
    python -m envs.trace --from-trace t.json --gantt t.png

Layout (spec v2, "Traces in and out"); nothing else sits at the top level:

    spec_version, gpus, models, constants, servers, workflows, decisions, summary

`summary` carries the spec's four numbers plus `utilization` and
`busy_time_share` (share of busy server time spent loading models,
prefilling app prefixes, prefilling remote parents' outputs, prefilling the
task's own input, decoding, and the fixed per-call overhead). Per-decision
cost splits are not stored: `resimulate_decisions` recomputes them.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys

from envs import catalog
from envs.config import EnvConfig
from envs.files import atomic_write_json
from envs.instance import Instance
from envs.workload import WorkflowSpec

__all__ = [
    "DECISION_FIELDS", "SUMMARY_FIELDS", "TOP_LEVEL_FIELDS", "check_trace", "episode_trace", "load_trace",
    "main", "record_episode", "registered_policies", "report", "resolve_policy", "resimulate", "resimulate_decisions", "trace_instance",
]

TOP_LEVEL_FIELDS = ("spec_version", "gpus", "models", "constants", "servers", "workflows", "decisions", "summary")
GPU_FIELDS = ("name", "mem_gb", "prefill_tps_8b", "decode_tps_8b", "load_gbps")
MODEL_FIELDS = ("name", "params_b", "mem_gb")
CONSTANT_FIELDS = ("net_latency_s", "task_overhead_s", "mem_headroom", "prefix_cache_slots", "window",
                   "queue_cap", "reward_scale", "rho")
WORKFLOW_FIELDS = ("id", "arrival", "app", "prefix_tokens", "tasks")
TASK_FIELDS = ("id", "model", "input_tokens", "expected_output_tokens", "output_tokens", "tool_delay", "parents")
DECISION_FIELDS = ("seq", "workflow", "task", "server", "decision_time", "start", "finish", "load_s", "prefix_hit")
SUMMARY_FIELDS = ("mean_response", "p95_response", "makespan", "episode_return")
COST_FIELDS = ("load_s", "prefix_s", "remote_s", "prefill_s", "decode_s")
SHARE_NAMES = ("load", "prefix", "remote", "prefill", "decode", "overhead")
_INT_DECISION = ("seq", "workflow", "task", "server")


# --------------------------------------------------------------------------- out


def episode_trace(inst: Instance, decisions: list[dict], summary: dict) -> dict:
    """The trace document of one episode: `inst` as played, `decisions` in order, its `summary`.

    `decisions` are rows as the JAX env (`envs.rollout.decisions_to_rows`) or the reference
    simulator (`info["decision"]`) produce them; only the spec's fields are kept, the cost
    split feeds `summary["busy_time_share"]`.
    """
    names = [m.name for m in inst.models]
    rows = [{f: (bool(d[f]) if f == "prefix_hit" else int(d[f]) if f in _INT_DECISION else float(d[f]))
             for f in DECISION_FIELDS} for d in decisions]
    out_summary = {f: float(summary[f]) for f in SUMMARY_FIELDS}
    if "utilization" in summary:
        out_summary["utilization"] = float(summary["utilization"])
    share = _busy_time_share(decisions, inst.task_overhead_s)
    if share is not None:
        out_summary["busy_time_share"] = share
    return {
        "spec_version": catalog.SPEC_VERSION,
        "gpus": [{f: (g.name if f == "name" else float(getattr(g, f))) for f in GPU_FIELDS} for g in inst.gpus],
        "models": [{f: (m.name if f == "name" else float(getattr(m, f))) for f in MODEL_FIELDS} for m in inst.models],
        "constants": {
            "net_latency_s": float(inst.net_latency_s), "task_overhead_s": float(inst.task_overhead_s),
            "mem_headroom": float(inst.mem_headroom), "prefix_cache_slots": int(inst.prefix_cache_slots),
            "window": int(inst.window), "queue_cap": int(inst.queue_cap),
            "reward_scale": float(inst.reward_scale), "rho": float(inst.rho),
        },
        "servers": [{"id": s, "gpu": inst.gpus[g].name, "initial_models": [names[m]]}
                    for s, (g, m) in enumerate(zip(inst.server_gpus, inst.initial_models, strict=True))],
        "workflows": [{
            "id": i, "arrival": float(a), "app": w.app, "prefix_tokens": int(w.prefix_tokens),
            "tasks": [{
                "id": c, "model": names[w.models[c]], "input_tokens": int(w.input_tokens[c]),
                "expected_output_tokens": int(w.expected_output_tokens[c]),
                "output_tokens": int(w.output_tokens[c]), "tool_delay": float(w.tool_delay[c]),
                "parents": [int(p) for p in w.parents[c]],
            } for c in range(w.n_tasks)],
        } for i, (a, w) in enumerate(zip(inst.arrivals, inst.workflows, strict=True))],
        "decisions": rows,
        "summary": out_summary,
    }


def _busy_time_share(decisions: list[dict], overhead_s: float) -> dict | None:
    """Where busy server time went; None when the rows carry no cost split."""
    if not decisions or not all(f in decisions[0] for f in COST_FIELDS):
        return None
    parts = [sum(float(d[f]) for d in decisions) for f in COST_FIELDS]
    parts.append(overhead_s * len(decisions))
    total = sum(parts)
    if total <= 0:
        return None
    return {name: p / total for name, p in zip(SHARE_NAMES, parts, strict=True)}


POLICY_GROUP = "jaxsched.policies"  # entry points: each names a dict of policy name -> policy(key, obs)


def registered_policies() -> dict:
    """Policies other packages register under the `jaxsched.policies` entry-point group (jaxsched
    registers its baselines there), loaded on demand: envs never imports the packages above it."""
    from importlib.metadata import entry_points

    out = {}
    for ep in sorted(entry_points(group=POLICY_GROUP), key=lambda e: e.name):
        table = ep.load()
        out.update(table if isinstance(table, dict) else {ep.name: table})
    return out


def resolve_policy(spec):
    """A policy callable from a callable, a registered name, or `module:attribute`."""
    if callable(spec):
        return spec
    if ":" in spec:
        import importlib

        mod, _, attr = spec.partition(":")
        try:
            policy = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"policy: cannot load {spec!r}: {e}") from None
        if not callable(policy):
            raise ValueError(f"policy: {spec!r} is not callable")
        return policy
    table = registered_policies()
    if spec not in table:
        known = ", ".join(table) or "none registered (install the project: pip install -e .)"
        raise ValueError(f"policy: unknown policy {spec!r}; choose from {known}, or give module:function")
    return table[spec]


@functools.cache
def _episode_runner(policy):
    """One jitted episode per policy; params are an argument, so configs of one shape share it."""
    import jax

    from envs.rollout import run_episode

    return jax.jit(functools.partial(run_episode, policy, record=True))


def record_episode(config: EnvConfig, policy, seed: int) -> dict:
    """Play one JAX episode and return its trace. `policy`: a jittable `policy(key, obs) -> action`,
    a registered name (`registered_policies`, e.g. "eft") or "module:function"."""
    import jax

    from envs.config import make_params
    from envs.instance import materialize
    from envs.rollout import decisions_to_rows

    policy = resolve_policy(policy)  # a clear error for an unknown name, before any work
    params = make_params(config)
    key = jax.random.PRNGKey(seed)
    state, metrics, dec = _episode_runner(policy)(key, params)
    n = int(state.decisions)
    rows = decisions_to_rows(dec, n)
    k_reset, _ = jax.random.split(key)  # run_episode resets with the first half of its key
    inst = materialize(k_reset, config, params)
    metrics = jax.device_get(metrics)
    return episode_trace(inst, rows, {k: float(metrics[k]) for k in (*SUMMARY_FIELDS, "utilization")})


# --------------------------------------------------------------------------- in


class _Reader:
    """Typed field access whose errors name the file and the field."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def fail(self, where, msg):
        raise ValueError(f"{self.path}: {where}: {msg}")

    def obj(self, v, where, fields):
        if not isinstance(v, dict):
            self.fail(where, f"must be an object, got {type(v).__name__}")
        for f in fields:
            if f not in v:
                self.fail(f"{where}.{f}" if where else f, "missing")
        return v

    def lst(self, v, where, nonempty=True):
        if not isinstance(v, list):
            self.fail(where, f"must be a list, got {type(v).__name__}")
        if nonempty and not v:
            self.fail(where, "must not be empty")
        return v

    def num(self, v, where, lo=None, positive=False):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.fail(where, f"must be a finite number, got {v!r}")
        if positive and v <= 0:
            self.fail(where, f"must be > 0, got {v!r}")
        if lo is not None and v < lo:
            self.fail(where, f"must be >= {lo:g}, got {v!r}")
        return float(v)

    def integer(self, v, where, lo=None):
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(where, f"must be an integer, got {v!r}")
        if lo is not None and v < lo:
            self.fail(where, f"must be >= {lo}, got {v!r}")
        return v

    def string(self, v, where):
        if not isinstance(v, str) or not v:
            self.fail(where, f"must be a non-empty string, got {v!r}")
        return v

    def name(self, v, where, names, kind):
        if v not in names:
            self.fail(where, f"unknown {kind} {v!r} (the trace's {kind}s are {list(names)})")
        return names.index(v)


def trace_instance(trace: dict, path: str = "<trace>") -> Instance:
    """The episode a trace describes, validated; errors name `path` and the field."""
    r = _Reader(path)
    r.obj(trace, "", TOP_LEVEL_FIELDS)
    ver = r.integer(trace["spec_version"], "spec_version")
    if ver != catalog.SPEC_VERSION:
        r.fail("spec_version", f"this code reads version {catalog.SPEC_VERSION}, the trace is version {ver}")
    gpus = []
    for i, g in enumerate(r.lst(trace["gpus"], "gpus")):
        w = f"gpus[{i}]"
        r.obj(g, w, GPU_FIELDS)
        gpus.append(catalog.GpuSpec(r.string(g["name"], f"{w}.name"),
                                    *(r.num(g[f], f"{w}.{f}", positive=True) for f in GPU_FIELDS[1:])))
    models = []
    for i, m in enumerate(r.lst(trace["models"], "models")):
        w = f"models[{i}]"
        r.obj(m, w, MODEL_FIELDS)
        models.append(catalog.ModelSpec(r.string(m["name"], f"{w}.name"),
                                        *(r.num(m[f], f"{w}.{f}", positive=True) for f in MODEL_FIELDS[1:])))
    gpu_names, model_names = [g.name for g in gpus], [m.name for m in models]
    for kind, names in (("gpus", gpu_names), ("models", model_names)):
        dup = next((x for i, x in enumerate(names) if x in names[:i]), None)
        if dup is not None:
            r.fail(kind, f"name {dup!r} appears twice")

    c = r.obj(trace["constants"], "constants", CONSTANT_FIELDS)
    headroom = r.num(c["mem_headroom"], "constants.mem_headroom", positive=True)
    if headroom > 1:
        r.fail("constants.mem_headroom", f"must be in (0, 1], got {headroom}")
    consts = dict(
        net_latency_s=r.num(c["net_latency_s"], "constants.net_latency_s", lo=0),
        task_overhead_s=r.num(c["task_overhead_s"], "constants.task_overhead_s", lo=0),
        mem_headroom=headroom,
        prefix_cache_slots=r.integer(c["prefix_cache_slots"], "constants.prefix_cache_slots", lo=1),
        window=r.integer(c["window"], "constants.window", lo=1),
        queue_cap=r.integer(c["queue_cap"], "constants.queue_cap", lo=1),
        reward_scale=r.num(c["reward_scale"], "constants.reward_scale", positive=True),
        rho=r.num(c["rho"], "constants.rho", positive=True),
    )

    server_gpus, initial = [], []
    for i, s in enumerate(r.lst(trace["servers"], "servers")):
        w = f"servers[{i}]"
        r.obj(s, w, ("id", "gpu", "initial_models"))
        if r.integer(s["id"], f"{w}.id") != i:
            r.fail(f"{w}.id", f"must be {i} (servers are numbered 0, 1, ... in order)")
        g = r.name(s["gpu"], f"{w}.gpu", gpu_names, "GPU")
        ms = r.lst(s["initial_models"], f"{w}.initial_models")
        if len(ms) != 1:
            r.fail(f"{w}.initial_models", f"must list exactly one model (spec v1), got {len(ms)}")
        m = r.name(ms[0], f"{w}.initial_models[0]", model_names, "model")
        if models[m].mem_gb > headroom * gpus[g].mem_gb:
            r.fail(f"{w}.initial_models[0]", f"model {model_names[m]!r} does not fit GPU {gpu_names[g]!r}")
        server_gpus.append(g)
        initial.append(m)

    arrivals, workflows = [], []
    for i, wf in enumerate(r.lst(trace["workflows"], "workflows")):
        w = f"workflows[{i}]"
        r.obj(wf, w, WORKFLOW_FIELDS)
        if r.integer(wf["id"], f"{w}.id") != i:
            r.fail(f"{w}.id", f"must be {i} (workflows are listed in arrival order, numbered from 0)")
        a = r.num(wf["arrival"], f"{w}.arrival", lo=0)
        if arrivals and a < arrivals[-1]:
            r.fail(f"{w}.arrival", f"{a} is before the previous workflow's arrival {arrivals[-1]}")
        arrivals.append(a)
        app = r.string(wf["app"], f"{w}.app")
        prefix = r.integer(wf["prefix_tokens"], f"{w}.prefix_tokens", lo=0)
        cols = {f: [] for f in TASK_FIELDS[1:]}
        for j, t in enumerate(r.lst(wf["tasks"], f"{w}.tasks")):
            tw = f"{w}.tasks[{j}]"
            r.obj(t, tw, TASK_FIELDS)
            if r.integer(t["id"], f"{tw}.id") != j:
                r.fail(f"{tw}.id", f"must be {j} (tasks are listed in topological order, numbered from 0)")
            cols["model"].append(r.name(t["model"], f"{tw}.model", model_names, "model"))
            cols["input_tokens"].append(r.integer(t["input_tokens"], f"{tw}.input_tokens", lo=0))
            cols["expected_output_tokens"].append(
                r.integer(t["expected_output_tokens"], f"{tw}.expected_output_tokens", lo=1))
            cols["output_tokens"].append(r.integer(t["output_tokens"], f"{tw}.output_tokens", lo=1))
            cols["tool_delay"].append(r.num(t["tool_delay"], f"{tw}.tool_delay", lo=0))
            ps = r.lst(t["parents"], f"{tw}.parents", nonempty=False)
            for k, p in enumerate(ps):
                r.integer(p, f"{tw}.parents[{k}]")
                if not 0 <= p < j:
                    r.fail(f"{tw}.parents[{k}]", f"{p} is not an earlier task of this workflow (0..{j - 1})")
            if len(set(ps)) != len(ps):
                r.fail(f"{tw}.parents", f"lists a parent twice: {ps}")
            cols["parents"].append(tuple(sorted(ps)))
        workflows.append(WorkflowSpec(
            app=app, prefix_tokens=prefix, models=tuple(cols["model"]), input_tokens=tuple(cols["input_tokens"]),
            expected_output_tokens=tuple(cols["expected_output_tokens"]),
            output_tokens=tuple(cols["output_tokens"]), tool_delay=tuple(cols["tool_delay"]),
            parents=tuple(cols["parents"]),
        ))
    if arrivals[0] != 0.0:
        r.fail("workflows[0].arrival", f"the first workflow arrives at t = 0, got {arrivals[0]}")

    n_servers = len(server_gpus)
    for k, d in enumerate(r.lst(trace["decisions"], "decisions", nonempty=False)):
        w = f"decisions[{k}]"
        r.obj(d, w, DECISION_FIELDS)
        if r.integer(d["seq"], f"{w}.seq") != k:
            r.fail(f"{w}.seq", f"must be {k} (decisions are listed in order)")
        wi = r.integer(d["workflow"], f"{w}.workflow", lo=0)
        if wi >= len(workflows):
            r.fail(f"{w}.workflow", f"no workflow {wi} (the trace has {len(workflows)})")
        ti = r.integer(d["task"], f"{w}.task", lo=0)
        if ti >= workflows[wi].n_tasks:
            r.fail(f"{w}.task", f"workflow {wi} has no task {ti} (it has {workflows[wi].n_tasks})")
        s = r.integer(d["server"], f"{w}.server", lo=0)
        if s >= n_servers:
            r.fail(f"{w}.server", f"no server {s} (the trace has {n_servers})")
        for f in ("decision_time", "start", "finish", "load_s"):
            r.num(d[f], f"{w}.{f}", lo=0)
        if not isinstance(d["prefix_hit"], bool):
            r.fail(f"{w}.prefix_hit", f"must be true or false, got {d['prefix_hit']!r}")
    s = r.obj(trace["summary"], "summary", SUMMARY_FIELDS)
    for f in SUMMARY_FIELDS:
        r.num(s[f], f"summary.{f}")

    return Instance(gpus=tuple(gpus), models=tuple(models), server_gpus=tuple(server_gpus),
                    initial_models=tuple(initial), arrivals=tuple(arrivals), workflows=tuple(workflows), **consts)


def load_trace(path) -> dict:
    """Read a trace file and validate it (ValueError naming the file and the field)."""
    path = os.fspath(path)
    try:
        with open(path) as f:
            trace = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    trace_instance(trace, path)
    return trace


# --------------------------------------------------------------------------- re-simulation


def _replay(trace: dict, path: str, tie_tol: float):
    """Play the trace's server choices on the reference simulator: (its metrics, its decision rows)."""
    from envs.reference import InvalidActionError, ReferenceSim

    inst = trace_instance(trace, path)
    sim = ReferenceSim(inst, max_tasks=max(w.n_tasks for w in inst.workflows))
    sim.reset()
    info = {}
    decisions = trace["decisions"]
    for k, d in enumerate(decisions):
        w = f"decisions[{k}]"
        if sim.done:
            sim_total = len(sim.decisions)
            raise ValueError(f"{path}: {w}: the episode ended after {sim_total} decisions; the trace lists "
                             f"{len(decisions)}")
        want = (d["workflow"], d["task"])
        if sim.current != want:
            # float32 ready times may order two near-tied tasks differently; anything else is a wrong trace
            try:
                sim.force_next(*want, tol=tie_tol)
            except ValueError as e:
                raise ValueError(f"{path}: {w}: task {want} cannot be decided here: the reference's next "
                                 f"decision is {sim.current} at t = {sim.clock:.6g} ({e})") from None
        try:
            _, _, _, info = sim.step(d["server"])
        except InvalidActionError as e:
            raise ValueError(f"{path}: {w}.server: {e}") from None
    if not sim.done:
        left = sum(x.n_tasks for x in inst.workflows) - len(sim.decisions)
        raise ValueError(f"{path}: decisions: the trace stops with {left} tasks of the episode unassigned")
    metrics = {f: float(info[f]) for f in (*SUMMARY_FIELDS, "utilization")}
    return metrics, list(sim.decisions)


def resimulate(trace: dict, path: str = "<trace>") -> dict:
    """The summary the reference simulator computes when it plays the trace's decisions."""
    return _replay(trace, path, tie_tol=2e-3)[0]


def resimulate_decisions(trace: dict, path: str = "<trace>") -> list[dict]:
    """The reference simulator's decision rows for the trace, with the cost split of each."""
    return _replay(trace, path, tie_tol=2e-3)[1]


def check_trace(trace: dict, atol: float = 1e-3, rtol: float = 1e-5, path: str = "<trace>") -> dict:
    """Re-simulate and insist on the trace's numbers; returns the re-simulated summary.

    Tolerance is `atol + rtol * |value|` (float32 times from the JAX env carry ~1e-7
    relative error). Raises ValueError listing the first mismatches.
    """
    summary, rows = _replay(trace, path, tie_tol=max(atol, 2e-3))
    bad = []

    def close(a, b):
        return abs(a - b) <= atol + rtol * abs(b)

    for k, (d, ref) in enumerate(zip(trace["decisions"], rows, strict=True)):
        for f in ("decision_time", "start", "finish", "load_s"):
            if not close(float(d[f]), ref[f]):
                bad.append(f"decisions[{k}].{f}: trace {d[f]!r}, re-simulation {ref[f]!r}")
        if bool(d["prefix_hit"]) != ref["prefix_hit"]:
            bad.append(f"decisions[{k}].prefix_hit: trace {d['prefix_hit']}, re-simulation {ref['prefix_hit']}")
    for f in SUMMARY_FIELDS:
        got = float(trace["summary"][f])
        if not close(got, summary[f]):
            bad.append(f"summary.{f}: trace {got!r}, re-simulation {summary[f]!r}")
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(f"{path}: the trace does not re-simulate to its own numbers: "
                         + "; ".join(bad[:5]) + more)
    return summary


def responses(trace: dict) -> list[float]:
    """Each workflow's response time (last finish - arrival), from the trace's decisions."""
    last = [-math.inf] * len(trace["workflows"])
    for d in trace["decisions"]:
        last[d["workflow"]] = max(last[d["workflow"]], float(d["finish"]))
    return [f - float(w["arrival"]) for f, w in zip(last, trace["workflows"], strict=True)]


# --------------------------------------------------------------------------- CLI


def _summary_line(label: str, trace: dict) -> str:
    s = trace["summary"]
    return (f"{label}  N={len(trace['servers'])}  workflows={len(trace['workflows'])}  "
            f"decisions={len(trace['decisions'])}  mean {s['mean_response']:.3f} s  "
            f"P95 {s['p95_response']:.3f} s  makespan {s['makespan']:.3f} s")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m envs.trace",
        description="Record a baseline's episode as a JSON schedule trace, draw its Gantt chart, or "
                    "re-simulate a trace on the reference simulator.")
    p.add_argument("--policy", metavar="NAME", help="policy to record: a registered name (random, round_robin, "
                   "least_loaded, jsq, eft, residency_first, locality_first, fate_lite) or module:function; "
                   "a trained checkpoint: python -m train.trace --checkpoint DIR")
    p.add_argument("--servers", type=int, default=None, metavar="N", help="active servers (default 16, or len(--gpus))")
    p.add_argument("--gpus", metavar="G1,G2,...", help="the cluster, one GPU type per server (catalog names, e.g. "
                   "H100,H100,A100,L4); default: sampled by --gpu-mix")
    p.add_argument("--catalog", metavar="FILE.json", help="extra GPU types and models (docs/environment.md, "
                   "'Custom catalogs')")
    p.add_argument("--gpu-mix", metavar="G=W,...", help="sampling weights of GPU types, e.g. H100=2,L4=1 "
                   "(others 0; default: the catalog's mix)")
    p.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    p.add_argument("--out", metavar="FILE.json", help="where to write the trace")
    p.add_argument("--gantt", metavar="FILE.png", help="also draw the trace's Gantt chart here")
    p.add_argument("--workflows", nargs="+", metavar="FILE",
                   help="workflow files (own JSON or WfFormat) that replace the generated bank")
    p.add_argument("--check", action="store_true",
                   help="re-simulate the trace on the reference simulator and verify its numbers")
    p.add_argument("--from-trace", metavar="FILE.json", help="use an existing trace instead of recording one")
    p.add_argument("--n-workflows", type=int, metavar="E", help="workflows per episode (default 4 per server)")
    p.add_argument("--rho", type=float, default=0.7, help="offered load (default 0.7)")
    p.add_argument("--bank-size", type=int, default=4096, help="generated bank size (default 4096)")
    p.add_argument("--workload-seed", type=int, default=0, help="bank seed (default 0)")
    p.add_argument("--max-tasks", type=int, default=16, help="tasks per workflow bound (default 16)")
    return p


def _record_config(args, p) -> EnvConfig:
    from envs.world import build_world

    if args.servers is not None and args.servers < 1:
        p.error(f"--servers: must be >= 1, got {args.servers}")
    if args.n_workflows is not None and args.n_workflows < 1:
        p.error(f"--n-workflows: must be >= 1, got {args.n_workflows}")
    base = EnvConfig(n_servers=args.servers or 16, rho=args.rho, bank_size=args.bank_size,
                     workload_seed=args.workload_seed, n_workflows=args.n_workflows)
    try:
        config = build_world(base, catalog_file=args.catalog, gpus=args.gpus, gpu_mix=args.gpu_mix,
                             workflows=args.workflows or (), max_tasks=args.max_tasks, seed=args.workload_seed)
    except ValueError as e:
        p.error(str(e))
    if args.gpus and args.servers is not None and args.servers != config.n_servers:
        p.error(f"--gpus lists {config.n_servers} GPUs but --servers is {args.servers}")
    try:
        config.validate()
    except ValueError as e:
        p.error(f"invalid settings: {e}")
    return config


def main(argv=None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.from_trace:
        extra = [f for f, v in (("--policy", args.policy), ("--out", args.out), ("--workflows", args.workflows))
                 if v]
        if extra:
            p.error(f"--from-trace reads an existing trace; {', '.join(extra)} do not apply")
        try:
            trace = load_trace(args.from_trace)
        except ValueError as e:
            p.error(f"--from-trace: {e}")
        label, path = os.path.basename(args.from_trace), args.from_trace
    else:
        if not args.policy:
            p.error("--policy is required to record an episode (or give --from-trace FILE.json)")
        if not args.out:
            p.error("--out FILE.json is required to record an episode")
        config = _record_config(args, p)
        if os.path.isdir(args.policy):
            p.error(f"--policy: {args.policy} is a directory; record a trained run with "
                    f"python -m train.trace --checkpoint {args.policy} --out {args.out}")
        try:
            policy = resolve_policy(args.policy)
        except ValueError as e:
            p.error(f"--policy: {e}")
        trace = record_episode(config, policy, args.seed)
        try:
            atomic_write_json(args.out, trace)
        except OSError as e:
            p.error(f"--out: cannot write {args.out}: {e.strerror or e}")
        label, path = f"{args.policy} seed={args.seed}", args.out
    code = report(trace, label, path, check=args.check, gantt=args.gantt, error=p.error)
    if not args.from_trace:
        print(f"trace: {args.out}")
    return code


def report(trace: dict, label: str, path: str, *, check: bool, gantt: str | None, error) -> int:
    """The CLI's tail, shared with `train.trace`: the summary line, the optional re-simulation check
    (exit code 1 when it fails) and Gantt chart; `error(msg)` reports an unwritable chart."""
    print(_summary_line(label, trace))
    if check:
        try:
            ref = check_trace(trace, path=path)
        except ValueError as e:
            print(f"check FAILED: {e}", file=sys.stderr)
            return 1
        print(f"check ok: the reference simulator reproduces every decision and the summary "
              f"(mean {ref['mean_response']:.3f} s, P95 {ref['p95_response']:.3f} s, "
              f"makespan {ref['makespan']:.3f} s)")
    if gantt:
        from envs.viewer import plot_gantt

        try:
            plot_gantt(trace, gantt, title=label)
        except OSError as e:
            error(f"--gantt: cannot write {gantt}: {e.strerror or e}")
        print(f"gantt: {gantt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
