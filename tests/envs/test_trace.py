"""Schedule traces: the spec's layout, re-simulation on the reference, the CLI and its errors.

One JAX-recorded episode (EFT, 4 servers, 8 workflows) is shared by most tests; the CLI
test records the same episode again, so it reuses the compiled program.
"""

import copy
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from envs import EnvConfig, catalog
from envs import reference as ref
from envs import trace as tr
from envs.instance import materialize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = EnvConfig(n_servers=4, bank_size=32, n_workflows=8)
CLI_CONFIG = ["--servers", "4", "--bank-size", "32", "--n-workflows", "8"]
SEED = 3


@pytest.fixture(scope="module")
def trace():
    return tr.record_episode(CONFIG, "eft", SEED)


def test_trace_has_exactly_the_spec_fields(trace):
    assert list(trace) == list(tr.TOP_LEVEL_FIELDS)
    assert trace["spec_version"] == catalog.SPEC_VERSION
    assert [set(g) for g in trace["gpus"]] == [set(tr.GPU_FIELDS)] * len(catalog.DEFAULT_GPUS)
    assert [g["name"] for g in trace["gpus"]] == [g.name for g in catalog.DEFAULT_GPUS]
    assert [set(m) for m in trace["models"]] == [set(tr.MODEL_FIELDS)] * len(catalog.DEFAULT_MODELS)
    assert set(trace["constants"]) == set(tr.CONSTANT_FIELDS)
    assert [s["id"] for s in trace["servers"]] == [0, 1, 2, 3]
    for s in trace["servers"]:
        assert set(s) == {"id", "gpu", "initial_models"} and len(s["initial_models"]) == 1
    assert len(trace["workflows"]) == 8
    for i, w in enumerate(trace["workflows"]):
        assert set(w) == set(tr.WORKFLOW_FIELDS) and w["id"] == i
        for j, t in enumerate(w["tasks"]):
            assert set(t) == set(tr.TASK_FIELDS) and t["id"] == j
            assert all(p < j for p in t["parents"])
    n_tasks = sum(len(w["tasks"]) for w in trace["workflows"])
    assert len(trace["decisions"]) == n_tasks
    for k, d in enumerate(trace["decisions"]):
        assert list(d) == list(tr.DECISION_FIELDS) and d["seq"] == k
        assert isinstance(d["prefix_hit"], bool) and isinstance(d["server"], int)
    s = trace["summary"]
    assert set(tr.SUMMARY_FIELDS) <= set(s) <= {*tr.SUMMARY_FIELDS, "utilization", "busy_time_share"}
    share = s["busy_time_share"]
    assert set(share) == set(tr.SHARE_NAMES) and abs(sum(share.values()) - 1) < 1e-9
    assert min(share.values()) >= 0


def test_jax_trace_round_trips_and_resimulates_to_the_same_numbers(trace):
    text = json.dumps(trace)
    back = json.loads(text)
    assert back == trace
    got = tr.check_trace(back, atol=1e-3)
    for f in tr.SUMMARY_FIELDS:
        np.testing.assert_allclose(got[f], trace["summary"][f], rtol=1e-5, atol=1e-3, err_msg=f)
    np.testing.assert_allclose(tr.resimulate(back)["utilization"], trace["summary"]["utilization"], rtol=1e-4)
    # The trace's episode is the one the JAX env played: materialize(k_reset) field for field.
    inst = tr.trace_instance(back)
    want = materialize(jax.random.split(jax.random.PRNGKey(SEED))[0], CONFIG)
    for f in ("gpus", "models", "server_gpus", "initial_models", "arrivals", "window", "rho", "reward_scale"):
        assert getattr(inst, f) == getattr(want, f), f
    for a, b in zip(inst.workflows, want.workflows, strict=True):
        for f in ("app", "prefix_tokens", "models", "input_tokens", "expected_output_tokens", "output_tokens",
                  "tool_delay", "parents"):
            assert getattr(a, f) == getattr(b, f), f


def test_episode_return_is_minus_total_response_over_scale(trace):
    resp = tr.responses(trace)
    s = trace["summary"]
    scale = trace["constants"]["reward_scale"]
    np.testing.assert_allclose(s["episode_return"], -sum(resp) / scale, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(s["mean_response"], np.mean(resp), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(s["p95_response"], np.percentile(resp, 95), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(s["makespan"], max(d["finish"] for d in trace["decisions"]), rtol=1e-6)


def test_reference_rows_make_a_trace_that_checks():
    """episode_trace also takes the reference simulator's rows, so any simulator can write traces."""
    inst = materialize(jax.random.PRNGKey(1), CONFIG)
    out = ref.run_episode(inst, lambda obs, sim: int(np.flatnonzero(obs.action_mask)[-1]))
    t = tr.episode_trace(inst, out["decisions"], out)
    assert tr.check_trace(json.loads(json.dumps(t)), atol=1e-9)["makespan"] == out["makespan"]


@pytest.mark.parametrize("tamper,message", [
    (lambda t: t["decisions"][5].__setitem__("finish", t["decisions"][5]["finish"] + 0.5), r"decisions\[5\]\.finish"),
    (lambda t: t["summary"].__setitem__("mean_response", t["summary"]["mean_response"] * 0.9),
     r"summary\.mean_response"),
    (lambda t: t["decisions"].pop(), r"unassigned"),
])
def test_tampered_trace_fails_the_check(trace, tamper, message):
    bad = copy.deepcopy(trace)
    tamper(bad)
    with pytest.raises(ValueError, match=message):
        tr.check_trace(bad, path="t.json")


def test_moving_a_task_to_another_server_is_caught(trace):
    """Same task, a server of another GPU type (other rates): the replay's times, or its order, differ."""
    bad = copy.deepcopy(trace)
    gpu = [s["gpu"] for s in bad["servers"]]
    moves = [(d, s) for d in bad["decisions"] for s in range(len(gpu))
             if gpu[s] != gpu[d["server"]] and _fits(bad, d, s)]
    if not moves:
        pytest.skip("every server has the same GPU type")
    d, s = moves[0]
    d["server"] = s
    with pytest.raises(ValueError, match="does not re-simulate|cannot be decided here"):
        tr.check_trace(bad)


def _fits(trace, d, s):
    model = trace["workflows"][d["workflow"]]["tasks"][d["task"]]["model"]
    mem = {m["name"]: m["mem_gb"] for m in trace["models"]}[model]
    gpu = {g["name"]: g["mem_gb"] for g in trace["gpus"]}[trace["servers"][s]["gpu"]]
    return mem <= trace["constants"]["mem_headroom"] * gpu


def _set(path, value):
    def f(t):
        obj = t
        for k in path[:-1]:
            obj = obj[k]
        if value is KeyError:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value
    return f


@pytest.mark.parametrize("path,value,message", [
    (("workflows", 2, "tasks", 0, "model"), "X", "t.json: workflows[2].tasks[0].model: unknown model 'X'"),
    (("servers", 1, "gpu"), "V100", "t.json: servers[1].gpu: unknown GPU 'V100'"),
    (("decisions", 0, "server"), 99, "t.json: decisions[0].server: no server 99"),
    (("workflows", 1, "arrival"), "soon", "t.json: workflows[1].arrival: must be a finite number"),
    (("workflows", 0, "tasks", 0, "input_tokens"), -5, "t.json: workflows[0].tasks[0].input_tokens: must be >= 0"),
    (("workflows", 0, "tasks", 0, "parents"), [3], "t.json: workflows[0].tasks[0].parents[0]: 3 is not an earlier"),
    (("spec_version",), 1, "t.json: spec_version: this code reads version 2, the trace is version 1"),
    (("summary",), KeyError, "t.json: summary: missing"),
    (("constants", "window"), 1.5, "t.json: constants.window: must be an integer"),
])
def test_corrupted_trace_fields_are_named(trace, path, value, message):
    bad = copy.deepcopy(trace)
    _set(path, value)(bad)
    with pytest.raises(ValueError) as e:
        tr.trace_instance(bad, "t.json")
    assert message in str(e.value)


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown policy 'fifo'; choose from .*eft.*fate_lite"):
        tr.record_episode(CONFIG, "fifo", 0)
    with pytest.raises(ValueError, match="cannot load 'envs.nothing:x'"):
        tr.resolve_policy("envs.nothing:x")


def test_every_registered_baseline_and_any_callable_can_be_recorded():
    """The baselines come through the `jaxsched.policies` entry points (envs never imports jaxsched),
    and a policy can also be a callable or module:function."""
    from jaxsched import baselines

    assert set(tr.registered_policies()) == set(baselines.BASELINES)
    assert tr.resolve_policy("fate_lite") is baselines.fate_lite
    assert tr.resolve_policy("jaxsched.baselines:least_loaded") is baselines.least_loaded
    small = EnvConfig(n_servers=2, bank_size=8, n_workflows=2)
    a = tr.record_episode(small, "fate_lite", 0)
    b = tr.record_episode(small, baselines.fate_lite, 0)
    assert a == b and len(a["decisions"]) == sum(len(w["tasks"]) for w in a["workflows"])
    tr.check_trace(a)


def test_cli_takes_a_gpu_list_and_a_mix(tmp_path, capsys):
    out = tmp_path / "t.json"
    base = ["--policy", "fate_lite", "--bank-size", "8", "--n-workflows", "2", "--out", str(out)]
    assert tr.main(base + ["--gpus", "H100,L4,A100"]) == 0
    assert [s["gpu"] for s in json.loads(out.read_text())["servers"]] == ["H100", "L4", "A100"]
    assert tr.main(base + ["--servers", "8", "--gpu-mix", "H100=1,L4=3"]) == 0
    assert {s["gpu"] for s in json.loads(out.read_text())["servers"]} == {"H100", "L4"}
    with pytest.raises(SystemExit):  # server 0 must fit every model: an L40S-only mix cannot
        tr.main(base + ["--gpu-mix", "L40S=1"])
    assert "no GPU type with positive weight fits every workload model" in capsys.readouterr().err
    for extra, message in ((["--gpus", "H100,X9"], "--gpus: unknown GPU 'X9'"),
                           (["--gpus", "H100,L4", "--servers", "3"], "--gpus lists 2 GPUs but --servers is 3"),
                           (["--gpu-mix", "L4=-1"], "--gpu-mix: 'L4=-1' must be NAME=WEIGHT"),
                           (["--policy", "fifo"], "--policy: policy: unknown policy 'fifo'")):
        with pytest.raises(SystemExit) as e:
            tr.main(base + extra)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_cli_records_checks_and_draws(tmp_path, capsys, trace):
    out, png = tmp_path / "t.json", tmp_path / "t.png"
    argv = ["--policy", "eft", *CLI_CONFIG, "--seed", str(SEED), "--out", str(out), "--gantt", str(png), "--check"]
    assert tr.main(argv) == 0
    printed = capsys.readouterr().out
    for word in ("eft", "N=4", "mean", "P95", "makespan", "check ok"):
        assert word in printed
    assert json.loads(out.read_text()) == trace  # same config, policy and seed: the same episode
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]

    png2 = tmp_path / "again.png"
    assert tr.main(["--from-trace", str(out), "--gantt", str(png2), "--check"]) == 0
    assert png2.stat().st_size > 5000
    assert "check ok" in capsys.readouterr().out


def test_cli_from_trace_in_a_subprocess(tmp_path, trace):
    """End to end as a user runs it; no JAX episode is compiled for --from-trace."""
    src = tmp_path / "t.json"
    src.write_text(json.dumps(trace))
    png = tmp_path / "g.png"
    env = {**os.environ, "PYTHONPATH": ROOT, "MPLBACKEND": "Agg"}
    p = subprocess.run([sys.executable, "-m", "envs.trace", "--from-trace", str(src), "--gantt", str(png)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "N=4" in p.stdout and png.stat().st_size > 5000
    p = subprocess.run([sys.executable, "-m", "envs.trace", "--policy", "eft", "--servers", "0", "--out",
                        str(tmp_path / "x.json")], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert p.returncode == 2 and "--servers: must be >= 1" in p.stderr and "Traceback" not in p.stderr


def test_envs_trace_does_not_import_jaxsched_at_module_level():
    code = "import sys, envs.trace; assert 'jaxsched' not in sys.modules, 'envs.trace imported jaxsched'"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": ROOT}, timeout=120)
    assert p.returncode == 0, p.stderr


def _bad_trace_file(tmp_path, trace):
    bad = copy.deepcopy(trace)
    bad["workflows"][2]["tasks"][0]["model"] = "X"
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    return p


@pytest.mark.parametrize("case", ["policy", "servers", "missing_trace", "missing_workflows", "no_out",
                                  "corrupt_trace", "not_json", "both_modes"])
def test_cli_bad_arguments_exit_with_a_message(tmp_path, capsys, trace, case):
    out = str(tmp_path / "o.json")
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    argv, message = {
        "policy": (["--policy", "fifo", "--out", out], "--policy: policy: unknown policy 'fifo'"),
        "servers": (["--policy", "eft", "--servers", "0", "--out", out], "--servers: must be >= 1, got 0"),
        "missing_trace": (["--from-trace", str(tmp_path / "nope.json")], "nope.json: file not found"),
        "missing_workflows": (["--policy", "eft", "--out", out, "--workflows", str(tmp_path / "wf.json")],
                              "--workflows: " + str(tmp_path / "wf.json") + ": file not found"),
        "no_out": (["--policy", "eft"], "--out FILE.json is required"),
        "corrupt_trace": (["--from-trace", str(_bad_trace_file(tmp_path, trace))],
                          "bad.json: workflows[2].tasks[0].model: unknown model 'X'"),
        "not_json": (["--from-trace", str(junk)], "junk.json: not valid JSON"),
        "both_modes": (["--from-trace", str(junk), "--policy", "eft"], "--policy do not apply"),
    }[case]
    with pytest.raises(SystemExit) as e:
        tr.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(out)
