"""The observation of the pending decision: task, task-conditioned servers, DAG, mask.

Built from the state alone (no step-local values), so `reset` and `step`
share it and it can be recomputed for any state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.types import DagView, EnvParams, EnvState, Observation

KTOK = 1e-3


def observe(state: EnvState, params: EnvParams) -> Observation:
    n, t, m = params.max_servers, params.max_tasks, params.n_models
    w, c, now = state.cur_slot, state.cur_task, state.clock
    b = state.slot_bank[w]
    row = jax.tree.map(lambda a: a[b], params.bank)
    model = row.model[c]
    tidx = jnp.arange(t)
    is_parent = ((row.parents[c] >> tidx.astype(jnp.uint32)) & 1).astype(bool)
    assigned = ((state.slot_assigned[w] >> tidx.astype(jnp.uint32)) & 1).astype(bool)
    valid = tidx < row.n_tasks
    p_srv, p_fin = state.task_server[w], state.task_finish[w]
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
        now - state.slot_arrival[w],
        jnp.sum(valid & ~assigned).astype(jnp.float32),
        params.model_mem[model],
    ]), m_onehot])

    # --- servers, conditioned on this task ---
    gpu = state.gpu
    sidx = jnp.arange(n)
    fits = params.fits[gpu, model]
    mask = state.active & fits
    pre = params.prefill_rate[gpu, model]
    dec = params.decode_rate[gpu, model]
    resident = state.resident[:, model]
    app = params.bank.app[b]
    prefix_hit = jnp.any(state.cache_key == app * m + model, axis=1)
    on_s = is_parent[None, :] & (p_srv[None, :] == sidx[:, None])  # [N, T]
    local_tok = jnp.sum(jnp.where(on_s, row.output[None, :], 0.0), axis=1)
    remote_tok = parent_tok - local_tok
    lat = jnp.where(on_s, 0.0, params.net_latency_s)
    parents_ready = jnp.max(jnp.where(is_parent[None, :], p_fin[None, :] + lat, -jnp.inf), axis=1)
    ready = jnp.maximum(state.slot_admit[w], parents_ready) + row.tool_delay[c]
    est_start = jnp.maximum(state.free_at, ready)
    load = jnp.where(resident, 0.0, params.load_time[gpu, model])
    prompt = row.input_tokens[c] + jnp.where(prefix_hit, 0.0, row.prefix_tokens) + remote_tok
    est_dur = load + prompt / pre + row.expected_output[c] / dec + params.task_overhead_s
    used = jnp.sum(jnp.where(state.resident, params.model_mem[None, :], 0.0), axis=1)
    cap = params.mem_headroom * params.gpu_mem[gpu]
    servers = jnp.concatenate([jnp.stack([
        state.active.astype(jnp.float32),
        fits.astype(jnp.float32),
        pre * KTOK,
        dec * KTOK,
        params.gpu_mem[gpu],
        cap - used,
        jnp.maximum(state.free_at - now, 0.0),
        resident.astype(jnp.float32),
        prefix_hit.astype(jnp.float32),
        local_tok * KTOK,
        remote_tok * KTOK,
        jnp.sum(on_s, axis=1).astype(jnp.float32),
        load,
        est_start - now,
        est_start + est_dur - now,
        jnp.sum(state.recent_finish > now, axis=1).astype(jnp.float32),
        jnp.sum(state.resident, axis=1).astype(jnp.float32),
    ], axis=1), (jnp.arange(params.n_gpu_types)[None, :] == gpu[:, None]).astype(jnp.float32)], axis=1)
    servers = jnp.where(state.active[:, None], servers, 0.0)

    # --- the workflow DAG ---
    nodes = jnp.concatenate([jnp.stack([
        assigned.astype(jnp.float32),
        (tidx == c).astype(jnp.float32),
        row.input_tokens * KTOK,
        row.expected_output * KTOK,
        row.tool_delay,
        jnp.where(assigned, p_fin - now, 0.0),
        row.path_remaining,
    ], axis=1), (jnp.arange(m)[None, :] == row.model[:, None]).astype(jnp.float32)], axis=1)
    nodes = jnp.where(valid[:, None], nodes, 0.0)
    adjacency = ((row.parents[None, :] >> tidx[:, None].astype(jnp.uint32)) & 1).astype(bool)
    dag = DagView(nodes=nodes, adjacency=adjacency, node_mask=valid, current=c)

    # --- globals ---
    queued = jnp.maximum(state.n_arrived - state.next_admit, 0)
    open_in_window = jnp.sum((state.slot_seq >= 0) & (state.slot_arrival <= now))
    globals_ = jnp.stack([
        now,
        (open_in_window + queued).astype(jnp.float32),
        queued.astype(jnp.float32),
        params.rho,
        jnp.sum(state.active).astype(jnp.float32),
        state.decisions.astype(jnp.float32),
        (params.n_workflows - state.n_completed).astype(jnp.float32),
    ])
    return Observation(task=task, servers=servers, dag=dag, action_mask=mask, globals=globals_)
