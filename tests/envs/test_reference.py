"""Hand-computed checks of the reference simulator (envs/reference.py) on tiny instances.

Every expected number below is worked out from docs/environment.md by hand, so
these tests pin the reference to the spec independently of the JAX env.
"""

from __future__ import annotations

import numpy as np
import pytest

from envs import catalog
from envs.features import GLOBAL, GLOBAL_FEATURES, NODE, NODE_FEATURES, SERVER, SERVER_FEATURES, TASK, TASK_FEATURES
from envs.instance import Instance
from envs.reference import InvalidActionError, ReferenceSim, run_episode
from envs.workload import WorkflowSpec

H100, A100, L40S, L4 = 0, 1, 2, 3
M8, M14, M32, M70 = 0, 1, 2, 3
LAT, OVH = catalog.NET_LATENCY_S, catalog.TASK_OVERHEAD_S
M, G = len(catalog.DEFAULT_MODELS), len(catalog.DEFAULT_GPUS)
# the expected critical path assumes the fastest catalog GPU (B200 in spec v2) for an 8B model
PMAX = max(g.prefill_tps_8b for g in catalog.DEFAULT_GPUS)
DMAX = max(g.decode_tps_8b for g in catalog.DEFAULT_GPUS)


def wf(app="a", prefix=600, models=(M8,), inp=(1200,), exp=(100,), out=(150,), tool=(0.0,), parents=((),)):
    return WorkflowSpec(app=app, prefix_tokens=prefix, models=tuple(models), input_tokens=tuple(inp),
                        expected_output_tokens=tuple(exp), output_tokens=tuple(out), tool_delay=tuple(tool),
                        parents=tuple(parents))


def make(workflows, arrivals, gpus=(H100,), init=None, models=catalog.DEFAULT_MODELS, **kw):
    return Instance(gpus=catalog.DEFAULT_GPUS, models=tuple(models), server_gpus=tuple(gpus),
                    initial_models=tuple(init if init is not None else (M8,) * len(gpus)),
                    arrivals=tuple(float(a) for a in arrivals), workflows=tuple(workflows), **kw)


def chain(tool1=0.0, app="a"):
    """Two 8B tasks, task 1 reads task 0's 150 output tokens."""
    return wf(app=app, models=(M8, M8), inp=(1200, 400), exp=(100, 50), out=(150, 80), tool=(0.0, tool1),
              parents=((), (0,)))


# H100 serving an 8B model: prefill 12000 tok/s, decode 150 tok/s.
SINGLE = 1200 / 12000 + 600 / 12000 + 150 / 150 + OVH  # the single task of wf() with a prefix miss: 1.16 s
SINGLE_HIT = 1200 / 12000 + 150 / 150 + OVH  # 1.11 s


def test_single_task_idle_h100():
    sim = ReferenceSim(make([wf()], [0.0]))
    obs = sim.reset()
    assert sim.current == (0, 0) and sim.clock == 0.0
    t = obs.task
    assert t.shape == (len(TASK_FEATURES) + M,)
    np.testing.assert_allclose(
        t[:len(TASK_FEATURES)],
        [1.2, 0.1, 0.6, 0.0, 0.0, 0, 0, 0, 1200 / PMAX + 100 / DMAX + OVH, 0.0, 1, 16.0], rtol=1e-6)
    np.testing.assert_array_equal(t[len(TASK_FEATURES):], [1] + [0] * (M - 1))
    row = obs.servers[0]
    assert obs.servers.shape == (1, len(SERVER_FEATURES) + G)
    expect = dict(active=1, fits=1, prefill_ktps=12.0, decode_ktps=0.15, mem_gb=80, free_mem_gb=72 - 16, wait_s=0,
                  resident=1, prefix_hit=0, local_parent_ktok=0, remote_parent_ktok=0, n_local_parents=0, load_s=0,
                  est_start_s=0, est_finish_s=1800 / 12000 + 100 / 150 + OVH, queue_len=0, n_resident=1)
    for name, v in expect.items():
        assert row[SERVER[name]] == pytest.approx(v, rel=1e-6, abs=1e-7), name
    np.testing.assert_array_equal(row[len(SERVER_FEATURES):], [1] + [0] * (G - 1))
    np.testing.assert_allclose(obs.globals, [0, 1, 0, 0.7, 1, 0, 1], rtol=1e-6)
    assert obs.action_mask.tolist() == [True]
    assert obs.node_mask.sum() == 1 and obs.nodes[0, NODE["current"]] == 1 and not obs.adjacency.any()

    obs, r, done, info = sim.step(0)
    d = info["decision"]
    assert done and obs is None
    assert d["start"] == 0.0 and d["load_s"] == 0.0 and not d["prefix_hit"]
    assert d["finish"] == pytest.approx(SINGLE)
    assert d["prefix_s"] == pytest.approx(0.05) and d["prefill_s"] == pytest.approx(0.1)
    assert d["remote_s"] == 0.0 and d["decode_s"] == pytest.approx(1.0)
    assert r == pytest.approx(-SINGLE / 100)
    assert info["mean_response"] == pytest.approx(SINGLE) and info["p95_response"] == pytest.approx(SINGLE)
    assert info["makespan"] == pytest.approx(SINGLE) and info["utilization"] == pytest.approx(1.0)
    assert info["episode_return"] == pytest.approx(-SINGLE / 100)
    assert sim.responses == {0: pytest.approx(SINGLE)}


def test_prefix_hit_same_app_and_miss_other_app():
    sim = ReferenceSim(make([wf(), wf(), wf(app="b")], [0.0, 5.0, 10.0]))
    sim.step(0)
    obs = sim.observe()
    assert sim.clock == 5.0
    assert obs.servers[0, SERVER["prefix_hit"]] == 1
    assert obs.servers[0, SERVER["est_finish_s"]] == pytest.approx(1200 / 12000 + 100 / 150 + OVH, rel=1e-6)
    _, _, _, info = sim.step(0)
    d = info["decision"]
    assert d["prefix_hit"] and d["prefix_s"] == 0.0
    assert d["start"] == 5.0 and d["finish"] == pytest.approx(5.0 + SINGLE_HIT)
    assert sim.observe().servers[0, SERVER["prefix_hit"]] == 0  # app "b" has no key yet
    _, _, _, info = sim.step(0)
    assert not info["decision"]["prefix_hit"] and info["decision"]["finish"] == pytest.approx(10.0 + SINGLE)


def test_prefix_key_lru_capacity():
    apps = ["a", "b", "a", "c", "a", "b"]
    inst = make([wf(app=x) for x in apps], [10.0 * i for i in range(len(apps))], prefix_cache_slots=2)
    out = run_episode(inst, lambda obs, sim: 0)
    # a miss, b miss, a hit (refreshes a), c miss evicts b (the LRU key), a hit, b miss.
    assert [d["prefix_hit"] for d in out["decisions"]] == [False, False, True, False, True, False]


def test_model_load_evicts_and_drops_prefix_keys():
    # L40S: 43.2 GB usable. 8B (16) + 14B (28) = 44 > 43.2, so each load evicts the other model.
    wfs = [wf(models=(M8,)), wf(models=(M14,)), wf(models=(M8,))]
    sim = ReferenceSim(make(wfs, [0.0, 100.0, 200.0], gpus=(L40S,)))
    sim.step(0)  # 8B resident: no load, inserts key (a, 8B)
    obs = sim.observe()
    row = obs.servers[0]
    assert row[SERVER["resident"]] == 0 and row[SERVER["load_s"]] == pytest.approx(28 / 3, rel=1e-6)
    assert row[SERVER["free_mem_gb"]] == pytest.approx(43.2 - 16, rel=1e-6)
    assert row[SERVER["prefill_ktps"]] == pytest.approx(4 * 8 / 14, rel=1e-6)
    _, _, _, info = sim.step(0)
    d = info["decision"]
    p14, d14 = 4000 * 8 / 14, 70 * 8 / 14
    assert d["load_s"] == pytest.approx(28 / 3) and not d["prefix_hit"]
    assert d["finish"] == pytest.approx(100 + 28 / 3 + 1800 / p14 + 150 / d14 + OVH)
    assert sorted(sim.servers[0].resident) == [M14]
    assert (("a", M8) not in sim.servers[0].cache) and (("a", M14) in sim.servers[0].cache)
    row = sim.observe().servers[0]
    assert row[SERVER["prefix_hit"]] == 0 and row[SERVER["n_resident"]] == 1
    _, _, _, info = sim.step(0)
    d = info["decision"]
    # (a, 8B) was dropped with the 8B eviction: a miss although the cache had room.
    assert not d["prefix_hit"] and d["load_s"] == pytest.approx(16 / 3)
    assert d["prefix_s"] == pytest.approx(600 / 4000)
    assert d["finish"] == pytest.approx(200 + 16 / 3 + 1800 / 4000 + 150 / 70 + OVH)

    # Control: on an H100 both models stay resident and the third workflow hits.
    out = run_episode(make(wfs, [0.0, 100.0, 200.0], gpus=(H100,)), lambda obs, sim: 0)
    assert [d["prefix_hit"] for d in out["decisions"]] == [False, False, True]
    assert [d["load_s"] for d in out["decisions"]] == [0.0, pytest.approx(28 / 5), 0.0]


def test_model_lru_evicts_oldest_stamp():
    # Extra 30 GB model so exactly one eviction is needed on an H100 (72 GB usable).
    models = catalog.DEFAULT_MODELS + (catalog.ModelSpec("X", 8.0, 30.0),)
    x = len(catalog.DEFAULT_MODELS)
    wfs = [wf(models=(M8,)), wf(models=(M14,)), wf(models=(x,))]
    sim = ReferenceSim(make(wfs, [0.0, 10.0, 20.0], init=(M14,), models=models))
    sim.step(0)  # loads 8B: 28 + 16 = 44; stamps 14B: -1, 8B: 0
    sim.step(0)  # 14B refreshed to stamp 1
    _, _, _, info = sim.step(0)  # 44 + 30 > 72: evict the oldest stamp, now the 8B
    assert sorted(sim.servers[0].resident) == [M14, x]
    assert info["decision"]["load_s"] == pytest.approx(30 / 5)


def test_remote_vs_local_parent():
    inst = make([chain()], [0.0], gpus=(H100, H100))
    sim = ReferenceSim(inst)
    sim.step(0)
    assert sim.clock == pytest.approx(SINGLE)
    obs = sim.observe()
    s0, s1 = obs.servers[0], obs.servers[1]
    assert s0[SERVER["local_parent_ktok"]] == pytest.approx(0.15) and s0[SERVER["n_local_parents"]] == 1
    assert s0[SERVER["remote_parent_ktok"]] == 0 and s0[SERVER["prefix_hit"]] == 1
    assert s0[SERVER["est_start_s"]] == pytest.approx(0.0, abs=1e-6)
    assert s1[SERVER["remote_parent_ktok"]] == pytest.approx(0.15) and s1[SERVER["n_local_parents"]] == 0
    assert s1[SERVER["est_start_s"]] == pytest.approx(LAT, rel=1e-5)
    assert s1[SERVER["est_finish_s"]] == pytest.approx(LAT + (400 + 600 + 150) / 12000 + 50 / 150 + OVH, rel=1e-5)
    t = obs.task
    assert t[TASK["parent_output_ktok"]] == pytest.approx(0.15) and t[TASK["n_parents"]] == 1
    assert t[TASK["depth"]] == 1 and t[TASK["tasks_left"]] == 1
    assert obs.adjacency[0, 1] and obs.adjacency.sum() == 1 and obs.current == 1
    assert obs.nodes[0, NODE["assigned"]] == 1 and obs.nodes[0, NODE["finish_in_s"]] == pytest.approx(0, abs=1e-6)
    assert obs.nodes[1, NODE["current"]] == 1 and obs.nodes[1, NODE["assigned"]] == 0

    # Local: starts as the parent finishes, prefix cached, nothing to prefill from the parent.
    local = ReferenceSim(inst)
    local.step(0)
    d = local.step(0)[3]["decision"]
    assert d["start"] == pytest.approx(SINGLE) and d["prefix_hit"] and d["remote_s"] == 0
    assert d["finish"] == pytest.approx(SINGLE + 400 / 12000 + 80 / 150 + OVH)
    # Remote: the parent's output arrives net_latency later and is prefilled with the (missed) prefix.
    remote = ReferenceSim(inst)
    remote.step(0)
    d = remote.step(1)[3]["decision"]
    assert d["start"] == pytest.approx(SINGLE + LAT) and not d["prefix_hit"]
    assert d["remote_s"] == pytest.approx(150 / 12000)
    assert d["finish"] == pytest.approx(SINGLE + LAT + (400 + 600 + 150) / 12000 + 80 / 150 + OVH)


def test_tool_delay():
    inst = make([chain(tool1=0.5)], [0.0], gpus=(H100, H100))
    sim = ReferenceSim(inst)
    obs = sim.observe()
    rem1 = 0.5 + 400 / PMAX + 50 / DMAX + OVH
    assert obs.task[TASK["path_remaining_s"]] == pytest.approx(1200 / PMAX + 100 / DMAX + OVH + rem1, rel=1e-6)
    assert obs.nodes[1, NODE["path_remaining_s"]] == pytest.approx(rem1, rel=1e-6)
    assert obs.task[TASK["n_children"]] == 1
    sim.step(0)
    assert sim.clock == pytest.approx(SINGLE + 0.5)  # ready = parent finish + tool delay
    obs = sim.observe()
    assert obs.task[TASK["tool_delay_s"]] == pytest.approx(0.5)
    assert obs.servers[1, SERVER["est_start_s"]] == pytest.approx(LAT, rel=1e-5)
    remote = ReferenceSim(inst)
    remote.step(0)
    assert remote.step(1)[3]["decision"]["start"] == pytest.approx(SINGLE + LAT + 0.5)
    assert sim.step(0)[3]["decision"]["start"] == pytest.approx(SINGLE + 0.5)
    # A root's tool call starts at admission.
    sim = ReferenceSim(make([wf(tool=(0.3,))], [0.0]))
    assert sim.clock == pytest.approx(0.3)
    assert sim.step(0)[3]["decision"]["finish"] == pytest.approx(0.3 + SINGLE)


def test_fcfs_queueing_on_busy_server():
    sim = ReferenceSim(make([wf(), wf()], [0.0, 0.1], gpus=(H100, H100)))
    sim.step(0)
    obs = sim.observe()
    assert sim.clock == pytest.approx(0.1)
    s0, s1 = obs.servers[0], obs.servers[1]
    # information rule: the running task counts with its expected output (100 tokens, not the true 150)
    expected = 1200 / 12000 + 600 / 12000 + 100 / 150 + OVH
    assert s0[SERVER["wait_s"]] == pytest.approx(expected - 0.1, rel=1e-6) and s0[SERVER["queue_len"]] == 1
    assert s0[SERVER["est_start_s"]] == pytest.approx(expected - 0.1, rel=1e-6)
    assert s1[SERVER["wait_s"]] == 0 and s1[SERVER["queue_len"]] == 0 and s1[SERVER["est_start_s"]] == 0
    assert obs.globals[GLOBAL["open_workflows"]] == 1  # workflow 0 is fully assigned
    _, r, done, info = sim.step(0)
    d = info["decision"]
    assert done and d["start"] == pytest.approx(SINGLE) and d["finish"] == pytest.approx(SINGLE + SINGLE_HIT)
    assert sim.responses[1] == pytest.approx(SINGLE + SINGLE_HIT - 0.1)
    assert info["utilization"] == pytest.approx((SINGLE + SINGLE_HIT) / (2 * (SINGLE + SINGLE_HIT)))


def test_decision_order_tie_break():
    two_roots = wf(models=(M8, M8), inp=(1200, 1200), exp=(100, 100), out=(150, 150), tool=(0.0, 0.0),
                   parents=((), ()))
    sim = ReferenceSim(make([two_roots, wf()], [0.0, 0.0], gpus=(H100, H100)))
    assert sim.ready_candidates() == [(0.0, 0, 0), (0.0, 0, 1), (0.0, 1, 0)]
    assert sim.current == (0, 0)
    delayed = wf(models=(M8, M8), inp=(1200, 1200), exp=(100, 100), out=(150, 150), tool=(0.3, 0.0),
                 parents=((), ()))
    sim = ReferenceSim(make([delayed, wf()], [0.0, 0.0], gpus=(H100, H100)))
    assert sim.ready_candidates() == [(0.0, 0, 1), (0.0, 1, 0), (pytest.approx(0.3), 0, 0)]
    order = []
    while not sim.done:
        order.append(sim.current)
        sim.step(len(order) % 2)
    assert order == [(0, 1), (1, 0), (0, 0)]


def test_force_next():
    sim = ReferenceSim(make([wf(), wf()], [0.0, 0.0005], gpus=(H100, H100)))
    with pytest.raises(ValueError):
        sim.force_next(1, 0, tol=1e-4)  # too far from the earliest
    with pytest.raises(ValueError):
        sim.force_next(0, 1)  # no such available task
    sim.force_next(1, 0)
    assert sim.current == (1, 0) and sim.clock == pytest.approx(0.0005)
    sim.step(1)
    assert sim.current == (0, 0)
    _, _, done, info = sim.step(0)
    assert done
    assert info["episode_return"] == pytest.approx(-sum(sim.responses.values()) / 100, abs=1e-5)


def test_window_full_queues_arrival():
    inst = make([chain(), wf()], [0.0, 0.5], gpus=(H100, H100), window=1)
    sim = ReferenceSim(inst)
    assert sim.ready_candidates() == [(0.0, 0, 0)]  # workflow 1 has no slot
    _, r0, _, _ = sim.step(0)
    assert sim.current == (0, 1) and sim.clock == pytest.approx(SINGLE)
    g = sim.observe().globals
    assert g[GLOBAL["open_workflows"]] == 2 and g[GLOBAL["queued_workflows"]] == 1
    assert g[GLOBAL["workflows_left"]] == 2 and g[GLOBAL["decision_index"]] == 1
    assert r0 == pytest.approx(-(SINGLE + (SINGLE - 0.5)) / 100)  # ∫ open over [0, t_1]: w0 from 0, w1 from 0.5
    _, r1, _, info = sim.step(0)
    d1 = info["decision"]["finish"] - SINGLE
    assert r1 == pytest.approx(-d1 / 100)  # w0 completes; the next decision is at the same time
    # w1 is admitted when w0's last task is assigned, at t = SINGLE > its arrival 0.5.
    assert sim.wfs[1].admit == pytest.approx(SINGLE)
    assert sim.current == (1, 0) and sim.clock == pytest.approx(SINGLE)
    obs = sim.observe()
    assert obs.task[TASK["workflow_age_s"]] == pytest.approx(SINGLE - 0.5, rel=1e-6)
    assert obs.globals[GLOBAL["queued_workflows"]] == 0 and obs.globals[GLOBAL["open_workflows"]] == 1
    _, r2, done, info = sim.step(1)
    assert done and info["decision"]["start"] == pytest.approx(SINGLE)
    assert info["decision"]["finish"] == pytest.approx(2 * SINGLE)
    assert r2 == pytest.approx(-SINGLE / 100)
    assert sim.responses == {0: pytest.approx(SINGLE + d1), 1: pytest.approx(2 * SINGLE - 0.5)}
    assert info["episode_return"] == pytest.approx(-sum(sim.responses.values()) / 100)
    assert info["makespan"] == pytest.approx(2 * SINGLE)


def test_invalid_actions():
    inst = make([wf(models=(M70,))], [0.0], gpus=(L4, H100))
    sim = ReferenceSim(inst, max_servers=3)
    obs = sim.observe()
    assert obs.action_mask.tolist() == [False, True, False]
    assert obs.servers.shape == (3, len(SERVER_FEATURES) + G) and not obs.servers[2].any()
    assert obs.servers[0, SERVER["active"]] == 1 and obs.servers[0, SERVER["fits"]] == 0
    for action, why in [(0, "does not fit"), (2, "inactive"), (3, "out of range"), (-1, "out of range"),
                        ("1", "not an integer")]:
        with pytest.raises(InvalidActionError, match=why):
            sim.step(action)
        assert sim.decisions == [] and sim.current == (0, 0) and sim.clock == 0.0
    with pytest.raises(InvalidActionError, match="server 0"):
        sim.step(0)
    _, _, done, info = sim.step(np.int64(1))
    assert done and info["decision"]["load_s"] == pytest.approx(70 / 5)  # evicts the 8B: 16 + 70 > 72
    assert sorted(sim.servers[1].resident) == [M70]


def random_instance(seed, n_wf=12, window=3):
    rng = np.random.default_rng(seed)
    wfs = []
    for _ in range(n_wf):
        n = int(rng.integers(1, 6))
        parents = tuple(tuple(p for p in range(c) if rng.random() < 0.5) for c in range(n))
        wfs.append(wf(app=str(rng.integers(3)), prefix=int(rng.integers(0, 2000)),
                      models=tuple(int(x) for x in rng.integers(0, 4, n)),
                      inp=tuple(int(x) for x in rng.integers(50, 3000, n)),
                      exp=tuple(int(x) for x in rng.integers(10, 400, n)),
                      out=tuple(int(x) for x in rng.integers(1, 600, n)),
                      tool=tuple(float(x) for x in rng.uniform(0, 1, n) * (rng.random(n) < 0.5)), parents=parents))
    arrivals = np.concatenate([[0.0], np.cumsum(rng.exponential(2.0, n_wf - 1))]).astype(np.float32)
    return make(wfs, arrivals, gpus=(H100, L40S, A100, L4), init=(M70, M14, M32, M8), window=window)


@pytest.mark.parametrize("seed", range(4))
def test_episode_return_is_minus_sum_of_responses(seed):
    inst = random_instance(seed)
    rng = np.random.default_rng(100 + seed)
    sim = ReferenceSim(inst, max_servers=6)
    obs, total, done, last_t = sim.reset(), 0.0, False, 0.0
    while not done:
        assert sim.clock >= last_t  # the clock never goes backwards
        last_t = sim.clock
        assert obs.globals.shape == (len(GLOBAL_FEATURES),) and obs.nodes.shape == (16, len(NODE_FEATURES) + M)
        obs, r, done, info = sim.step(int(rng.choice(np.flatnonzero(obs.action_mask))))
        d = info["decision"]
        assert d["start"] >= d["decision_time"] - 1e-12
        busy = d["load_s"] + d["prefix_s"] + d["remote_s"] + d["prefill_s"] + d["decode_s"] + inst.task_overhead_s
        assert d["finish"] - d["start"] == pytest.approx(busy)
        total += r
    resp = [sim.responses[i] for i in range(len(inst.workflows))]
    assert total == pytest.approx(-sum(resp) / inst.reward_scale, rel=1e-9)
    assert info["episode_return"] == pytest.approx(total)
    assert info["mean_response"] == pytest.approx(np.mean(resp))
    assert info["p95_response"] == pytest.approx(np.percentile(resp, 95))
    assert info["makespan"] == pytest.approx(max(d["finish"] for d in sim.decisions))
    assert len(sim.decisions) == sum(w.n_tasks for w in inst.workflows)
