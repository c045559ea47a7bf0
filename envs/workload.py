"""The workflow bank: every workflow an episode can draw, as fixed-shape arrays.

Drawing workflows inside the jitted step would cost more than the step itself,
so workflows are drawn once, with NumPy, into a bank of `bank_size` entries
(or loaded from files, see `envs.workflow_io`); each episode then draws its
workflows from the bank by index. The bank is data shared by the JAX env and
the reference simulator. Use a different `workload_seed` for held-out
evaluation workflows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from envs import bitset
from envs import templates as tpl


@dataclass(frozen=True)
class WorkflowSpec:
    """One workflow, before padding. Tokens are integers; delays in seconds."""

    app: str
    prefix_tokens: int
    models: tuple[int, ...]  # index into the model catalog, per task
    input_tokens: tuple[int, ...]
    expected_output_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]  # the hidden true lengths
    tool_delay: tuple[float, ...]
    parents: tuple[tuple[int, ...], ...]
    template: str = "file"

    @property
    def n_tasks(self) -> int:
        return len(self.models)


@dataclass
class Bank:
    """Padded NumPy arrays, one row per workflow (B) and one column per task (T)."""

    n_tasks: np.ndarray  # [B] int32
    app: np.ndarray  # [B] int32, index into app_names
    template: np.ndarray  # [B] int32, index into template_names (-1: from a file)
    prefix_tokens: np.ndarray  # [B] float32
    model: np.ndarray  # [B,T] int32
    input_tokens: np.ndarray  # [B,T] float32
    expected_output: np.ndarray  # [B,T] float32
    output: np.ndarray  # [B,T] float32 (hidden from the policy)
    tool_delay: np.ndarray  # [B,T] float32
    parents: np.ndarray  # [B,T,W] uint32 bitsets (envs.bitset): bit p set when task p is a parent
    app_names: tuple[str, ...] = field(default_factory=tuple)
    template_names: tuple[str, ...] = tpl.TEMPLATE_NAMES

    @property
    def size(self) -> int:
        return int(self.n_tasks.shape[0])

    @property
    def max_tasks(self) -> int:
        """Columns of the task arrays (the padding width)."""
        return int(self.model.shape[1])

    @property
    def largest(self) -> int:
        """Tasks of the largest workflow."""
        return int(self.n_tasks.max(initial=1))

    def workflow(self, b: int, model_names=None) -> WorkflowSpec:
        n = int(self.n_tasks[b])
        pm = bitset.np_flags(self.parents[b], self.max_tasks)  # [c, p]
        return WorkflowSpec(
            app=self.app_names[int(self.app[b])],
            prefix_tokens=int(self.prefix_tokens[b]),
            models=tuple(int(x) for x in self.model[b, :n]),
            input_tokens=tuple(int(x) for x in self.input_tokens[b, :n]),
            expected_output_tokens=tuple(int(x) for x in self.expected_output[b, :n]),
            output_tokens=tuple(int(x) for x in self.output[b, :n]),
            tool_delay=tuple(float(x) for x in self.tool_delay[b, :n]),
            parents=tuple(tuple(int(p) for p in np.flatnonzero(pm[c, :n])) for c in range(n)),
            template=(self.template_names[int(self.template[b])] if self.template[b] >= 0 else "file"),
        )


def true_output_tokens(expected: np.ndarray, z: np.ndarray, sigma: float) -> np.ndarray:
    """Mean-preserving log-normal noise on the expected length, at least one token."""
    return np.maximum(1.0, np.round(expected * np.exp(sigma * z - 0.5 * sigma**2)))


def bank_from_specs(specs: list[WorkflowSpec], max_tasks: int) -> Bank:
    """Pad a list of workflows into a bank. Apps are numbered in order of first use."""
    b = len(specs)
    t = max_tasks
    app_names: list[str] = []
    app_prefix: dict[str, int] = {}
    arr = dict(
        n_tasks=np.zeros(b, np.int32), app=np.zeros(b, np.int32), template=np.full(b, -1, np.int32),
        prefix_tokens=np.zeros(b, np.float32), model=np.zeros((b, t), np.int32),
        input_tokens=np.zeros((b, t), np.float32), expected_output=np.zeros((b, t), np.float32),
        output=np.zeros((b, t), np.float32), tool_delay=np.zeros((b, t), np.float32),
    )
    parent_flags = np.zeros((b, t, t), bool)  # [B, c, p]
    for i, w in enumerate(specs):
        n = w.n_tasks
        if w.app not in app_prefix:
            app_prefix[w.app] = w.prefix_tokens
            app_names.append(w.app)
        elif app_prefix[w.app] != w.prefix_tokens:  # one app, one system prompt: a cache hit must mean the same tokens
            raise ValueError(f"workflows[{i}].prefix_tokens: app {w.app!r} has {w.prefix_tokens} prefix tokens here "
                             f"but {app_prefix[w.app]} in an earlier workflow")
        arr["n_tasks"][i] = n
        arr["app"][i] = app_names.index(w.app)
        if w.template in tpl.TEMPLATE_NAMES:
            arr["template"][i] = tpl.TEMPLATE_NAMES.index(w.template)
        arr["prefix_tokens"][i] = w.prefix_tokens
        arr["model"][i, :n] = w.models
        arr["input_tokens"][i, :n] = w.input_tokens
        arr["expected_output"][i, :n] = w.expected_output_tokens
        arr["output"][i, :n] = w.output_tokens
        arr["tool_delay"][i, :n] = w.tool_delay
        for c, ps in enumerate(w.parents):
            parent_flags[i, c, list(ps)] = True
    return Bank(**arr, parents=bitset.np_from_flags(parent_flags), app_names=tuple(app_names))


def generate_bank(
    bank_size: int,
    max_tasks: int,
    template_weights: tuple[float, ...],
    apps_per_template: int,
    role_models: list[dict[str, int]],
    output_sigma: float,
    seed: int,
) -> Bank:
    """Draw `bank_size` workflows from the templates with a seeded NumPy generator.

    `role_models` is one {role: model index} map per app variant (app `v` of a template uses map
    `v mod len`)."""
    rng = np.random.default_rng(seed)
    w = np.asarray(template_weights, np.float64)
    w = w / w.sum()
    # Each template is served by `apps_per_template` apps (tenants); each app has a fixed prefix length.
    prefixes = {}
    for t in tpl.TEMPLATES:
        for v in range(apps_per_template):
            prefixes[f"{t.name}/{v}"] = _round_to(rng.integers(t.prefix_range[0], t.prefix_range[1] + 1), 50)
    specs = []
    for _ in range(bank_size):
        k = int(rng.choice(len(tpl.TEMPLATES), p=w))
        variant = int(rng.integers(apps_per_template))
        app = f"{tpl.TEMPLATES[k].name}/{variant}"
        roles = role_models[variant % len(role_models)]
        drafts = tpl.TEMPLATE_FNS[k](rng)
        expected = np.array([d.expected_output_tokens for d in drafts], np.float64)
        out = true_output_tokens(expected, rng.standard_normal(len(drafts)), output_sigma)
        specs.append(WorkflowSpec(
            app=app, prefix_tokens=prefixes[app],
            models=tuple(roles[d.role] for d in drafts),
            input_tokens=tuple(d.input_tokens for d in drafts),
            expected_output_tokens=tuple(d.expected_output_tokens for d in drafts),
            output_tokens=tuple(int(x) for x in out),
            tool_delay=tuple(d.tool_delay for d in drafts),
            parents=tuple(d.parents for d in drafts),
            template=tpl.TEMPLATES[k].name,
        ))
    bank = bank_from_specs(specs, max_tasks)
    # Keep every app in the name table even if no workflow drew it, so app ids are stable.
    names = list(bank.app_names) + sorted(set(prefixes) - set(bank.app_names))
    bank.app_names = tuple(names)
    return bank


def _round_to(x, step: int) -> int:
    return int(max(step, step * round(int(x) / step)))
