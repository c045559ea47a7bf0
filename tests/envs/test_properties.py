"""Invariants of the JAX env over random clusters, loads and actions (hypothesis)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import EnvConfig, bitset, make_params, reset, step
from envs.rollout import max_decisions
from envs.sizes import episode_workflows

MAX_N = 8


@functools.cache
def setup(window: int):
    config = EnvConfig(n_servers=MAX_N, bank_size=128, n_workflows=16, window=window, workload_seed=3, arrival_chunk=2)
    params = make_params(config)

    def run(key, params):
        """Random actions over ALL max_servers (invalid ones included), recording every step."""
        k0, k1 = jax.random.split(key)
        obs, state = reset(k0, params)

        def body(carry, k):
            obs, state = carry
            action = jax.random.randint(k, (), 0, params.max_servers)
            live = ~state.done
            mask = obs.action_mask
            obs, state, reward, done, info = step(k, state, action, params)
            used = jnp.sum(jnp.where(state.servers.resident, params.model_mem[None, :], 0.0), axis=1)
            cap = params.mem_headroom * params.gpu_mem[state.servers.gpu]
            rec = dict(live=live, action=action, mask=mask, reward=reward, decision=info["decision"],
                       over_memory=jnp.max(jnp.where(state.servers.active, used - cap, -1.0)))
            return (obs, state), rec

        (obs, state), recs = jax.lax.scan(body, (obs, state), jax.random.split(k1, max_decisions(params)))
        return state, recs

    return params, jax.jit(run)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, MAX_N), rho=st.floats(0.2, 3.0),
       window=st.sampled_from([2, 6]))
def test_schedule_invariants(seed, n, rho, window):
    params, run = setup(window)
    params = params.replace(n_servers=jnp.int32(n), rho=jnp.float32(rho))
    state, recs = jax.device_get(run(jax.random.PRNGKey(seed), params))
    assert bool(state.done), "episode did not finish within max_decisions"
    live = recs["live"]
    d = jax.tree.map(lambda x: x[live], recs["decision"])
    bank = jax.device_get(params.bank)
    rows = state.wf_bank[: int(episode_workflows(params))]

    # every task of every workflow assigned exactly once
    placed = list(zip(d.workflow.tolist(), d.task.tolist()))
    expected = [(w, c) for w, b in enumerate(rows) for c in range(int(bank.n_tasks[b]))]
    assert sorted(placed) == sorted(expected)

    # masks honoured: the executed server is always valid; flagged exactly when the request was not
    mask = recs["mask"][live]
    assert mask[np.arange(len(d.server)), d.server].all()
    requested_valid = mask[np.arange(len(d.server)), recs["action"][live]]
    np.testing.assert_array_equal(d.invalid_action, ~requested_valid)
    assert (d.server < n).all()

    # precedence (with tool delay) and arrival
    finish = {(w, c): f for w, c, f in zip(d.workflow, d.task, d.finish)}
    server = {(w, c): s for w, c, s in zip(d.workflow, d.task, d.server)}
    lat = float(params.net_latency_s)
    for w, c, s, srv in zip(d.workflow, d.task, d.start, d.server):
        b = rows[w]
        parents = [p for p in range(int(bank.n_tasks[b])) if bitset.np_flags(bank.parents[b, c], params.max_tasks)[p]]
        earliest = max([finish[(w, p)] + (lat if server[(w, p)] != srv else 0.0) for p in parents],
                       default=0.0) + bank.tool_delay[b, c]
        assert s >= earliest - 1e-4
        assert s >= state.arrivals[w] - 1e-4

    # one request at a time per server
    for srv in np.unique(d.server):
        sel = d.server == srv
        order = np.argsort(d.seq[sel])
        st_, fi = d.start[sel][order], d.finish[sel][order]
        assert (st_[1:] >= fi[:-1] - 1e-4).all()

    # memory never exceeded
    assert recs["over_memory"].max() <= 1e-3

    # the clock never goes backwards
    assert (np.diff(d.decision_time) >= -1e-5).all()

    # undiscounted return = -sum of responses / reward_scale
    responses = [max(finish[(w, c)] for c in range(int(bank.n_tasks[b]))) - state.arrivals[w] for w, b in enumerate(rows)]
    total = recs["reward"][live].sum()
    np.testing.assert_allclose(total, -sum(responses) / float(params.reward_scale), rtol=2e-4, atol=1e-3)
    np.testing.assert_allclose(float(state.episode_return), total, rtol=1e-5, atol=1e-4)
