"""Agentic workflow templates, sampled into fixed-shape task arrays (NumPy).

A template draws one workflow: its DAG (parents always have lower indices, so
index order is a topological order), each task's role, own input tokens,
expected output tokens and tool delay. Roles map to models through
`EnvConfig.role_models` (planners and judges larger, workers smaller).
Each template is also an app: its workflows share the app's system prompt.

Templates are drawn once, into a bank (see `envs.workload`), with NumPy: the
bank is data that the JAX env and the reference simulator both read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROLES = ("worker", "agent", "planner", "judge", "light")  # light: routers, guards, query rewriting (a 3B model)


@dataclass
class TaskDraft:
    role: str
    input_tokens: int
    expected_output_tokens: int
    tool_delay: float
    parents: tuple[int, ...]


@dataclass(frozen=True)
class Template:
    name: str
    max_tasks: int  # the most tasks one draw can have
    max_edges: int  # the most parent -> child edges one draw can have
    prefix_range: tuple[int, int]  # app system-prompt tokens (drawn once per app)


def _u(rng: np.random.Generator, lo: float, hi: float) -> int:
    return int(rng.integers(int(lo), int(hi) + 1))


def _delay(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.float32(rng.uniform(lo, hi)))


def _guard(rng: np.random.Generator, answer: int, evidence: tuple[int, ...] = ()) -> TaskDraft:
    """A light guard (safety / grounding check) reads the final answer and the evidence the answer was
    written from (the answer's parents): the 3B call that ends most apps.

    It runs where the answer was written when the 3B fits beside that model, so the 3B is often the
    most recently used model there, and a later load evicts the big model but keeps the 3B. Reading
    the evidence makes it a small model prefilling many outputs of other tasks (the remote-parent
    cost the realism check asks for)."""
    return TaskDraft("light", _u(rng, 100, 300), _u(rng, 5, 30), 0.0, tuple(sorted({answer, *evidence})))


def chain(rng):
    """ReAct loop: think -> tool -> observe, repeated; each step reads the whole scratchpad so far."""
    n = _u(rng, 3, 8)
    tasks = []
    for i in range(n - 1):
        tasks.append(TaskDraft(
            role="agent",
            input_tokens=_u(rng, 150, 600) if i else _u(rng, 300, 1200),
            expected_output_tokens=_u(rng, 100, 400),
            tool_delay=_delay(rng, 0.3, 2.5) if i else 0.0,
            parents=tuple(range(i)),
        ))
    # a stronger model writes the final answer from the whole scratchpad; a light guard checks it
    tasks.append(TaskDraft("judge", _u(rng, 100, 300), _u(rng, 40, 150), 0.0, tuple(range(n - 1))))
    tasks.append(_guard(rng, n - 1, tasks[n - 1].parents))
    return tasks


def fan_out(rng):
    """LLMCompiler-style plan -> parallel workers (tool calls) -> joiner."""
    k = _u(rng, 3, 8)
    # a light router classifies the request, then the planner writes the plan
    tasks = [TaskDraft("light", _u(rng, 200, 800), _u(rng, 5, 20), 0.0, ()),
             TaskDraft("planner", _u(rng, 300, 1500), _u(rng, 80, 250), 0.0, (0,))]
    for _ in range(k):
        tasks.append(TaskDraft("worker", _u(rng, 200, 2500), _u(rng, 400, 1200),
                               _delay(rng, 0.2, 2.0), (1,)))
    # the joiner reads every worker's report: a large model prefilling many small-model outputs
    tasks.append(TaskDraft("judge", _u(rng, 100, 400), _u(rng, 40, 150), 0.0,
                           tuple(range(2, k + 2))))
    tasks.append(_guard(rng, k + 2, tasks[k + 2].parents))
    return tasks


def self_consistency(rng):
    """k independent samples; a verifier scores them all; an aggregator picks the answer from samples and scores."""
    k = _u(rng, 3, 8)
    prompt = _u(rng, 500, 2500)
    # each sample is a full reasoning chain
    tasks = [TaskDraft("worker", prompt, _u(rng, 500, 1200), 0.0, ()) for _ in range(k)]
    tasks.append(TaskDraft("planner", _u(rng, 50, 200), _u(rng, 30, 120), 0.0, tuple(range(k))))
    tasks.append(TaskDraft("judge", _u(rng, 50, 200), _u(rng, 20, 80), 0.0, tuple(range(k + 1))))
    tasks.append(_guard(rng, k + 1, tasks[k + 1].parents))
    return tasks


def retrieve_generate(rng):
    """Query rewrite -> retrieval tool -> rerank over the context -> answer -> verify against the passages."""
    tasks = [
        TaskDraft("light", _u(rng, 100, 400), _u(rng, 40, 120), 0.0, ()),  # query rewriting
        TaskDraft("worker", _u(rng, 3000, 7000), _u(rng, 300, 800), _delay(rng, 0.3, 1.5), (0,)),
        TaskDraft("judge", _u(rng, 2000, 5000), _u(rng, 50, 200), 0.0, (0, 1)),
        TaskDraft("planner", _u(rng, 100, 300), _u(rng, 20, 80), 0.0, (1, 2)),  # checks the answer against the passages
    ]
    tasks.append(_guard(rng, 3, tasks[3].parents))
    return tasks


def debate(rng):
    """a debaters (worker role) argue for r rounds, each reading the transcript so far; a judge reads all of it."""
    a, r = _u(rng, 2, 3), _u(rng, 2, 3)
    tasks = []
    for j in range(r):
        prev = tuple(range(j * a))
        for _ in range(a):
            tasks.append(TaskDraft("worker", _u(rng, 200, 800) if j == 0 else _u(rng, 50, 200),
                                   _u(rng, 500, 1200), 0.0, prev))
    tasks.append(TaskDraft("judge", _u(rng, 100, 300), _u(rng, 30, 100), 0.0, tuple(range(r * a))))
    tasks.append(_guard(rng, r * a, tasks[r * a].parents))
    return tasks


def layered(rng):
    """Random layered DAG: each node draws a non-empty parent set from the layer above.

    Early layers are small models writing long intermediate results; the last
    layer is a larger model condensing them (the map-reduce shape of most agent graphs).
    """
    n_layers = _u(rng, 2, 4)
    tasks: list[TaskDraft] = []
    prev: list[int] = []
    for layer in range(n_layers):
        width = _u(rng, 1, 3)
        last = layer == n_layers - 1
        cur = []
        for _ in range(width):
            if last and prev:  # the synthesizers read every earlier result
                pick = list(range(len(tasks)))
            elif prev:
                pick = [p for p in prev if rng.random() < 0.7] or [int(rng.choice(prev))]
            else:
                pick = []
            role = ("planner", "judge")[int(rng.integers(0, 2))] if last else ROLES[int(rng.integers(0, 2))]
            tasks.append(TaskDraft(role, _u(rng, 200, 2000), _u(rng, 40, 150) if last else _u(rng, 300, 900),
                                   _delay(rng, 0.1, 2.0) if rng.random() < 0.3 else 0.0,
                                   tuple(sorted(pick))))
            cur.append(len(tasks) - 1)
        prev = cur
    return tasks


TEMPLATES: tuple[Template, ...] = (
    Template("chain", 9, 36, (2000, 6000)),  # 7 steps reading every earlier one, a judge reading all 7, a guard of 8
    Template("fan_out", 12, 26, (3000, 8000)),  # a router, a planner, 8 workers, a joiner of 8, a guard of 9
    Template("self_consistency", 11, 27, (1000, 4000)),  # 8 samples, a verifier of 8, an aggregator of 9, a guard of 10
    Template("retrieve_generate", 5, 8, (1000, 3000)),  # rewrite, retrieve, answer, verify (of 2), guard (of 3)
    Template("debate", 11, 46, (1500, 5000)),  # 3 debaters x 3 rounds (0, 3, 6 parents each), a judge of 9, a guard of 10
    Template("layered", 12, 45, (1000, 8000)),  # 4 layers of 3: 9 + 9 edges, then 3 synthesizers of 9
)
TEMPLATE_FNS = (chain, fan_out, self_consistency, retrieve_generate, debate, layered)
TEMPLATE_NAMES = tuple(t.name for t in TEMPLATES)
