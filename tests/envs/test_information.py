"""Spec v2's information rule and per-model locality, in the JAX env and the reference.

The rule: at a decision at clock t the observation may use true quantities of
finished tasks only; an assigned task that has not finished counts with its
expected duration. So two episodes that differ only in the true output lengths
of tasks unfinished at t (still running, queued, or not assigned yet) must give
identical observations at t.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs import EnvConfig, catalog, make_params, step
from envs.instance import Instance, materialize, replay
from envs.reference import ReferenceSim
from envs.workload import WorkflowSpec

jstep = jax.jit(step)
H100, A100 = 0, 1
M8, M14 = ([m.name for m in catalog.DEFAULT_MODELS].index(n) for n in ("8B", "14B"))


def _obs_arrays(obs) -> dict:
    o = jax.device_get(obs)
    return {"task": np.asarray(o.task), "servers": np.asarray(o.servers), "nodes": np.asarray(o.dag.nodes),
            "globals": np.asarray(o.globals), "mask": np.asarray(o.action_mask)}


def _ref_arrays(r) -> dict:
    return {"task": r.task, "servers": r.servers, "nodes": r.nodes, "globals": r.globals, "mask": r.action_mask}


def _random_actions(mask_fn, rng, k):
    return [int(rng.choice(np.flatnonzero(mask_fn(i)))) for i in range(k)]


def _hidden_tasks(sim: ReferenceSim) -> list[tuple[int, int]]:
    """(workflow, task) of every task unfinished at the pending decision's clock."""
    t = sim.clock
    return [(wi, c) for wi, w in enumerate(sim.wfs) for c in range(len(w.finish))
            if w.finish[c] is None or w.finish[c] > t]


def _lengthen(inst: Instance, hidden, rng) -> Instance:
    """The same instance with the true outputs of `hidden` tasks lengthened (never shortened: a
    shorter task could finish before t and change the past)."""
    wfs = list(inst.workflows)
    by_wf: dict[int, list[int]] = {}
    for wi, c in hidden:
        by_wf.setdefault(wi, []).append(c)
    for wi, cs in by_wf.items():
        out = list(wfs[wi].output_tokens)
        for c in cs:
            out[c] = int(out[c] * rng.uniform(1.5, 4.0)) + 50
        wfs[wi] = dataclasses.replace(wfs[wi], output_tokens=tuple(out))
    return dataclasses.replace(inst, workflows=tuple(wfs))


def _episode(seed: int, n: int = 4) -> Instance:
    config = EnvConfig(n_servers=n, workflows_per_server=3.0, rho=1.2)
    params = make_params(config)
    return materialize(jax.random.PRNGKey(seed), config, params)


def _play_reference(inst, actions):
    sim = ReferenceSim(inst, max_tasks=16)
    obs = sim.reset()
    for a in actions:
        obs, _, done, _ = sim.step(a)
        assert not done
    return sim, obs


def _play_jax(inst, actions):
    params, obs, state = replay(inst)
    for a in actions:
        obs, state, _, _, _ = jstep(jax.random.PRNGKey(0), state, jnp.int32(a), params)
    return obs


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), frac=st.floats(0.2, 0.8))
def test_hidden_output_lengths_do_not_change_the_observation(seed, frac):
    """Run k random decisions, lengthen every task unfinished at decision k, replay: identical obs."""
    inst = _episode(seed)
    rng = np.random.default_rng(seed)
    sim = ReferenceSim(inst, max_tasks=16)
    sim.reset()
    total = sum(w.n_tasks for w in inst.workflows)
    k = max(1, int(frac * total))
    actions = []
    for _ in range(k):
        a = int(rng.choice(np.flatnonzero(sim.observe().action_mask)))
        actions.append(a)
        sim.step(a)
    hidden = _hidden_tasks(sim)
    running = [(wi, c) for wi, c in hidden if sim.wfs[wi].finish[c] is not None]
    other = _lengthen(inst, hidden, rng)

    ref_a, ref_b = _play_reference(inst, actions)[1], _play_reference(other, actions)[1]
    for name, a in _ref_arrays(ref_a).items():
        np.testing.assert_array_equal(a, _ref_arrays(ref_b)[name], err_msg=f"reference {name} ({len(running)} running)")
    jax_a, jax_b = _obs_arrays(_play_jax(inst, actions)), _obs_arrays(_play_jax(other, actions))
    for name, a in jax_a.items():
        np.testing.assert_array_equal(a, jax_b[name], err_msg=f"jax {name} ({len(running)} running)")


def test_the_property_has_teeth():
    """The lengthened tasks do change the true schedule (so the test above compares different episodes)."""
    inst = _episode(3)
    rng = np.random.default_rng(0)
    sim = ReferenceSim(inst, max_tasks=16)
    sim.reset()
    actions = []
    for _ in range(12):
        a = int(rng.choice(np.flatnonzero(sim.observe().action_mask)))
        actions.append(a)
        sim.step(a)
    running = [x for x in _hidden_tasks(sim) if sim.wfs[x[0]].finish[x[1]] is not None]
    assert running, "no task running at the decision: pick another episode"
    other = _lengthen(inst, _hidden_tasks(sim), rng)
    sim_b, _ = _play_reference(other, actions)
    assert any(sim_b.wfs[wi].finish[c] != sim.wfs[wi].finish[c] for wi, c in running)


# ----------------------------------------------------------------------------- hand-built cases

def wf(models, out=150, expected=None, parents=None, app="a"):
    n = len(models)
    return WorkflowSpec(app=app, prefix_tokens=1000, models=tuple(models), input_tokens=(1000,) * n,
                        expected_output_tokens=(expected or out,) * n, output_tokens=(out,) * n,
                        tool_delay=(0.0,) * n, parents=tuple(parents or [()] * n))


def inst(workflows, arrivals, gpus=(H100,), init=None):
    return Instance(gpus=catalog.DEFAULT_GPUS, models=catalog.DEFAULT_MODELS, server_gpus=tuple(gpus),
                    initial_models=tuple(init if init is not None else [M8] * len(gpus)),
                    arrivals=tuple(arrivals), workflows=tuple(workflows), window=8)


def both_servers(i, actions):
    """The server features after `actions`, from the JAX env and from the reference."""
    obs = _play_jax(i, actions)
    _, robs = _play_reference(i, actions)
    return np.asarray(jax.device_get(obs.servers)), robs.servers


def test_a_running_task_counts_with_its_expected_duration():
    """Workflow 0's task runs long (true 1500 tokens, expected 150); workflow 1 arrives at 1 s,
    while it runs: the server's wait is the expected drain, not the true one."""
    from envs.features import SERVER

    long = wf([M8], out=1500, expected=150)
    i = inst([long, wf([M8])], [0.0, 1.0])
    expected_finish = 2000 / 12000 + 150 / 150 + 0.01  # load 0, prefix miss, expected decode
    for servers in both_servers(i, [0]):
        np.testing.assert_allclose(servers[0, SERVER["wait_s"]], expected_finish - 1.0, rtol=1e-5)


def test_a_task_running_past_its_expected_finish_is_expected_to_end_now():
    from envs.features import SERVER

    long = wf([M8], out=1500, expected=150)
    i = inst([long, wf([M8])], [0.0, 5.0])  # the expected finish (1.18 s) has passed at 5 s; true: 10.2 s
    for servers in both_servers(i, [0]):
        assert servers[0, SERVER["wait_s"]] == 0.0
        assert servers[0, SERVER["queue_len"]] == 1.0  # still running: that much is known


@pytest.mark.parametrize("child_model, server, local, latency", [
    (M8, 0, True, False),    # same server, same model: the parent's KV cache serves the child
    (M14, 0, False, False),  # same server, other model: no network, but the output is prefilled
    (M8, 1, False, True),    # other server: latency and prefill
])
def test_parent_locality_is_per_model(child_model, server, local, latency):
    chain = wf([M8, child_model], parents=[(), (0,)])
    i = inst([chain], [0.0], gpus=(H100, H100), init=[M8, M8])
    _, _, out = _play_jax_info(i, [0, server])
    d = out[1]["decision"]
    sim = ReferenceSim(i)
    sim.reset()
    sim.step(0)
    _, _, _, rinfo = sim.step(server)
    rd = rinfo["decision"]
    f0 = float(out[0]["decision"].finish)
    pre = 12000 * 8 / catalog.DEFAULT_MODELS[child_model].params_b
    for start, remote_s in ((float(d.start), float(d.remote_s)), (rd["start"], rd["remote_s"])):
        np.testing.assert_allclose(start, f0 + (0.02 if latency else 0.0), rtol=1e-6)
        np.testing.assert_allclose(remote_s, 0.0 if local else 150 / pre, rtol=1e-5, atol=1e-9)


def test_observation_counts_only_same_model_parents_as_local():
    from envs.features import SERVER

    chain = wf([M8, M14], parents=[(), (0,)])
    i = inst([chain], [0.0], gpus=(H100, H100), init=[M8, M8])
    for servers in both_servers(i, [0]):
        assert servers[0, SERVER["local_parent_ktok"]] == 0.0
        np.testing.assert_allclose(servers[0, SERVER["remote_parent_ktok"]], 0.15, rtol=1e-6)
        assert servers[0, SERVER["n_local_parents"]] == 0.0


def _play_jax_info(i, actions):
    params, obs, state = replay(i)
    out = []
    for a in actions:
        obs, state, r, d, info = jstep(jax.random.PRNGKey(0), state, jnp.int32(a), params)
        out.append(jax.device_get(info))
    return params, state, out


@pytest.mark.parametrize("child_model", [M8, M14])
def test_trace_resimulation_applies_per_model_locality(child_model):
    """A trace of the JAX env's schedule (parent and child on one server) re-simulates to the same
    finishes: the child prefills the parent's output exactly when it runs another model."""
    from envs import trace as tr

    chain = wf([M8, child_model], parents=[(), (0,)])
    i = inst([chain], [0.0], gpus=(H100,), init=[M8])
    _, state, out = _play_jax_info(i, [0, 0])
    rows = [{f: np.asarray(getattr(o["decision"], f)).item() for f in o["decision"].__dataclass_fields__} for o in out]
    summary = {k: float(out[-1][k]) for k in ("mean_response", "p95_response", "makespan", "episode_return")}
    trace = tr.episode_trace(i, rows, summary)
    assert [t["model"] for t in trace["workflows"][0]["tasks"]] == [catalog.DEFAULT_MODELS[m].name for m in (M8, child_model)]
    tr.check_trace(trace)  # raises on any difference
    again = tr.resimulate_decisions(trace)
    remote_s = again[1]["remote_s"]
    assert (remote_s > 0) == (child_model != M8)
