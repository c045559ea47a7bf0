"""Workflows past 32 tasks (spec v2): parent sets as multi-word bitsets, WfCommons-shaped DAGs of
40-250 tasks, the trace command on them, and clean errors at the cap."""

import json
import os
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import EnvConfig, bitset, catalog, make_params, reset, step
from envs.wfshapes import FAMILIES, make_instance
from envs.workflow_io import load_workflows
from envs.workload import WorkflowSpec, bank_from_specs
from tests.envs.lockstep import Lockstep

NAMES = [m.name for m in catalog.DEFAULT_MODELS]


# --- the bitset helpers against Python sets ---

@settings(max_examples=40, deadline=None)
@given(t=st.sampled_from([1, 5, 31, 32, 33, 64, 65, 256]), data=st.data())
def test_bitset_ops_match_python_sets(t, data):
    a = data.draw(st.sets(st.integers(0, t - 1)))
    b = data.draw(st.sets(st.integers(0, t - 1)))
    i = data.draw(st.integers(0, t - 1))
    n = data.draw(st.integers(0, t))
    fa = np.isin(np.arange(t), list(a))
    fb = np.isin(np.arange(t), list(b))
    wa, wb = bitset.np_from_flags(fa), bitset.np_from_flags(fb)
    wd = bitset.n_words(t)
    assert wa.shape == (wd,) and wa.dtype == np.uint32
    np.testing.assert_array_equal(bitset.np_flags(wa, t), fa)
    np.testing.assert_array_equal(np.asarray(bitset.flags(jnp.asarray(wa), t)), fa)
    assert bool(bitset.member(jnp.asarray(wa), i)) == (i in a)
    np.testing.assert_array_equal(bitset.np_flags(np.asarray(bitset.single(i, wd)), t), np.arange(t) == i)
    np.testing.assert_array_equal(bitset.np_flags(np.asarray(bitset.first_n(n, wd)), t), np.arange(t) < n)
    assert bool(bitset.subset(jnp.asarray(wa), jnp.asarray(wb))) == (a <= b)


def test_bitset_resize_keeps_members_and_refuses_to_drop_any():
    flags = np.zeros((2, 70), bool)
    flags[0, [0, 33, 69]] = True
    w = bitset.np_from_flags(flags)
    assert w.shape == (2, 3)
    np.testing.assert_array_equal(bitset.np_flags(bitset.np_resize(w, 5), 70), flags)
    with pytest.raises(ValueError, match="past task 63"):
        bitset.np_resize(w, 2)


# --- WfCommons-shaped DAGs load at their natural sizes ---

@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_loads_at_real_sizes(family, tmp_path):
    for n in (40, 120, 250):
        doc = make_instance(family, n, seed=1)
        path = tmp_path / f"{family}-{n}.json"
        path.write_text(json.dumps(doc))
        (spec,) = load_workflows(str(path), NAMES, max_tasks=256)
        tasks = doc["workflow"]["specification"]["tasks"]
        assert spec.n_tasks == len(tasks) and 0.9 * n <= spec.n_tasks <= n
        # the DAG survives the trip: same edge count, parents first, and the bank decodes it back
        assert sum(len(p) for p in spec.parents) == sum(len(t["parents"]) for t in tasks)
        assert all(p < c for c, ps in enumerate(spec.parents) for p in ps)
        bank = bank_from_specs([spec], 256)
        assert bank.parents.shape == (1, 256, 8)
        assert bank.workflow(0).parents == spec.parents


def test_over_the_cap_is_one_line_naming_file_and_field(tmp_path):
    path = tmp_path / "blast-250.json"
    path.write_text(json.dumps(make_instance("blast", 250)))
    with pytest.raises(ValueError, match=r"blast-250\.json: workflow: has 250 tasks, more than max_tasks=128"):
        load_workflows(str(path), NAMES, max_tasks=128)
    r = subprocess.run([sys.executable, "-m", "envs.trace", "--policy", "eft", "--servers", "2", "--workflows",
                        str(path), "--max-tasks", "128", "--out", str(tmp_path / "t.json")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "blast-250.json: workflow: has 250 tasks, more than max_tasks=128" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "t.json").exists()
    with pytest.raises(ValueError, match="max_tasks: must be an integer in 1..1024"):
        EnvConfig(max_tasks=2048).validate()


# --- the JAX env against the reference on real-size DAGs ---

def _spec(family, n, seed=0):
    """One WfCommons-shaped workflow, through the file loader."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{family}.json")
        with open(path, "w") as f:
            json.dump(make_instance(family, n, seed), f)
        (spec,) = load_workflows(path, NAMES, max_tasks=1024)
    return spec


def test_wide_joins_and_word_boundaries_agree_with_the_reference():
    """A 70-task bank (3 words): seismology's join reads 69 parents across every word, epigenomics'
    chains cross the word boundaries; decision by decision the JAX env and the reference agree."""
    specs = [_spec("seismology", 70), _spec("epigenomics", 70), _spec("montage", 64)]
    assert max(len(p) for p in specs[0].parents) == 69
    config = EnvConfig(n_servers=3, max_tasks=70, n_workflows=3, bank=bank_from_specs(specs, 70), rho=0.9)
    ls = Lockstep(config, 2)
    assert ls.params.max_tasks == 70 and ls.params.bank.parents.shape[-1] == 3
    ls.run(lambda obs, rng: int(np.argmax(obs.action_mask)), compare_obs_every=25)
    # the join started only after its last parent finished, whatever word that parent's bit is in
    for w in {r["workflow"] for r in ls.rows}:
        rows = {r["task"]: r for r in ls.rows if r["workflow"] == w}
        spec = ls.inst.workflows[w]
        for c, ps in enumerate(spec.parents):
            if ps:
                assert rows[c]["start"] >= max(rows[p]["finish"] for p in ps) - 1e-3


def test_sixty_four_tasks_fill_two_whole_words():
    """T = 64: a workflow of exactly 64 tasks completes only when bit 63 is set (first_n at a full word)."""
    chain = WorkflowSpec(app="long", prefix_tokens=500, models=(0,) * 64, input_tokens=(50,) * 64,
                         expected_output_tokens=(20,) * 64, output_tokens=(20,) * 64, tool_delay=(0.0,) * 64,
                         parents=((),) + tuple((i,) for i in range(63)))
    config = EnvConfig(n_servers=2, max_tasks=64, n_workflows=2, bank=bank_from_specs([chain], 64))
    params = make_params(config)
    obs, state = jax.jit(reset)(jax.random.PRNGKey(0), params)
    j_step = jax.jit(step)
    done, k = False, 0
    while not done:
        obs, state, _, done, info = j_step(jax.random.PRNGKey(0), state, jnp.int32(0), params)
        k += 1
        if k == 63:
            assert int(state.n_completed) == 0  # 63 of 64 assigned: not complete
    assert k == 128 and int(state.n_completed) == 2


def test_trace_check_on_wfformat_files_of_40_to_250_tasks(tmp_path):
    """The issue's command, on a small cluster: record with EFT, re-simulate on the reference."""
    files = []
    for family, n in (("montage", 250), ("1000genome", 120), ("cycles", 40)):
        path = tmp_path / f"{family}-{n}.json"
        path.write_text(json.dumps(make_instance(family, n)))
        files.append(str(path))
    out = tmp_path / "trace.json"
    r = subprocess.run([sys.executable, "-m", "envs.trace", "--policy", "eft", "--servers", "4", "--seed", "0",
                        "--n-workflows", "4", "--workflows", *files, "--max-tasks", "256", "--out", str(out),
                        "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "check ok" in r.stdout
    trace = json.loads(out.read_text())
    assert max(len(w["tasks"]) for w in trace["workflows"]) >= 120
    assert len(trace["decisions"]) == sum(len(w["tasks"]) for w in trace["workflows"])
