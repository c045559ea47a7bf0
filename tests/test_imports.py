"""The one-way import rule: analysis -> train -> jaxsched -> envs."""

import subprocess
import sys


def test_importing_envs_does_not_import_the_layers_above():
    code = ("import sys, envs, envs.env, envs.reference, envs.wrappers, envs.rollout, envs.instance, envs.workflow_io;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('jaxsched', 'train', 'analysis')];"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_importing_jaxsched_does_not_import_train_or_analysis():
    code = ("import sys, jaxsched, jaxsched.baselines;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('train', 'analysis')];"
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _import_graph(package: str) -> dict[str, set[str]]:
    """module -> project modules of the same package it imports (top level or inside functions)."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    graph = {}
    for path in sorted((root / package).glob("*.py")):
        mod = f"{package}.{path.stem}"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            deps |= {n for n in names if n.startswith(package + ".") and (root / (n.replace(".", "/") + ".py")).exists()}
        graph[mod] = deps - {mod}
    return graph


def _cycle(graph):
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if state.get(d) is None and (c := visit(d)):
                return c
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if state.get(m) is None and (c := visit(m)):
            return c
    return None


def test_imports_inside_each_package_flow_one_way():
    for package in ("envs", "jaxsched", "train", "analysis"):
        cycle = _cycle(_import_graph(package))
        assert cycle is None, f"import cycle in {package}: {' -> '.join(cycle)}"


def test_importing_the_project_starts_no_jax_backend():
    """The training CLI splits a CPU into devices before JAX starts; importing must not start it."""
    code = ("import jax._src.xla_bridge as xb, sys;"
            "import envs, envs.env, envs.wrappers, jaxsched.policy, jaxsched.evaluation, train.ppo, train.loop, "
            "train.bench, train.evaluate, analysis.reproduce;"
            "sys.exit(1 if xb.backends_are_initialized() else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _upward_imports(package: str, above: tuple[str, ...]) -> list[str]:
    """`module: name` for every import of a layer above, at module level or inside a function."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            bad += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in above]
    return bad


def test_no_module_imports_a_layer_above_even_inside_a_function():
    """envs finds the baselines through the `jaxsched.policies` entry points, never by importing them."""
    assert _upward_imports("envs", ("jaxsched", "train", "analysis")) == []
    assert _upward_imports("jaxsched", ("train", "analysis")) == []
    assert _upward_imports("train", ("analysis",)) == []
