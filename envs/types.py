"""Pytrees of the environment: static params, state, observation.

Fields marked `static` fix array shapes and live in the compiled program's
cache key; everything else is data, so one compiled program serves any number
of active servers up to `max_servers`, any load and any catalog numbers.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from flax import struct


def static(default=None):
    return struct.field(pytree_node=False, default=default)


@struct.dataclass
class BankArrays:
    """The workflow bank on device (see `envs.workload.Bank`). B rows, T tasks."""

    n_tasks: chex.Array  # [B] int32
    app: chex.Array  # [B] int32
    prefix_tokens: chex.Array  # [B] f32
    model: chex.Array  # [B,T] int32
    input_tokens: chex.Array  # [B,T] f32
    expected_output: chex.Array  # [B,T] f32
    output: chex.Array  # [B,T] f32, hidden from observations
    tool_delay: chex.Array  # [B,T] f32
    parents: chex.Array  # [B,T,W] uint32: task c's parents as a bitset of W = ceil(T / 32) words (envs.bitset)
    n_children: chex.Array  # [B,T] int32
    depth: chex.Array  # [B,T] int32
    # [B,T] f32: expected critical path from this task on (its tool delay included), timed on the
    # fastest catalog rates, hot caches: tool_delay + input/prefill + expected_output/decode + overhead
    path_remaining: chex.Array
    lower_bound: chex.Array  # [B] f32: the same with true lengths, from arrival (slowdown's denominator)
    root_delay: chex.Array  # [B] f32: smallest tool delay among roots (first ready time after admission)
    root_task: chex.Array  # [B] int32: the root with that delay (lowest index on ties)
    # The DAG as an edge list: [B, E, 2] int32 (parent, child) in (parent, child) order, padded
    # with (T, T); E is the workload's largest edge count rounded up (`EnvConfig.edge_capacity`).
    # The observation hands it to policies as is, so a graph network's work follows the real edges.
    edges: chex.Array = None
    n_edges: chex.Array = None  # [B] int32
    model_count: chex.Array = None  # [B, M] int32: tasks per model (a fresh slot's pending counts)
    app_prefix: chex.Array = None  # [A] f32: each app's system-prompt tokens (one per app)
    # All of the above in one [B, T, len(PACKED_COLUMNS) + W] f32 array (ints bit-cast, per-workflow
    # values repeated over T, the parent words last), so the step fetches a workflow with one gather.
    packed: chex.Array = None

    @property
    def size(self) -> int:
        return self.n_tasks.shape[0]

    def row(self, b) -> BankArrays:
        """Workflow `b` as a BankArrays of [T] task fields and scalar workflow fields."""
        r = self.packed[b]
        cols = {}
        for i, name in enumerate(PACKED_COLUMNS):
            col = r[..., i]
            if name in INT_COLUMNS:
                col = jax.lax.bitcast_convert_type(col, jnp.int32)
            cols[name] = col[..., 0] if name in WORKFLOW_COLUMNS else col
        cols["parents"] = jax.lax.bitcast_convert_type(r[..., len(PACKED_COLUMNS):], jnp.uint32)
        return BankArrays(**cols, root_delay=self.root_delay[b], root_task=self.root_task[b], edges=self.edges[b],
                          n_edges=self.n_edges[b], model_count=self.model_count[b], app_prefix=self.app_prefix)


PACKED_COLUMNS = ("model", "input_tokens", "expected_output", "output", "tool_delay", "n_children",
                  "depth", "path_remaining", "n_tasks", "app", "prefix_tokens", "lower_bound")
INT_COLUMNS = frozenset({"model", "n_children", "depth", "n_tasks", "app"})
WORKFLOW_COLUMNS = frozenset({"n_tasks", "app", "prefix_tokens", "lower_bound"})


def pack_bank(bank: BankArrays) -> BankArrays:
    t = bank.model.shape[1]
    cols = []
    for name in PACKED_COLUMNS:
        a = jnp.asarray(getattr(bank, name))
        if name in WORKFLOW_COLUMNS:
            a = jnp.broadcast_to(a[:, None], (a.shape[0], t))
        if name in INT_COLUMNS:
            a = jax.lax.bitcast_convert_type(a.astype(jnp.int32), jnp.float32)
        cols.append(a.astype(jnp.float32))
    words = jax.lax.bitcast_convert_type(jnp.asarray(bank.parents, jnp.uint32), jnp.float32)  # [B, T, W]
    return bank.replace(packed=jnp.concatenate([jnp.stack(cols, axis=-1), words], axis=-1))


@struct.dataclass
class EnvParams:
    # --- shapes (static) ---
    max_servers: int = static()
    max_tasks: int = static()
    window: int = static()  # workflow slot capacity (the slots in use are `slots`, data)
    max_workflows: int = static()  # longest episode, in workflows
    n_gpu_types: int = static()
    n_models: int = static()
    n_apps: int = static()
    cache_slots: int = static()
    queue_cap: int = static()  # the queue-length feature saturates here
    top_k: int = static()  # largest responses kept for P95
    arrival_chunk: int = static()  # arrivals scanned per loop turn when accounting queued workflows
    # --- cluster ---
    n_servers: chex.Array = None  # int32 scalar, active servers
    gpu_weights: chex.Array = None  # [G] sampling weights for servers 1..N-1
    anchor_weights: chex.Array = None  # [G] weights for server 0 (only types that fit every model)
    fixed_gpus: chex.Array = None  # [max_servers] int32 GPU type per server, or -1 to sample
    # --- catalogs, derived tables ---
    gpu_mem: chex.Array = None  # [G]
    model_mem: chex.Array = None  # [M]
    fits: chex.Array = None  # [G,M] bool
    init_weights: chex.Array = None  # [G,M] weights of the model a server of type g starts with (0 where it does not fit)
    prefill_rate: chex.Array = None  # [G,M] tokens/s
    decode_rate: chex.Array = None  # [G,M] tokens/s
    load_time: chex.Array = None  # [G,M] seconds
    work_per_workflow: chex.Array = None  # [G] mean busy seconds of one workflow on this GPU type
    # --- workload ---
    n_workflows: chex.Array = None  # int32: workflows per episode, or -1: round(workflows_per_server * n_servers)
    workflows_per_server: chex.Array = None  # f32
    slots: chex.Array = None  # int32: workflow slots in use, or -1: max(8, 2 * n_servers) (at most `window`)
    rho: chex.Array = None  # target offered load
    bank: BankArrays = None
    # --- constants ---
    net_latency_s: chex.Array = None
    task_overhead_s: chex.Array = None
    mem_headroom: chex.Array = None
    reward_scale: chex.Array = None


@struct.dataclass
class EpisodeDraw:
    """Every random draw of an episode: what `reset` samples and `reset_from` starts from, so an
    episode can be replayed from data (traces, the reference simulator's instances)."""

    gpu: chex.Array  # int32 [N], GPU type per server
    active: chex.Array  # bool [N]
    init_model: chex.Array  # int32 [N], the model resident at the start
    arrivals: chex.Array  # f32 [E + arrival_chunk], +inf past the episode
    wf_bank: chex.Array  # int32 [E], bank row of each workflow
    rate: chex.Array | None = None  # f32 arrivals per second (None: recomputed from the cluster)


@struct.dataclass
class ServerState:
    """What each server holds [N, ...]: its GPU, models, prefix cache and recent placements."""
    gpu: chex.Array  # int32 [N]
    active: chex.Array  # bool [N]
    free_at: chex.Array  # f32 [N]
    resident: chex.Array  # bool [N,M]
    model_stamp: chex.Array  # int32 [N,M], decision seq that last used the model
    # int32 [N,M]: bit j of [s, i] is set when loading model i on server s would evict model j (the LRU
    # rule's answer for the current resident set and stamps, kept by the step: envs.residency)
    evict_if: chex.Array
    cache_key: chex.Array  # int32 [N,K], app*M + model, -1 empty
    cache_stamp: chex.Array  # int32 [N,K]
    recent_finish: chex.Array  # f32 [N,Q] ring of the last Q placements' (true) finish times
    recent_start: chex.Array  # f32 [N,Q] their true starts (slot n_assigned % Q is the newest)
    recent_expected: chex.Array  # f32 [N,Q] their expected durations (expected output length)
    n_assigned: chex.Array  # int32 [N]
    busy: chex.Array  # f32 [N] total busy seconds


@struct.dataclass
class SlotState:
    """The workflow window [W, ...]: which admitted workflow each slot holds and how far it is."""
    bank: chex.Array  # int32 [W], the workflow's bank row
    seq: chex.Array  # int32 [W], workflow number in the episode, -1 when empty
    arrival: chex.Array  # f32 [W]
    admit: chex.Array  # f32 [W]
    assigned: chex.Array  # uint32 [W, ceil(T / 32)]: the assigned tasks as a bitset (envs.bitset)
    next_ready: chex.Array  # f32 [W], earliest ready time among available tasks, inf if none
    next_task: chex.Array  # int32 [W]
    max_finish: chex.Array  # f32 [W]


@struct.dataclass
class TaskState:
    """The tasks of the window's workflows [W, T]."""
    server: chex.Array  # int32, -1 until placed
    finish: chex.Array  # f32
    seq: chex.Array  # int32, the task's placement number on its server (its n_assigned then)
    ready: chex.Array  # f32, max(admit, finish of assigned parents)


@struct.dataclass
class EnvState:
    servers: ServerState
    slots: SlotState
    tasks: TaskState
    # Counts per prefix key app * M + model, kept by the step so the observation's future-cost
    # features need no pass over every cache entry and window task (`envs.observation.future_costs`):
    key_copies: chex.Array  # int32 [A * M], servers whose prefix cache holds the key
    # int32 [A * M], unassigned tasks of the key among arrived, admitted workflows: workflows
    # 0 .. min(n_arrived, next_admit) - 1 (arrivals are sorted and admitted in order)
    key_pending: chex.Array
    # episode
    arrivals: chex.Array  # f32 [E + chunk], +inf past n_workflows
    wf_bank: chex.Array  # int32 [E], bank row of each workflow
    next_admit: chex.Array  # int32, first workflow not yet given a slot
    n_arrived: chex.Array  # int32, workflows with arrival <= clock
    n_completed: chex.Array  # int32, workflows fully assigned
    decisions: chex.Array  # int32
    clock: chex.Array  # f32, time of the pending decision
    pending_cost: chex.Array  # f32, open-workflow time before the first decision, paid by step 0
    cur_slot: chex.Array  # int32
    cur_task: chex.Array  # int32
    done: chex.Array  # bool
    rate: chex.Array  # f32 arrivals per second
    sum_response: chex.Array  # f32
    sum_slowdown: chex.Array  # f32, sum of response / lower bound over completed workflows
    top_responses: chex.Array  # f32 [top_k], largest responses, descending
    makespan: chex.Array  # f32
    episode_return: chex.Array  # f32


@struct.dataclass
class DagView:
    """The current task's workflow. Index order is topological (parents first).

    Edges are a fixed-capacity list (what jraph consumes): edge k runs from `senders[k]` (a parent)
    to `receivers[k]` (its child) for k < n_edges, in (parent, child) order; padding edges are
    (T, T), an index past the last task, so a scatter over T + 1 segments drops them.
    """

    nodes: chex.Array  # f32 [T, F_node]
    senders: chex.Array  # int32 [E]
    receivers: chex.Array  # int32 [E]
    n_edges: chex.Array  # int32
    node_mask: chex.Array  # bool [T]
    current: chex.Array  # int32, the node being scheduled

    @property
    def adjacency(self):
        """bool [..., T, T], [p, c] when p is a parent of c (built from the edge list; any leading batch axes)."""
        t = self.nodes.shape[-2]
        s = self.senders[..., :, None] == jnp.arange(t)
        r = self.receivers[..., :, None] == jnp.arange(t)
        return jnp.einsum("...ep,...ec->...pc", s.astype(jnp.int32), r.astype(jnp.int32)) > 0


@struct.dataclass
class Observation:
    task: chex.Array  # f32 [F_task]
    servers: chex.Array  # f32 [max_servers, F_server]
    dag: DagView
    action_mask: chex.Array  # bool [max_servers]
    globals: chex.Array  # f32 [F_global]


@struct.dataclass
class Decision:
    """What one step did: a row of the schedule trace."""

    seq: chex.Array  # decision number
    workflow: chex.Array  # workflow number in the episode
    task: chex.Array
    server: chex.Array  # where it ran (after any redirect)
    decision_time: chex.Array
    start: chex.Array
    finish: chex.Array
    load_s: chex.Array
    prefix_hit: chex.Array
    prefix_s: chex.Array  # time prefilling the app prefix
    remote_s: chex.Array  # time prefilling remote parents' outputs
    prefill_s: chex.Array  # time prefilling the task's own input
    decode_s: chex.Array
    n_evicted: chex.Array  # models the load evicted (0 without a load)
    n_kept: chex.Array  # models that stayed resident next to the loaded one
    invalid_action: chex.Array  # the requested server was masked; the task went to `server`

