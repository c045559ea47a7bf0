"""Each baseline on hand-built situations where the right server is known by arithmetic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import catalog, step
from envs.features import SERVER
from envs.instance import Instance, replay
from envs.workload import WorkflowSpec
from jaxsched import baselines as B

H100, A100, L40S, L4 = 0, 1, 2, 3
M8, M14, M32, M70 = 0, 1, 2, 3
jstep = jax.jit(step)
KEY = jax.random.PRNGKey(0)


def wf(models, out=150, prefix=1000, delay=0.0, parents=None, app="a", inp=1000):
    n = len(models)
    delay = delay if isinstance(delay, tuple) else (delay,) * n
    out = out if isinstance(out, tuple) else (out,) * n
    return WorkflowSpec(app=app, prefix_tokens=prefix, models=tuple(models), input_tokens=(inp,) * n,
                        expected_output_tokens=out, output_tokens=out, tool_delay=delay,
                        parents=tuple(parents or [()] * n))


def situation(workflows, arrivals, gpus, init, actions=(), **kw):
    """The observation after playing `actions` on a hand-built instance."""
    inst = Instance(gpus=catalog.DEFAULT_GPUS, models=catalog.DEFAULT_MODELS, server_gpus=tuple(gpus),
                    initial_models=tuple(init), arrivals=tuple(arrivals), workflows=tuple(workflows), window=8, **kw)
    params, obs, state = replay(inst)
    for a in actions:
        obs, state, *_ = jstep(KEY, state, jnp.int32(a), params)
    return obs


def choice(name, obs):
    return int(B.get(name)(KEY, obs))


def test_eft_picks_the_idle_fast_server():
    obs = situation([wf([M8])], [0.0], gpus=(L4, H100), init=(M8, M8))
    assert choice("eft", obs) == 1
    assert choice("least_loaded", obs) == 0  # both idle: the tie goes to the lower index
    assert choice("round_robin", obs) == 0
    assert choice("residency_first", obs) == 1  # both resident: EFT among them


def test_residency_first_avoids_a_16s_load_that_eft_accepts():
    # Server 1 (A100, 32B resident) is busy with a long 32B call: 3000 tokens at 25 tok/s = 120 s.
    # A 32B call on server 0 must load it first: 64 GB at 4 GB/s = 16 s, still far sooner.
    long_call = wf([M32], out=3000, app="x")
    obs = situation([long_call, wf([M32], app="y")], [0.0, 0.0], gpus=(A100, A100), init=(M8, M32), actions=[1])
    np.testing.assert_allclose(obs.servers[0, SERVER["load_s"]], 16.0, rtol=1e-6)
    assert obs.servers[1, SERVER["wait_s"]] > 100
    assert choice("residency_first", obs) == 1
    assert choice("eft", obs) == 0


def test_locality_first_follows_the_parent_eft_does_not():
    # The parent (a 14B call, 2000 output tokens) ran on the A100; the 14B child finds that output in
    # the A100's KV cache (same server, same model). The faster H100 also holds the 14B and pulls the
    # output remotely in 0.3 s, still finishing first. EFT takes the H100, locality-first the A100.
    w = wf([M14, M14], out=(2000, 100), parents=[(), (0,)])
    obs = situation([w], [0.0], gpus=(H100, A100), init=(M14, M32), actions=[1])
    assert obs.servers[1, SERVER["local_parent_ktok"]] == pytest.approx(2.0)
    assert choice("locality_first", obs) == 1
    assert choice("eft", obs) == 0


def test_jsq_avoids_the_server_with_queued_work():
    obs = situation([wf([M8]), wf([M8]), wf([M8])], [0.0, 0.0, 0.0], gpus=(H100, H100, H100), init=(M8,) * 3,
                    actions=[0, 0])
    assert obs.servers[0, SERVER["queue_len"]] == 2
    assert choice("jsq", obs) == 1


def test_fate_lite_does_not_evict_the_only_copy_of_a_model_pending_work_needs():
    # Server 0 holds the 70B (70 of 72 usable GB): loading the 14B there evicts it, and a 70B call is
    # pending (ready at t=5). Server 1 has room. Both need the 14B load, so EFT ties and takes server 0.
    obs = situation([wf([M14]), wf([M70], delay=5.0, app="b")], [0.0, 0.0], gpus=(H100, H100), init=(M70, M8))
    np.testing.assert_allclose(obs.servers[:, SERVER["evict_reload_s"]], [70.0 / 5.0, 0.0], rtol=1e-6)
    assert choice("eft", obs) == 0
    assert choice("fate_lite", obs) == 1
    assert int(B.make_fate_lite(evict_weight=0.0)(KEY, obs)) == 0  # the penalty is what moves it


def test_fate_lite_keeps_a_prefix_that_another_workflow_will_reuse():
    # One prefix slot per server. Workflow 0 (app b, prefix 3000) ran its root on server 0 and has a
    # child coming at t=20; workflow 1's call (app a) at t=5 would push b's prefix out of server 0.
    b = wf([M8, M8], prefix=3000, delay=(0.0, 20.0), parents=[(), (0,)], app="b")
    obs = situation([b, wf([M8], delay=5.0)], [0.0, 0.0], gpus=(H100, H100), init=(M8, M8), actions=[0],
                    prefix_cache_slots=1)
    np.testing.assert_allclose(obs.servers[:, SERVER["prefix_churn_ktok"]], [3.0, 0.0], rtol=1e-6)
    assert choice("eft", obs) == 0
    assert choice("fate_lite", obs) == 1


def test_fate_lite_keeps_a_task_next_to_its_childs_other_inputs():
    # Task 2 joins tasks 0 and 1. Task 0 (output 4000) ran on server 1; placing task 1 away from it
    # makes the join pull one of the two outputs remotely.
    w = wf([M8, M8, M8], out=(4000, 800, 100), prefix=0, delay=(0.0, 60.0, 0.0), parents=[(), (), (0, 1)])
    obs = situation([w], [0.0], gpus=(H100, H100), init=(M8, M8), actions=[1])
    np.testing.assert_allclose(obs.servers[:, SERVER["child_colocated_ktok"]], [0.0, 4.0], rtol=1e-6)
    assert choice("eft", obs) == 0
    assert int(B.make_fate_lite(locality_weight=10.0)(KEY, obs)) == 1


@pytest.mark.parametrize("name", list(B.BASELINES))
def test_every_baseline_respects_the_mask(name):
    # A 70B call: only the H100 / A100 fit it; the L4 and L40S (and the padding) are masked.
    obs = situation([wf([M70])], [0.0], gpus=(L4, L40S, A100, H100), init=(M8,) * 4)
    assert list(np.asarray(obs.action_mask)) == [False, False, True, True]
    for seed in range(8):
        assert int(B.get(name)(jax.random.PRNGKey(seed), obs)) in (2, 3)


def test_unknown_baseline_names_the_choices():
    with pytest.raises(ValueError, match="unknown baseline 'fifo'.*round_robin"):
        B.get("fifo")
