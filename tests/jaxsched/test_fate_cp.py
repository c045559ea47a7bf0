"""FATE-CP on hand-built situations, and through the evaluation harness (skipped without OR-Tools)."""

import numpy as np
import pytest

pytest.importorskip("ortools")

from envs import catalog  # noqa: E402
from envs.features import SERVER  # noqa: E402
from envs.instance import Instance  # noqa: E402
from envs.reference import ReferenceSim  # noqa: E402
from jaxsched import evaluation as E  # noqa: E402
from jaxsched.fate_cp import FateCP, FateCPConfig  # noqa: E402
from tests.jaxsched.test_baselines import A100, H100, L4, M8, M14, M32, M70, wf  # noqa: E402


def sim_for(workflows, arrivals, gpus, init, actions=(), **kw):
    inst = Instance(gpus=catalog.DEFAULT_GPUS, models=catalog.DEFAULT_MODELS, server_gpus=tuple(gpus),
                    initial_models=tuple(init), arrivals=tuple(arrivals), workflows=tuple(workflows), window=8, **kw)
    sim = ReferenceSim(inst)
    obs = sim.reset()
    for a in actions:
        obs, *_ = sim.step(a)
    return obs, sim


def test_picks_the_idle_fast_server():
    obs, sim = sim_for([wf([M8])], [0.0], gpus=(L4, H100), init=(M8, M8))
    assert FateCP()(obs, sim) == 1


def test_keeps_the_only_copy_of_a_model_that_a_planned_task_needs():
    # As in the FATE-lite case: the 70B call ready at t=5 is in the plan, so the 14B goes to server 1.
    obs, sim = sim_for([wf([M14]), wf([M70], delay=5.0, app="b")], [0.0, 0.0], gpus=(H100, H100), init=(M70, M8))
    p = FateCP()
    assert p(obs, sim) == 1 and p.fallbacks == 0


@pytest.mark.parametrize("init", [(M8, M8, M8, M8), (M14, M8, M32, M8), (M8, M14, M8, M14)])
def test_alone_it_agrees_with_the_cost_model(init):
    """With one task and nothing pending, the plan's objective is that task's finish time, so the
    choice is the observation's earliest-finish server (load, prefix and speed all counted)."""
    obs, sim = sim_for([wf([M14], out=400)], [0.0], gpus=(L4, H100, A100, H100), init=init)
    est = np.where(obs.action_mask, obs.servers[:, SERVER["est_finish_s"]], np.inf)
    assert FateCP()(obs, sim) == int(np.argmin(est))


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="FateCPConfig.max_tasks"):
        FateCPConfig(max_tasks=0)
    with pytest.raises(ValueError, match="FateCPConfig.time_limit_s"):
        FateCPConfig(time_limit_s=0)


def test_runs_through_the_harness_and_beats_round_robin():
    res = E.evaluate(E.resolve_policies(["fate_cp"]), servers=[4], seeds=2)
    cp, rr = res[4]["fate_cp"], res[4]["round_robin"]
    assert np.all(np.isfinite(cp["mean_response"]))
    assert cp["mean_response"].mean() < rr["mean_response"].mean()


def test_idle_servers_long_after_their_last_task_leave_the_plan_feasible():
    """Every server idle, the latest since ~97 s: the plan's horizon must not shrink by that gap
    (it did, the solve was infeasible and the policy silently fell back to EFT)."""
    chain = wf([M8, M8, M8], parents=[(), (0,), (1,)], app="b")
    obs, sim = sim_for([wf([M8]), chain], [0.0, 100.0], gpus=(H100, A100), init=(M8, M8), actions=[0])
    assert sim.clock == 100.0 and all(srv.free_at < 5.0 for srv in sim.servers)
    p = FateCP()
    p(obs, sim)
    assert p.fallbacks == 0, p.fallback_causes


def test_fallbacks_are_counted_by_cause():
    p = FateCP(FateCPConfig(time_limit_s=1e-9, wall_limit_s=1e-9))
    obs, sim = sim_for([wf([M8, M8, M8], parents=[(), (0,), (0,)]) for _ in range(6)], [0.0] * 6,
                       gpus=(H100, A100, H100), init=(M8, M8, M8))
    choice = p(obs, sim)
    assert obs.action_mask[choice]
    assert set(p.fallback_causes) <= {"timeout", "infeasible", "invalid"}
    assert p.fallbacks == sum(p.fallback_causes.values())
