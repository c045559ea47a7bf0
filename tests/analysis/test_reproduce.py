"""The SCALE pipeline on the tiny preset (numbers meaningless, every stage exercised), the shift CLI,
and the notebooks executed on its outputs."""

import json
import os

import pytest

from analysis import reproduce, shift

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
    at_train = [r for r in shift_rows if r["servers"] == proto.train_servers]
    assert all(r["frechet"] == pytest.approx(0.0, abs=1e-6) for r in at_train)  # distance of a sample to itself
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

    from train import loop
    from train.checkpoint import load_params

    out, _, _ = tiny
    proto = reproduce.PRESETS["tiny"]
    _, straight, _ = load_params(str(out / "runs" / "no_srr-seed0"))
    # interrupted: the same run stopped half way, then picked up by the same call the study makes
    loop.run(reproduce.train_argv(proto, "no_srr", 0, str(tmp_path), "disabled") + ["--stop_after=2"])
    resumed = reproduce.train_variant(proto, "no_srr", 0, str(tmp_path), "disabled")
    assert resumed["updates"] == resumed["config"]["total_updates"]
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # finished: loaded from disk, never retrained
    monkeypatch.setattr(loop, "run", lambda argv: pytest.fail(f"retrained a finished run: {argv}"))
    again = reproduce.train_variant(proto, "no_srr", 0, str(out), "disabled")
    assert again["updates"] == again["config"]["total_updates"]
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(again["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_shift_cli_on_two_checkpoints_and_bad_input(tiny, tmp_path, capsys):
    out, _, _ = tiny
    rows = shift.main(["--checkpoint", f"a={out / 'runs' / 'no_srr-seed0'}", "--checkpoint", str(out / "runs" / "srr-seed0"),
                       "--servers", "4,6", "--seeds", "1", "--decisions", "16", "--permutations", "10", "--out", str(tmp_path)])
    assert {(r["checkpoint"], r["servers"]) for r in rows} == {(c, n) for c in ("a", "srr-seed0") for n in (4, 6)}
    assert json.load(open(tmp_path / "shift.json")) == rows and (tmp_path / "shift.csv").exists()
    with pytest.raises(SystemExit) as e:
        shift.main(["--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert e.value.code == 2 and "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("notebook, env_var, target", [
    ("feature_shift.py", "JAXSCHED_SHIFT", "shift/shift.json"),
    ("policy_comparison.py", "JAXSCHED_RESULTS", "results.json"),
    ("policy_comparison.py", "JAXSCHED_RESULTS", None),  # the committed baseline table
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
    for name in ("feature_shift", "policy_comparison"):
        py = jupytext.read(os.path.join(ROOT, "analysis", "notebooks", f"{name}.py"))
        nb = jupytext.read(os.path.join(ROOT, "analysis", "notebooks", f"{name}.ipynb"))
        assert [c.source for c in py.cells] == [c.source for c in nb.cells]
