"""The per-key counts and the eviction table the step keeps in the state equal the same taken from scratch.

`EnvState.key_pending` (unassigned tasks of arrived, admitted workflows per prefix key) and
`EnvState.key_copies` (servers caching each key) feed the observation's future-cost features; the
step updates them incrementally so the observation need not scan the window and every cache. Here
they are recounted from the window and the caches at every state of random episodes: low loads
(workflows admitted into slots before they arrive, so not yet open), high loads (arrived workflows
queued for a slot) and small windows (many admissions). `ServerState.evict_if` (what loading each
model on each server would evict) is recomputed by the LRU rule from every server's resident set and
stamps at the same states.
"""

import functools

import jax
import jax.numpy as jnp
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import EnvConfig, bitset, make_params, reset, step
from envs.residency import eviction_bits
from envs.rollout import max_decisions

MAX_N = 8


def counts_from_scratch(state, params):
    """(key_pending, key_copies) recounted: a pass over the window's tasks and over every cache entry."""
    t, m = params.max_tasks, params.n_models
    bank, rows = params.bank, state.slots.bank
    open_slot = (state.slots.seq >= 0) & (state.slots.arrival <= state.clock)
    assigned = bitset.flags(state.slots.assigned, t)
    pending = open_slot[:, None] & (jnp.arange(t)[None, :] < bank.n_tasks[rows][:, None]) & ~assigned  # [W, T]
    key = bank.app[rows][:, None] * m + bank.model[rows]  # [W, T]
    keys = jnp.arange(params.n_apps * m)
    key_pending = jnp.sum(pending[:, :, None] & (key[:, :, None] == keys), axis=(0, 1))
    key_copies = jnp.sum(state.servers.cache_key.reshape(-1)[:, None] == keys[None, :], axis=0)
    return key_pending, key_copies


def eviction_table_from_scratch(state, params):
    """`ServerState.evict_if` recomputed: the LRU rule run for every server and incoming model."""
    caps = params.mem_headroom * params.gpu_mem[state.servers.gpu]
    return jax.vmap(eviction_bits, in_axes=(0, 0, None, 0))(state.servers.resident, state.servers.model_stamp,
                                                            params.model_mem, caps)


@functools.cache
def setup(window: int):
    config = EnvConfig(n_servers=MAX_N, bank_size=128, n_workflows=24, window=window, workload_seed=5, arrival_chunk=2)
    params = make_params(config)

    def run(key, params):
        k0, k1 = jax.random.split(key)
        obs, state = reset(k0, params)

        def body(carry, k):
            obs, state = carry
            kp, kc = counts_from_scratch(state, params)
            wrong = jnp.sum(kp != state.key_pending) + jnp.sum(kc != state.key_copies)  # finished states too
            wrong += jnp.sum(eviction_table_from_scratch(state, params) != state.servers.evict_if)
            unopened = jnp.sum((state.slots.seq >= 0) & (state.slots.arrival > state.clock))
            action = jax.random.randint(k, (), 0, params.max_servers)  # invalid ones too: redirected
            obs, state, *_ = step(k, state, action, params)
            return (obs, state), (wrong, unopened)

        (_, state), (wrong, unopened) = jax.lax.scan(body, (obs, state), jax.random.split(k1, max_decisions(params)))
        return state.done, wrong, unopened

    return params, jax.jit(run)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, MAX_N), rho=st.floats(0.1, 3.0),
       window=st.sampled_from([2, 6]))
def test_kept_key_counts_equal_a_recount_at_every_state(seed, n, rho, window):
    params, run = setup(window)
    params = params.replace(n_servers=jnp.int32(n), rho=jnp.float32(rho))
    done, wrong, _ = jax.device_get(run(jax.random.PRNGKey(seed), params))
    assert bool(done)
    assert int(wrong.sum()) == 0, f"{int((wrong > 0).sum())} states whose kept counts differ from a recount"


def test_the_recount_sees_workflows_admitted_before_they_arrive():
    """At a light load some slots hold workflows that have not arrived: the case the kept
    `key_pending` must leave out until the clock reaches them."""
    params, run = setup(6)
    params = params.replace(n_servers=jnp.int32(MAX_N), rho=jnp.float32(0.1))
    done, wrong, unopened = jax.device_get(run(jax.random.PRNGKey(0), params))
    assert int(unopened.max()) > 0
    assert int(wrong.sum()) == 0
