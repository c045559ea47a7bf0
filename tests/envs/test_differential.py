"""The JAX env against the independent reference simulator, decision by decision."""

import numpy as np
import pytest

from envs import EnvConfig
from envs.features import SERVER
from envs.templates import TEMPLATE_NAMES
from tests.envs.lockstep import Lockstep, random_valid


def eft_like(obs, rng):
    """Greedy on the env's own estimate, with random tie noise: exercises locality and cache hits."""
    score = np.where(obs.action_mask, obs.servers[:, SERVER["est_finish_s"]], np.inf)
    if rng.random() < 0.2:
        return random_valid(obs, rng)
    return int(np.argmin(score))


def small(n, **kw):
    base = dict(n_servers=n, bank_size=64, workflows_per_server=2.0)
    base.update(kw)
    return EnvConfig(**base)


@pytest.mark.parametrize("n,seed", [(1, 0), (1, 1), (3, 2), (4, 3), (16, 4), (16, 5)])
def test_random_actions_agree(n, seed):
    ls = Lockstep(small(n, n_workflows=max(4, 2 * n)), seed)
    k = ls.run(random_valid)
    assert k == sum(w.n_tasks for w in ls.inst.workflows)
    assert ls.resyncs <= 2


@pytest.mark.parametrize("seed", [0, 1])
def test_n48_padded_agrees(seed):
    """N=48 inside a 64-server padded program; observations compared every 7th decision to keep it quick."""
    ls = Lockstep(small(48, max_servers=64, n_workflows=40, max_workflows=64), seed)
    ls.run(eft_like, compare_obs_every=7)


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_each_template_agrees(template):
    weights = tuple(1.0 if t == template else 0.0 for t in TEMPLATE_NAMES)
    ls = Lockstep(small(4, template_weights=weights, n_workflows=10), 11)
    ls.run(eft_like)
    assert {w.template for w in ls.inst.workflows} == {template}


@pytest.mark.parametrize("window,seed", [(1, 0), (2, 1), (3, 2)])
def test_queued_arrivals_agree(window, seed):
    """A tiny window at high load: arrivals wait for a slot; admission and the reward still agree."""
    ls = Lockstep(small(2, window=window, n_workflows=12, rho=3.0), seed)
    ls.run(random_valid)
    admits = [w.admit for w in ls.sim.wfs]
    assert any(a > w.arrival + 1e-6 for a, w in zip(admits, ls.sim.wfs)), "no workflow was ever queued"


def test_fixed_heterogeneous_cluster_agrees():
    ls = Lockstep(small(4, gpu_types=("L4", "L40S", "A100", "H100"), n_workflows=12), 3)
    ls.run(eft_like)
    assert any(r["load_s"] > 0 for r in ls.rows) and any(r["prefix_hit"] for r in ls.rows)
