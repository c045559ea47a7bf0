"""The SCALE pipeline on the tiny preset (numbers meaningless, every stage exercised), the shift CLI,
and the notebooks executed on its outputs."""

import json
import os

import numpy as np
import pytest

from analysis import reproduce, shift

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2700)]  # four variants trained end to end: run by `python -m pytest -m slow` (CI does)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    rows, shift_rows = reproduce.main(["--preset", "tiny", "--out", str(out)])
    return out, rows, shift_rows


def test_report_has_every_variant_and_heuristic_at_every_size(tiny):
    out, rows, shift_rows = tiny
    proto = reproduce.PRESETS["tiny"]
    names = set(reproduce.VARIANTS) | {"eft", "fate_lite", "round_robin"}
    assert {(r["policy"], r["servers"]) for r in rows} == {(p, n) for p in names for n in proto.eval_servers}
    for r in rows:
        assert r["ci_lo"] <= r["mean_response"] <= r["ci_hi"]
        if r["policy"] == "no_srr":
            assert r["change_vs_no_srr_pct"] == pytest.approx(0.0)
    text = (out / "report.md").read_text()
    for name in names:
        assert f"`{name}`" in text
    assert "## Config" in text and '"train_preset": "cpu-quick"' in text
    assert {(r["checkpoint"], r["servers"]) for r in shift_rows} == {(v, n) for v in reproduce.VARIANTS for n in proto.shift_servers}
    for name in reproduce.VARIANTS:  # one sample size for every N of a checkpoint; the training N against its own noise floor
        rs = [r for r in shift_rows if r["checkpoint"] == name]
        assert len({r["samples"] for r in rs}) == 1 and rs[0]["samples"] > 0
        assert all(r["episodes"] == proto.shift_seeds for r in rs)
        assert all(r["frechet"] > 0 for r in rs)  # an independent reference sample, never the same one
    assert "## Change in mean response vs `no_srr`" in text and "over 2 episodes" in text
    per_seed = json.load(open(out / "per_seed.json"))
    no_srr = per_seed["no_srr"][str(proto.train_servers)]["mean_response"]
    assert len(no_srr) == proto.seeds and len(no_srr[0]) == proto.eval_seeds
    assert np.mean(no_srr) == pytest.approx(next(r["mean_response"] for r in rows if r["policy"] == "no_srr"
                                                 and r["servers"] == proto.train_servers))
    for stat in shift.STATISTICS:
        assert (out / "shift" / f"{stat}.png").exists()
        assert f"shift/{stat}.png" in text


def test_variants_differ_where_they_should(tiny):
    out, _, _ = tiny
    cfgs = {}
    for name in reproduce.VARIANTS:
        cfgs[name] = json.load(open(out / "runs" / f"{name}-seed0" / "summary.json"))["config"]
    assert cfgs["no_srr"]["srr_kl"] == 0 and cfgs["srr"]["srr_kl"] > 0 and cfgs["srr"]["srr_decorrelation"] > 0
    assert cfgs["log_n"]["log_n_scaling"] and not cfgs["srr"]["log_n_scaling"]
    assert cfgs["srr+log_n"]["log_n_scaling"] and cfgs["srr+log_n"]["srr_kl"] > 0


def test_rerun_loads_finished_runs_and_resumes_interrupted_ones(tiny, tmp_path, monkeypatch):
    import jax
    import numpy as np

    from train import ppo
    from train.checkpoint import load_params

    out, _, _ = tiny
    proto = reproduce.PRESETS["tiny"]
    _, straight, _ = load_params(str(out / "runs" / "no_srr-seed0"))
    # interrupted: the same run stopped half way, then picked up by the same call the study makes
    ppo.main(reproduce.train_argv(proto, "no_srr", 0, str(tmp_path), "disabled") + ["--stop_after=2"])
    resumed = reproduce.train_variant(proto, "no_srr", 0, str(tmp_path), "disabled")
    assert resumed["updates"] == resumed["config"]["total_updates"]
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # finished: loaded from disk, never retrained
    monkeypatch.setattr(ppo, "main", lambda argv: pytest.fail(f"retrained a finished run: {argv}"))
    again = reproduce.train_variant(proto, "no_srr", 0, str(out), "disabled")
    assert again["updates"] == again["config"]["total_updates"]
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(again["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_run_trained_with_other_settings_is_not_reused(tiny):
    out, _, _ = tiny
    other = reproduce.Protocol(**{**reproduce.asdict(reproduce.PRESETS["tiny"]), "train_overrides": {"lr": 1e-3}})
    with pytest.raises(SystemExit, match=r"no_srr-seed0 was trained with other settings \(lr: saved"):
        reproduce.train_variant(other, "no_srr", 0, str(out), "disabled")


def test_summary_cis_and_paired_change_with_several_training_seeds():
    proto = reproduce.PRESETS["tiny"]
    ref = [[10.0, 20.0, 30.0], [12.0, 22.0, 32.0]]  # 2 training seeds x 3 episodes
    better = [[9.0, 18.0, 27.0], [10.8, 19.8, 28.8]]  # 10% lower on every episode of each seed
    heur = [[12.1, 23.1, 34.1]]  # one "seed": 10% above the seed-averaged reference (11, 21, 31) per episode

    def metrics(v):
        return {m: v for m in ("mean_response", "p95_response", "makespan", "slowdown")}

    results = {"no_srr": {4: metrics(ref)}, "srr": {4: metrics(better)}, "eft": {4: metrics([[11.0, 23.1, 34.1]])},
               "fate_lite": {4: metrics(heur)}}
    rows = {r["policy"]: r for r in reproduce.summarize(results, proto)}
    assert rows["srr"]["ci_over"] == "seeds" and rows["srr"]["ci_n"] == 2
    assert rows["srr"]["mean_response"] == pytest.approx(np.mean([18.0, 19.8]))
    assert rows["srr"]["change_over"] == "seeds"
    assert rows["srr"]["change_vs_no_srr_pct"] == pytest.approx(-10.0)
    assert rows["srr"]["change_ci_lo"] == pytest.approx(-10.0) == pytest.approx(rows["srr"]["change_ci_hi"])
    assert rows["fate_lite"]["ci_over"] == "episodes" and rows["fate_lite"]["change_over"] == "episodes"
    assert rows["fate_lite"]["change_vs_no_srr_pct"] == pytest.approx(10.0)
    assert rows["eft"]["change_ci_lo"] < rows["eft"]["change_vs_no_srr_pct"] < rows["eft"]["change_ci_hi"]
    assert rows["no_srr"]["change_vs_no_srr_pct"] == pytest.approx(0.0)


def test_shift_cli_on_two_checkpoints_and_bad_input(tiny, tmp_path, capsys):
    out, _, _ = tiny
    rows = shift.main(["--checkpoint", f"a={out / 'runs' / 'no_srr-seed0'}", "--checkpoint", str(out / "runs" / "srr-seed0"),
                       "--servers", "4,6", "--seeds", "1", "--decisions", "16", "--permutations", "10", "--out", str(tmp_path)])
    assert {(r["checkpoint"], r["servers"]) for r in rows} == {(c, n) for c in ("a", "srr-seed0") for n in (4, 6)}
    assert json.load(open(tmp_path / "shift.json")) == rows and (tmp_path / "shift.csv").exists()
    moments = np.load(tmp_path / "moments.npz")
    assert {k.rsplit("/", 2)[0] for k in moments.files} == {"a", "srr-seed0"}
    assert moments["a/6/mean"].shape == moments["a/6/variance"].shape and (moments["a/6/variance"] >= 0).all()
    with pytest.raises(SystemExit) as e:
        shift.main(["--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert e.value.code == 2 and "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("notebook, env_var, target", [
    ("feature_shift.py", "JAXSCHED_SHIFT", "shift/shift.json"),
    ("policy_comparison.py", "JAXSCHED_RESULTS", "results.json"),
    ("policy_comparison.py", "JAXSCHED_RESULTS", None),  # the committed baseline table
    ("feature_shift.py", "JAXSCHED_SHIFT", None),  # the committed cpu reproduction
])
def test_notebooks_run(tiny, notebook, env_var, target, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    out, _, _ = tiny
    if target is not None:
        monkeypatch.setenv(env_var, str(out / target))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(os.path.join(ROOT, "analysis", "notebooks", notebook))
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") == "stream" for o in outputs)


def test_paired_ipynb_files_match_the_py_sources():
    jupytext = pytest.importorskip("jupytext")
    for name in ("feature_shift", "policy_comparison", "scale_study"):
        py = jupytext.read(os.path.join(ROOT, "analysis", "notebooks", f"{name}.py"))
        nb = jupytext.read(os.path.join(ROOT, "analysis", "notebooks", f"{name}.ipynb"))
        assert [c.source for c in py.cells] == [c.source for c in nb.cells]
