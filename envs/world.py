"""The world a command runs in, from the command line: catalog files, GPU lists and mixes, workflow files.

Shared by `envs.trace`, `train.evaluate` and `train.ppo`, so every command takes the same
options and gives the same one-line errors (naming the option, or the file and field).

A catalog file adds GPU types and models to the built-in catalogs (an entry with a built-in
name replaces it); every field is checked:

    {"format": "jaxsched-catalog", "version": 1,
     "gpus":   [{"name": "MI300X", "mem_gb": 192, "prefill_tps_8b": 14000, "decode_tps_8b": 220,
                 "load_gbps": 5.5, "weight": 0.1}],
     "models": [{"name": "405B-fp8", "params_b": 405, "mem_gb": 410}]}

`weight` (optional, default 0: never sampled unless a mix or a list names it) is the GPU's share
when clusters are sampled. Rates are for an 8B model serving one request (`envs/catalog.py`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

from envs import catalog
from envs.config import EnvConfig

CATALOG_FORMAT = "jaxsched-catalog"
GPU_FIELDS = ("name", "mem_gb", "prefill_tps_8b", "decode_tps_8b", "load_gbps")
MODEL_FIELDS = ("name", "params_b", "mem_gb")


@dataclass(frozen=True)
class Catalog:
    gpus: tuple[catalog.GpuSpec, ...] = catalog.DEFAULT_GPUS
    models: tuple[catalog.ModelSpec, ...] = catalog.DEFAULT_MODELS
    gpu_weights: tuple[float, ...] = catalog.DEFAULT_GPU_WEIGHTS

    @property
    def gpu_names(self) -> list[str]:
        return [g.name for g in self.gpus]

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]


def load_catalog(path) -> Catalog:
    """The built-in catalogs extended (or overridden by name) by the file at `path`."""
    path = os.fspath(path)

    def fail(where, msg):
        raise ValueError(f"{path}: {where}: {msg}")

    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(data, dict) or data.get("format") != CATALOG_FORMAT:
        fail("format", f"must be {CATALOG_FORMAT!r}")
    if data.get("version") != 1:
        fail("version", f"this code reads version 1, got {data.get('version')!r}")
    extra = sorted(set(data) - {"format", "version", "gpus", "models"})
    if extra:
        fail(extra[0], "unknown field (allowed: format, version, gpus, models)")

    def entries(key, fields, optional=()):
        items = data.get(key, [])
        if not isinstance(items, list):
            fail(key, "must be a list")
        out, seen = [], set()
        for i, e in enumerate(items):
            where = f"{key}[{i}]"
            if not isinstance(e, dict):
                fail(where, "must be an object")
            for k in sorted(set(e) - set(fields) - set(optional)):
                fail(f"{where}.{k}", f"unknown field (allowed: {', '.join(fields + optional)})")
            for k in fields:
                if k not in e:
                    fail(f"{where}.{k}", "missing")
            if not isinstance(e["name"], str) or not e["name"]:
                fail(f"{where}.name", f"must be a non-empty string, got {e['name']!r}")
            if e["name"] in seen:
                fail(f"{where}.name", f"{e['name']!r} appears twice")
            seen.add(e["name"])
            for k in fields[1:] + tuple(k for k in optional if k in e):
                v = e[k]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    fail(f"{where}.{k}", f"must be a number, got {v!r}")
                if k == "weight" and v < 0 or k != "weight" and v <= 0:
                    fail(f"{where}.{k}", f"must be {'>= 0' if k == 'weight' else '> 0'}, got {v!r}")
            out.append(e)
        return out

    gpus, weights = list(catalog.DEFAULT_GPUS), list(catalog.DEFAULT_GPU_WEIGHTS)
    for e in entries("gpus", GPU_FIELDS, ("weight",)):
        spec = catalog.GpuSpec(*(e[k] if k == "name" else float(e[k]) for k in GPU_FIELDS))
        names = [g.name for g in gpus]
        if spec.name in names:
            i = names.index(spec.name)
            gpus[i] = spec
            weights[i] = float(e.get("weight", weights[i]))
        else:
            gpus.append(spec)
            weights.append(float(e.get("weight", 0.0)))
    models = list(catalog.DEFAULT_MODELS)
    for e in entries("models", MODEL_FIELDS):
        spec = catalog.ModelSpec(e["name"], float(e["params_b"]), float(e["mem_gb"]))
        names = [m.name for m in models]
        if spec.name in names:
            models[names.index(spec.name)] = spec
        else:
            models.append(spec)
    return Catalog(tuple(gpus), tuple(models), tuple(weights))


def parse_gpu_list(text: str, names, option: str = "--gpus") -> tuple[str, ...]:
    """"H100,H100,L4" -> ("H100", "H100", "L4"), every name in the catalog."""
    gpus = tuple(g.strip() for g in text.split(",") if g.strip())
    if not gpus:
        raise ValueError(f"{option}: empty list")
    for g in gpus:
        if g not in names:
            raise ValueError(f"{option}: unknown GPU {g!r} (catalog has {', '.join(names)})")
    return gpus


def parse_gpu_mix(text: str, names, option: str = "--gpu-mix") -> tuple[float, ...]:
    """"H100=2,L4=1" -> sampling weights over the catalog's GPU types (unnamed types 0)."""
    weights = dict.fromkeys(names, 0.0)
    for item in text.split(","):
        g, eq, w = (x.strip() for x in item.partition("="))
        if g not in names:
            raise ValueError(f"{option}: unknown GPU {g!r} (catalog has {', '.join(names)})")
        try:
            weights[g] = float(w) if eq else math.nan
        except ValueError:
            weights[g] = math.nan
        if not weights[g] >= 0 or math.isinf(weights[g]):
            raise ValueError(f"{option}: {item.strip()!r} must be NAME=WEIGHT with a weight >= 0")
    if sum(weights.values()) <= 0:
        raise ValueError(f"{option}: the weights sum to 0")
    return tuple(weights.values())


def build_world(base: EnvConfig | None = None, *, catalog_file=None, gpus=None, gpu_mix=None, workflows=(),
                max_tasks=None, seed: int = 0) -> EnvConfig:
    """`base` with a catalog file, a fixed GPU list ("H100,L4,..." or a sequence; sets n_servers),
    a GPU mix ("H100=2,L4=1") and workflow files (replacing the generated bank) applied.
    Raises ValueError naming the option (and the file and field): "--workflows: wf.json: ..."."""
    from envs.workflow_io import load_workflows
    from envs.workload import bank_from_specs

    base = base if base is not None else EnvConfig()
    kw = {}
    try:
        cat = load_catalog(catalog_file) if catalog_file else Catalog(base.gpus, base.models, base.gpu_weights)
    except ValueError as e:
        raise ValueError(f"--catalog: {e}") from None
    if catalog_file:
        kw.update(gpus=cat.gpus, models=cat.models, gpu_weights=cat.gpu_weights)
    if gpus:
        gpus = parse_gpu_list(gpus, cat.gpu_names) if isinstance(gpus, str) else tuple(gpus)
        kw.update(gpu_types=gpus, n_servers=len(gpus))
    if gpu_mix:
        kw["gpu_weights"] = parse_gpu_mix(gpu_mix, cat.gpu_names)
    if max_tasks is not None:
        kw["max_tasks"] = int(max_tasks)
    if workflows:
        t = kw.get("max_tasks", base.max_tasks)
        try:
            specs = load_workflows(list(workflows), cat.model_names, max_tasks=t, seed=seed)
        except ValueError as e:
            raise ValueError(f"--workflows: {e}") from None
        except OSError as e:
            raise ValueError(f"--workflows: cannot read {getattr(e, 'filename', '')}: {e.strerror}") from None
        kw["bank"] = bank_from_specs(specs, t)
    return base.replace(**kw)
