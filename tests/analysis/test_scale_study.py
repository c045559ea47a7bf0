"""The pre-registered study driver: its verdict rule, its statistics on synthetic scores, and (slow)
the tiny preset end to end with resume."""

import json

import numpy as np
import pytest

from analysis import scale_study as SS
from jaxsched.evaluation import TEST, VALIDATION


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
def test_the_tiny_study_end_to_end(tmp_path):
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
    assert "Verdict" in (out / "report.md").read_text()
    # every variant's runs count as finished (the same command would reuse them, not retrain) ...
    assert all(SS._finished(str(out / "runs" / v)) for v in SS.VARIANTS)
    # ... and a run of another variant found under a variant's name is refused, not reused
    from train.policies import load_policies

    no_srr = load_policies(f"no_srr={out / 'runs' / 'no_srr'}")
    with pytest.raises(SystemExit, match="other settings"):
        SS._check_variant(SS.PRESETS["tiny"], "srr", no_srr)
    SS._check_variant(SS.PRESETS["tiny"], "no_srr", no_srr)
