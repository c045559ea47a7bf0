"""Names and order of every observation feature (data only).

Policies and baselines index features by name through these tables, so the
layout can grow without breaking them. Units: seconds, thousands of tokens,
tokens per second / 1000; times are relative to the decision clock.
"""

from __future__ import annotations

TASK_FEATURES = (
    "input_ktok",  # the task's own input
    "expected_output_ktok",
    "prefix_ktok",  # the app's system prompt
    "tool_delay_s",
    "parent_output_ktok",  # all parents' outputs (known: parents have finished)
    "n_parents",
    "n_children",
    "depth",
    "path_remaining_s",  # expected critical path from this task on (fastest GPU, hot caches)
    "workflow_age_s",  # clock - arrival
    "tasks_left",  # unassigned tasks of the workflow, this one included
    "model_mem_gb",
)  # followed by a one-hot of the model (n_models entries)

SERVER_FEATURES = (
    "active",
    "fits",  # this task's model fits this GPU
    "prefill_ktps",  # for this task's model
    "decode_ktps",
    "mem_gb",
    "free_mem_gb",  # usable memory not held by resident models
    "wait_s",  # max(free_at - clock, 0)
    "resident",  # this task's model is loaded here
    "prefix_hit",  # this task's (app, model) prefix is cached here
    "local_parent_ktok",  # parents' output tokens already on this server
    "remote_parent_ktok",
    "n_local_parents",
    "load_s",  # model load time if placed here (0 if resident)
    "est_start_s",  # estimated start - clock
    "est_finish_s",  # estimated finish - clock, with the expected output length
    "queue_len",  # tasks placed here and not finished by the clock (capped)
    "n_resident",
    # Future-state signals (what FATE-style schedulers look at). "Pending" = tasks of arrived,
    # admitted workflows that are not assigned yet, this task excluded.
    "evict_reload_s",  # sum over models this placement evicts: min(1, pending / replicas) * reload time here
    "prefix_churn_ktok",  # sum over prefix keys it drops here: min(1, pending / replicas) * prefix tokens
    "child_colocated_ktok",  # outputs of the children's other (assigned) parents already on this server
)  # followed by a one-hot of the GPU type (n_gpu_types entries)

NODE_FEATURES = (
    "assigned",
    "current",
    "input_ktok",
    "expected_output_ktok",
    "tool_delay_s",
    "finish_in_s",  # finish - clock for assigned tasks, else 0
    "path_remaining_s",
)  # followed by a one-hot of the model

GLOBAL_FEATURES = (
    "clock_s",
    "open_workflows",  # arrived and not fully assigned, queued ones included
    "queued_workflows",  # arrived but waiting for a window slot
    "rho",
    "n_active",
    "decision_index",
    "workflows_left",  # not yet fully assigned, future arrivals included
)

TASK = {n: i for i, n in enumerate(TASK_FEATURES)}
SERVER = {n: i for i, n in enumerate(SERVER_FEATURES)}
NODE = {n: i for i, n in enumerate(NODE_FEATURES)}
GLOBAL = {n: i for i, n in enumerate(GLOBAL_FEATURES)}


def task_dim(n_models: int) -> int:
    return len(TASK_FEATURES) + n_models


def server_dim(n_gpu_types: int) -> int:
    return len(SERVER_FEATURES) + n_gpu_types


def node_dim(n_models: int) -> int:
    return len(NODE_FEATURES) + n_models
