"""Sweep files: valid for wandb's sweep engine, every parameter a PPOConfig option, and one sampled
configuration runs exactly as `wandb agent` would launch it (offline, plus a size preset)."""

import glob
import os
import subprocess

import pytest
import yaml

from train.config import PPOConfig

sweeps = pytest.importorskip("sweeps")
FILES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "train", "sweeps", "*.yaml")))
OPTIONS = set(PPOConfig().to_dict()) | {"preset"}


def test_there_are_sweep_files():
    assert len(FILES) >= 2


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_sweep_file_is_valid(path):
    cfg = yaml.safe_load(open(path))
    assert sweeps.schema_violations_from_proposed_config(cfg) == []
    assert cfg["command"] == ["${env}", "python", "-m", "train.ppo", "${args}"]
    assert set(cfg["parameters"]) <= OPTIONS, set(cfg["parameters"]) - OPTIONS
    assert cfg["metric"]["name"].startswith("eval/")
    run = sweeps.next_run(cfg, [], validate=True)
    assert run is not None and set(run.config) == set(cfg["parameters"])


def agent_command(cfg, run):
    """What `wandb agent` executes: ${env} -> /usr/bin/env, ${args} -> --key=value per sampled parameter."""
    args = [f"--{k}={v['value']}" for k, v in run.config.items()]
    out = []
    for tok in cfg["command"]:
        out.extend(args if tok == "${args}" else ["/usr/bin/env"] if tok == "${env}" else [tok])
    return out


def test_one_sampled_configuration_runs_as_the_agent_would(tmp_path):
    path = next(p for p in FILES if p.endswith("srr.yaml"))
    cfg = yaml.safe_load(open(path))
    run = sweeps.next_run(cfg, [], validate=True)
    cmd = agent_command(cfg, run)
    assert cmd[:4] == ["/usr/bin/env", "python", "-m", "train.ppo"] and any(a.startswith("--srr_kl=") for a in cmd)
    # A CPU-sized preset after the sampled values (presets apply first, options override them).
    cmd += ["--preset=cpu-quick", "--progress=false", f"--checkpoint_dir={tmp_path}", "--wandb_name=agent"]
    env = dict(os.environ, WANDB_MODE="offline", WANDB_DIR=str(tmp_path), WANDB_SILENT="true")
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    res = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    summary = json.load(open(tmp_path / "agent" / "summary.json"))
    sampled = {k: v["value"] for k, v in run.config.items() if k != "preset"}
    for k, v in sampled.items():
        assert summary["config"][k] == pytest.approx(v), k
    assert glob.glob(str(tmp_path / "**" / "offline-run-*"), recursive=True), "no offline wandb run was written"
