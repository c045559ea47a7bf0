"""Invalid configuration is refused at construction with a ValueError naming the field."""

import dataclasses

import pytest

from envs import EnvConfig, catalog, make_params
from envs.config import DEFAULT_ROLE_MODELS


@pytest.mark.parametrize("kwargs,field", [
    (dict(n_servers=0), "n_servers"),
    (dict(n_servers=-3), "n_servers"),
    (dict(n_servers=8, max_servers=4), "max_servers"),
    (dict(max_tasks=6), "max_tasks"),  # below the chain/fan_out/debate/layered templates
    (dict(max_tasks=1025), "max_tasks"),
    (dict(max_tasks=0), "max_tasks"),
    (dict(rho=0.0), "rho"),
    (dict(rho=-1.0), "rho"),
    (dict(n_servers=2, gpu_types=("H100", "V100")), "gpu_types[1]"),
    (dict(n_servers=2, gpu_types=("H100",)), "gpu_types"),
    (dict(n_servers=2, gpu_types=("L4", "L40S")), "gpu_types"),  # the 32B/70B models fit no server
    (dict(gpu_weights=(0.0, 0.0, 1.0, 1.0)), "gpu_weights"),  # no type can anchor the 70B model
    (dict(role_models=(("worker", "8B"), ("agent", "13B"), ("planner", "32B"), ("judge", "70B-fp8"))),
     "role_models['agent']"),  # a single map serves every app
    (dict(role_models=(DEFAULT_ROLE_MODELS[0], (("worker", "3B"), ("agent", "13B")))), "role_models[1]['agent']"),
    (dict(role_models=(DEFAULT_ROLE_MODELS[0], (("worker", "3B"),))), "role_models[1]"),  # roles missing
    (dict(role_models=()), "role_models"),
    (dict(initial_models="lru"), "initial_models"),
    (dict(net_latency_s=-0.1), "net_latency_s"),
    (dict(task_overhead_s=-1.0), "task_overhead_s"),
    (dict(gpus=(catalog.GpuSpec("H100", 80, -5, 150, 5),)), "gpus[0].prefill_tps_8b"),
    (dict(models=catalog.DEFAULT_MODELS[:3] + (catalog.ModelSpec("70B-fp8", 70, -1),)), "models[3].mem_gb"),
    (dict(template_weights=(1.0, 1.0)), "template_weights"),
    (dict(window=0), "window"),
    (dict(n_workflows=0), "n_workflows"),
    (dict(mem_headroom=1.5), "mem_headroom"),
    (dict(reward_scale=0.0), "reward_scale"),
    (dict(workflows_per_server=0.0), "workflows_per_server"),
    (dict(models=catalog.DEFAULT_MODELS + (catalog.ModelSpec("8B", 8, 16),)), "models"),
])
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError) as e:
        make_params(EnvConfig(**kwargs))
    assert str(e.value).startswith(field + ":"), str(e.value)


def test_max_tasks_is_fine_when_the_big_templates_are_off():
    # only retrieve_generate (5 tasks)
    make_params(EnvConfig(max_tasks=5, template_weights=(0, 0, 0, 1, 0, 0), bank_size=16))


def test_negative_tokens_in_a_workflow_file_are_refused(tmp_path):
    from envs.workflow_io import load_own_json

    p = tmp_path / "w.json"
    p.write_text('{"workflows": [{"app": "x", "prefix_tokens": 10, "tasks": '
                 '[{"id": 0, "model": "8B", "input_tokens": -5, "expected_output_tokens": 10}]}]}')
    with pytest.raises(ValueError, match=r"w.json: workflows\[0\].tasks\[0\].input_tokens"):
        load_own_json(p, [m.name for m in catalog.DEFAULT_MODELS])


def test_templates_respect_their_declared_size_and_order():
    """Task and edge counts stay within what each template declares (the task axis and the DAG view's
    edge slots are sized from them), and the declared bounds are reached where a draw is deterministic
    at its largest (every template but `layered`, whose parent sets are random)."""
    import numpy as np

    from envs import templates as tpl

    rng = np.random.default_rng(0)
    for t, fn in zip(tpl.TEMPLATES, tpl.TEMPLATE_FNS):
        sizes, edges = set(), set()
        for _ in range(500):
            tasks = fn(rng)
            sizes.add(len(tasks))
            edges.add(sum(len(d.parents) for d in tasks))
            assert 1 <= len(tasks) <= t.max_tasks, t.name
            assert edges and max(edges) <= t.max_edges, (t.name, max(edges))
            for i, d in enumerate(tasks):
                assert all(0 <= p < i for p in d.parents), (t.name, i, d.parents)
                assert d.role in tpl.ROLES and d.input_tokens >= 0 and d.expected_output_tokens >= 1
                assert d.tool_delay >= 0
        assert max(sizes) == t.max_tasks, (t.name, max(sizes))
        if t.name != "layered":
            assert max(edges) == t.max_edges, (t.name, max(edges))


def test_a_catalog_of_more_models_than_the_eviction_table_holds_is_refused():
    """`ServerState.evict_if` keeps one bit per model in an int32: 31 models at most, said in one line."""
    from envs import catalog

    extra = tuple(catalog.ModelSpec(name=f"m{i}", params_b=1.0, mem_gb=1.0) for i in range(32 - len(catalog.DEFAULT_MODELS)))
    with pytest.raises(ValueError, match=r"^models: the catalog may hold 1 to 31 models .*got 32$"):
        EnvConfig(models=catalog.DEFAULT_MODELS + extra).validate()
    EnvConfig(models=catalog.DEFAULT_MODELS + extra[:-1]).validate()  # 31 is fine


def test_one_app_with_two_prefix_lengths_is_refused():
    from envs.workload import WorkflowSpec, bank_from_specs

    a = WorkflowSpec(app="x", prefix_tokens=100, models=(0,), input_tokens=(1,), expected_output_tokens=(1,),
                     output_tokens=(1,), tool_delay=(0.0,), parents=((),))
    with pytest.raises(ValueError, match=r"workflows\[1\].prefix_tokens"):
        bank_from_specs([a, dataclasses.replace(a, prefix_tokens=200)], 4)


def test_each_app_variant_takes_its_own_role_map():
    """App v of every template uses role map v mod len (the default: a large family with 70B-fp8
    judges, a small one with 3B workers), so both families' models appear, each in its own apps."""
    import numpy as np

    from envs import templates as tpl

    config = EnvConfig(bank_size=512, apps_per_template=3)
    bank = config.make_bank()
    names = [m.name for m in config.models]
    maps = [{r: names.index(m) for r, m in rm} for rm in DEFAULT_ROLE_MODELS]
    seen = set()
    for b in range(bank.size):
        variant = int(bank.app_names[bank.app[b]].split("/")[1])
        allowed = set(maps[variant % 2].values())
        used = set(int(x) for x in bank.model[b, : bank.n_tasks[b]])
        assert used <= allowed, (bank.app_names[bank.app[b]], used, allowed)
        seen.add((variant, names.index("70B-fp8") in used))
    assert (0, True) in seen and (2, True) in seen and not any(v == 1 and big for v, big in seen)
    # a single map still serves every app
    one = EnvConfig(bank_size=64, role_models=DEFAULT_ROLE_MODELS[0]).make_bank()
    valid = np.arange(one.max_tasks)[None, :] < one.n_tasks[:, None]
    assert set(np.unique(one.model[valid]).tolist()) == set(maps[0].values())
    assert tpl.ROLES == tuple(r for r, _ in DEFAULT_ROLE_MODELS[1])
