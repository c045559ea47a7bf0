"""Every Python block of the docs runs as written: per page, in order, in one namespace (a page's
later blocks may use its earlier names). Pages whose blocks need an optional extra skip without it."""

import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"])
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
# a page's blocks and the optional modules they need
NEEDS = {"interop.md": ("gymnax", "gymnasium")}
SLOW_LINES = {"learn(10_000)": "learn(256)"}  # the doc's budget, shrunk to keep the suite quick


def blocks(page):
    return BLOCK.findall(page.read_text())


@pytest.mark.slow  # compiles a dozen programs (minutes on 2 cores): `python -m pytest -m slow`, as CI does
@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_every_python_block_runs(page, tmp_path, monkeypatch):
    for mod in NEEDS.get(page.name, ()):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{page.name} needs {mod} (the interop extra)")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(blocks(page)):
        if "sb3_contrib" in code and importlib.util.find_spec("sb3_contrib") is None:
            continue  # MaskablePPO needs torch (the interop-torch extra)
        for slow, quick in SLOW_LINES.items():
            code = code.replace(slow, quick)
        try:
            exec(compile(code, f"{page.name} block {i + 1}", "exec"), namespace)
        except Exception as e:  # name the page and block, then fail with the original error
            raise AssertionError(f"{page.name}, Python block {i + 1} failed: {type(e).__name__}: {e}") from e


def test_the_docs_have_python_blocks_to_run():
    assert sum(len(blocks(p)) for p in PAGES) >= 6 and blocks(ROOT / "docs" / "api.md")


def test_the_feature_reference_lists_every_feature_in_order():
    """docs/features.md against envs/features.py: a feature added, dropped or moved fails here."""
    from envs import features as F

    text = (ROOT / "docs" / "features.md").read_text()
    sections = {"`task`": F.TASK_FEATURES, "`servers`": F.SERVER_FEATURES, "`dag.nodes`": F.NODE_FEATURES,
                "`globals`": F.GLOBAL_FEATURES}
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    assert len(parts) == len(sections)
    for part, (head, names) in zip(parts, sections.items(), strict=True):
        assert part.startswith(head), part[:40]
        rows = re.findall(r"^\| (\d+) \| `([a-z_0-9]+)` \|", part, flags=re.M)
        assert [(int(i), n) for i, n in rows] == list(enumerate(names)), head
