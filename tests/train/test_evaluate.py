"""The evaluation harness: both paths agree, common random numbers, statistics, CLI and bad input."""

import json
import math

import numpy as np
import pytest

from envs import make_params
from jaxsched import baselines
from jaxsched import evaluation as H
from train import evaluate as E

N, SEEDS = 4, 2


@pytest.fixture(scope="module")
def setup():
    config = H.eval_config(N)
    params = make_params(config)
    jax_res = H.run_jax_policies({"eft": baselines.earliest_finish, "fate_lite": baselines.fate_lite,
                                  "round_robin": baselines.round_robin}, params, SEEDS)
    return config, params, jax_res


@pytest.mark.parametrize("name", ["eft", "fate_lite", "round_robin"])
def test_jax_and_reference_paths_give_the_same_metrics(setup, name):
    config, params, jax_res = setup
    policy = {"eft": baselines.earliest_finish, "fate_lite": baselines.fate_lite,
              "round_robin": baselines.round_robin}[name]
    host = H.run_host_policy(lambda: H.host_adapter(policy), config, SEEDS, params)
    for m in H.METRICS:
        np.testing.assert_allclose(jax_res[name][m], host[m], rtol=1e-4, err_msg=m)


def test_policies_batched_together_match_each_alone(setup):
    """The switch over policies and the shared vmap do not leak between (policy, seed) pairs."""
    _, params, jax_res = setup
    alone = H.run_jax_policies({"fate_lite": baselines.fate_lite}, params, SEEDS)
    for m in H.METRICS:
        np.testing.assert_array_equal(alone["fate_lite"][m], jax_res["fate_lite"][m])


def test_every_policy_sees_the_same_episodes(setup):
    """Common random numbers: seed i is one instance, whatever the policy; seeds differ."""
    config, params, _ = setup
    a = H.instances(config, SEEDS, params)
    b = H.instances(config, SEEDS, params)
    assert a == b and a[0] != a[1]
    assert a[0].n_servers == N and len(a[0].workflows) == 4 * N


def test_ratio_ci_stays_positive_with_two_spread_seeds():
    m, lo, hi = H.ratio_ci(np.array([0.1, 0.9]))
    assert 0 < lo < m < hi and m == pytest.approx(0.3)
    t_lo = H.mean_ci(np.array([0.1, 0.9]))[1]
    assert t_lo < 0  # what the plain t-interval on ratios gave


def test_mean_ci_uses_student_t():
    m, lo, hi = H.mean_ci(np.array([1.0, 2.0, 3.0]))
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n), s = 1
    assert m == 2.0 and lo == pytest.approx(2 - half) and hi == pytest.approx(2 + half)
    assert H.mean_ci(np.array([5.0])) == (5.0, 5.0, 5.0)


def test_summarize_normalizes_per_seed_to_round_robin():
    res = {8: {"round_robin": {m: np.array([10.0, 20.0]) for m in H.METRICS},
               "eft": {m: np.array([5.0, 15.0]) for m in H.METRICS}}}
    rows = {r["policy"]: r for r in H.summarize(res)}
    assert rows["round_robin"]["norm_mean_response"] == 1.0
    assert rows["eft"]["norm_mean_response"] == pytest.approx((0.5 * 0.75) ** 0.5)  # geometric mean of ratios
    assert rows["eft"]["mean_response"] == 10.0 and rows["eft"]["servers"] == 8 and rows["eft"]["seeds"] == 2


def test_cli_json_csv_and_plot(tmp_path, capsys):
    E.main(["--policies", "eft,jsq", "--servers", "2,3", "--seeds", "2", "--json", "--out", str(tmp_path)])
    rows = json.loads(capsys.readouterr().out)
    assert {(r["policy"], r["servers"]) for r in rows} == {(p, n) for p in ("eft", "jsq", "round_robin") for n in (2, 3)}
    need = {"policy", "servers", "seeds", "mean_response", "p95_response", "makespan", "slowdown", "utilization",
            "norm_mean_response", "norm_mean_response_ci_lo", "norm_mean_response_ci_hi"}
    assert all(need <= set(r) for r in rows)
    for r in rows:
        assert r["mean_response_ci_lo"] <= r["mean_response"] <= r["mean_response_ci_hi"]
        assert r["slowdown"] >= 1.0 and 0 < r["utilization"] <= 1.0
    assert json.loads((tmp_path / "results.json").read_text()) == rows
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert need <= set(header)
    assert (tmp_path / "normalized_mean_response.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message", [
    (["--policies", "eft,fifo"], "unknown policy 'fifo'"),
    (["--policies", "eft,nosuchmod:policy"], "--policies: policy: cannot load 'nosuchmod:policy'"),
    (["--servers", "8,x"], "--servers: expected a comma-separated list"),
    (["--servers", "0,8"], "--servers: cluster sizes must be >= 1"),
    (["--servers", "8,8"], "--servers: duplicate"),
    (["--seeds", "0"], "--seeds: must be >= 1"),
    (["--rho", "-1"], "rho: must be > 0"),
])
def test_bad_arguments_name_what_is_wrong(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        E.main(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_takes_your_own_policy_as_module_function(capsys):
    """`--policies module:function` evaluates your jittable policy beside the baselines: EFT named by its
    import path gives EFT's rows, on the same episodes."""
    rows = E.main(["--policies", "eft,jaxsched.baselines:earliest_finish,round_robin", "--servers", "4",
                   "--seeds", "2", "--json"])
    by = {r["policy"]: r for r in rows}
    assert by["jaxsched.baselines:earliest_finish"]["mean_response"] == by["eft"]["mean_response"]
    assert by["round_robin"]["mean_response"] != by["eft"]["mean_response"]


def test_cli_takes_workflow_files_a_gpu_list_a_mix_and_a_catalog(tmp_path, capsys):
    """The world options of envs.trace, here too: the rows come from the given world, not the default."""
    from envs.wfshapes import make_instance

    wf = tmp_path / "blast.json"
    wf.write_text(json.dumps(make_instance("blast", 20)))
    rows = E.main(["--policies", "eft", "--workflows", str(wf), "--max-tasks", "32", "--gpus", "H100,L4,A100",
                   "--seeds", "2", "--json"])
    assert {r["servers"] for r in rows} == {3} and {r["policy"] for r in rows} == {"eft", "round_robin"}
    default = E.main(["--policies", "eft", "--servers", "3", "--seeds", "2", "--json"])
    assert rows[0]["mean_response"] != default[0]["mean_response"]
    cat = tmp_path / "cat.json"
    cat.write_text(json.dumps({"format": "jaxsched-catalog", "version": 1, "gpus": [
        {"name": "MI300X", "mem_gb": 192, "prefill_tps_8b": 14000, "decode_tps_8b": 220, "load_gbps": 5.5}]}))
    fast = E.main(["--policies", "eft", "--catalog", str(cat), "--gpu-mix", "MI300X=1", "--servers", "3",
                   "--seeds", "2", "--json"])
    assert fast[0]["mean_response"] < default[0]["mean_response"]  # a cluster of the fastest card serves faster
    capsys.readouterr()
    for args, message in ((["--gpus", "H100,L4", "--servers", "3"], "--gpus lists 2 GPUs but --servers is 3"),
                          (["--catalog", str(tmp_path / "no.json")], "--catalog: " + str(tmp_path / "no.json")),
                          (["--workflows", str(wf)], "more than max_tasks=16")):
        with pytest.raises(SystemExit) as e:
            E.main(["--policies", "eft", "--seeds", "1", *args])
        assert e.value.code == 2 and message in capsys.readouterr().err
