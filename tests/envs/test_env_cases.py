"""The JAX env on hand-built instances where the right numbers are known."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import catalog, step
from envs.instance import Instance, replay
from envs.workload import WorkflowSpec

H100, A100, L40S, L4 = 0, 1, 2, 3
M8, M14, M32, M70 = 0, 1, 2, 3
jstep = jax.jit(step)


def wf(models, inp=1000, out=150, prefix=1000, delay=0.0, parents=None, app="a"):
    n = len(models)
    return WorkflowSpec(app=app, prefix_tokens=prefix, models=tuple(models), input_tokens=(inp,) * n,
                        expected_output_tokens=(out,) * n, output_tokens=(out,) * n, tool_delay=(delay,) * n,
                        parents=tuple(parents or [()] * n))


def inst(workflows, arrivals, gpus=(H100,), init=None, window=8, **kw):
    return Instance(gpus=catalog.DEFAULT_GPUS, models=catalog.DEFAULT_MODELS, server_gpus=tuple(gpus),
                    initial_models=tuple(init if init is not None else [M8] * len(gpus)),
                    arrivals=tuple(arrivals), workflows=tuple(workflows), window=window, **kw)


def play(i, actions, max_servers=None):
    params, obs, state = replay(i, max_servers=max_servers)
    out = []
    for a in actions:
        obs, state, r, d, info = jstep(jax.random.PRNGKey(0), state, jnp.int32(a), params)
        out.append((jax.device_get(info), float(r), bool(d)))
    return params, state, out


def test_single_task_time_and_reward():
    # 8B on H100: prefill 12000 t/s, decode 150 t/s; prompt 1000 + prefix 1000 (miss); 150 out.
    params, state, out = play(inst([wf([M8])], [0.0]), [0])
    info, r, done = out[0]
    dur = 2000 / 12000 + 150 / 150 + 0.01
    assert done
    np.testing.assert_allclose(float(info["decision"].finish), dur, rtol=1e-6)
    np.testing.assert_allclose(r, -dur / 100.0, rtol=1e-6)
    np.testing.assert_allclose(float(info["mean_response"]), dur, rtol=1e-6)


def test_exact_cross_workflow_tie_goes_to_earlier_workflow():
    """Two workflows arrive together: workflow 0's root is decided first, then 1's, then the children."""
    w = wf([M8, M8], parents=[(), (0,)])
    params, state, out = play(inst([w, w], [0.0, 0.0], gpus=(H100, H100)), [0, 1, 0, 1])
    order = [(int(i["decision"].workflow), int(i["decision"].task)) for i, _, _ in out]
    assert order == [(0, 0), (1, 0), (0, 1), (1, 1)]


def test_model_that_exactly_fills_memory_stays_with_the_others():
    """H100 usable memory is 72 GB: 16 + 28 + 28 = 72 fits, so loading the third model evicts nothing."""
    models = catalog.DEFAULT_MODELS + (catalog.ModelSpec("14B-b", 14.0, 28.0),)
    extra = len(catalog.DEFAULT_MODELS)
    w = wf([M8, M14, extra], parents=[(), (0,), (1,)])
    i = Instance(gpus=catalog.DEFAULT_GPUS, models=models, server_gpus=(H100,), initial_models=(M8,),
                 arrivals=(0.0,), workflows=(w,))
    params, state, out = play(i, [0, 0, 0])
    assert [float(o[0]["decision"].load_s) > 0 for o in out] == [False, True, True]
    assert bool(state.servers.resident[0, M8]) and bool(state.servers.resident[0, M14]) and bool(state.servers.resident[0, extra])


def test_lru_eviction_drops_the_models_prefix_keys():
    """L40S holds 43.2 GB: loading 14B evicts the 8B, and the (app, 8B) prefix goes with it."""
    w8, w14 = wf([M8]), wf([M14])
    params, state, out = play(inst([w8, w14, w8], [0.0, 10.0, 20.0], gpus=(L40S,)), [0, 0, 0])
    d = [o[0]["decision"] for o in out]
    assert [bool(x.prefix_hit) for x in d] == [False, False, False]
    assert [float(x.load_s) > 0 for x in d] == [False, True, True]
    np.testing.assert_allclose(float(d[1].load_s), 28.0 / 3.0, rtol=1e-6)


def test_lru_keeps_the_recently_used_model_when_a_load_needs_only_part_of_the_memory():
    """H100 (72 GB usable) holds 8B (16), then 14B (28), then 3B (6), used in that order. Loading 32B
    (64 GB) must free 42 GB: least recently used first evicts 8B and 14B and keeps the 3B. Evicting
    in the reverse order would drop the 3B first and end with nothing else resident."""
    m3 = [m.name for m in catalog.DEFAULT_MODELS].index("3B")
    ws = [wf([M8]), wf([M14]), wf([m3]), wf([M32])]
    params, state, out = play(inst(ws, [0.0, 10.0, 20.0, 30.0]), [0, 0, 0, 0])
    d = out[3][0]["decision"]
    assert int(d.n_evicted) == 2 and int(d.n_kept) == 1
    assert bool(state.servers.resident[0, m3]) and bool(state.servers.resident[0, M32])
    assert not bool(state.servers.resident[0, M8]) and not bool(state.servers.resident[0, M14])


def test_second_task_of_app_hits_prefix():
    params, state, out = play(inst([wf([M8]), wf([M8])], [0.0, 5.0]), [0, 0])
    d = out[1][0]["decision"]
    assert bool(d.prefix_hit)
    np.testing.assert_allclose(float(d.finish) - float(d.start), 1000 / 12000 + 1.0 + 0.01, rtol=1e-6)


def test_local_parent_is_free_remote_parent_pays_latency_and_prefill():
    chain = wf([M8, M8], parents=[(), (0,)])
    _, _, local = play(inst([chain], [0.0], gpus=(H100, H100)), [0, 0])
    _, _, remote = play(inst([chain], [0.0], gpus=(H100, H100)), [0, 1])
    f0 = float(local[0][0]["decision"].finish)
    dl, dr = local[1][0]["decision"], remote[1][0]["decision"]
    np.testing.assert_allclose(float(dl.start), f0, rtol=1e-6)
    np.testing.assert_allclose(float(dr.start), f0 + 0.02, rtol=1e-6)
    np.testing.assert_allclose(float(dr.remote_s), 150 / 12000, rtol=1e-6)
    assert float(dl.remote_s) == 0.0 and bool(dl.prefix_hit) and not bool(dr.prefix_hit)


@pytest.mark.parametrize("bad", [1, 5, -1, 99])
def test_masked_action_is_redirected_and_flagged(bad):
    """Server 1 is an L4 (the 32B model does not fit); 5 and 99 are padding/out of range; -1 is negative."""
    params, state, out = play(inst([wf([M32])], [0.0], gpus=(A100, L4, H100)), [bad], max_servers=6)
    d = out[0][0]["decision"]
    assert bool(out[0][0]["invalid_action"]) and bool(d.invalid_action)
    assert int(d.server) == 0  # the lowest-index valid server


def test_valid_action_is_not_flagged():
    params, state, out = play(inst([wf([M32])], [0.0], gpus=(A100, L4, H100)), [2], max_servers=6)
    assert not bool(out[0][0]["invalid_action"]) and int(out[0][0]["decision"].server) == 2


def test_stepping_a_finished_episode_changes_nothing():
    params, state, out = play(inst([wf([M8])], [0.0]), [0])
    obs2, state2, r, d, info = jstep(jax.random.PRNGKey(0), state, jnp.int32(0), params)
    assert float(r) == 0.0 and bool(d)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(state2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for leaf in jax.tree.leaves(obs2):  # the finished episode's observation holds no inf or nan
        assert np.all(np.isfinite(np.asarray(leaf, np.float64))), leaf


def test_queued_workflow_is_admitted_when_a_slot_frees():
    """Window of one: workflow 1 arrives at 0.5 s, waits for workflow 0's last assignment, counts from 0.5."""
    chain = wf([M8, M8], parents=[(), (0,)])
    params, state, out = play(inst([chain, wf([M8])], [0.0, 0.5], window=1), [0, 0, 0])
    d = [o[0]["decision"] for o in out]
    assert [(int(x.workflow), int(x.task)) for x in d] == [(0, 0), (0, 1), (1, 0)]
    # workflow 1 is admitted at the decision time of (0, 1) = finish of (0, 0)
    np.testing.assert_allclose(float(d[2].decision_time), float(d[0].finish), rtol=1e-6)
    total = sum(r for _, r, _ in out)
    resp = (float(d[1].finish) - 0.0) + (float(d[2].finish) - 0.5)
    np.testing.assert_allclose(total, -resp / 100.0, rtol=1e-5)
