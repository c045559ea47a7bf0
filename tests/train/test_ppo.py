"""PPO end to end on a tiny config: determinism, exact resume, checkpoints, evaluation, config and CLI."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from train import evaluate as E
from train.config import PPOConfig, parse_args, parse_value
from train.ppo import main as run

TINY = ["--preset=cpu-quick", "--wandb_mode=disabled", "--progress=false"]


def same_tree(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def on_test(run_dir, sizes=(4,), seeds=2):
    """The training-time evaluator of a run's policy, on the test split's episodes."""
    from jaxsched.evaluation import TEST
    from train.policies import load_policy
    from train.policy_eval import PolicyEvaluator

    p = load_policy(run_dir)
    return PolicyEvaluator(p.net, sizes, seeds, p.eval_env(TEST.workload_seed), first_episode=TEST.first_episode)(p.params)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    out = run(TINY + [f"--checkpoint_dir={d}", "--wandb_name=straight"])
    return out


def test_a_run_logs_evaluates_and_checkpoints(straight):
    assert straight["updates"] == 4
    ev = straight["eval"]
    for n in (4, 6):
        assert ev[f"eval/{n}/mean_response"] > 0 and np.isfinite(ev[f"eval/{n}/norm_mean_response"])
    final = straight["final"]
    for k in ("loss/actor", "loss/critic", "loss/entropy", "srr/decorrelation", "srr/kl", "feature/h_var",
              "feature/h_offdiag_corr", "perf/decisions_per_s"):
        assert np.isfinite(final[k]), k
    run_dir = straight["run_dir"]
    assert json.load(open(os.path.join(run_dir, "summary.json")))["updates"] == 4
    assert [json.loads(x)["update"] for x in open(os.path.join(run_dir, "history.jsonl"))] == [2, 4]
    steps = sorted(int(s) for s in os.listdir(run_dir) if s.isdigit())
    assert steps[-1] == 4  # the latest is always kept
    assert os.path.exists(os.path.join(run_dir, "curve.png"))


def test_same_seed_same_parameters(straight, tmp_path):
    again = run(TINY + [f"--checkpoint_dir={tmp_path}", "--wandb_name=again"])
    assert same_tree(again["params"], straight["params"])
    other = run(TINY + [f"--checkpoint_dir={tmp_path}", "--wandb_name=other", "--seed=1"])
    assert not same_tree(other["params"], straight["params"])


def test_half_then_resume_equals_straight(straight, tmp_path):
    half = run(TINY + [f"--checkpoint_dir={tmp_path}", "--wandb_name=half", "--stop_after=2"])
    assert half["updates"] == 2 and not half["finished"]
    resumed = run(["--wandb_mode=disabled", "--progress=false", f"--resume={half['run_dir']}"])
    assert resumed["updates"] == 4
    assert same_tree(resumed["params"], straight["params"])
    assert resumed["eval"] == straight["eval"]


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous(straight, tmp_path, capsys):
    run_dir = str(tmp_path / "copy")
    shutil.copytree(straight["run_dir"], run_dir)
    for root, _, files in os.walk(os.path.join(run_dir, "4")):
        for f in files:
            if root.endswith("state") or "state" in root.split(os.sep)[-2:]:
                open(os.path.join(root, f), "wb").write(b"garbage")
    out = run(["--wandb_mode=disabled", "--progress=false", f"--resume={run_dir}", "--total_updates=6"])
    assert "fell back to step 2" in capsys.readouterr().err
    assert out["updates"] == 6


def test_a_missing_or_empty_checkpoint_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run(["--wandb_mode=disabled", f"--resume={tmp_path / 'nope'}"])
    assert e.value.code == 2 and "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        run(["--wandb_mode=disabled", f"--resume={tmp_path / 'empty'}"])
    assert "holds no checkpoint" in capsys.readouterr().err


def test_evaluate_reads_a_checkpoint(straight, capsys):
    rows = E.main(["--checkpoint", f"tiny={straight['run_dir']}", "--policies", "eft", "--servers", "4", "--seeds", "2", "--json"])
    names = {r["policy"] for r in rows}
    assert names == {"tiny", "eft", "round_robin"}
    tiny = next(r for r in rows if r["policy"] == "tiny")
    # the harness reports on the test split; the training-time evaluator on those same episodes agrees
    np.testing.assert_allclose(tiny["mean_response"], on_test(straight["run_dir"])["eval/4/mean_response"], rtol=1e-4)
    # and those are not the validation episodes training selected on
    assert tiny["mean_response"] != pytest.approx(straight["eval"]["eval/4/mean_response"], rel=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--split", "validation"], "validation set"),
    (["--workload-seed", "1"], "validation set"),
    (["--workload-seed", "0"], "training bank"),
])
def test_evaluate_refuses_to_report_a_checkpoint_on_episodes_that_chose_it(straight, args, message, capsys):
    with pytest.raises(SystemExit) as e:
        E.main(["--checkpoint", f"tiny={straight['run_dir']}", "--policies", "eft", "--servers", "4", "--seeds", "2",
                *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err


def test_trace_records_a_checkpoint_that_the_reference_reproduces(straight, tmp_path, capsys):
    from envs import trace as T
    from train.policies import load_policy
    from train.trace import checkpoint_world
    from train.trace import main as trace_main

    out, gantt = tmp_path / "t.json", tmp_path / "g.png"
    assert trace_main(["--checkpoint", straight["run_dir"], "--servers", "6", "--seed", "3", "--out", str(out),
                       "--gantt", str(gantt), "--check"]) == 0
    text = capsys.readouterr().out
    assert "check ok" in text and "(the test bank)" in text and gantt.exists()
    trace = json.loads(out.read_text())
    assert len(trace["servers"]) == 6 and len(trace["workflows"]) == 24
    # the greedy trained policy made these decisions, not a baseline: the same episode under the policy's
    # own jitted runner, and a different one under EFT
    loaded = load_policy(straight["run_dir"])
    config = checkpoint_world(loaded, servers=6)
    again = T.record_episode(config, loaded.greedy(), 3)
    assert [d["server"] for d in again["decisions"]] == [d["server"] for d in trace["decisions"]]
    assert config.workload_seed == 3  # the test bank
    assert T.record_episode(config, "round_robin", 3)["decisions"] != trace["decisions"]


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "/nonexistent/run"], "does not exist"),
    (["--servers", "0"], "--servers: must be >= 1"),
    (["--gpus", "H100,B999"], "--gpus"),
    (["--gpus", "H100,L4", "--servers", "3"], "--gpus lists 2 GPUs but --servers is 3"),
])
def test_trace_of_a_checkpoint_rejects_bad_options_in_one_line(straight, tmp_path, args, message, capsys):
    from train.trace import main as trace_main

    argv = ["--checkpoint", straight["run_dir"], "--out", str(tmp_path / "t.json"), *args]
    with pytest.raises(SystemExit) as e:
        trace_main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "t.json").exists()


def test_envs_trace_points_a_run_directory_to_train_trace(straight, capsys):
    from envs.trace import main as trace_main

    with pytest.raises(SystemExit) as e:
        trace_main(["--policy", straight["run_dir"], "--out", "t.json"])
    assert e.value.code == 2 and "python -m train.trace --checkpoint" in capsys.readouterr().err


def test_a_format_2_checkpoint_config_reads_as_the_v1_architecture():
    from train.checkpoint import FORMAT_KEY, _check_format

    old = {**PPOConfig().to_dict(), FORMAT_KEY: 2}
    del old["pointer_bypass"], old["global_inputs"]
    cfg = PPOConfig.from_dict(_check_format("d", 1, old))
    assert cfg.pointer_bypass is True and cfg.global_inputs == "raw"
    with pytest.raises(Exception, match="format 1"):
        _check_format("d", 1, {**old, FORMAT_KEY: 1})


def test_evaluate_rejects_an_unreadable_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        E.main(["--checkpoint", str(tmp_path / "missing"), "--servers", "4", "--seeds", "1"])
    assert e.value.code == 2 and "missing" in capsys.readouterr().err


def test_cli_parsing_key_value_presets_and_types():
    config, explicit = parse_args(["--preset", "cpu-quick", "--lr=1e-3", "--eval-servers", "4,8", "--log_n_scaling", "--seed", "3"])
    assert config.lr == 1e-3 and config.eval_servers == (4, 8) and config.log_n_scaling is True and config.seed == 3
    assert config.num_envs == 8  # from the preset
    assert explicit == {"lr": 1e-3, "eval_servers": (4, 8), "log_n_scaling": True, "seed": 3}
    assert parse_value("max_servers", "None") is None and parse_value("train_servers", 16) == (16,)
    assert PPOConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("args, message", [
    (["--bogus=1"], "unknown option --bogus"),
    (["--lr=fast"], "--lr:"),
    (["--lr=-1"], "lr: must be > 0"),
    (["--preset=huge"], "--preset: unknown preset 'huge'"),
    (["--num_minibatches=3"], "num_minibatches: 3 does not divide"),
    (["--embed_dim=30"], "embed_dim: 30 is not divisible"),
    (["--log_n_scaling=maybe"], "--log_n_scaling: expected true/false"),
    (["--eval_workload_seed=3"], "eval_workload_seed: 3 is the test bank"),
    (["--eval_workload_seed=0"], "eval_workload_seed: 0 is the training bank"),
    (["--global_inputs=scaled"], "global_inputs: raw | per_server"),
])
def test_bad_options_name_the_field(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        run(args + ["--wandb_mode=disabled"])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_training_on_workflow_files_with_a_gpu_mix_evaluates_in_the_same_world(tmp_path, capsys):
    """--workflows / --gpu_mix / --max_tasks reach the training env and the evaluator, and a checkpoint
    trained so is evaluated in that world by train.evaluate (its rows match the training-time evaluation)."""
    from envs.wfshapes import make_instance

    wf = tmp_path / "cycles.json"
    wf.write_text(json.dumps(make_instance("cycles", 24)))
    out = run(TINY + [f"--checkpoint_dir={tmp_path}", "--wandb_name=wf", f"--workflows={wf}", "--max_tasks=32",
                      "--gpu_mix=H100=1,L4=1", "--total_updates=1", "--updates_per_chunk=1", "--eval_servers=4",
                      "--eval_seeds=2", "--eval_every=0"])
    env = PPOConfig.from_dict(out["config"]).env()
    assert env.bank.size == 1 and env.bank.largest == 24 and env.max_tasks == 32
    rows = E.main(["--checkpoint", f"wf={out['run_dir']}", "--policies", "eft", "--servers", "4", "--seeds", "2",
                   "--json"])
    np.testing.assert_allclose(next(r for r in rows if r["policy"] == "wf")["mean_response"],
                               on_test(out["run_dir"])["eval/4/mean_response"], rtol=1e-4)
    # a trace of the checkpoint plays that world too: its workflow file, its GPU mix
    from train.trace import main as trace_main

    assert trace_main(["--checkpoint", out["run_dir"], "--servers", "4", "--out", str(tmp_path / "t.json"),
                       "--check"]) == 0
    trace = json.loads((tmp_path / "t.json").read_text())
    assert {len(w["tasks"]) for w in trace["workflows"]} == {24}
    assert {s["gpu"] for s in trace["servers"]} <= {"H100", "L4"}
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run(TINY + [f"--workflows={wf}"])  # 24 tasks, max_tasks 16
    assert e.value.code == 2 and "more than max_tasks=16" in capsys.readouterr().err


MULTI = r"""
import jax, jax.numpy as jnp, numpy as np
from train.config import PPOConfig, PRESETS
from train.devices import data_sharding, runner_shardings
from train.learner import make_train
cfg = PPOConfig(**PRESETS["cpu-quick"])
outs = []
for devices in (1, 4):
    c = cfg.replace(devices=devices)
    sharding = data_sharding(c)
    trainer = make_train(c, sharding)
    keys = jnp.stack([jax.random.PRNGKey(0)])
    init = jax.vmap(trainer.init)
    runner = jax.jit(init, out_shardings=runner_shardings(jax.eval_shape(init, keys), sharding, True))(keys)
    runner, last, _ = jax.jit(jax.vmap(lambda r: trainer.update_chunk(r, 2)))(runner)
    if devices == 4:
        assert len(runner.obs.servers.sharding.device_set) == 4
        assert len(runner.train_state.params["params"]["q"]["kernel"].sharding.device_set) == 4  # replicated
    outs.append(jax.device_get(runner.train_state.params))
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1])))
scale = max(float(np.max(np.abs(a))) for a in jax.tree.leaves(outs[0]))
print("max abs diff", diff, "scale", scale)
assert diff <= 1e-4 * max(scale, 1.0), diff
"""


def test_four_devices_match_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    res = subprocess.run([sys.executable, "-c", MULTI], env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "max abs diff" in res.stdout


def test_checkpoints_keep_the_latest_and_the_best(tmp_path):
    import jax.numpy as jnp

    from train.checkpoint import Checkpointer, load_params

    c = Checkpointer(str(tmp_path), "eval/16/norm_mean_response", keep_best=1)
    for step, m in [(1, 0.5), (2, 0.3), (3, 0.9), (4, 0.8)]:
        c.save(step, {"a": jnp.full(3, step)}, {"w": jnp.full(2, step)}, {"seed": 0}, {"eval/16/norm_mean_response": m})
    c.close()
    assert sorted(int(s) for s in os.listdir(tmp_path) if s.isdigit()) == [2, 3, 4]  # best (0.3) and the latest two
    step, params, config = load_params(str(tmp_path))
    assert step == 4 and np.asarray(params["w"]).tolist() == [4, 4] and config == {"seed": 0}


def test_a_training_state_of_another_layout_is_refused_on_resume_and_its_parameters_still_load(straight, tmp_path,
                                                                                              capsys, monkeypatch):
    from train import checkpoint as C
    from train.policies import load_policy

    run_dir = str(tmp_path / "copy")
    shutil.copytree(straight["run_dir"], run_dir)
    monkeypatch.setattr(C, "RUNNER_FORMAT", C.RUNNER_FORMAT + 1)  # as a later version would read this run
    with pytest.raises(SystemExit) as e:
        run(["--wandb_mode=disabled", "--progress=false", f"--resume={run_dir}", "--total_updates=6"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"layout {C.RUNNER_FORMAT - 1}, this code resumes layout {C.RUNNER_FORMAT}" in err
    assert "Traceback" not in err and "fell back" not in err
    assert sorted(int(s) for s in os.listdir(run_dir) if s.isdigit()) == [2, 4]  # nothing set aside or written
    assert same_tree(load_policy(run_dir).params, straight["params"])
