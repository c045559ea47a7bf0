"""Runs that survive faults: SIGKILL and SIGTERM mid-run, re-resume, schedules keyed on the update
count, wandb resume, unique run dirs for concurrent agents, clean errors for damaged checkpoints,
and training across processes with jax.distributed (2 processes x 2 devices = 1 process x 4)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from train.checkpoint import load_params
from train.ppo import main as run

QUIET = ["--wandb_mode=disabled", "--progress=false"]
# tiny runs that share one compiled program (constant learning rate: the run length is not in the
# program; one chunk length; one evaluation size), so after the first they cost little compilation
SMALL = ["--preset=cpu-quick", *QUIET, "--lr_schedule=constant", "--updates_per_chunk=1", "--eval_servers=4",
         "--eval_seeds=1"]
# 12 one-update chunks, a checkpoint every 2 updates, evaluation only at the end
LONG = [*SMALL, "--total_updates=12", "--checkpoint_every=2", "--eval_every=0"]


def same_tree(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def without(args, option):
    return [a for a in args if not a.startswith(option)]


def history(run_dir):
    return [json.loads(x) for x in open(os.path.join(run_dir, "history.jsonl"))]


def learning(final):
    """The metrics that are results (not timings)."""
    return {k: v for k, v in final.items() if not k.startswith("perf/")}


def train_cmd(args):
    return [sys.executable, "-m", "train.ppo", *args]


def start(args, **kw):
    return subprocess.Popen(train_cmd(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def wait_for(cond, proc, timeout=600):
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (status {proc.returncode}) before the awaited point: {err[-2000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            pytest.fail("timed out waiting for the run")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    d = tmp_path_factory.mktemp("straight")
    return run(LONG + [f"--checkpoint_dir={d}", "--wandb_name=straight"])


@pytest.mark.slow
def test_sigkill_after_the_second_checkpoint_then_resume_equals_straight_and_keeps_every_update(straight, tmp_path):
    run_dir = tmp_path / "killed"
    proc = start(LONG + [f"--checkpoint_dir={tmp_path}", "--wandb_name=killed"])
    wait_for(lambda: (run_dir / "4").is_dir(), proc)  # orbax renames a step's directory into place when complete
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists()  # killed before the end
    rows_before = [r["update"] for r in history(run_dir)]
    assert rows_before and max(rows_before) < 12
    out = run([*QUIET, f"--resume={run_dir}"])
    assert out["updates"] == 12 and out["finished"]
    assert same_tree(out["params"], straight["params"])
    assert learning(out["final"]) == learning(straight["final"])
    assert out["eval"] == straight["eval"]
    # every update exactly once, in order, and the rows of updates before the kill are the originals
    assert [r["update"] for r in history(run_dir)] == list(range(1, 13))
    assert [learning(r) for r in history(run_dir)] == [learning(r) for r in history(straight["run_dir"])]


class Crash(BaseException):
    """A fault injected into the loop (BaseException: nothing in the loop may swallow it)."""


@pytest.mark.slow
def test_a_crash_right_after_a_checkpoint_loses_no_history_row(straight, tmp_path, monkeypatch):
    # the worst moment for the history: step 4's checkpoint is complete and nothing else has happened yet
    from train.checkpoint import Checkpointer

    save = Checkpointer.save

    def save_then_crash(self, step, *a, **kw):
        save(self, step, *a, **kw)
        if step == 4:
            raise Crash

    monkeypatch.setattr(Checkpointer, "save", save_then_crash)
    with pytest.raises(Crash):
        run(LONG + [f"--checkpoint_dir={tmp_path}", "--wandb_name=crash"])
    monkeypatch.setattr(Checkpointer, "save", save)
    out = run([*QUIET, f"--resume={tmp_path / 'crash'}"])
    assert [r["update"] for r in history(tmp_path / "crash")] == list(range(1, 13))
    assert same_tree(out["params"], straight["params"])


@pytest.mark.slow
def test_sigterm_checkpoints_at_the_chunk_boundary_exits_0_and_resumes_exactly(straight, tmp_path):
    run_dir = tmp_path / "term"
    proc = start(LONG + [f"--checkpoint_dir={tmp_path}", "--wandb_name=term"])
    wait_for(lambda: (run_dir / "history.jsonl").exists() and history(run_dir), proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert f"--resume {run_dir}" in err
    stopped = history(run_dir)[-1]["update"]
    assert stopped < 12 and (run_dir / str(stopped)).is_dir()  # checkpointed where it stopped
    summary = json.load(open(run_dir / "summary.json"))
    assert summary["updates"] == stopped and not summary["finished"]
    resumed = run([*QUIET, f"--resume={run_dir}"])
    assert same_tree(resumed["params"], straight["params"])
    assert [r["update"] for r in history(run_dir)] == list(range(1, 13))


def test_resuming_a_finished_run_changes_nothing_and_says_so(straight, tmp_path, capsys):
    run_dir = tmp_path / "done"
    shutil.copytree(straight["run_dir"], run_dir)
    before = {p: open(run_dir / p, "rb").read() for p in ("summary.json", "history.jsonl", "run.json")}
    out = run([*QUIET, f"--resume={run_dir}"])
    assert "already finished at update 12" in capsys.readouterr().err
    assert {p: open(run_dir / p, "rb").read() for p in before} == before
    assert out["final"] == json.loads(before["summary.json"])["final"] and out["eval"]
    # and again: re-resuming is as harmless
    run([*QUIET, f"--resume={run_dir}"])
    assert {p: open(run_dir / p, "rb").read() for p in before} == before


def test_evaluation_and_checkpoints_follow_the_update_count_not_the_chunks(tmp_path, capsys):
    # chunks of 3 updates, evaluation every 4: an uninterrupted run evaluates at 4 and 8
    base = [*without(SMALL, "--updates_per_chunk"), "--updates_per_chunk=3", "--total_updates=8", "--eval_every=4",
            f"--checkpoint_dir={tmp_path}"]
    straight = run(base + ["--wandb_name=a"])
    evals = lambda d: [r["update"] for r in history(d) if "eval/4/mean_response" in r]  # noqa: E731
    assert evals(straight["run_dir"]) == [4, 8]
    assert "traced again" not in capsys.readouterr().err  # chunks of 3, 1, 3, 1 updates: one program
    # stopped at 3 and resumed (the old loop then evaluated at 7 and 8): the same evaluations, the same result
    part = run(base + ["--wandb_name=b", "--stop_after=3"])
    resumed = run([*QUIET, f"--resume={part['run_dir']}"])
    assert evals(part["run_dir"]) == [4, 8]
    assert same_tree(resumed["params"], straight["params"]) and resumed["eval"] == straight["eval"]
    ups = [r["update"] for r in history(part["run_dir"])]
    assert ups == [3, 4, 7, 8]  # each chunk once, in order


def test_checkpoint_every_is_independent_of_evaluation(straight):
    # LONG evaluates only at the end (12) and checkpoints every 2: the latest two steps are kept
    steps = sorted(int(s) for s in os.listdir(straight["run_dir"]) if s.isdigit())
    assert steps == [10, 12]
    assert [r["update"] for r in history(straight["run_dir"]) if "eval/4/mean_response" in r] == [12]
    step, params, _ = load_params(straight["run_dir"], 10)
    assert step == 10 and not same_tree(params, straight["params"])


def test_a_resumed_run_continues_the_same_wandb_run_offline(tmp_path, monkeypatch):
    from train.config import PPOConfig
    from train.tracking import Tracker

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = PPOConfig(wandb_name="w")
    first = Tracker(config, str(tmp_path), {})
    first.log({"loss/actor": 1.0}, step=1)
    first.finish()
    wandb_id = json.load(open(tmp_path / "run.json"))["wandb_id"]
    again = Tracker(config, str(tmp_path), {}, resume_from=1)  # what the loop does on --resume
    again.log({"loss/actor": 0.5}, step=2)
    again.finish()
    assert json.load(open(tmp_path / "run.json"))["wandb_id"] == wandb_id
    runs = [d for d in os.listdir(tmp_path / "wandb") if d.startswith("offline-run-")]
    # Both parts log to one run id. Read it from the run file: when both parts start within the
    # same second, wandb suffixes the second folder's name ("...-<id>-1"), so the name can't say.
    assert len(runs) == 2
    assert all(os.listdir(tmp_path / "wandb" / d).count(f"run-{wandb_id}.wandb") == 1 for d in runs)
    assert [r["update"] for r in history(tmp_path)] == [1, 2]


@pytest.mark.slow
def test_two_agent_style_runs_started_at_once_never_share_a_directory(tmp_path):
    # as a sweep agent starts them: options only, no name, the same checkpoint_dir, the same second
    args = [*SMALL, "--total_updates=2", "--eval_every=0", f"--checkpoint_dir={tmp_path}"]
    env = {k: v for k, v in os.environ.items() if k != "WANDB_RUN_ID"}
    procs = [start(args, env=env) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    dirs = sorted(os.listdir(tmp_path))
    assert len(dirs) == 2
    for d in dirs:
        assert json.load(open(tmp_path / d / "summary.json"))["updates"] == 2
        assert [r["update"] for r in history(tmp_path / d)] == [1, 2]  # one run's history, not two interleaved


def _fail(args):
    res = subprocess.run(train_cmd(args), capture_output=True, text=True, timeout=600)
    return res.returncode, res.stderr


@pytest.mark.slow
def test_damaged_checkpoints_and_incompatible_resumes_give_one_line(straight, tmp_path):
    run_dir = tmp_path / "broken"
    shutil.copytree(straight["run_dir"], run_dir)
    for step in (s for s in os.listdir(run_dir) if s.isdigit()):
        for root, _, files in os.walk(run_dir / step):
            for f in files:
                open(os.path.join(root, f), "wb").write(b"garbage")
    code, err = _fail([*QUIET, f"--resume={run_dir}", "--total_updates=14"])
    assert code == 2 and "Traceback" not in err and "Event loop" not in err, err
    assert [line for line in err.splitlines() if line.strip()][-1].startswith("python -m train.ppo: error:")
    assert "no readable checkpoint" in err or "unreadable" in err, err
    # a step whose state was never written (a partial copy): the previous step is used, with one warning
    partial = tmp_path / "partial"
    shutil.copytree(straight["run_dir"], partial)
    shutil.rmtree(partial / "12" / "state")
    out = run([*QUIET, f"--resume={partial}", "--total_updates=13"])
    assert out["updates"] == 13
    # an option the run was trained with cannot change on resume
    code, err = _fail([*QUIET, f"--resume={straight['run_dir']}", "--embed_dim=32"])
    assert code == 2 and "Traceback" not in err and "--embed_dim: cannot change when resuming" in err


MP_ARGS = [*without(SMALL, "--updates_per_chunk"), "--updates_per_chunk=2", "--total_updates=4", "--eval_every=0", "--num_envs=8"]


@pytest.mark.slow
def test_two_processes_of_two_devices_train_as_one_process_of_four(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS",)}
    multi = subprocess.run([sys.executable, "-m", "train.launch", "--processes", "2", "--devices-per-process", "2", "--",
                            *MP_ARGS, f"--checkpoint_dir={tmp_path}", "--wandb_name=multi"],
                           capture_output=True, text=True, timeout=900, env=env)
    assert multi.returncode == 0, multi.stderr[-3000:]
    single = subprocess.run(train_cmd(MP_ARGS + [f"--checkpoint_dir={tmp_path}", "--wandb_name=single", "--devices=4"]),
                            capture_output=True, text=True, timeout=900,
                            env=dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"))
    assert single.returncode == 0, single.stderr[-3000:]
    a = json.load(open(tmp_path / "multi" / "summary.json"))
    b = json.load(open(tmp_path / "single" / "summary.json"))
    assert a["eval"] == b["eval"]
    fa, fb = learning(a["final"]), learning(b["final"])
    assert fa.keys() == fb.keys()
    for k in fa:  # equal up to float32 rounding: the gradient all-reduce sums across processes in another order
        if fa[k] is None:
            assert fb[k] is None, k
        else:
            np.testing.assert_allclose(fa[k], fb[k], rtol=1e-4, atol=1e-6, err_msg=k)
    # process 0 alone logs: one history row per chunk
    assert [r["update"] for r in history(tmp_path / "multi")] == [2, 4]
    # the two-process checkpoint (each process wrote its shards) reads back in one process
    _, pa, _ = load_params(str(tmp_path / "multi"))
    _, pb, _ = load_params(str(tmp_path / "single"))
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)


def test_the_launcher_wires_each_process_and_refuses_options_it_sets(capsys):
    from train import launch

    env = launch.process_env(1, 3, 2, "cpu", 4567, base={"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --foo"})
    assert env["JAXSCHED_COORDINATOR"] == "127.0.0.1:4567" and env["JAXSCHED_NUM_PROCESSES"] == "3"
    assert env["JAXSCHED_PROCESS_ID"] == "1" and env["JAX_PLATFORMS"] == "cpu"
    assert env["XLA_FLAGS"].split() == ["--foo", "--xla_force_host_platform_device_count=2"]
    gpu = launch.process_env(1, 2, 4, "gpu", 4567, base={})
    assert gpu["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"
    for argv, message in ((["--processes", "0"], "--processes: must be >= 1"),
                          (["--devices-per-process", "0"], "--devices-per-process: must be >= 1"),
                          (["--", "--distributed=true"], "--distributed: the launcher sets it")):
        with pytest.raises(SystemExit) as e:
            launch.main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err


STUCK_PEER = """
import os, signal, sys, time
if os.environ["JAXSCHED_PROCESS_ID"] == "1":
    sys.exit(3)  # this one fails at once
signal.signal(signal.SIGTERM, lambda *a: None)  # the other ignores SIGTERM, as one blocked in a collective would
time.sleep(600)
"""


@pytest.mark.timeout(120)
def test_the_launcher_kills_a_process_that_ignores_sigterm_after_a_peer_failed(tmp_path, monkeypatch, capsys):
    from train import launch

    (tmp_path / "stuck_peer.py").write_text(STUCK_PEER)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setattr(launch, "KILL_AFTER_S", 2.0)
    t0 = time.monotonic()
    assert launch.launch(2, 1, [], module="stuck_peer") == 3  # the first failure's status
    assert time.monotonic() - t0 < 60
    assert "ignored SIGTERM" in capsys.readouterr().err


def test_extending_a_finished_run_keeps_the_schedule_unless_asked_and_says_what_that_means(tmp_path, capsys):
    # the documented choice: the decay horizon fixed at the start is kept (the extension then runs at the
    # schedule's final rate, 0, and the note says so); --lr_decay_updates stretches it
    from train.config import PPOConfig
    from train.learner import lr_shape
    from train.ppo import resolve
    from train.tracking import write_run_file

    started = PPOConfig(total_updates=4, lr_decay_updates=4)
    write_run_file(str(tmp_path), config=started.to_dict(), seeds=[0])
    steps_per_update = started.update_epochs * started.num_minibatches
    at_update_6 = 6 * steps_per_update

    kept, _, _ = resolve([f"--resume={tmp_path}", "--total_updates=8"])
    assert kept.lr_decay_updates == 4 and float(lr_shape(kept)(at_update_6)) == 0.0
    err = capsys.readouterr().err
    assert "do not learn" in err and "--lr_decay_updates=8" in err
    stretched, _, _ = resolve([f"--resume={tmp_path}", "--total_updates=8", "--lr_decay_updates=8"])
    assert stretched.lr_decay_updates == 8 and float(lr_shape(stretched)(at_update_6)) > 0.0
    assert "do not learn" not in capsys.readouterr().err
