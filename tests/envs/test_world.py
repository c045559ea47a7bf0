"""World options shared by the commands: catalog files, GPU lists and mixes, workflow files."""

import json

import pytest

from envs import EnvConfig, catalog, make_params
from envs.world import build_world, load_catalog, parse_gpu_list, parse_gpu_mix

NAMES = [g.name for g in catalog.DEFAULT_GPUS]
GOOD = {"format": "jaxsched-catalog", "version": 1,
        "gpus": [{"name": "MI300X", "mem_gb": 192, "prefill_tps_8b": 14000, "decode_tps_8b": 220, "load_gbps": 5.5,
                  "weight": 0.1},
                 {"name": "L4", "mem_gb": 24, "prefill_tps_8b": 1600, "decode_tps_8b": 32, "load_gbps": 2.0}],
        "models": [{"name": "405B-fp8", "params_b": 405, "mem_gb": 410}]}


def write(tmp_path, doc, name="cat.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def test_a_catalog_file_adds_and_replaces_entries(tmp_path):
    cat = load_catalog(write(tmp_path, GOOD))
    assert cat.gpu_names == NAMES + ["MI300X"]
    assert cat.gpus[-1] == catalog.GpuSpec("MI300X", 192.0, 14000.0, 220.0, 5.5)
    assert cat.gpus[NAMES.index("L4")].prefill_tps_8b == 1600.0  # replaced by name, position kept
    assert cat.gpu_weights[:-1] == catalog.DEFAULT_GPU_WEIGHTS and cat.gpu_weights[-1] == 0.1
    assert cat.model_names[-1] == "405B-fp8" and len(cat.models) == len(catalog.DEFAULT_MODELS) + 1


def test_the_world_from_a_catalog_runs_and_places_work_on_the_new_gpu(tmp_path):
    config = build_world(EnvConfig(n_servers=3, bank_size=16, n_workflows=3), catalog_file=write(tmp_path, GOOD),
                         gpus="MI300X,H100,L4")
    assert config.gpu_types == ("MI300X", "H100", "L4") and config.n_servers == 3
    params = make_params(config)
    assert params.n_gpu_types == len(NAMES) + 1 and params.n_models == len(catalog.DEFAULT_MODELS) + 1
    from envs import trace as tr

    t = tr.record_episode(config, "eft", 0)
    assert t["servers"][0]["gpu"] == "MI300X" and any(d["server"] == 0 for d in t["decisions"])
    assert tr.check_trace(t)  # the trace carries the custom catalog; the reference replays it


@pytest.mark.parametrize("doc,message", [
    ("{", "cat.json: not valid JSON"),
    ({"format": "other", "version": 1}, "cat.json: format: must be 'jaxsched-catalog'"),
    ({**GOOD, "version": 2}, "cat.json: version: this code reads version 1, got 2"),
    ({**GOOD, "extra": 1}, "cat.json: extra: unknown field"),
    ({**GOOD, "gpus": {}}, "cat.json: gpus: must be a list"),
    ({**GOOD, "gpus": [{"name": "X", "mem_gb": 10}]}, "cat.json: gpus[0].prefill_tps_8b: missing"),
    ({**GOOD, "gpus": [{**GOOD["gpus"][0], "mem_gb": -1}]}, "cat.json: gpus[0].mem_gb: must be > 0, got -1"),
    ({**GOOD, "gpus": [{**GOOD["gpus"][0], "load_gbps": "fast"}]}, "cat.json: gpus[0].load_gbps: must be a number"),
    ({**GOOD, "gpus": [{**GOOD["gpus"][0], "weight": -0.5}]}, "cat.json: gpus[0].weight: must be >= 0"),
    ({**GOOD, "gpus": [{**GOOD["gpus"][0], "colour": "red"}]}, "cat.json: gpus[0].colour: unknown field"),
    ({**GOOD, "gpus": [GOOD["gpus"][0], GOOD["gpus"][0]]}, "cat.json: gpus[1].name: 'MI300X' appears twice"),
    ({**GOOD, "models": [{"name": "", "params_b": 1, "mem_gb": 1}]}, "cat.json: models[0].name: must be a non-empty"),
    ({**GOOD, "models": [{"name": "1B", "params_b": float("inf"), "mem_gb": 1}]}, "models[0].params_b: must be a number"),
])
def test_bad_catalog_files_are_one_line_naming_file_and_field(tmp_path, doc, message):
    path = write(tmp_path, doc)
    with pytest.raises(ValueError) as e:
        build_world(catalog_file=path)
    assert str(e.value).startswith("--catalog: ") and message in str(e.value) and "\n" not in str(e.value)


def test_gpu_lists_and_mixes_are_checked():
    assert parse_gpu_list("H100, L4", NAMES) == ("H100", "L4")
    w = parse_gpu_mix("H100=2,L4=1", NAMES)
    assert w[NAMES.index("H100")] == 2.0 and w[NAMES.index("L4")] == 1.0 and sum(w) == 3.0
    for bad, message in (("H100,X", "--gpus: unknown GPU 'X'"), ("", "--gpus: empty list")):
        with pytest.raises(ValueError, match=message):
            parse_gpu_list(bad, NAMES)
    for bad, message in (("H100", "'H100' must be NAME=WEIGHT"), ("H100=x", "'H100=x' must be NAME=WEIGHT"),
                         ("H100=-1", "must be NAME=WEIGHT"), ("H100=0", "the weights sum to 0"),
                         ("Z=1", "unknown GPU 'Z'")):
        with pytest.raises(ValueError, match=message):
            parse_gpu_mix(bad, NAMES)
    # a mix reaches the sampler: every server of a big cluster is one of the named types
    import jax

    from envs import reset

    params = make_params(build_world(EnvConfig(n_servers=24, bank_size=8), gpu_mix="H200=1,L4=3"))
    _, state = reset(jax.random.PRNGKey(0), params)
    assert {NAMES[int(g)] for g in state.servers.gpu} == {"H200", "L4"}


def test_workflow_files_replace_the_bank_and_name_the_option_on_errors(tmp_path):
    from envs.wfshapes import make_instance

    wf = write(tmp_path, make_instance("bwa", 60), "bwa.json")
    config = build_world(EnvConfig(n_servers=2), workflows=[wf], max_tasks=64)
    assert config.bank.size == 1 and config.bank.largest == 60 and config.max_tasks == 64
    with pytest.raises(ValueError, match=r"^--workflows: .*bwa\.json: workflow: has 60 tasks, more than max_tasks=16$"):
        build_world(EnvConfig(), workflows=[wf])
    with pytest.raises(ValueError, match=r"^--workflows: .*nope\.json: file not found$"):
        build_world(EnvConfig(), workflows=[str(tmp_path / "nope.json")])
