"""The episode draws (shared by both simulators, so the differential tests cannot check them)."""

import jax
import jax.numpy as jnp
import numpy as np

from envs import EnvConfig, make_params
from envs.env import draw_episode
from envs.instance import materialize
from envs.sizes import active_slots, episode_workflows


def test_a_seed_draws_the_same_episode_padded_or_not():
    a = materialize(jax.random.PRNGKey(7), EnvConfig(n_servers=8, bank_size=64))
    b = materialize(jax.random.PRNGKey(7), EnvConfig(n_servers=8, max_servers=32, bank_size=64))
    assert a == b  # cluster, initial models, arrivals, workflows, window


def test_episode_length_and_window_follow_the_active_servers():
    params = make_params(EnvConfig(n_servers=16, max_servers=64, bank_size=64))
    for n in (4, 16, 32, 64):
        p = params.replace(n_servers=jnp.int32(n))
        assert int(episode_workflows(p)) == 4 * n
        assert int(active_slots(p)) == max(8, 2 * n)
    # an explicit length is clipped to the static bound instead of replaying the last workflow
    assert int(episode_workflows(params.replace(n_workflows=jnp.int32(10_000)))) == params.max_workflows


def test_arrival_rate_offers_rho_of_the_cold_capacity():
    params = make_params(EnvConfig(n_servers=16, bank_size=256, rho=0.7))
    draws = jax.jit(jax.vmap(lambda k: draw_episode(k, params)))(jax.random.split(jax.random.PRNGKey(0), 400))
    d = jax.device_get(draws)
    gpu, active, init, arrivals, wf_bank, rate = d.gpu, d.active, d.init_model, d.arrivals, d.wf_bank, d.rate
    work = np.asarray(params.work_per_workflow)
    expected = 0.7 * (1.0 / work[gpu] * active).sum(axis=1)
    np.testing.assert_allclose(rate, expected, rtol=1e-5)
    e = int(episode_workflows(params))
    gaps = np.diff(arrivals[:, :e], axis=1) * rate[:, None]  # unit-rate exponential gaps
    assert arrivals[:, 0].max() == 0.0
    assert abs(gaps.mean() - 1.0) < 0.02 and abs(gaps.std() - 1.0) < 0.03
    # server 0 can run every model; the others follow gpu_weights; initial models fit
    fits = np.asarray(params.fits)
    assert fits[gpu[:, 0]].all()
    freq = np.bincount(gpu[:, 1:].ravel(), minlength=4) / gpu[:, 1:].size
    np.testing.assert_allclose(freq, np.asarray(params.gpu_weights), atol=0.02)
    assert fits[gpu, init].all()
    # workflows are drawn uniformly from the bank
    counts = np.bincount(wf_bank[:, :e].ravel(), minlength=256)
    assert counts.min() > 0 and counts.max() < 3 * counts.mean()
