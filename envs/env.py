"""reset / step of the scheduling environment: pure functions of explicit params.

One step places the pending task on a server, updates that server's residency
and prefix cache, frees the workflow's slot if it is now fully assigned (and
admits the next arrival into it), then jumps the clock to the next ready task.
Everything is fixed-shape and branch-free, so the step jits and vmaps; its
cost is bounded by the window (W slots of T tasks) and N servers, not by the
episode length.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from envs import bitset
from envs.observation import observe
from envs.residency import evicted, eviction_bits
from envs.sizes import active_slots, episode_workflows
from envs.types import Decision, EnvParams, EnvState, EpisodeDraw, Observation, ServerState, SlotState, TaskState

INF = np.float32(np.inf)  # NumPy scalars: importing envs must not start a JAX backend
BIG_INT = np.int32(2**30)


def write_row(arr, i, val, live):
    """arr[i] = val while the episode is live. An in-place scatter: a whole-array select here
    would rewrite every slot of every env at every step."""
    return arr.at[i].set(jnp.where(live, val, arr[i]))


def frontier(parents, delay, n_tasks, assigned, ready, t: int):
    """Earliest available task of one workflow: unassigned, every parent assigned.

    `parents` [T, W] and `assigned` [W] are bitsets (envs.bitset).
    Returns (ready time, task index); (inf, 0) when none. Ties go to the lower index.
    """
    idx = jnp.arange(t)
    valid = idx < n_tasks
    unassigned = ~bitset.flags(assigned, t)
    parents_done = bitset.subset(parents, assigned[None, :])
    r = jnp.where(valid & unassigned & parents_done, ready + delay, INF)
    j = jnp.argmin(r)
    return r[j], j.astype(jnp.int32)


def select_next(state: EnvState):
    """The next decision: earliest ready time, then earliest arrival (workflow number)."""
    rmin = jnp.min(state.slots.next_ready)
    seq = jnp.where(state.slots.next_ready == rmin, state.slots.seq, BIG_INT)
    w = jnp.argmin(seq).astype(jnp.int32)
    return rmin, w, state.slots.next_task[w]


def index_uniforms(key, n: int):
    """One uniform in [0, 1) per index i < n, from the words of fold_in(key, i).

    Item i's value does not depend on n, so padding (max_servers, max_workflows)
    does not change what a seed draws; and it costs one threefry call per item.
    """
    def words(i):
        k = jax.random.fold_in(key, i)
        return jax.random.key_data(k) if jnp.issubdtype(k.dtype, jax.dtypes.prng_key) else k

    w = jax.vmap(words)(jnp.arange(n))[:, 0]
    return (w >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)


def inverse_cdf(u, weights):
    """Index drawn with probability proportional to `weights` ([..., K]) from uniforms `u` ([...])."""
    cdf = jnp.cumsum(weights, axis=-1)
    idx = jnp.sum(u[..., None] * cdf[..., -1:] >= cdf, axis=-1)
    last = jnp.argmax(cdf >= cdf[..., -1:], axis=-1)  # last positive weight (u * total may round up to total)
    return jnp.minimum(idx, last).astype(jnp.int32)


def sample_cluster(key, params: EnvParams):
    k0, k1, k2 = jax.random.split(key, 3)
    n = params.max_servers
    anchor = inverse_cdf(jax.random.uniform(k0), params.anchor_weights)
    rest = inverse_cdf(index_uniforms(k1, n), params.gpu_weights)
    gpu = jnp.where(jnp.arange(n) == 0, anchor, rest)
    gpu = jnp.where(params.fixed_gpus >= 0, params.fixed_gpus, gpu).astype(jnp.int32)
    active = jnp.arange(n) < params.n_servers
    init_model = inverse_cdf(index_uniforms(k2, n), params.init_weights[gpu])  # among the models that fit
    return gpu, active, init_model


def arrival_rate(params: EnvParams, gpu, active):
    """Poisson rate that offers load rho: rho * sum over servers of workflows/s each could serve."""
    return params.rho * jnp.sum(jnp.where(active, 1.0 / params.work_per_workflow[gpu], 0.0))


def sample_arrivals(key, params: EnvParams, rate):
    """First arrival at t=0, then exponential gaps; +inf past E (and in the padding)."""
    e = params.max_workflows
    gaps = -jnp.log1p(-index_uniforms(key, e)) / rate
    times = jnp.concatenate([jnp.zeros(1, jnp.float32), jnp.cumsum(gaps[:-1])])
    times = jnp.where(jnp.arange(e) < episode_workflows(params), times, INF)
    return jnp.concatenate([times, jnp.full((params.arrival_chunk,), INF)])


def draw_episode(key, params: EnvParams) -> EpisodeDraw:
    """Every random draw of an episode: cluster, initial models, arrivals, bank rows."""
    k_cluster, k_arr, k_bank = jax.random.split(key, 3)
    gpu, active, init_model = sample_cluster(k_cluster, params)
    rate = arrival_rate(params, gpu, active)
    arrivals = sample_arrivals(k_arr, params, rate)
    u = index_uniforms(k_bank, params.max_workflows)
    wf_bank = jnp.minimum((u * params.bank.size).astype(jnp.int32), params.bank.size - 1)
    return EpisodeDraw(gpu=gpu, active=active, init_model=init_model, arrivals=arrivals, wf_bank=wf_bank, rate=rate)


def reset(key, params: EnvParams) -> tuple[Observation, EnvState]:
    """Sample a cluster, an arrival schedule and the episode's workflows; return (obs, state)."""
    return reset_from(params, draw_episode(key, params))


def reset_from(params: EnvParams, draw: EpisodeDraw) -> tuple[Observation, EnvState]:
    """Start the episode `draw` describes (used by reset and to replay traces)."""
    n, m, k, q = params.max_servers, params.n_models, params.cache_slots, params.queue_cap
    w_slots, t = params.window, params.max_tasks
    gpu, active, init_model, arrivals, wf_bank = draw.gpu, draw.active, draw.init_model, draw.arrivals, draw.wf_bank
    rate = arrival_rate(params, gpu, active) if draw.rate is None else draw.rate
    resident = (jnp.arange(m)[None, :] == init_model[:, None]) & active[:, None]
    seq = jnp.arange(w_slots)
    n_wf = episode_workflows(params)
    occupied = seq < jnp.minimum(n_wf, active_slots(params))
    first = jnp.minimum(seq, params.max_workflows - 1)
    slot_bank = jnp.where(occupied, wf_bank[first], 0)
    slot_arrival = jnp.where(occupied, arrivals[first], INF)
    ready0 = jnp.broadcast_to(slot_arrival[:, None], (w_slots, t))
    nr = jnp.where(occupied, slot_arrival + params.bank.root_delay[slot_bank], INF)
    nt = params.bank.root_task[slot_bank]
    stamp0 = jnp.full((n, m), -1, jnp.int32)
    caps = params.mem_headroom * params.gpu_mem[gpu]
    servers = ServerState(
        gpu=gpu, active=active, free_at=jnp.zeros(n, jnp.float32), resident=resident, model_stamp=stamp0,
        evict_if=jax.vmap(eviction_bits, in_axes=(0, 0, None, 0))(resident, stamp0, params.model_mem, caps),
        cache_key=jnp.full((n, k), -1, jnp.int32),
        cache_stamp=jnp.full((n, k), -1, jnp.int32), recent_finish=jnp.full((n, q), -INF),
        recent_start=jnp.zeros((n, q), jnp.float32), recent_expected=jnp.zeros((n, q), jnp.float32),
        n_assigned=jnp.zeros(n, jnp.int32), busy=jnp.zeros(n, jnp.float32))
    slots = SlotState(
        bank=slot_bank, seq=jnp.where(occupied, seq, -1).astype(jnp.int32), arrival=slot_arrival,
        admit=slot_arrival, assigned=jnp.zeros((w_slots, bitset.n_words(t)), jnp.uint32),
        next_ready=nr, next_task=nt, max_finish=jnp.full(w_slots, -INF))
    tasks = TaskState(
        server=jnp.full((w_slots, t), -1, jnp.int32), finish=jnp.zeros((w_slots, t), jnp.float32),
        seq=jnp.zeros((w_slots, t), jnp.int32), ready=ready0)
    state = EnvState(
        servers=servers, slots=slots, tasks=tasks, key_copies=jnp.zeros(params.n_apps * m, jnp.int32),
        key_pending=jnp.zeros(params.n_apps * m, jnp.int32),
        arrivals=arrivals, wf_bank=wf_bank, next_admit=jnp.sum(occupied).astype(jnp.int32),
        n_arrived=jnp.int32(0), n_completed=jnp.int32(0), decisions=jnp.int32(0), clock=jnp.float32(0.0),
        pending_cost=jnp.float32(0.0), cur_slot=jnp.int32(0), cur_task=jnp.int32(0), done=jnp.bool_(False),
        rate=jnp.asarray(rate, jnp.float32), sum_response=jnp.float32(0.0), sum_slowdown=jnp.float32(0.0),
        top_responses=jnp.full(params.top_k, -INF), makespan=jnp.float32(0.0), episode_return=jnp.float32(0.0),
    )
    t0, w0, c0 = select_next(state)
    # Workflows are open from arrival; charge [0, t0] to the first step's reward.
    cost, n_arrived = open_cost(params, state, state.next_admit, jnp.float32(0.0), t0, jnp.int32(0))
    key_pending = add_opened(params, wf_bank, state.key_pending, jnp.int32(0), jnp.minimum(n_arrived, state.next_admit))
    state = state.replace(clock=t0, cur_slot=w0, cur_task=c0, pending_cost=cost, n_arrived=n_arrived,
                          key_pending=key_pending)
    return observe(state, params), state


def add_opened(params: EnvParams, wf_bank, key_pending, lo, hi):
    """`key_pending` plus the tasks of workflows lo .. hi - 1, which just became open (arrived and
    admitted; none of their tasks is assigned yet). Usually zero or one workflow per step."""
    apps = jnp.arange(params.n_apps)[:, None]

    def add(carry):
        j, kp = carry
        b = wf_bank[j]
        return j + 1, kp + jnp.where(apps == params.bank.app[b], params.bank.model_count[b][None, :], 0).reshape(-1)

    return lax.while_loop(lambda c: c[0] < hi, add, (lo, key_pending))[1]


def open_cost(params: EnvParams, state: EnvState, next_admit, t0, t1, n_arrived):
    """Integral over [t0, t1] of the number of open workflows.

    Open = arrived and not fully assigned. Window slots hold admitted ones; the
    rest are the not-yet-admitted workflows (indices >= next_admit) that have
    arrived. Arrivals are scanned from `n_arrived` (count with arrival <= t0) in
    chunks, so the cost tracks the arrivals in (t0, t1], not the episode length.
    Returns the integral and the count of arrivals <= t1.
    """
    occupied = state.slots.seq >= 0
    window = jnp.sum(jnp.where(occupied, jnp.maximum(t1 - jnp.maximum(state.slots.arrival, t0), 0.0), 0.0))
    queued_before = jnp.maximum(n_arrived - next_admit, 0).astype(jnp.float32) * (t1 - t0)
    chunk = params.arrival_chunk

    def scan_chunk(carry):
        start, acc, _ = carry
        vals = lax.dynamic_slice(state.arrivals, (start,), (chunk,))
        idx = start + jnp.arange(chunk)
        within = vals <= t1
        acc = acc + jnp.sum(jnp.where(within & (idx >= next_admit), t1 - vals, 0.0))
        cnt = jnp.sum(within).astype(jnp.int32)
        return start + cnt, acc, cnt == chunk

    start, acc, more = scan_chunk((n_arrived, jnp.float32(0.0), True))
    start, acc, _ = lax.while_loop(lambda c: c[2] & (c[0] < params.max_workflows), scan_chunk, (start, acc, more))
    return window + queued_before + acc, start


def step(key, state: EnvState, action, params: EnvParams) -> tuple[Observation, EnvState, jax.Array, jax.Array, dict]:
    """Place the pending task on server `action`; return (obs, state, reward, done, info).

    An action outside the mask (inactive server, model does not fit, out of
    range) is redirected to the lowest-index valid server and flagged in
    `info["invalid_action"]`. Stepping a finished episode changes nothing.
    """
    del key  # the transition is deterministic given the state
    n, t, m = params.max_servers, params.max_tasks, params.n_models
    live = ~state.done
    w, c = state.cur_slot, state.cur_task
    row = params.bank.row(state.slots.bank[w])
    model = row.model[c]

    # --- which server ---
    mask = state.servers.active & params.fits[state.servers.gpu, model]
    a = jnp.asarray(action, jnp.int32)
    a_clip = jnp.clip(a, 0, n - 1)
    ok = (a >= 0) & (a < n) & mask[a_clip]
    s = jnp.where(ok, a_clip, jnp.argmax(mask)).astype(jnp.int32)
    g = state.servers.gpu[s]

    # --- parents: locality (same server and same model) and readiness (latency across servers) ---
    is_parent = bitset.flags(row.parents[c], t)
    p_srv, p_fin = state.tasks.server[w], state.tasks.finish[w]
    same_server = is_parent & (p_srv == s)
    remote = is_parent & ~(same_server & (row.model == model))  # outputs the child's model must prefill
    parents_ready = jnp.max(jnp.where(is_parent, p_fin + jnp.where(same_server, 0.0, params.net_latency_s), -INF))
    ready = jnp.maximum(state.slots.admit[w], parents_ready) + row.tool_delay[c]
    start = jnp.maximum(state.servers.free_at[s], ready)

    # --- residency: load the model, evicting least-recently-used ones until it fits ---
    res, stamp = state.servers.resident[s], state.servers.model_stamp[s]
    midx = jnp.arange(m)
    need_load = ~res[model]
    evict = evicted(state.servers.evict_if[s, model], m)  # the LRU rule's answer, kept per server
    new_res = (res & ~evict) | (midx == model)
    new_stamp = jnp.where(midx == model, state.decisions, stamp)
    new_evict_if = eviction_bits(new_res, new_stamp, params.model_mem, params.mem_headroom * params.gpu_mem[g])
    load_s = jnp.where(need_load, params.load_time[g, model], 0.0)

    # --- prefix cache: drop entries of evicted models, then look up / insert (LRU) ---
    app = row.app
    ck, cs = state.servers.cache_key[s], state.servers.cache_stamp[s]
    ck = jnp.where((ck >= 0) & evict[jnp.maximum(ck, 0) % m], -1, ck)
    key_am = app * m + model
    hits = ck == key_am
    hit = jnp.any(hits)
    empty = ck < 0
    ins = jnp.where(hit, jnp.argmax(hits), jnp.where(jnp.any(empty), jnp.argmax(empty), jnp.argmin(cs)))
    kidx = jnp.arange(ck.shape[0])
    ck = jnp.where(kidx == ins, key_am, ck)
    cs = jnp.where(kidx == ins, state.decisions, cs)
    # servers holding each key: server s's row goes from its old keys to ck (K is small: unrolled)
    keys = jnp.arange(params.n_apps * m)
    old_ck = state.servers.cache_key[s]
    key_delta = sum((ck[i] == keys).astype(jnp.int32) - (old_ck[i] == keys).astype(jnp.int32)
                    for i in range(ck.shape[0]))

    # --- duration (spec: load + prompt / prefill + output / decode + overhead) ---
    pre, dec = params.prefill_rate[g, model], params.decode_rate[g, model]
    prefix = row.prefix_tokens
    remote_tok = jnp.sum(jnp.where(remote, row.output, 0.0))
    prompt = row.input_tokens[c] + jnp.where(hit, 0.0, prefix) + remote_tok
    duration = load_s + prompt / pre + row.output[c] / dec + params.task_overhead_s
    expected = load_s + prompt / pre + row.expected_output[c] / dec + params.task_overhead_s
    finish = start + duration

    # --- write the server (in place: only row s changes) ---
    def at_s(arr, val):
        return write_row(arr, s, val, live)

    sv = state.servers
    ring = jnp.arange(params.queue_cap) == sv.n_assigned[s] % params.queue_cap
    st = state.replace(key_copies=state.key_copies + jnp.where(live, key_delta, 0), servers=sv.replace(
        free_at=at_s(sv.free_at, finish),
        resident=at_s(sv.resident, new_res),
        model_stamp=at_s(sv.model_stamp, new_stamp),
        evict_if=at_s(sv.evict_if, new_evict_if),
        cache_key=at_s(sv.cache_key, ck),
        cache_stamp=at_s(sv.cache_stamp, cs),
        recent_finish=at_s(sv.recent_finish, jnp.where(ring, finish, sv.recent_finish[s])),
        recent_start=at_s(sv.recent_start, jnp.where(ring, start, sv.recent_start[s])),
        recent_expected=at_s(sv.recent_expected, jnp.where(ring, expected, sv.recent_expected[s])),
        n_assigned=at_s(sv.n_assigned, sv.n_assigned[s] + 1),
        busy=at_s(sv.busy, sv.busy[s] + duration),
    ))

    # --- write the task and its workflow ---
    tidx = jnp.arange(t)
    is_c = tidx == c
    wd = bitset.n_words(t)
    assigned = state.slots.assigned[w] | bitset.single(c, wd)
    is_child = bitset.member(row.parents, c)
    row_srv = jnp.where(is_c, s, p_srv)
    row_fin = jnp.where(is_c, finish, p_fin)
    row_seq = jnp.where(is_c, state.servers.n_assigned[s], state.tasks.seq[w])
    row_ready = jnp.where(is_child, jnp.maximum(state.tasks.ready[w], finish), state.tasks.ready[w])
    max_finish = jnp.maximum(state.slots.max_finish[w], finish)
    complete = jnp.all(assigned == bitset.first_n(row.n_tasks, wd))
    arrival = state.slots.arrival[w]
    response = max_finish - arrival

    # --- a fully assigned workflow frees its slot for the next arrival ---
    j = st.next_admit
    admit_new = complete & (j < episode_workflows(params))
    j_safe = jnp.minimum(j, params.max_workflows - 1)
    new_b = st.wf_bank[j_safe]
    new_arrival = st.arrivals[j_safe]
    new_admit = jnp.maximum(new_arrival, state.clock)
    slot_b = jnp.where(admit_new, new_b, st.slots.bank[w])
    f_assigned = jnp.where(complete, jnp.uint32(0), assigned)  # [W] words
    f_ready = jnp.where(admit_new, new_admit, row_ready)
    # A fresh workflow's first ready task is precomputed per bank row; otherwise scan this one.
    nr, nt = frontier(row.parents, row.tool_delay, row.n_tasks, assigned, row_ready, t)
    nr = jnp.where(admit_new, new_admit + params.bank.root_delay[new_b], jnp.where(complete, INF, nr))
    nt = jnp.where(admit_new, params.bank.root_task[new_b], nt)

    def put(arr, val):  # write slot w
        return write_row(arr, w, val, live)

    sl, tk = st.slots, st.tasks
    st = st.replace(
        slots=sl.replace(
            bank=put(sl.bank, slot_b),
            seq=put(sl.seq, jnp.where(complete, jnp.where(admit_new, j, -1), sl.seq[w])),
            arrival=put(sl.arrival, jnp.where(complete, jnp.where(admit_new, new_arrival, INF), arrival)),
            admit=put(sl.admit, jnp.where(admit_new, new_admit, sl.admit[w])),
            assigned=put(sl.assigned, f_assigned),
            next_ready=put(sl.next_ready, nr),
            next_task=put(sl.next_task, nt),
            max_finish=put(sl.max_finish, jnp.where(complete, -INF, max_finish)),
        ),
        tasks=tk.replace(
            server=put(tk.server, jnp.where(complete, -1, row_srv)),
            finish=put(tk.finish, jnp.where(complete, 0.0, row_fin)),
            seq=put(tk.seq, jnp.where(complete, 0, row_seq)),
            ready=put(tk.ready, f_ready),
        ),
        next_admit=st.next_admit + (admit_new & live),
    )

    # --- next decision, reward, metrics ---
    t1, w1, c1 = select_next(st)
    done = ~jnp.isfinite(t1)
    t1 = jnp.where(done, state.clock, t1)
    cost, n_arrived = open_cost(params, st, st.next_admit, state.clock, t1, state.n_arrived)
    # pending tasks per key: this one is placed; workflows that arrived or were admitted since open up
    n_arrived = jnp.where(live, n_arrived, state.n_arrived)
    key_pending = state.key_pending - ((keys == key_am) & live)
    key_pending = add_opened(params, st.wf_bank, key_pending, jnp.minimum(state.n_arrived, state.next_admit),
                             jnp.minimum(n_arrived, st.next_admit))
    completion = jnp.where(complete, max_finish - state.clock, 0.0)
    reward = -(cost + completion + state.pending_cost) / params.reward_scale
    reward = jnp.where(live, reward, 0.0)
    top = state.top_responses
    pos = jnp.sum(top > response)
    kk = jnp.arange(params.top_k)
    shifted = jnp.concatenate([top[:1], top[:-1]])
    new_top = jnp.where(kk < pos, top, jnp.where(kk == pos, response, shifted))
    got = complete & live
    st = st.replace(
        n_arrived=n_arrived,
        key_pending=key_pending,
        n_completed=state.n_completed + got,
        decisions=state.decisions + live,
        clock=jnp.where(live, t1, state.clock),
        pending_cost=jnp.where(live, 0.0, state.pending_cost),
        cur_slot=jnp.where(live, w1, w),
        cur_task=jnp.where(live, c1, c),
        done=state.done | done,
        sum_response=state.sum_response + jnp.where(got, response, 0.0),
        sum_slowdown=state.sum_slowdown + jnp.where(got, response / row.lower_bound, 0.0),
        top_responses=jnp.where(got, new_top, top),
        makespan=jnp.maximum(state.makespan, jnp.where(live, finish, 0.0)),
        episode_return=state.episode_return + reward,
    )
    decision = Decision(
        seq=state.decisions, workflow=state.slots.seq[w], task=c, server=s, decision_time=state.clock,
        start=start, finish=finish, load_s=load_s, prefix_hit=hit,
        prefix_s=jnp.where(hit, 0.0, prefix) / pre, remote_s=remote_tok / pre, prefill_s=row.input_tokens[c] / pre,
        decode_s=row.output[c] / dec, n_evicted=jnp.sum(evict).astype(jnp.int32),
        n_kept=jnp.sum(res & ~evict & (midx != model)).astype(jnp.int32), invalid_action=~ok & live,
    )
    info = {"decision": decision, "invalid_action": ~ok & live, "elapsed_s": jnp.where(live, t1 - state.clock, 0.0),
            **episode_metrics(st, params)}
    return observe(st, params), st, reward, st.done, info


def episode_metrics(state: EnvState, params: EnvParams) -> dict:
    """Mean and P95 (linear interpolation, as numpy) response, mean slowdown (response over the
    workflow's lower bound), makespan, utilization, return.

    Final once `state.done`; before that they cover the workflows completed so far.
    """
    n = jnp.maximum(state.n_completed, 1)
    pos = 0.95 * (n - 1).astype(jnp.float32)
    lo = jnp.floor(pos).astype(jnp.int32)
    frac = pos - lo
    top = state.top_responses  # descending: ascending index i is top[n - 1 - i]
    v_lo = top[jnp.clip(n - 1 - lo, 0, params.top_k - 1)]
    v_hi = top[jnp.clip(n - 2 - lo, 0, params.top_k - 1)]
    p95 = jnp.where(frac > 0, v_lo + frac * (v_hi - v_lo), v_lo)
    n_active = jnp.sum(state.servers.active)
    return {
        "episode_done": state.done,
        "mean_response": state.sum_response / n,
        "mean_slowdown": state.sum_slowdown / n,
        "p95_response": jnp.where(state.n_completed > 0, p95, 0.0),
        "makespan": state.makespan,
        "utilization": jnp.sum(state.servers.busy) / jnp.maximum(n_active * state.makespan, 1e-9),
        "episode_return": state.episode_return,
        "workflows_completed": state.n_completed,
    }
