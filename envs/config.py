"""EnvConfig: every number of the world in one validated, hashable dataclass.

`make_params(config)` turns it into `EnvParams` (device arrays plus static
shapes). Invalid settings raise `ValueError` naming the field, at
construction, before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from envs import bitset, catalog
from envs import templates as tpl
from envs.residency import MAX_MODELS
from envs.types import BankArrays, EnvParams, pack_bank
from envs.workload import Bank, generate_bank

# The largest workflow a config may allow. Parent sets are bitsets of ceil(T / 32) words, so any
# size works; this bound keeps a window of W slots x T tasks per env within reason.
MAX_TASKS = 1024
INITIAL_MODEL_DRAWS = ("demand", "uniform")

RoleMap = tuple[tuple[str, str], ...]  # (role, model name) for every role of envs.templates.ROLES
# One role map per app variant: app `v` of every template takes map `v mod len`. Two model families by
# default, a large one (the 70B-fp8 judges) and a small one, so the workload mixes models that share a
# server (the 3B with everything; 8B and 14B on H100/A100) with ones that fill it (32B, 70B-fp8), and
# residency makes real choices (the spec's realism check; docs/environment.md has the measurement).
DEFAULT_ROLE_MODELS: tuple[RoleMap, ...] = (
    (("worker", "8B"), ("agent", "14B"), ("planner", "32B"), ("judge", "70B-fp8"), ("light", "3B")),
    (("worker", "3B"), ("agent", "14B"), ("planner", "14B"), ("judge", "32B"), ("light", "3B")),
)


def _is_one_map(role_models) -> bool:
    """A single map ((role, model), ...) rather than a tuple of maps."""
    return len(role_models) > 0 and all(isinstance(x, (tuple, list)) and len(x) == 2 and isinstance(x[0], str)
                                        for x in role_models)


@dataclass(frozen=True)
class EnvConfig:
    n_servers: int = 16
    max_servers: int | None = None  # pad to this many (default: n_servers)
    gpu_weights: tuple[float, ...] = catalog.DEFAULT_GPU_WEIGHTS
    gpu_types: tuple[str, ...] | None = None  # a fixed cluster instead of sampling
    gpus: tuple[catalog.GpuSpec, ...] = catalog.DEFAULT_GPUS
    models: tuple[catalog.ModelSpec, ...] = catalog.DEFAULT_MODELS
    # one role -> model map per app variant (a single map serves every app)
    role_models: tuple[RoleMap, ...] | RoleMap = DEFAULT_ROLE_MODELS
    max_tasks: int = 16  # the largest workflow allowed
    # static task slots of every array (default: the workload's largest possible workflow, which
    # is below max_tasks for the default templates: 12), so no work is spent on slots no workflow fills
    task_slots: int | None = None
    window: int | None = None  # workflow slots (default: max(8, 2 * max_servers))
    workflows_per_server: float = 4.0  # episode length E = round(this * n_servers)
    n_workflows: int | None = None  # or set E directly
    max_workflows: int | None = None  # static bound on E (default: E at max_servers)
    rho: float = 0.7
    # the model each server starts with, among those that fit it: "demand" weighs each by its share of the
    # workload's tasks (a model no task uses is never preloaded), "uniform" draws any fitting one (spec v1)
    initial_models: str = "demand"
    # chain, fan_out, self_consistency, retrieve_generate, debate, layered (see docs/environment.md)
    template_weights: tuple[float, ...] = (0.5, 1.5, 2.0, 0.75, 2.0, 0.75)
    apps_per_template: int = 2
    bank_size: int = 4096
    workload_seed: int = 0
    output_sigma: float = 0.5
    net_latency_s: float = catalog.NET_LATENCY_S
    task_overhead_s: float = catalog.TASK_OVERHEAD_S
    mem_headroom: float = catalog.MEM_HEADROOM
    prefix_cache_slots: int = catalog.PREFIX_CACHE_SLOTS
    queue_cap: int = 8
    reward_scale: float = 100.0
    arrival_chunk: int = 8
    max_edges: int | None = None  # edge capacity of the DAG view (default: the bank's most edges, rounded up to 16s)
    bank: Bank | None = field(default=None, compare=False, hash=False)  # workflows from files

    def replace(self, **kw) -> EnvConfig:
        return dataclasses.replace(self, **kw)

    # ---- derived ----
    @property
    def padded_servers(self) -> int:
        return self.max_servers if self.max_servers is not None else self.n_servers

    @property
    def padded_tasks(self) -> int:
        """T: the task axis of the bank, the state and the observation."""
        if self.task_slots is not None:
            return self.task_slots
        if self.bank is not None:
            return self.bank.largest
        return max(t.max_tasks for t, w in zip(tpl.TEMPLATES, self.template_weights) if w > 0)

    def edge_capacity(self, n_edges: np.ndarray) -> int:
        """E: the DAG view's edge slots: `max_edges`, else the most edges a workflow of this workload
        can have (the templates' bound, or the loaded bank's most), rounded up to a multiple of 8.
        Independent of the bank's seed, so training and held-out banks share one compiled shape."""
        most = int(n_edges.max(initial=0))
        if self.max_edges is not None:
            if self.max_edges < most:
                raise ValueError(f"max_edges: {self.max_edges} is below the {most} edges of the largest workflow")
            return int(self.max_edges)
        if self.bank is None:
            most = max(t.max_edges for t, w in zip(tpl.TEMPLATES, self.template_weights) if w > 0)
        return max(8, -(-most // 8) * 8)

    @property
    def episode_workflows(self) -> int:
        if self.n_workflows is not None:
            return self.n_workflows
        return max(1, int(round(self.workflows_per_server * self.n_servers)))

    @property
    def workflow_bound(self) -> int:
        if self.max_workflows is not None:
            return self.max_workflows
        if self.n_workflows is not None:
            return self.n_workflows
        return max(1, int(round(self.workflows_per_server * self.padded_servers)))

    @property
    def window_slots(self) -> int:
        """Slots in use at n_servers (the static capacity is `window_capacity`)."""
        return self.window if self.window is not None else max(8, 2 * self.n_servers)

    @property
    def window_capacity(self) -> int:
        return self.window if self.window is not None else max(8, 2 * self.padded_servers)

    @property
    def role_maps(self) -> tuple[tuple[str, dict[str, str]], ...]:
        """(field name for errors, {role: model name}) per map; app variant v uses map v mod len."""
        if _is_one_map(self.role_models):
            return (("role_models", dict(self.role_models)),)
        return tuple((f"role_models[{i}]", dict(m)) for i, m in enumerate(self.role_models))

    def model_index(self, name: str, field_name: str) -> int:
        names = [m.name for m in self.models]
        if name not in names:
            raise ValueError(f"{field_name}: unknown model {name!r} (catalog has {names})")
        return names.index(name)

    def gpu_index(self, name: str, field_name: str) -> int:
        names = [g.name for g in self.gpus]
        if name not in names:
            raise ValueError(f"{field_name}: unknown GPU {name!r} (catalog has {names})")
        return names.index(name)

    def validate(self) -> None:
        def need(cond, fld, msg):
            if not cond:
                raise ValueError(f"{fld}: {msg}")

        need(isinstance(self.n_servers, numbers.Integral) and not isinstance(self.n_servers, bool) and self.n_servers >= 1,
             "n_servers", f"must be an integer >= 1, got {self.n_servers!r}")
        need(self.workflows_per_server > 0, "workflows_per_server", f"must be > 0, got {self.workflows_per_server}")
        need(1 <= len(self.models) <= MAX_MODELS, "models",
             f"the catalog may hold 1 to {MAX_MODELS} models (the state keeps one bit per model), got {len(self.models)}")
        for fld, names in (("gpus", [g.name for g in self.gpus]), ("models", [m.name for m in self.models])):
            need(len(set(names)) == len(names), fld, f"names must be unique, got {names}")
        need(self.padded_servers >= self.n_servers, "max_servers", f"{self.max_servers} is below n_servers={self.n_servers}")
        need(isinstance(self.max_tasks, numbers.Integral) and 1 <= self.max_tasks <= MAX_TASKS, "max_tasks",
             f"must be an integer in 1..{MAX_TASKS}, got {self.max_tasks!r}")
        need(self.rho > 0 and np.isfinite(self.rho), "rho", f"must be > 0, got {self.rho}")
        need(self.initial_models in INITIAL_MODEL_DRAWS, "initial_models",
             f"must be one of {', '.join(INITIAL_MODEL_DRAWS)}, got {self.initial_models!r}")
        need(self.window_slots >= 1, "window", f"must be >= 1, got {self.window}")
        need(self.episode_workflows >= 1, "n_workflows", f"must be >= 1, got {self.episode_workflows}")
        need(self.workflow_bound >= self.episode_workflows, "max_workflows",
             f"{self.workflow_bound} is below the episode's {self.episode_workflows} workflows")
        need(self.bank_size >= 1, "bank_size", f"must be >= 1, got {self.bank_size}")
        need(self.output_sigma >= 0, "output_sigma", f"must be >= 0, got {self.output_sigma}")
        need(self.net_latency_s >= 0, "net_latency_s", f"must be >= 0, got {self.net_latency_s}")
        need(self.task_overhead_s >= 0, "task_overhead_s", f"must be >= 0, got {self.task_overhead_s}")
        need(0 < self.mem_headroom <= 1, "mem_headroom", f"must be in (0, 1], got {self.mem_headroom}")
        need(self.prefix_cache_slots >= 1, "prefix_cache_slots", f"must be >= 1, got {self.prefix_cache_slots}")
        need(self.queue_cap >= 1, "queue_cap", f"must be >= 1, got {self.queue_cap}")
        need(self.reward_scale > 0, "reward_scale", f"must be > 0, got {self.reward_scale}")
        need(self.arrival_chunk >= 1, "arrival_chunk", f"must be >= 1, got {self.arrival_chunk}")
        need(self.task_slots is None or (isinstance(self.task_slots, numbers.Integral) and self.task_slots >= 1),
             "task_slots", f"must be an integer >= 1, got {self.task_slots!r}")
        if self.task_slots is not None:
            need(self.task_slots >= (self.bank.largest if self.bank is not None else 1), "task_slots",
                 f"{self.task_slots} is below the loaded workflows' {self.bank.largest if self.bank else 0} tasks")
            if self.bank is None:
                need(all(self.task_slots >= t.max_tasks for t, w in zip(tpl.TEMPLATES, self.template_weights) if w > 0),
                     "task_slots", f"{self.task_slots} is below a template's largest workflow")
        need(self.max_edges is None or (isinstance(self.max_edges, numbers.Integral) and self.max_edges >= 1),
             "max_edges", f"must be an integer >= 1, got {self.max_edges!r}")
        for i, g in enumerate(self.gpus):
            for f in ("mem_gb", "prefill_tps_8b", "decode_tps_8b", "load_gbps"):
                need(getattr(g, f) > 0, f"gpus[{i}].{f}", f"must be > 0, got {getattr(g, f)}")
        for i, m in enumerate(self.models):
            for f in ("params_b", "mem_gb"):
                need(getattr(m, f) > 0, f"models[{i}].{f}", f"must be > 0, got {getattr(m, f)}")
        need(len(self.gpu_weights) == len(self.gpus), "gpu_weights", f"needs {len(self.gpus)} entries, got {len(self.gpu_weights)}")
        need(all(w >= 0 for w in self.gpu_weights) and sum(self.gpu_weights) > 0, "gpu_weights", "must be >= 0 with a positive sum")
        need(len(self.template_weights) == len(tpl.TEMPLATES), "template_weights",
             f"needs {len(tpl.TEMPLATES)} entries ({', '.join(tpl.TEMPLATE_NAMES)}), got {len(self.template_weights)}")
        need(all(w >= 0 for w in self.template_weights) and sum(self.template_weights) > 0, "template_weights", "must be >= 0 with a positive sum")
        need(self.apps_per_template >= 1, "apps_per_template", f"must be >= 1, got {self.apps_per_template}")
        need(isinstance(self.role_models, (tuple, list)) and len(self.role_models) > 0, "role_models",
             "must be a map ((role, model), ...) or a non-empty tuple of such maps")
        for fld, roles in self.role_maps:
            for r in tpl.ROLES:
                need(r in roles, fld, f"missing role {r!r}")
                self.model_index(roles[r], f"{fld}[{r!r}]")
        if self.bank is None:
            for t, w in zip(tpl.TEMPLATES, self.template_weights):
                if w > 0:
                    need(self.max_tasks >= t.max_tasks, "max_tasks",
                         f"{self.max_tasks} is below template {t.name!r}, which has up to {t.max_tasks} tasks")
        else:
            need(self.bank.largest <= self.max_tasks, "max_tasks",
                 f"{self.max_tasks} is below the loaded workflows' {self.bank.largest} tasks")
        if self.gpu_types is not None:
            need(len(self.gpu_types) == self.n_servers, "gpu_types", f"lists {len(self.gpu_types)} GPUs for n_servers={self.n_servers}")
            for i, g in enumerate(self.gpu_types):
                self.gpu_index(g, f"gpu_types[{i}]")
        # Every model the workload uses must fit some server of every cluster it can draw.
        used = self.used_models()
        fit = self.fits_table()
        if self.gpu_types is not None:
            types = [self.gpu_index(g, "gpu_types") for g in self.gpu_types]
            for m in used:
                need(any(fit[g, m] for g in types), "gpu_types",
                     f"model {self.models[m].name!r} fits no server of this cluster")
        else:
            ok = [g for g in range(len(self.gpus)) if self.gpu_weights[g] > 0 and all(fit[g, m] for m in used)]
            need(ok, "gpu_weights", "no GPU type with positive weight fits every workload model "
                 f"({', '.join(self.models[m].name for m in used)}), so a cluster could fail to run them")

    def used_models(self) -> list[int]:
        if self.bank is not None:
            used = set()
            for b in range(self.bank.size):
                used.update(int(x) for x in self.bank.model[b, : self.bank.n_tasks[b]])
            return sorted(used)
        return sorted({self.model_index(name, fld) for fld, roles in self.role_maps for name in roles.values()})

    def fits_table(self) -> np.ndarray:
        return np.array([[m.mem_gb <= self.mem_headroom * g.mem_gb for m in self.models] for g in self.gpus])

    def make_bank(self) -> Bank:
        if self.bank is not None:
            return self.bank
        maps = [{r: self.model_index(n, fld) for r, n in roles.items()} for fld, roles in self.role_maps]
        return generate_bank(self.bank_size, self.padded_tasks, self.template_weights, self.apps_per_template,
                             maps, self.output_sigma, self.workload_seed)


def derive_bank_arrays(bank: Bank, config: EnvConfig) -> dict[str, np.ndarray]:
    """Per-task structure and critical-path figures the features and metrics need."""
    b, t = bank.model.shape
    par = bitset.np_flags(bank.parents, t)  # [B,c,p]
    n_children = par.sum(axis=1).astype(np.int32)  # count over children c of parent p
    depth = np.zeros((b, t), np.int32)
    for c in range(t):
        d = np.where(par[:, c, :], depth + 1, 0).max(axis=1) if c else np.zeros(b, np.int32)
        depth[:, c] = d
    fast_prefill = max(g.prefill_tps_8b for g in config.gpus)
    fast_decode = max(g.decode_tps_8b for g in config.gpus)
    params_b = np.array([m.params_b for m in config.models])[bank.model]

    def path(out):
        dur = bank.tool_delay + (bank.input_tokens / (fast_prefill * 8 / params_b)
                                 + out / (fast_decode * 8 / params_b) + config.task_overhead_s)
        dur = np.where(np.arange(t)[None, :] < bank.n_tasks[:, None], dur, 0.0)
        rem = np.zeros((b, t))
        for c in range(t - 1, -1, -1):
            child = np.where(par[:, :, c], rem, 0.0).max(axis=1)  # over children of c
            rem[:, c] = dur[:, c] + child
        return rem

    rem_exp = path(bank.expected_output)
    rem_true = path(bank.output)
    is_root = ~np.any(bank.parents, axis=-1) & (np.arange(t)[None, :] < bank.n_tasks[:, None])
    lower = np.where(is_root, rem_true, 0.0).max(axis=1)
    root_delay = np.where(is_root, bank.tool_delay, np.inf)
    return dict(n_children=n_children, depth=depth, path_remaining=rem_exp.astype(np.float32),
                lower_bound=lower.astype(np.float32), root_delay=root_delay.min(axis=1).astype(np.float32),
                root_task=root_delay.argmin(axis=1).astype(np.int32))


def edge_lists(parents: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Parent bitsets [B, T, W] -> (edges [B, E_real_max, 2] (parent, child) in (parent, child) order,
    padded with (t, t); n_edges [B])."""
    b = parents.shape[0]
    par = bitset.np_flags(parents, t)  # [B,c,p]
    n_edges = par.sum(axis=(1, 2)).astype(np.int32)
    cap = max(int(n_edges.max(initial=0)), 1)
    edges = np.full((b, cap, 2), t, np.int32)
    for i in range(b):
        c, p = np.nonzero(par[i])
        order = np.lexsort((c, p))  # by parent, then child
        edges[i, : len(order), 0] = p[order]
        edges[i, : len(order), 1] = c[order]
    return edges, n_edges


def work_per_workflow(bank: Bank, config: EnvConfig) -> np.ndarray:
    """Mean busy seconds one workflow needs on each GPU type, cold: every prefix
    prefilled, every parent remote, no model load. Sets the arrival rate."""
    t = bank.max_tasks
    valid = np.arange(t)[None, :] < bank.n_tasks[:, None]
    par = bitset.np_flags(bank.parents, t)
    parent_tokens = (par * bank.expected_output[:, None, :]).sum(axis=2)
    prompt = bank.input_tokens + bank.prefix_tokens[:, None] + parent_tokens
    params_b = np.array([m.params_b for m in config.models])[bank.model]
    out = []
    for g in config.gpus:
        dur = prompt / (g.prefill_tps_8b * 8 / params_b) + bank.expected_output / (g.decode_tps_8b * 8 / params_b) + config.task_overhead_s
        out.append(float(np.where(valid, dur, 0.0).sum(axis=1).mean()))
    return np.array(out, np.float32)


def initial_model_weights(fit: np.ndarray, tasks_per_model: np.ndarray, draw: str) -> np.ndarray:
    """[G, M] weights of the model a server starts with. "demand": a fitting model's share of the
    bank's tasks (a GPU type that fits none of the used models falls back to uniform over what fits);
    "uniform": every fitting model alike."""
    fit = fit.astype(np.float64)
    if draw == "uniform":
        return fit
    w = fit * tasks_per_model[None, :].astype(np.float64)
    return np.where(w.sum(axis=1, keepdims=True) > 0, w, fit)


def make_params(config: EnvConfig | None = None) -> EnvParams:
    """Validate `config`, build (or take) the workflow bank and return EnvParams."""
    config = config or EnvConfig()
    config.validate()
    bank = config.make_bank()
    t = config.padded_tasks
    if bank.max_tasks != t:  # loaded workflows: pad (or trim empty columns) to T
        bank = _fit_bank(bank, t)
    derived = derive_bank_arrays(bank, config)
    edges, n_edges = edge_lists(bank.parents, t)
    cap = config.edge_capacity(n_edges)
    edges = np.concatenate([edges, np.full((edges.shape[0], cap - edges.shape[1], 2), t, np.int32)], axis=1)
    fit = config.fits_table()
    used = config.used_models()
    g_w = np.asarray(config.gpu_weights, np.float32)
    anchor = np.array([g_w[g] if all(fit[g, m] for m in used) else 0.0 for g in range(len(config.gpus))], np.float32)
    fixed = np.full(config.padded_servers, -1, np.int32)
    if config.gpu_types is not None:
        fixed[: config.n_servers] = [config.gpu_index(g, "gpu_types") for g in config.gpu_types]
    params_b = np.array([m.params_b for m in config.models], np.float32)
    f32 = lambda x: jnp.asarray(np.asarray(x, np.float32))  # noqa: E731
    e = config.workflow_bound
    valid = np.arange(t)[None, :] < bank.n_tasks[:, None]
    model_count = (valid[:, :, None] & (bank.model[:, :, None] == np.arange(len(config.models)))).sum(axis=1)
    app_prefix = np.zeros(len(bank.app_names), np.float32)
    app_prefix[bank.app] = bank.prefix_tokens  # one system prompt per app (the bank checks it)
    return EnvParams(
        max_servers=config.padded_servers, max_tasks=t, window=config.window_capacity,
        max_workflows=e, n_gpu_types=len(config.gpus), n_models=len(config.models),
        n_apps=len(bank.app_names), cache_slots=config.prefix_cache_slots, queue_cap=config.queue_cap,
        top_k=int(np.floor(0.05 * e)) + 2, arrival_chunk=config.arrival_chunk,
        n_servers=jnp.int32(config.n_servers), gpu_weights=f32(g_w / g_w.sum()),
        anchor_weights=f32(anchor / anchor.sum()), fixed_gpus=jnp.asarray(fixed),
        gpu_mem=f32([g.mem_gb for g in config.gpus]), model_mem=f32([m.mem_gb for m in config.models]),
        fits=jnp.asarray(fit), init_weights=f32(initial_model_weights(fit, model_count.sum(axis=0), config.initial_models)),
        prefill_rate=f32([[g.prefill_tps_8b * 8 / p for p in params_b] for g in config.gpus]),
        decode_rate=f32([[g.decode_tps_8b * 8 / p for p in params_b] for g in config.gpus]),
        load_time=f32([[m.mem_gb / g.load_gbps for m in config.models] for g in config.gpus]),
        work_per_workflow=f32(work_per_workflow(bank, config)),
        n_workflows=jnp.int32(-1 if config.n_workflows is None else config.n_workflows),
        workflows_per_server=f32(config.workflows_per_server),
        slots=jnp.int32(-1 if config.window is None else config.window), rho=f32(config.rho),
        bank=pack_bank(BankArrays(
            n_tasks=jnp.asarray(bank.n_tasks), app=jnp.asarray(bank.app), prefix_tokens=f32(bank.prefix_tokens),
            model=jnp.asarray(bank.model), input_tokens=f32(bank.input_tokens),
            expected_output=f32(bank.expected_output), output=f32(bank.output), tool_delay=f32(bank.tool_delay),
            parents=jnp.asarray(bank.parents), n_children=jnp.asarray(derived["n_children"]),
            depth=jnp.asarray(derived["depth"]), path_remaining=f32(derived["path_remaining"]),
            lower_bound=f32(derived["lower_bound"]), root_delay=f32(derived["root_delay"]),
            root_task=jnp.asarray(derived["root_task"]), edges=jnp.asarray(edges), n_edges=jnp.asarray(n_edges),
            model_count=jnp.asarray(model_count.astype(np.int32)), app_prefix=f32(app_prefix),
        )),
        net_latency_s=f32(config.net_latency_s), task_overhead_s=f32(config.task_overhead_s),
        mem_headroom=f32(config.mem_headroom), reward_scale=f32(config.reward_scale),
    )


def _fit_bank(bank: Bank, t: int) -> Bank:
    """The bank with its task axis padded with empty columns, or cut to, `t` (>= its largest workflow)."""
    pad = t - bank.max_tasks

    def p(a):  # the task axis (axis 1) of [B, T] and [B, T, W] arrays
        return np.pad(a, [(0, 0), (0, pad)] + [(0, 0)] * (a.ndim - 2)) if pad > 0 else a[:, :t]

    return dataclasses.replace(bank, model=p(bank.model), input_tokens=p(bank.input_tokens),
                               expected_output=p(bank.expected_output), output=p(bank.output),
                               tool_delay=p(bank.tool_delay),
                               parents=bitset.np_resize(p(bank.parents), bitset.n_words(t)))
