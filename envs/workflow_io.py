"""Workflows from files: the project's own JSON format and WfCommons WfFormat.

Both become `WorkflowSpec`s, then a bank (`bank_from_specs`) that replaces the
generated one (`EnvConfig(bank=...)`). Every problem raises `ValueError`
naming the file and the field, e.g. `wf.json: workflows[2].tasks[0].input_tokens: must be >= 0`.

Own format (`"format": "jaxsched-workflows"`; a trace's `workflows` list also loads):

    {"format": "jaxsched-workflows", "version": 1,
     "workflows": [{"app": "rag/0", "prefix_tokens": 1500,
                    "tasks": [{"id": "q", "model": "8B", "input_tokens": 200,
                               "expected_output_tokens": 80, "output_tokens": 71,
                               "tool_delay": 0.0, "parents": []}, ...]}]}

`output_tokens` may be left out: it is then drawn from the expected length
with the env's log-normal noise (`output_sigma`, `seed`). Tasks may be listed
in any order; they are sorted topologically (cycles are an error).

WfFormat (schema 1.4 `workflow.tasks`, or 1.5 `workflow.specification`):
the task graph comes from `parents`/`children`; sizes map to tokens at
`bytes_per_token` (4):
  * input tokens: bytes of the task's input files that no parent produced
    (a parent's output reaches the task as that parent's output tokens),
    clipped to [input_min, input_max];
  * expected output tokens: bytes of its output files, clipped to [output_min, output_max];
  * model: role "planner" for roots and joins (two or more parents), "worker" otherwise;
  * tool delay: `runtime_s * runtime_to_tool_delay` (0 by default: runtimes are CPU job times);
  * app: the workflow's `name`; prefix tokens: `prefix_tokens`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from envs.workload import WorkflowSpec, true_output_tokens


@dataclass(frozen=True)
class WfFormatMapping:
    bytes_per_token: float = 4.0
    input_min: int = 50
    input_max: int = 8000
    output_min: int = 16
    output_max: int = 1024
    prefix_tokens: int = 2000
    planner_model: str = "32B"
    worker_model: str = "8B"
    runtime_to_tool_delay: float = 0.0


class _Ctx:
    def __init__(self, path):
        self.path = os.fspath(path)

    def fail(self, where, msg):
        raise ValueError(f"{self.path}: {where}: {msg}")


def _read_json(path):
    ctx = _Ctx(path)
    try:
        with open(path) as f:
            return json.load(f), ctx
    except FileNotFoundError:
        raise ValueError(f"{ctx.path}: file not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{ctx.path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def _num(ctx, where, v, *, integer=False, minimum=0.0):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        ctx.fail(where, f"must be a number, got {v!r}")
    if integer and float(v) != int(v):
        ctx.fail(where, f"must be an integer, got {v!r}")
    if v < minimum:
        ctx.fail(where, f"must be >= {minimum:g}, got {v!r}")
    return int(v) if integer else float(v)


def _toposort(ctx, where, ids, parents):
    """Order tasks so parents come first; stable for already-ordered input (iterative: any depth)."""
    order, state = [], {}
    for root in range(len(ids)):
        if state.get(root) == 2:
            continue
        stack = [(root, iter(parents[root]))]
        state[root] = 1
        while stack:
            i, it = stack[-1]
            p = next(it, None)
            if p is None:
                stack.pop()
                state[i] = 2
                order.append(i)
            elif state.get(p) == 1:
                ctx.fail(where, f"the parents form a cycle through task {ids[p]!r}")
            elif state.get(p) is None:
                state[p] = 1
                stack.append((p, iter(parents[p])))
    return order


def _finish(ctx, where, app, prefix, rows, model_names, max_tasks, sigma, rng):
    """rows: list of dicts with id, model (index), input, expected, output|None, delay, parents (ids)."""
    if not rows:
        ctx.fail(where, "has no tasks")
    if len(rows) > max_tasks:
        ctx.fail(where, f"has {len(rows)} tasks, more than max_tasks={max_tasks}")
    ids = [r["id"] for r in rows]
    index = {}
    for i, tid in enumerate(ids):
        if tid in index:
            ctx.fail(f"{where}.tasks[{i}].id", f"duplicate task id {tid!r}")
        index[tid] = i
    par = []
    for i, r in enumerate(rows):
        ps = []
        for p in r["parents"]:
            if isinstance(p, (list, dict, float)) or p is None:
                ctx.fail(f"{where}.tasks[{i}].parents", f"must list task ids, got {p!r}")
            if p not in index:
                ctx.fail(f"{where}.tasks[{i}].parents", f"unknown task id {p!r}")
            if index[p] == i:
                ctx.fail(f"{where}.tasks[{i}].parents", "a task cannot be its own parent")
            ps.append(index[p])
        par.append(sorted(set(ps)))
    order = _toposort(ctx, where, ids, par)
    pos = {old: new for new, old in enumerate(order)}
    out = []
    for old in order:
        r = rows[old]
        o = r["output"]
        if o is None:
            o = int(true_output_tokens(np.array([r["expected"]], float), rng.standard_normal(1), sigma)[0])
        out.append((r["model"], r["input"], r["expected"], o, r["delay"], tuple(sorted(pos[p] for p in par[old]))))
    return WorkflowSpec(
        app=app, prefix_tokens=prefix,
        models=tuple(x[0] for x in out), input_tokens=tuple(x[1] for x in out),
        expected_output_tokens=tuple(x[2] for x in out), output_tokens=tuple(x[3] for x in out),
        tool_delay=tuple(x[4] for x in out), parents=tuple(x[5] for x in out),
    )


def load_own_json(path, model_names, max_tasks=32, sigma=0.5, seed=0) -> list[WorkflowSpec]:
    data, ctx = _read_json(path)
    if isinstance(data, dict) and "workflows" in data:
        wfs = data["workflows"]
    elif isinstance(data, list):
        wfs = data
    else:
        ctx.fail("workflows", "expected a list of workflows (or an object with a 'workflows' list)")
    if not isinstance(wfs, list) or not wfs:
        ctx.fail("workflows", "must be a non-empty list")
    rng = np.random.default_rng(seed)
    specs = []
    for i, w in enumerate(wfs):
        where = f"workflows[{i}]"
        if not isinstance(w, dict):
            ctx.fail(where, "must be an object")
        for k in ("app", "prefix_tokens", "tasks"):
            if k not in w:
                ctx.fail(f"{where}.{k}", "missing")
        if not isinstance(w["app"], str) or not w["app"]:
            ctx.fail(f"{where}.app", f"must be a non-empty string, got {w['app']!r}")
        prefix = _num(ctx, f"{where}.prefix_tokens", w["prefix_tokens"], integer=True)
        if not isinstance(w["tasks"], list):
            ctx.fail(f"{where}.tasks", "must be a list")
        rows = []
        for j, t in enumerate(w["tasks"]):
            tw = f"{where}.tasks[{j}]"
            if not isinstance(t, dict):
                ctx.fail(tw, "must be an object")
            for k in ("model", "input_tokens", "expected_output_tokens"):
                if k not in t:
                    ctx.fail(f"{tw}.{k}", "missing")
            if t["model"] not in model_names:
                ctx.fail(f"{tw}.model", f"unknown model {t['model']!r} (catalog has {list(model_names)})")
            parents = t.get("parents", [])
            if not isinstance(parents, list):
                ctx.fail(f"{tw}.parents", "must be a list of task ids")
            out = t.get("output_tokens")
            rows.append(dict(
                id=t.get("id", j), model=list(model_names).index(t["model"]),
                input=_num(ctx, f"{tw}.input_tokens", t["input_tokens"], integer=True),
                expected=_num(ctx, f"{tw}.expected_output_tokens", t["expected_output_tokens"], integer=True, minimum=1),
                output=None if out is None else _num(ctx, f"{tw}.output_tokens", out, integer=True, minimum=1),
                delay=float(np.float32(_num(ctx, f"{tw}.tool_delay", t.get("tool_delay", 0.0)))),
                parents=parents,
            ))
        specs.append(_finish(ctx, where, w["app"], prefix, rows, model_names, max_tasks, sigma, rng))
    return specs


def load_wfformat(path, model_names, max_tasks=32, sigma=0.5, seed=0,
                  mapping: WfFormatMapping = WfFormatMapping()) -> list[WorkflowSpec]:
    data, ctx = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("workflow"), dict):
        ctx.fail("workflow", "missing (not a WfFormat instance)")
    wf = data["workflow"]
    for m, fld in ((mapping.planner_model, "planner_model"), (mapping.worker_model, "worker_model")):
        if m not in model_names:
            raise ValueError(f"WfFormatMapping.{fld}: unknown model {m!r} (catalog has {list(model_names)})")
    if "specification" in wf:  # schema 1.5
        spec = wf["specification"]
        tasks = spec.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            ctx.fail("workflow.specification.tasks", "must be a non-empty list")
        files = {}
        for i, f in enumerate(spec.get("files", [])):
            if "id" not in f:
                ctx.fail(f"workflow.specification.files[{i}].id", "missing")
            files[f["id"]] = _num(ctx, f"workflow.specification.files[{i}].sizeInBytes", f.get("sizeInBytes", 0))
        runtimes = {t.get("id"): t.get("runtimeInSeconds", 0.0) for t in wf.get("execution", {}).get("tasks", [])}
        base = "workflow.specification.tasks"

        def task_io(i, t):
            key = t.get("id", t.get("name"))
            ins, outs = [], []
            for k, dst in (("inputFiles", ins), ("outputFiles", outs)):
                for fid in t.get(k, []):
                    if fid not in files:
                        ctx.fail(f"{base}[{i}].{k}", f"unknown file id {fid!r}")
                    dst.append((fid, files[fid]))
            return key, ins, outs, runtimes.get(key, 0.0)
    else:  # schema 1.4 and earlier
        tasks = wf.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            ctx.fail("workflow.tasks", "must be a non-empty list")
        base = "workflow.tasks"

        def task_io(i, t):
            ins, outs = [], []
            for j, f in enumerate(t.get("files", [])):
                size = _num(ctx, f"{base}[{i}].files[{j}].size", f.get("size", f.get("sizeInBytes", 0)))
                (ins if f.get("link") == "input" else outs).append((f.get("name", j), size))
            # up to 1.4, parents/children name tasks by `name` (ids may differ)
            return t.get("name", t.get("id")), ins, outs, t.get("runtimeInSeconds", t.get("runtime", 0.0))

    rows, produced = [], {}
    for i, t in enumerate(tasks):
        if not isinstance(t, dict):
            ctx.fail(f"{base}[{i}]", "must be an object")
        key, ins, outs, runtime = task_io(i, t)
        if key is None:
            ctx.fail(f"{base}[{i}].name", "missing (tasks need a name or id)")
        _num(ctx, f"{base}[{i}].runtime", runtime or 0.0)
        for fid, _ in outs:
            produced[fid] = key
        rows.append(dict(id=key, ins=ins, outs=outs, runtime=float(runtime or 0.0),
                         parents=list(t.get("parents", []))))
    # children lists also define edges
    by_id = {r["id"]: r for r in rows}
    for i, t in enumerate(tasks):
        for ch in t.get("children", []):
            if ch not in by_id:
                ctx.fail(f"{base}[{i}].children", f"unknown task {ch!r}")
            row = by_id[ch]
            if rows[i]["id"] not in row["parents"]:
                row["parents"].append(rows[i]["id"])
    bpt = mapping.bytes_per_token
    out_rows = []
    for r in rows:
        own_in = sum(size for fid, size in r["ins"] if produced.get(fid) not in r["parents"])
        out_b = sum(size for _, size in r["outs"])
        n_par = len(r["parents"])
        role = mapping.planner_model if (n_par == 0 or n_par >= 2) else mapping.worker_model
        out_rows.append(dict(
            id=r["id"], model=list(model_names).index(role),
            input=int(np.clip(round(own_in / bpt), mapping.input_min, mapping.input_max)),
            expected=int(np.clip(round(out_b / bpt), mapping.output_min, mapping.output_max)),
            output=None, delay=float(np.float32(r["runtime"] * mapping.runtime_to_tool_delay)),
            parents=r["parents"],
        ))
    name = data.get("name") or os.path.splitext(os.path.basename(ctx.path))[0]
    rng = np.random.default_rng(seed)
    return [_finish(ctx, "workflow", str(name), mapping.prefix_tokens, out_rows, model_names, max_tasks, sigma, rng)]


def load_workflows(paths, model_names, max_tasks=32, sigma=0.5, seed=0) -> list[WorkflowSpec]:
    """Load one or more files, telling the formats apart by their contents."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    specs = []
    for k, p in enumerate(paths):
        data, ctx = _read_json(p)
        if isinstance(data, dict) and ("workflow" in data or "schemaVersion" in data):
            specs += load_wfformat(p, model_names, max_tasks, sigma, seed + k)
        else:
            specs += load_own_json(p, model_names, max_tasks, sigma, seed + k)
    return specs


def specs_to_json(specs: list[WorkflowSpec], model_names) -> dict:
    """The own-format document for a list of workflows (what a trace's `workflows` holds, minus arrivals)."""
    return {"format": "jaxsched-workflows", "version": 1, "workflows": [
        {"app": w.app, "prefix_tokens": w.prefix_tokens, "tasks": [
            {"id": c, "model": model_names[w.models[c]], "input_tokens": w.input_tokens[c],
             "expected_output_tokens": w.expected_output_tokens[c], "output_tokens": w.output_tokens[c],
             "tool_delay": w.tool_delay[c], "parents": list(w.parents[c])} for c in range(w.n_tasks)]}
        for w in specs]}
