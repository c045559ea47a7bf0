"""Compilation behaviour: one trace serves any active N, load and seed; vmap and auto-reset work."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import EnvConfig, make_params, reset, step
from envs.features import GLOBAL
from envs.rollout import run_episode
from envs.wrappers import VecEnv, auto_reset_step
from jaxsched.baselines import earliest_finish, random_policy


def test_step_traces_once_across_cluster_sizes_and_loads():
    chex.clear_trace_counter()
    params = make_params(EnvConfig(n_servers=8, max_servers=32, bank_size=64, n_workflows=8, max_workflows=16))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def one_step(key, state, action, params):
        return step(key, state, action, params)

    one_reset = jax.jit(chex.assert_max_traces(reset, n=1))
    for n, rho, e in ((1, 0.5, -1), (8, 0.7, 5), (32, 1.3, 16)):
        p = params.replace(n_servers=jnp.int32(n), rho=jnp.float32(rho), n_workflows=jnp.int32(e))
        obs, state = one_reset(jax.random.PRNGKey(n), p)
        for _ in range(3):
            obs, state, *_ = one_step(jax.random.PRNGKey(0), state, jnp.argmax(obs.action_mask), p)
        assert int(jnp.sum(state.servers.active)) == n


def test_padded_servers_are_never_used():
    params = make_params(EnvConfig(n_servers=3, max_servers=16, bank_size=64, n_workflows=6))
    state, metrics, dec = jax.jit(lambda k: run_episode(random_policy, k, params, record=True))(jax.random.PRNGKey(0))
    n = int(state.decisions)
    assert n > 0 and (np.asarray(dec.server[:n]) < 3).all()
    assert not np.asarray(state.servers.active[3:]).any()


def test_p95_matches_numpy():
    params = make_params(EnvConfig(n_servers=4, bank_size=64, n_workflows=37))
    state, metrics, dec = jax.jit(lambda k: run_episode(earliest_finish, k, params, record=True))(jax.random.PRNGKey(5))
    n = int(state.decisions)
    fin = {}
    for w, f in zip(np.asarray(dec.workflow[:n]), np.asarray(dec.finish[:n])):
        fin[int(w)] = max(fin.get(int(w), -np.inf), float(f))
    resp = np.array([fin[w] - float(state.arrivals[w]) for w in range(37)])
    np.testing.assert_allclose(float(metrics["p95_response"]), np.percentile(resp, 95), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["mean_response"]), resp.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["makespan"]), np.asarray(dec.finish[:n]).max(), rtol=1e-6)


def test_auto_reset_starts_a_fresh_episode():
    params = make_params(EnvConfig(n_servers=2, bank_size=32, n_workflows=2))
    obs, state = reset(jax.random.PRNGKey(0), params)
    f = jax.jit(auto_reset_step)
    dones = 0
    for i in range(60):
        obs, state, r, d, info = f(jax.random.PRNGKey(i), state, jnp.argmax(obs.action_mask), params)
        if bool(d):
            dones += 1
            assert bool(info["episode_done"]) and float(info["mean_response"]) > 0
            assert int(state.decisions) == 0 and not bool(state.done)
    assert dones >= 2


def test_vecenv_resets_ended_envs_in_place():
    """ratio 1: every ended env restarts at once. ratio 8 (one fresh episode per step for 8 envs):
    envs ending together wait, frozen with reward 0, and restart on the following steps."""
    params = make_params(EnvConfig(n_servers=2, bank_size=32, n_workflows=2))
    for ratio in (1, 8):
        chex.clear_trace_counter()
        env = VecEnv(params, num_envs=8, reset_ratio=ratio)
        obs, state = jax.jit(env.reset)(jax.random.PRNGKey(0))
        stepf = jax.jit(chex.assert_max_traces(env.step, n=1))
        ended, waited = 0, 0
        for i in range(60):
            before = np.asarray(state.done)
            obs, state, r, d, info = stepf(jax.random.PRNGKey(i), state, jnp.argmax(obs.action_mask, axis=-1))
            ended += int(d.sum())
            waiting = np.asarray(state.done)
            # every env not waiting shows the first observation of a live episode
            assert np.asarray(obs.action_mask)[~waiting].any(axis=-1).all()
            assert int(info["waiting"]) == waiting.sum()
            assert not (np.asarray(d) & before).any()  # an env that was waiting does not end again
            assert (np.asarray(r)[before] == 0).all()
            waited += waiting.sum()
            if ratio == 1:
                assert not waiting.any()
            else:
                assert waiting.sum() <= 7
        assert ended >= 8
        if ratio == 8:
            assert waited > 0  # the deferral path ran


@pytest.mark.parametrize("ratio", [1, 4])
def test_vecenv_with_a_size_per_env_keeps_each_env_at_its_size(ratio):
    """Mixed cluster sizes in one batch: env i always has env_servers[i] active servers, through
    resets, and its episodes have workflows_per_server x that many workflows."""
    params = make_params(EnvConfig(n_servers=5, bank_size=64, workflows_per_server=1.0))
    sizes = jnp.asarray([2, 5, 3, 5, 2, 3, 4, 5], jnp.int32)
    env = VecEnv(params, num_envs=8, reset_ratio=ratio, env_servers=sizes)
    obs, state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    stepf = jax.jit(env.step)
    ended = np.zeros(8, int)
    for i in range(120):
        active = np.asarray(state.env.servers.active).sum(axis=1)
        live = ~np.asarray(state.done)
        assert (active[live] == np.asarray(sizes)[live]).all()
        assert (np.asarray(obs.globals)[live, GLOBAL["n_active"]] == np.asarray(sizes)[live]).all()
        assert not np.asarray(obs.action_mask)[np.arange(5)[None, :] >= np.asarray(sizes)[:, None]].any()
        obs, state, r, d, info = stepf(jax.random.PRNGKey(i), state, jnp.argmax(obs.action_mask, axis=-1))
        done = np.asarray(d)
        np.testing.assert_array_equal(np.asarray(info["workflows_completed"])[done], np.asarray(sizes)[done])
        ended += done
    assert (ended >= 1).all()
