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


def _initial_models(config, n=300):
    params = make_params(config)
    draws = jax.jit(jax.vmap(lambda k: draw_episode(k, params)))(jax.random.split(jax.random.PRNGKey(1), n))
    d = jax.device_get(draws)
    return params, d.gpu[d.active], d.init_model[d.active]


def test_servers_start_with_a_model_the_workload_uses_in_proportion_to_its_tasks():
    """Spec v2 calibration: a server starts with one fitting model, drawn by the model's share of the
    bank's tasks; the v1 draw (uniform among fitting models) preloads models no task ever calls."""
    small = (("worker", "8B"), ("agent", "8B"), ("planner", "14B"), ("judge", "14B"), ("light", "3B"))
    config = EnvConfig(n_servers=16, bank_size=256, role_models=small)
    params, gpu, init = _initial_models(config)
    names = [m.name for m in config.models]
    unused = [names.index(m) for m in ("32B", "70B-fp8")]
    assert not np.isin(init, unused).any()
    assert np.asarray(params.fits)[gpu, init].all()
    # on a B200 (every model fits) the draw follows the task shares
    tasks = np.asarray(params.bank.model_count).sum(axis=0)
    b200 = [g.name for g in config.gpus].index("B200")
    freq = np.bincount(init[gpu == b200], minlength=len(names)) / (gpu == b200).sum()
    np.testing.assert_allclose(freq, tasks / tasks.sum(), atol=0.04)
    # the v1 draw, still available, does preload the unused ones
    _, _, init_v1 = _initial_models(config.replace(initial_models="uniform"))
    assert np.isin(init_v1, unused).mean() > 0.1


def test_a_gpu_type_that_fits_no_used_model_still_starts_with_one_that_fits():
    """A 24 GB L4 fits neither the 32B nor the 70B: with a workload of only those, its servers fall back
    to a uniform draw among what fits rather than an empty one (an L4 can still host nothing useful)."""
    big = tuple((r, "32B") for r in ("worker", "agent", "planner", "judge", "light"))
    params, gpu, init = _initial_models(EnvConfig(n_servers=16, bank_size=64, role_models=big))
    l4 = [g.name for g in EnvConfig().gpus].index("L4")
    assert (gpu == l4).any() and np.asarray(params.fits)[gpu, init].all()
