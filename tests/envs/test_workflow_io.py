"""Workflows from files: the shipped examples, the WfFormat token rule, ordering, and errors that name the field."""

import json
import os

import numpy as np
import pytest

from envs import EnvConfig, catalog
from envs import trace as tr
from envs import workflow_io as wio
from envs.instance import Instance
from envs.reference import run_episode
from envs.workload import bank_from_specs

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "envs", "examples")
OWN = os.path.join(EXAMPLES, "workflows.json")
WFF = os.path.join(EXAMPLES, "wfformat_example.json")
NAMES = [m.name for m in catalog.DEFAULT_MODELS]
M = {n: i for i, n in enumerate(NAMES)}


def write(tmp_path, obj, name="wf.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(p)


def task(tid, parents=(), model="8B", **kw):
    return {"id": tid, "model": model, "input_tokens": 100, "expected_output_tokens": 50, "output_tokens": 40,
            "tool_delay": 0.0, "parents": list(parents), **kw}


def own(*tasks, app="a/0", prefix=1000):
    return {"format": "jaxsched-workflows", "version": 1,
            "workflows": [{"app": app, "prefix_tokens": prefix, "tasks": list(tasks)}]}


# --------------------------------------------------------------------------- the shipped examples


def test_own_example_loads():
    specs = wio.load_workflows(OWN, NAMES)
    assert [w.app for w in specs] == ["rag/support", "research/fanout", "debate/policy", "agent/react"]
    rag, fan, debate, chain = specs
    assert rag.models == (M["8B"], M["8B"], M["70B-fp8"], M["14B"]) and rag.parents == ((), (0,), (1,), (2,))
    assert fan.parents[-1] == (1, 2, 3, 4) and set(fan.models) == {M["32B"], M["8B"]}
    assert debate.parents == ((), (), (0, 1), (0, 1), (2, 3)) and debate.models[-1] == M["70B-fp8"]
    assert chain.tool_delay[1:] == tuple(float(np.float32(x)) for x in (1.1, 0.8, 2.0))  # stored as float32
    used = {m for w in specs for m in w.models}
    assert used == set(range(len(NAMES))) - {M["3B"]}  # every model of the v1 catalog appears
    for w in specs:
        assert 1000 <= w.prefix_tokens <= 8000
        assert all(50 <= o <= 800 for o in w.expected_output_tokens)
        assert all(o >= 1 for o in w.output_tokens)
    # the chain leaves output_tokens out: drawn, and deterministic for a seed
    again = wio.load_workflows(OWN, NAMES)[3]
    assert again.output_tokens == chain.output_tokens
    assert wio.load_workflows(OWN, NAMES, seed=1)[3].output_tokens != chain.output_tokens


def test_wfformat_example_loads_by_the_token_rule():
    (w,) = wio.load_workflows(WFF, NAMES)
    assert w.app == "genome-mini" and w.prefix_tokens == wio.WfFormatMapping().prefix_tokens
    assert w.n_tasks == 9
    assert w.parents == ((), (0,), (0,), (0,), (1, 2, 3), (4,), (4,), (5, 6), (7,))
    planner, worker = M["32B"], M["8B"]
    assert w.models == (planner, worker, worker, worker, planner, worker, worker, planner, worker)
    # split reads 24000 B of its own; aligners count the shared reference (16000 B) but not the chunk their
    # parent wrote; merge reads only parents' files (clipped up to 50); archive reads merged.bam, which a
    # non-parent wrote, so it counts (3200 B).
    assert w.input_tokens == (6000, 4000, 4000, 4000, 50, 200, 200, 500, 800)
    assert w.expected_output_tokens == (1024, 600, 500, 700, 800, 250, 400, 700, 100)
    assert w.tool_delay == (0.0,) * 9


def test_example_workflows_drive_the_jax_env():
    specs = wio.load_workflows([OWN, WFF], NAMES)
    config = EnvConfig(bank=bank_from_specs(specs, 16), n_servers=4, n_workflows=6)
    t = tr.record_episode(config, "eft", 0)
    tr.check_trace(t)
    apps = {w.app for w in specs}
    assert {w["app"] for w in t["workflows"]} <= apps
    by_app = {w.app: w for w in specs}
    for w in t["workflows"]:
        spec = by_app[w["app"]]
        assert [x["output_tokens"] for x in w["tasks"]] == list(spec.output_tokens)
        assert [tuple(x["parents"]) for x in w["tasks"]] == list(spec.parents)
    assert len(t["decisions"]) == sum(len(w["tasks"]) for w in t["workflows"])


def test_specs_to_json_round_trips(tmp_path):
    specs = wio.load_workflows([OWN, WFF], NAMES)
    p = write(tmp_path, wio.specs_to_json(specs, NAMES))
    back = wio.load_workflows(p, NAMES)
    for a, b in zip(specs, back, strict=True):
        for f in ("app", "prefix_tokens", "models", "input_tokens", "expected_output_tokens", "output_tokens",
                  "tool_delay", "parents"):
            assert getattr(a, f) == getattr(b, f), f


# --------------------------------------------------------------------------- the WfFormat rule


def tiny_wfformat():
    """A (root) -> B (edge given only by A's children), {A, B} -> C (a join)."""
    return {
        "name": "tiny", "schemaVersion": "1.5",
        "workflow": {
            "specification": {
                "tasks": [
                    {"name": "c", "id": "C", "parents": ["A", "B"], "children": [],
                     "inputFiles": ["a.out", "b.out", "big.txt"], "outputFiles": ["c.out"]},
                    {"name": "a", "id": "A", "parents": [], "children": ["B", "C"],
                     "inputFiles": ["x.txt", "y.txt"], "outputFiles": ["a.out"]},
                    {"name": "b", "id": "B", "parents": [], "children": [],
                     "inputFiles": ["a.out", "z.txt"], "outputFiles": ["b.out"]},
                ],
                "files": [
                    {"id": "x.txt", "sizeInBytes": 400}, {"id": "y.txt", "sizeInBytes": 4},
                    {"id": "z.txt", "sizeInBytes": 100}, {"id": "big.txt", "sizeInBytes": 80000},
                    {"id": "a.out", "sizeInBytes": 40000}, {"id": "b.out", "sizeInBytes": 200},
                    {"id": "c.out", "sizeInBytes": 4},
                ],
            },
            "execution": {"makespanInSeconds": 9.0, "executedAt": "20250101T000000+0000", "tasks": [
                {"id": "A", "runtimeInSeconds": 2.0}, {"id": "B", "runtimeInSeconds": 3.0},
                {"id": "C", "runtimeInSeconds": 4.0}]},
        },
    }


def test_wfformat_mapping_rule(tmp_path):
    p = write(tmp_path, tiny_wfformat())
    (w,) = wio.load_workflows(p, NAMES)
    # topological order A, B, C although the file lists C first; B's parent comes from A's children list
    assert w.parents == ((), (0,), (0, 1))
    assert w.models == (M["32B"], M["8B"], M["32B"])  # root and join: planner; one parent: worker
    # A: (400 + 4) / 4 = 101; B: z.txt only (a.out is its parent's) = 25 -> clipped up to 50;
    # C: big.txt only = 20000 -> clipped down to 8000
    assert w.input_tokens == (101, 50, 8000)
    # A: 40000 / 4 -> clipped to 1024; B: 50; C: 1 -> clipped up to 16
    assert w.expected_output_tokens == (1024, 50, 16)
    assert w.tool_delay == (0.0, 0.0, 0.0) and w.app == "tiny" and w.prefix_tokens == 2000

    m = wio.WfFormatMapping(bytes_per_token=2.0, input_max=100_000, output_min=1, prefix_tokens=500,
                            planner_model="70B-fp8", worker_model="14B", runtime_to_tool_delay=0.5)
    (w2,) = wio.load_wfformat(p, NAMES, mapping=m)
    assert w2.input_tokens == (202, 50, 40000)
    assert w2.expected_output_tokens == (1024, 100, 2)
    assert w2.models == (M["70B-fp8"], M["14B"], M["70B-fp8"])
    assert w2.tool_delay == (1.0, 1.5, 2.0) and w2.prefix_tokens == 500


def test_wfformat_14_style_loads(tmp_path):
    """Schema 1.4: files inside each task as {link, name, size}; tasks refer to each other by name."""
    doc = {"name": "old", "schemaVersion": "1.4", "workflow": {"makespanInSeconds": 5, "executedAt": "x", "tasks": [
        {"name": "fetch_ID0000001", "id": "ID0000001", "parents": [], "children": ["parse_ID0000002"],
         "runtimeInSeconds": 1.0, "files": [{"link": "input", "name": "url.txt", "size": 800},
                                            {"link": "output", "name": "page", "size": 1200}]},
        {"name": "parse_ID0000002", "id": "ID0000002", "parents": ["fetch_ID0000001"], "children": [],
         "runtime": 2.0,
         "files": [{"link": "input", "name": "page", "size": 1200}, {"link": "input", "name": "rules", "size": 400},
                   {"link": "output", "name": "items", "size": 2000}]},
        {"name": "summarize", "parents": [], "children": [], "runtimeInSeconds": 1.0,
         "files": [{"link": "input", "name": "items", "size": 2000}, {"link": "output", "name": "s", "size": 600}]},
    ]}}
    doc["workflow"]["tasks"][1]["children"] = ["summarize"]  # an edge stated only on the parent's side
    (w,) = wio.load_workflows(write(tmp_path, doc), NAMES)
    assert w.parents == ((), (0,), (1,))
    assert w.input_tokens == (200, 100, 50)
    assert w.expected_output_tokens == (300, 500, 150)
    assert w.models == (M["32B"], M["8B"], M["8B"])


def test_own_format_is_sorted_topologically(tmp_path):
    doc = own(task("join", ["left", "right"], input_tokens=3), task("right", ["root"], input_tokens=2),
              task("root", input_tokens=0), task("left", ["root"], input_tokens=1))
    (w,) = wio.load_workflows(write(tmp_path, doc), NAMES)
    assert w.input_tokens == (0, 2, 1, 3)
    assert w.parents == ((), (0,), (0,), (1, 2))
    ordered = own(task(0), task(1, [0]), task(2, [0, 1]))
    (w,) = wio.load_workflows(write(tmp_path, ordered, "ordered.json"), NAMES)
    assert w.parents == ((), (0,), (0, 1))  # already ordered input keeps its order


def test_a_trace_file_loads_as_workflows(tmp_path):
    """A trace's `workflows` list is valid own-format input, so traces can seed a bank."""
    specs = wio.load_workflows(OWN, NAMES)
    inst = Instance(gpus=catalog.DEFAULT_GPUS, models=catalog.DEFAULT_MODELS, server_gpus=(0,), initial_models=(0,),
                    arrivals=tuple(float(i) for i in range(len(specs))), workflows=tuple(specs))
    out = run_episode(inst, lambda obs, sim: 0)
    p = write(tmp_path, tr.episode_trace(inst, out["decisions"], out), "trace.json")
    back = wio.load_workflows(p, NAMES)
    assert [w.output_tokens for w in back] == [w.output_tokens for w in specs]
    assert [w.parents for w in back] == [w.parents for w in specs]


# --------------------------------------------------------------------------- malformed files


def too_many():
    return own(*[task(i, [i - 1] if i else []) for i in range(17)])


def cyclic():
    return own(task("a", ["c"]), task("b", ["a"]), task("c", ["b"]))


def bad_file_id():
    doc = tiny_wfformat()
    doc["workflow"]["specification"]["tasks"][1]["inputFiles"] = ["nope"]
    return doc


def no_workflow():
    return {"name": "x", "schemaVersion": "1.5", "wfcommons": {}}


@pytest.mark.parametrize("doc,loader,field,message", [
    ("{not json", "any", "", "not valid JSON (line 1"),
    ({"format": "jaxsched-workflows", "version": 1}, "any", "workflows", "expected a list"),
    ({"format": "jaxsched-workflows", "workflows": []}, "any", "workflows", "must be a non-empty list"),
    (own(task("a", model="GPT-5")), "any", "workflows[0].tasks[0].model", "unknown model 'GPT-5'"),
    (own(task("a"), task("b", ["a"], input_tokens=-3)), "any", "workflows[0].tasks[1].input_tokens", "must be >= 0"),
    (own(task("a", tool_delay=-0.5)), "any", "workflows[0].tasks[0].tool_delay", "must be >= 0"),
    (own(task("a"), task("b", ["zzz"])), "any", "workflows[0].tasks[1].parents", "unknown task id 'zzz'"),
    (own(task("a", ["a"])), "any", "workflows[0].tasks[0].parents", "cannot be its own parent"),
    (own(task("a"), task("a")), "any", "workflows[0].tasks[1].id", "duplicate task id 'a'"),
    (cyclic(), "any", "workflows[0]", "cycle"),
    (too_many(), "any", "workflows[0]", "has 17 tasks, more than max_tasks=16"),
    (own(task("a", expected_output_tokens=0)), "any", "workflows[0].tasks[0].expected_output_tokens", ">= 1"),
    (own(task("a", input_tokens=2.5)), "any", "workflows[0].tasks[0].input_tokens", "must be an integer"),
    (no_workflow(), "wfformat", "workflow", "missing (not a WfFormat instance)"),
    (bad_file_id(), "any", "workflow.specification.tasks[1].inputFiles", "unknown file id 'nope'"),
])
def test_malformed_files_name_the_file_and_field(tmp_path, doc, loader, field, message):
    p = write(tmp_path, doc)
    load = (lambda: wio.load_workflows(p, NAMES, max_tasks=16)) if loader == "any" else \
        (lambda: wio.load_wfformat(p, NAMES, max_tasks=16))
    with pytest.raises(ValueError) as e:
        load()
    text = str(e.value)
    assert text.startswith(f"{p}: {field}" if field else f"{p}: "), text
    assert message in text, text


def test_missing_file_is_named(tmp_path):
    p = str(tmp_path / "absent.json")
    with pytest.raises(ValueError, match="absent.json: file not found"):
        wio.load_workflows(p, NAMES)


def test_loaded_bank_is_padded_and_validated_by_the_config():
    specs = wio.load_workflows([OWN, WFF], NAMES)
    bank = bank_from_specs(specs, 16)
    assert bank.size == 5 and bank.max_tasks == 16
    assert np.all(bank.n_tasks == [4, 6, 5, 4, 9])
    # the 32B/70B tasks must fit the anchor server: an all-L4 cluster is refused by name
    with pytest.raises(ValueError, match="gpu_types"):
        EnvConfig(bank=bank, n_servers=2, gpu_types=("L4", "L4")).validate()
