"""The observation of the pending decision: task, task-conditioned servers, DAG, mask.

Built from the state alone (no step-local values), so `reset` and `step`
share it and it can be recomputed for any state.
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp

from envs import bitset
from envs.residency import evicted
from envs.sizes import episode_workflows
from envs.types import DagView, EnvParams, EnvState, Observation

INF = float("inf")

KTOK = 1e-3
UNROLL_TASKS = 32  # up to this many tasks, sums over a workflow's tasks are unrolled (see `fold`)


def fold(op, x):
    """Reduce the last axis of `x` with `op`, unrolled. For the small axes here (models, cache
    slots, ring slots) XLA on a CPU turns `jnp.sum(..., axis=-1)` into a materialized temporary and a
    separate reduction kernel; unrolled, the reduction fuses with the expression that feeds it."""
    return functools.reduce(op, [x[..., i] for i in range(x.shape[-1])])


def observe(state: EnvState, params: EnvParams) -> Observation:
    n, t, m = params.max_servers, params.max_tasks, params.n_models
    w, c, now = state.cur_slot, state.cur_task, state.clock
    b = state.slots.bank[w]
    row = params.bank.row(b)
    model = row.model[c]
    tidx = jnp.arange(t)
    is_parent = bitset.flags(row.parents[c], t)
    assigned = bitset.flags(state.slots.assigned[w], t)
    valid = tidx < row.n_tasks
    p_srv, p_fin = state.tasks.server[w], state.tasks.finish[w]
    m_onehot = (jnp.arange(m) == model).astype(jnp.float32)

    # --- task ---
    parent_tok = jnp.sum(jnp.where(is_parent, row.output, 0.0))
    task = jnp.concatenate([jnp.stack([
        row.input_tokens[c] * KTOK,
        row.expected_output[c] * KTOK,
        row.prefix_tokens * KTOK,
        row.tool_delay[c],
        parent_tok * KTOK,
        jnp.sum(is_parent).astype(jnp.float32),
        row.n_children[c].astype(jnp.float32),
        row.depth[c].astype(jnp.float32),
        row.path_remaining[c],
        now - state.slots.arrival[w],
        jnp.sum(valid & ~assigned).astype(jnp.float32),
        params.model_mem[model],
    ]), m_onehot])

    # --- servers, conditioned on this task ---
    gpu = state.servers.gpu
    sidx = jnp.arange(n)
    fits = params.fits[gpu, model]
    mask = state.servers.active & fits
    pre = params.prefill_rate[gpu, model]
    dec = params.decode_rate[gpu, model]
    resident = state.servers.resident[:, model]
    app = row.app
    prefix_hit = fold(operator.or_, state.servers.cache_key == app * m + model)
    adjacency = bitset.flags(row.parents, t).T  # [p, c]
    # The children's other parents that are already placed: where the children will find inputs.
    # Information rule: an unfinished co-parent counts with its expected output.
    is_child = adjacency[c]
    co_parent = jnp.any(adjacency & is_child[None, :], axis=1) & (tidx != c) & assigned
    known_out = jnp.where(p_fin <= now, row.output, row.expected_output)
    # Local parents (same server, same model: spec v2) tokens and count per server, and co-parents'
    # tokens, as one [3, T] -> [3, N] sum over tasks. The current task's parents have all finished.
    pf = (is_parent & (row.model == model)).astype(jnp.float32)
    per_task = jnp.stack([row.output * pf, pf, known_out * co_parent])  # [3, T]
    if t <= UNROLL_TASKS:  # unrolled over tasks: fuses, where a small batched matmul is a kernel of its own
        local_tok, n_local, child_co_tok = fold(operator.add, jnp.where(
            (p_srv[None, :] == sidx[:, None])[None], per_task[:, None, :], 0.0))
    else:
        placed = (p_srv[:, None] == sidx[None, :]).astype(jnp.float32)  # [T, N]
        local_tok, n_local, child_co_tok = jnp.matmul(
            per_task, placed, precision=jax.lax.Precision.HIGHEST)  # exact token counts (no TF32 on GPUs)
    remote_tok = parent_tok - local_tok
    # When would the parents' outputs be on server s? The latest parent (finish f1, on s1) is
    # local only to s1; there, the latest remote parent (f2) may still bind. O(T + N), no [N, T] pass.
    fin = jnp.where(is_parent, p_fin, -jnp.inf)
    i1 = jnp.argmax(fin)
    f1, s1 = fin[i1], p_srv[i1]
    f2 = jnp.max(jnp.where(is_parent & (p_srv != s1), p_fin, -jnp.inf))
    lat = params.net_latency_s
    parents_ready = jnp.where(sidx == s1, jnp.maximum(f1, f2 + lat), f1 + lat)
    ready = jnp.maximum(state.slots.admit[w], parents_ready) + row.tool_delay[c]
    est_free, base = expected_drain(state, params)
    est_start = jnp.maximum(est_free, ready)
    load = jnp.where(resident, 0.0, params.load_time[gpu, model])
    prompt = row.input_tokens[c] + jnp.where(prefix_hit, 0.0, row.prefix_tokens) + remote_tok
    est_dur = load + prompt / pre + row.expected_output[c] / dec + params.task_overhead_s
    used = fold(operator.add, jnp.where(state.servers.resident, params.model_mem[None, :], 0.0))
    cap = params.mem_headroom * params.gpu_mem[gpu]
    evict = evicted(state.servers.evict_if[:, model], m)  # [N, M]: what loading here evicts (kept by the step)
    evict_reload, prefix_churn = future_costs(state, params, model, prefix_hit, evict)
    on = state.servers.active.astype(jnp.float32)
    dynamic = [
        cap - used,
        est_free - now,
        resident.astype(jnp.float32),
        prefix_hit.astype(jnp.float32),
        local_tok * KTOK,
        remote_tok * KTOK,
        n_local,
        load,
        est_start - now,
        est_start + est_dur - now,
        fold(operator.add, (state.servers.recent_finish > now).astype(jnp.float32)),
        fold(operator.add, state.servers.resident.astype(jnp.float32)),
        evict_reload,
        prefix_churn * KTOK,
        child_co_tok * KTOK,
    ]
    # Columns that depend only on (GPU type, this task's model) come from one [G, F] table row per
    # server: one gather instead of a kernel per column.
    by_gpu = server_constants(params, model)  # [G, 4 + G]: fits, prefill, decode, mem, GPU one-hot
    const = by_gpu[gpu]  # [N, 4 + G]
    servers = jnp.concatenate([on[:, None], const[:, :4], jnp.stack(dynamic, axis=-1), const[:, 4:]], axis=-1) * on[:, None]

    # --- the workflow DAG ---
    vf = valid.astype(jnp.float32)
    node_cols = [
        assigned.astype(jnp.float32),
        (tidx == c).astype(jnp.float32),
        row.input_tokens * KTOK,
        row.expected_output * KTOK,
        row.tool_delay,
        jnp.where(assigned, known_finish(state, params, base, p_srv, p_fin, state.tasks.seq[w]) - now, 0.0),
        row.path_remaining,
    ] + [(row.model == i).astype(jnp.float32) for i in range(m)]
    nodes = jnp.stack([col * vf for col in node_cols], axis=0).T
    dag = DagView(nodes=nodes, senders=row.edges[:, 0], receivers=row.edges[:, 1], n_edges=row.n_edges,
                  node_mask=valid, current=c)

    # --- globals ---
    queued = jnp.maximum(state.n_arrived - state.next_admit, 0)
    open_in_window = jnp.sum((state.slots.seq >= 0) & (state.slots.arrival <= now))
    globals_ = jnp.stack([
        now,
        (open_in_window + queued).astype(jnp.float32),
        queued.astype(jnp.float32),
        params.rho,
        jnp.sum(state.servers.active).astype(jnp.float32),
        state.decisions.astype(jnp.float32),
        (episode_workflows(params) - state.n_completed).astype(jnp.float32),
    ])
    # A finished episode has no pending task (its slot may be empty, with infinite times): its
    # observation is zeros, so nothing downstream sees inf or nan (auto-reset replaces it anyway).
    live = ~state.done
    task, servers, globals_ = (jnp.where(live, x, 0.0) for x in (task, servers, globals_))
    dag = dag.replace(nodes=jnp.where(live, dag.nodes, 0.0))
    return Observation(task=task, servers=servers, dag=dag, action_mask=mask, globals=globals_)


def server_constants(params: EnvParams, model):
    """[G, 4 + G] per GPU type: the model fits, its prefill and decode rates (ktok/s), the GPU's
    memory, then the GPU type's one-hot (the server features that depend on nothing else)."""
    g = params.n_gpu_types
    return jnp.concatenate([jnp.stack([
        params.fits[:, model].astype(jnp.float32),
        params.prefill_rate[:, model] * KTOK,
        params.decode_rate[:, model] * KTOK,
        params.gpu_mem,
    ], axis=-1), jnp.eye(g, dtype=jnp.float32)], axis=-1)


def expected_drain(state: EnvState, params: EnvParams):
    """Per server, what the information rule lets the observation know of its queue at the clock.

    The ring holds the server's last Q placements (true start and finish, expected duration). The
    unfinished ones (true finish > clock) are the newest, in FCFS order; they count with their
    expected durations from the first one's true start (known: everything before it has finished).
    When all Q are unfinished the count starts from the clock. Returns (expected drain time [N],
    base [N]): an unfinished placement's expected finish is base + the expected durations of the
    unfinished placements up to it, floored at the clock.
    """
    now, q = state.clock, params.queue_cap
    unfinished = state.servers.recent_finish > now  # [N, Q]
    count = fold(operator.add, unfinished.astype(jnp.int32))
    first = fold(jnp.minimum, jnp.where(unfinished, state.servers.recent_start, INF))
    base = jnp.where(count >= q, now, jnp.where(count > 0, first, now))
    drain = fold(operator.add, jnp.where(unfinished, state.servers.recent_expected, 0.0))
    return jnp.maximum(now, base + drain), base


def known_finish(state: EnvState, params: EnvParams, base, server, finish, seq):
    """Finish times of assigned tasks as the observation may know them: true once finished, else
    expected (`expected_drain`). `server`, `finish`, `seq` [T]: each task's placement."""
    now, q = state.clock, params.queue_cap
    srv = jnp.maximum(server, 0)
    n = state.servers.n_assigned[srv][:, None]  # [T, 1]
    r = jnp.arange(q)[None, :]
    number = n - 1 - jnp.remainder(n - 1 - r, q)  # placement number held by ring slot r
    mine = (state.servers.recent_finish[srv] > now) & (number <= seq[:, None])
    expected = jnp.maximum(now, base[srv] + fold(operator.add, jnp.where(mine, state.servers.recent_expected[srv], 0.0)))
    return jnp.where(finish <= now, finish, expected)


def future_costs(state: EnvState, params: EnvParams, model, prefix_hit, evict):
    """Per server: what placing this task there costs the window's pending work later.

    `evict` [N, M]: the models loading this task's model on each server would evict.
    Pending = unassigned tasks of arrived, admitted workflows, the current task excluded.
    A model (or prefix key) dropped by the placement matters in proportion to the pending
    tasks that need it per server still holding it, capped at one reload. Returns
    (reload seconds of evicted models on this server, prefix tokens of dropped keys).

    The counts per key come from the state (`key_pending`, `key_copies`, kept by the step), so the
    cost here is O(N * (K + M) + A * M), not a pass over every task of the window and every cache.
    """
    m, k = params.n_models, params.cache_slots
    keys = jnp.arange(params.n_apps * m)
    current = keys == params.bank.app[state.slots.bank[state.cur_slot]] * m + model
    key_pending = (state.key_pending - current).astype(jnp.float32)  # [A * M], the current task excluded

    # Replicas (inactive servers hold no model and no key: reset and the mask keep them empty).
    model_replicas = jnp.sum(state.servers.resident, axis=0).astype(jnp.float32)
    key_replicas = state.key_copies.astype(jnp.float32)
    ck, cs = state.servers.cache_key, state.servers.cache_stamp

    share_m = jnp.minimum(1.0, jnp.sum(key_pending.reshape(-1, m), axis=0) / jnp.maximum(model_replicas, 1.0))
    evict_reload = fold(operator.add, jnp.where(evict, share_m[None, :] * params.load_time[state.servers.gpu], 0.0))

    # Prefix keys dropped: those of evicted models, then the LRU key if this one misses a full cache.
    key_model = jnp.maximum(ck, 0) % m
    drop = (ck >= 0) & fold(operator.or_, jnp.stack([(key_model == j) & evict[:, j:j + 1] for j in range(m)], -1))
    full = fold(operator.and_, (ck >= 0) & ~drop)
    lru = jnp.argmin(cs, axis=1)
    drop = drop | ((~prefix_hit & full)[:, None] & (jnp.arange(k)[None, :] == lru[:, None]))
    # per key: its share of one reload, times its app's prefix; then one gather at the cache entries
    key_cost = jnp.minimum(1.0, key_pending / jnp.maximum(key_replicas, 1.0)) * jnp.repeat(params.bank.app_prefix, m)
    prefix_churn = fold(operator.add, jnp.where(drop, key_cost[jnp.maximum(ck, 0)], 0.0))
    return evict_reload, prefix_churn
