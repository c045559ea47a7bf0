"""K seeds in one compiled program: each seed is the one-seed run, with its own directory, and resumes."""

import json
import os

import jax
import numpy as np
import pytest

from train.ppo import main

TINY = ["--preset=cpu-quick", "--wandb_mode=disabled", "--progress=false", "--cpu_devices=1"]


def leaves(tree, i=None):
    return [np.asarray(x if i is None else x[i]) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("seeds")
    group = main(TINY + [f"--checkpoint_dir={d}", "--wandb_name=g", "--num_seeds=3", "--seed_batching=map"])
    single = main(TINY + [f"--checkpoint_dir={d}", "--wandb_name=s1", "--seed=1"])
    return d, group, single


def test_seed_i_of_a_k_seed_run_is_bit_identical_to_the_one_seed_run(runs):
    _, group, single = runs
    for a, b in zip(leaves(group["params"], 1), leaves(single["params"])):
        np.testing.assert_array_equal(a, b)
    assert group["seeds"][1]["eval"] == single["eval"]
    assert not np.array_equal(leaves(group["params"], 0)[0], leaves(group["params"], 1)[0])  # seeds differ


def test_each_seed_has_its_own_run_directory(runs):
    d, group, single = runs
    info = json.load(open(os.path.join(d, "g", "run.json")))
    assert info["seeds"] == [0, 1, 2] and info["config"]["num_seeds"] == 3
    for s in (0, 1, 2):
        sd = os.path.join(d, "g", f"seed{s}")
        summary = json.load(open(os.path.join(sd, "summary.json")))
        assert summary["config"]["seed"] == s and summary["config"]["num_seeds"] == 1 and summary["updates"] == 4
        assert [json.loads(x)["update"] for x in open(os.path.join(sd, "history.jsonl"))] == [2, 4]
        assert {"2", "4"} <= set(os.listdir(sd))
    # the seed's history is the one-seed run's, number for number (timings aside)
    h_group = [json.loads(x) for x in open(os.path.join(d, "g", "seed1", "history.jsonl"))]
    h_single = [json.loads(x) for x in open(os.path.join(d, "s1", "history.jsonl"))]
    for a, b in zip(h_group, h_single):
        assert {k: v for k, v in a.items() if not k.startswith("perf/")} == \
            {k: v for k, v in b.items() if not k.startswith("perf/")}


def test_a_k_seed_run_stopped_and_resumed_equals_the_straight_one(runs, tmp_path):
    _, group, _ = runs
    half = main(TINY + [f"--checkpoint_dir={tmp_path}", "--wandb_name=h", "--num_seeds=3", "--seed_batching=map",
                        "--stop_after=2"])
    assert half["updates"] == 2
    out = main(["--wandb_mode=disabled", "--progress=false", f"--resume={tmp_path / 'h'}"])
    assert out["updates"] == 4
    for a, b in zip(leaves(out["params"]), leaves(group["params"])):
        np.testing.assert_array_equal(a, b)
    for s in range(3):
        rows = [json.loads(x)["update"] for x in open(tmp_path / "h" / f"seed{s}" / "history.jsonl")]
        assert rows == [2, 4]


def test_batched_seeds_match_the_one_seed_runs_to_rounding(runs, tmp_path):
    _, group, _ = runs
    out = main(TINY + [f"--checkpoint_dir={tmp_path}", "--wandb_name=v", "--num_seeds=3", "--seed_batching=vmap"])
    for a, b in zip(leaves(out["params"]), leaves(group["params"])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_evaluate_gives_one_row_per_seed_of_a_group(runs, capsys):
    d, _, _ = runs
    from train import evaluate

    rows = evaluate.main(["--checkpoint", f"g={d / 'g'}", "--policies", "eft", "--servers", "4", "--seeds", "2", "--json"])
    assert {r["policy"] for r in rows} == {"g/seed0", "g/seed1", "g/seed2", "eft", "round_robin"}
