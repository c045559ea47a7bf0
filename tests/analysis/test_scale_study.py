"""The pre-registered study driver: its verdict rule, its statistics on synthetic scores, and (slow)
the tiny preset end to end with resume."""

import json
import pathlib

import numpy as np
import pytest

from analysis import scale_study as SS
from jaxsched.evaluation import TEST, VALIDATION

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("ci, verdict", [
    ([-12.0, -5.0], "confirmed"),
    ([-7.0, -1.0], "confirmed, smaller"),
    ([-20.0, -10.0], "confirmed, larger"),
    ([-4.0, 3.0], "refuted"),
    ([1.0, 5.0], "refuted"),
    ([-15.0, 2.0], "open"),
])
def test_the_registered_reading_of_the_primary_interval(ci, verdict):
    assert SS.verdict(ci) == verdict


def test_training_validates_on_the_validation_bank_and_never_sees_the_test_bank(tmp_path):
    argv = SS.train_argv(SS.PRESETS["cpu"], "srr", str(tmp_path), "disabled")
    assert f"--eval_workload_seed={VALIDATION.workload_seed}" in argv and "--num_seeds=32" in argv
    assert "--srr_decorrelation=0.3" in argv and "--srr_kl=0.05" in argv
    assert VALIDATION.workload_seed != TEST.workload_seed and VALIDATION.first_episode != TEST.first_episode


def test_analyse_recovers_a_known_effect_on_synthetic_scores():
    p = SS.PRESETS["cpu"]
    rng = np.random.default_rng(0)
    base = {n: rng.normal(1.0, 0.05, 32) for n in p.eval_servers}
    scores = {v: {n: s * (0.9 if v == "srr" else 1.0) for n, s in base.items()} for v in SS.VARIANTS}
    heur = {"fate_lite": {n: 0.95 for n in p.eval_servers}, "round_robin": {n: 5.0 for n in p.eval_servers}}
    out = SS.analyse(p, scores, heur, reps=2000)
    assert out["primary"]["estimate_pct"] == pytest.approx(-10.0, abs=1e-6)
    assert out["primary"]["verdict"] in ("confirmed", "confirmed, larger")
    assert set(out["secondary"]) >= {"srr_vs_no_srr@32", "srr_vs_no_srr@64", "srr_vs_no_srr@128",
                                     "log_n_vs_no_srr@48", "srr+log_n_vs_no_srr@48", "no_srr_vs_fate_lite@48"}
    assert all(t["p_holm"] >= t["p_value"] for t in out["secondary"].values())
    # the same seeds under both: no change, an interval around 0
    assert out["secondary"]["log_n_vs_no_srr@48"]["estimate_pct"] == pytest.approx(0.0, abs=1e-9)
    assert out["seed_sd_pct"]["no_srr"]["48"] == pytest.approx(100 * np.std(base[48], ddof=1) / np.mean(base[48]))


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 15-18 minutes on the 2-core CPU with a warm cache, more cold
def test_the_tiny_study_end_to_end(tmp_path, monkeypatch):
    out = tmp_path / "study"
    summary = SS.main(["--preset", "tiny", "--out", str(out)])
    for key in ("seeds_per_variant", "validation_workload_seed", "test_workload_seed", "primary"):
        assert key in summary
    assert summary["seeds_per_variant"] == 3 and summary["validation_workload_seed"] != summary["test_workload_seed"]
    pr = summary["primary"]
    assert pr["n"] == 8 and pr["ci95_pct"][0] <= pr["estimate_pct"] <= pr["ci95_pct"][1] and pr["method"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["primary"] == json.loads(json.dumps(pr))
    per_seed = json.loads((out / "per_seed.json").read_text())
    assert set(per_seed) == set(SS.VARIANTS) and all(len(v["8"]) == 3 for v in per_seed.values())
    assert "Verdict" in (out / "report.md").read_text() and "Shift of h with N" in (out / "report.md").read_text()
    shift = json.loads((out / "shift_per_seed.json").read_text())
    assert set(shift) == set(SS.VARIANTS) and all(len(shift[v]["eft"]["8"]["mmd2"]) == 3 for v in shift)
    assert "spearman_with_loss" in summary["shift"]["srr"]["own"]["8"]
    # the study notebook runs on these results (the committed .ipynb is executed on the committed study)
    from analysis.execute_notebook import execute

    pytest.importorskip("jupytext"), pytest.importorskip("nbclient")
    monkeypatch.setenv("JAXSCHED_STUDY", str(out))
    nb = execute(str(ROOT / "analysis" / "notebooks" / "scale_study.py"), out=str(tmp_path / "study.ipynb"))
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum(o.get("output_type") == "display_data" for o in outputs) >= 4  # the four figures
    # every variant's runs count as finished (the same command would reuse them, not retrain) ...
    assert all(SS._finished(str(out / "runs" / v)) for v in SS.VARIANTS)
    # ... and a run of another variant found under a variant's name is refused, not reused
    from train.policies import load_policies

    no_srr = load_policies(f"no_srr={out / 'runs' / 'no_srr'}")
    with pytest.raises(SystemExit, match="other settings"):
        SS._check_variant(SS.PRESETS["tiny"], "srr", no_srr)
    SS._check_variant(SS.PRESETS["tiny"], "no_srr", no_srr)
    # the same command again reuses the saved test-split results of these very runs: nothing is scored again
    scored = {f: f.stat().st_mtime_ns for f in (out / "scored").glob("*.json")}
    assert len(scored) == len(SS.VARIANTS) + 1
    again = SS.main(["--preset", "tiny", "--out", str(out)])
    assert again["primary"] == summary["primary"] and again["scoring_wall_s"] == summary["scoring_wall_s"]
    assert {f: f.stat().st_mtime_ns for f in (out / "scored").glob("*.json")} == scored


def test_shift_per_seed_and_its_summary_on_untrained_networks():
    """Both state sets at every N, the train N against other episodes (the noise floor: small, not 0), and
    Spearman only where there is a loss."""
    import types

    import jax

    from envs import EnvConfig, make_params, reset
    from jaxsched.evaluation import eval_config
    from jaxsched.policy import PolicyConfig, SchedulerNet

    p = SS.StudyPreset("cpu-quick", 4, (4, 6), 6, seeds=3, first_seed=0, test_episodes=2, probe_episodes=2,
                       probe_decisions=16, reps=200)
    net = SchedulerNet(PolicyConfig(embed_dim=16, num_heads=2, hidden=32, gnn_layers=1))
    obs, _ = reset(jax.random.PRNGKey(0), make_params(eval_config(4, EnvConfig())))
    pols = [types.SimpleNamespace(net=net, params=net.init(jax.random.PRNGKey(s), obs),
                                  eval_env=lambda seed: EnvConfig(workload_seed=seed)) for s in range(3)]
    shifts = SS.shift_per_seed(p, pols)
    assert set(shifts) == set(SS.STATE_SETS)
    for name in SS.STATE_SETS:
        at_train, at_6 = shifts[name][4], shifts[name][6]
        assert all(len(v) == 3 for v in at_6.values()) and set(at_6) == set(SS.SHIFT_STATS)
        assert min(at_train["frechet_standardized"]) > 0 and min(at_6["frechet_standardized"]) > 0
        assert np.all(np.isfinite(at_train["mmd2"])) and np.all(np.isfinite(at_6["kl_per_dim"]))
    scores = {"no_srr": {4: np.array([1.0, 1.1, 0.9]), 6: np.array([1.2, 1.1, 1.0])}}
    out = SS.shift_summary(p, {"no_srr": shifts}, scores, reps=200)
    e6, e4 = out["no_srr"]["eft"]["6"], out["no_srr"]["eft"]["4"]
    assert "spearman_with_loss" not in e4 and -1 <= e6["spearman_with_loss"]["mmd2"]["rho"] <= 1
    assert e6["kl_per_dim"]["ci95"][0] <= e6["kl_per_dim"]["iqm"] <= e6["kl_per_dim"]["ci95"][1]


def test_the_study_notebook_without_results_says_what_to_run(tmp_path, monkeypatch, capsys):
    from analysis.execute_notebook import main

    pytest.importorskip("jupytext"), pytest.importorskip("nbclient")
    monkeypatch.setenv("JAXSCHED_STUDY", str(tmp_path / "none"))
    with pytest.raises(SystemExit) as e:
        main([str(ROOT / "analysis" / "notebooks" / "scale_study.py"), "--out", str(tmp_path / "nb.ipynb")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and not (tmp_path / "nb.ipynb").exists()
    assert "SystemExit: " in err and "no summary.json; run python -m analysis.scale_study" in err and "\x1b" not in err


def _synthetic_scored(p, preset, variant, rng):
    sizes = p.eval_servers
    return {"key": SS.scored_key(p, preset, variant), "params_sha256": "0" * 64, "commit": None, "wall_s": 1.0,
            "scores": {str(n): rng.normal(1.0 + 0.01 * n, 0.05, p.seeds).tolist() for n in sizes},
            "probe": {str(n): {"changed_share": rng.uniform(0, 0.3, p.seeds).tolist(),
                               "policy_kl": rng.uniform(0, 0.1, p.seeds).tolist()} for n in (p.train_servers, p.primary_n)},
            "shift": {s: {str(n): {k: rng.uniform(0.1, 1.0, p.seeds).tolist() for k in SS.SHIFT_STATS} for n in sizes}
                      for s in SS.STATE_SETS}}


def test_saved_scores_resume_a_study_without_its_runs(tmp_path):
    """Test-split results saved per variant finish a study whose runs are gone (another session), with
    nothing trained; results saved under other settings are not taken."""
    p, out, rng = SS.PRESETS["tiny"], tmp_path / "study", np.random.default_rng(3)
    saved = {v: _synthetic_scored(p, "tiny", v, rng) for v in SS.VARIANTS}
    for v, d in saved.items():
        (out / "scored").mkdir(parents=True, exist_ok=True)
        (out / "scored" / f"{v}.json").write_text(json.dumps(d))
    heur = {"fate_lite": {str(n): 1.1 for n in p.eval_servers}, "round_robin": {str(n): 4.0 for n in p.eval_servers}}
    heur_key = SS.study_key(p, "tiny")
    (out / "scored" / "heuristics.json").write_text(json.dumps({"key": heur_key, "scores": heur}))
    summary = SS.main(["--preset", "tiny", "--out", str(out)])
    assert not (out / "runs").exists()  # nothing was trained
    assert json.loads((out / "per_seed.json").read_text()) == {v: d["scores"] for v, d in saved.items()}
    n = str(p.primary_n)
    want = SS.S.relative_change(np.asarray(saved["srr"]["scores"][n]), np.asarray(saved["no_srr"]["scores"][n]),
                                reps=p.reps, seed=0)
    assert summary["primary"]["estimate_pct"] == pytest.approx(want["estimate_pct"])
    assert summary["heuristics"]["fate_lite"][n] == 1.1 and summary["scoring_wall_s"]["srr"] == 1.0
    # the same file read under another preset's key, or against other parameters, is not reused
    path = str(out / "scored" / "srr.json")
    assert SS.load_scored(path, SS.scored_key(SS.PRESETS["cpu"], "cpu", "srr"), None) is None
    assert SS.load_scored(path, SS.scored_key(p, "tiny", "no_srr"), None) is None
    assert SS.load_scored(path, SS.scored_key(p, "tiny", "srr"), "1" * 64) is None
    assert SS.load_scored(path, SS.scored_key(p, "tiny", "srr"), "0" * 64) == saved["srr"]
    # without the heuristics and without a run to compute them from: one line naming the file
    (out / "scored" / "heuristics.json").unlink()
    with pytest.raises(SystemExit, match="heuristics.json is missing"):
        SS.main(["--preset", "tiny", "--out", str(out)])


def test_the_parameter_digest_sees_every_leaf():
    import types

    pols = [types.SimpleNamespace(params={"a": np.zeros(3, np.float32), "b": {"c": np.ones((2, 2))}}) for _ in range(2)]
    d = SS.params_digest(pols)
    assert d == SS.params_digest([types.SimpleNamespace(params=jp.params) for jp in pols])
    pols[1].params["b"]["c"] = pols[1].params["b"]["c"].copy()
    pols[1].params["b"]["c"][1, 1] = 1.0 + 1e-7
    assert SS.params_digest(pols) != d
    swapped = [types.SimpleNamespace(params={"a": np.zeros(3, np.float64), "b": {"c": np.ones((2, 2))}})] * 2
    assert SS.params_digest(swapped) != SS.params_digest([types.SimpleNamespace(params=pols[0].params)] * 2)
