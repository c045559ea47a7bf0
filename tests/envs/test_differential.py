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


@pytest.mark.parametrize("n,seed", [(1, 0), (1, 1), (2, 6), (2, 7), (3, 2), (3, 8), (4, 3), (4, 9), (16, 4), (16, 5)])
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


@pytest.mark.parametrize("n,window,seed", [(2, 1, 0), (2, 2, 1), (3, 3, 2), (16, 4, 3)])
def test_queued_arrivals_agree(n, window, seed):
    """A tiny window at high load: arrivals wait for a slot; admission and the reward still agree.
    arrival_chunk=1 makes the queued-arrival accounting loop run many turns per step."""
    ls = Lockstep(small(n, window=window, n_workflows=max(12, 2 * n), rho=3.0, arrival_chunk=1), seed)
    ls.run(random_valid)
    admits = [w.admit for w in ls.sim.wfs]
    assert any(a > w.arrival + 1e-6 for a, w in zip(admits, ls.sim.wfs)), "no workflow was ever queued"


def test_fixed_heterogeneous_cluster_agrees():
    ls = Lockstep(small(4, gpu_types=("L4", "L40S", "A100", "H100"), n_workflows=12), 3)
    ls.run(eft_like)
    assert any(r["load_s"] > 0 for r in ls.rows) and any(r["prefix_hit"] for r in ls.rows)


def test_thirty_two_task_workflows_agree():
    """max_tasks = 32: the top bit of the parent bitmask, the full-mask edge case."""
    from envs.workload import WorkflowSpec, bank_from_specs

    fan = WorkflowSpec(app="wide", prefix_tokens=3000, models=(2,) + (0,) * 30 + (3,),
                       input_tokens=(800,) * 32, expected_output_tokens=(300,) * 32, output_tokens=(280,) * 32,
                       tool_delay=(0.0,) + (0.5,) * 31, parents=((),) + ((0,),) * 30 + (tuple(range(1, 31)),))
    chain = WorkflowSpec(app="long", prefix_tokens=2000, models=(1,) * 32, input_tokens=(200,) * 32,
                         expected_output_tokens=(100,) * 32, output_tokens=(90,) * 32, tool_delay=(0.1,) * 32,
                         parents=((),) + tuple((i,) for i in range(31)))
    config = EnvConfig(n_servers=4, max_tasks=32, n_workflows=4, bank=bank_from_specs([fan, chain], 32))
    ls = Lockstep(config, 1)
    assert {w.n_tasks for w in ls.inst.workflows} == {32}
    ls.run(eft_like, compare_obs_every=3)
