"""Every shell command in the docs runs, shrunk to a tiny config, so the commands a reader copies cannot rot.

Each line of a ```bash block of README.md and docs/*.md (continuations joined) is either *run* (in this
process, as `python -m MODULE ARGS` would run it, in one scratch directory shared by all pages and in page
order, so a page's later commands see the files its earlier ones wrote), after the rewrites below make it
tiny; or *not run* for a reason listed in NOT_RUN. A new command that is neither fails
`test_every_docs_command_is_run_or_has_a_reason`: add it to the docs, then here.

What the rewrites change is only size (presets, cluster sizes, seeds, episodes, env counts) and
placeholders (`<run>`, example run names, a reader's own files); every option a command names stays, so
an option the code no longer accepts fails here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import pathlib
import re
import runpy
import shlex
import subprocess
import sys
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)

# commands not run here, each with the reason (matched as a prefix of the command)
NOT_RUN = {
    "pip install": "installs the environment (CI's own first steps)",
    "python -m pytest": "this test suite",
    "wandb sweep": "needs a wandb server (the offline sweep recipe runs in tests/train/test_sweeps.py)",
    "JAXSCHED_PRESET=gpu wandb agent": "needs a wandb server (as above)",
    "srun ": "a Slurm cluster (multi-process training on localhost runs in tests/train/test_reliability.py)",
    "#": "a comment or the Slurm script's header",
    "for n in 16 48": "a GPU benchmark loop (up to 65,536 envs)",
    "python -m envs.bench --servers $n": "the loop's body",
    "scripts/compare_train_bench.sh": "builds an old commit in a worktree and alternates minutes-long benchmarks",
    "JUMANJI_PYTHON=": "scripts/compare_env_bench.sh: an old commit in a worktree, Jumanji in its own venv, minutes",
    "python -m venv /tmp/jvenv": "installs Jumanji into a separate benchmark venv (network, minutes)",
    "python -m analysis.reproduce": "the tiny preset runs end to end in tests/analysis/test_reproduce.py "
                                    "(same main); cpu and gpu take hours",
    "python -m analysis.scale_study": "the tiny preset runs end to end in tests/analysis/test_scale_study.py "
                                      "(same main); cpu and gpu take hours",
}

RUN_NAMES = ("my-run", "20261122-101500", "srr-off", "srr-on", "<run>")  # placeholders for one tiny run
TINY_PPO = ["--wandb_mode=disabled", "--progress=false"]
# options appended to a module's command when it does not give them, and values replaced when it does
EXTRA = {
    "train.workload_report": {"--seeds": "1", "--servers": "4"},
    "train.demo": {"--seeds": "1"},
    "analysis.shift": {"--seeds": "1", "--decisions": "16", "--permutations": "10"},
    "envs.bench": {"--envs": "16", "--steps": "16", "--reference-decisions": "50"},
    "train.evaluate": {"--seeds": "1"},
}
SHRINK = {"--servers": "4", "--seeds": "1", "--gpus": None}  # None: keep the value


def commands(page: pathlib.Path) -> list[str]:
    out = []
    for block in BLOCK.findall(page.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line:
                out.append(line)
    return out


def reason_not_run(cmd: str) -> str | None:
    return next((why for prefix, why in NOT_RUN.items() if cmd.startswith(prefix)), None)


def _strip_comment(cmd: str) -> str:
    return cmd.split("  #")[0].split(" # ")[0].strip()


def _set(argv: list[str], flag: str, value: str, add: bool) -> list[str]:
    """`flag value` or `flag=value` set to `value`; appended when absent and `add`."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return [*argv[:i + 1], value, *argv[i + 2:]]
        if a.startswith(flag + "="):
            return [*argv[:i], f"{flag}={value}", *argv[i + 1:]]
    return [*argv, flag, value] if add else argv


def tiny(module: str, argv: list[str]) -> list[str]:
    """The same command at a tiny size (see the module docstring)."""
    argv = [a.replace("<run>", "tiny") for a in argv]
    if module in ("train.ppo", "train.bench"):
        argv = _set(argv, "--preset", "cpu-quick", add=True)
        if module == "train.ppo":
            argv = [*argv, *TINY_PPO]
            if not any(a.startswith("--resume") for a in argv):
                argv = _set(argv, "--eval_every", "0", add=True)
    for flag, value in SHRINK.items():
        if value is not None:
            argv = _set(argv, flag, value, add=False)
    for flag, value in EXTRA.get(module, {}).items():
        argv = _set(argv, flag, value, add=True)
    return argv


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A directory with what the docs' commands assume: a trained run under each placeholder name, a
    five-task workflow file, a catalog file with one new GPU type, a package with a policy."""
    from train.ppo import main as train

    d = tmp_path_factory.mktemp("docs")
    out = train(["--preset=cpu-quick", *TINY_PPO, f"--checkpoint_dir={d / 'runs/ppo'}", "--wandb_name=tiny",
                 "--eval_every=0"])
    for name in RUN_NAMES[:-1]:
        os.symlink(out["run_dir"], d / "runs/ppo" / name)
    wf = {"format": "jaxsched-workflows", "version": 1, "workflows": [{"app": "my_app", "prefix_tokens": 600, "tasks": [
        {"id": f"t{i}", "model": "8B", "input_tokens": 400, "expected_output_tokens": 200,
         "parents": [] if i == 0 else (["t0"] if i < 4 else ["t1", "t2", "t3"])} for i in range(5)]}]}
    (d / "my_wf.json").write_text(json.dumps(wf))
    # the catalog file is the one docs/environment.md shows
    (d / "cat.json").write_text(re.search(r"```json\n(.*?)```", (ROOT / "docs/environment.md").read_text(), re.S)[1])
    (d / "mypkg").mkdir()
    (d / "mypkg/__init__.py").write_text("")
    (d / "mypkg/policies.py").write_text("from jaxsched.baselines import earliest_finish as my_policy\n")
    return d


def _repo_path(arg: str, cwd: pathlib.Path) -> str:
    """A path the docs give relative to the repository root (envs/examples/...), made absolute."""
    flag, eq, value = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
    if value and not (cwd / value).exists() and (ROOT / value).exists():
        return f"{flag}{eq}{ROOT / value}"
    return arg


def run_command(cmd: str, cwd: pathlib.Path) -> None:
    cmd = _strip_comment(cmd)
    env_prefix, rest = {}, cmd
    while re.match(r"^[A-Z_]+=\S+ ", rest):
        k, _, rest = rest.partition(" ")
        env_prefix.update([k.split("=", 1)])
    redirect = None
    if " > " in rest:
        rest, _, redirect = rest.partition(" > ")
    words = shlex.split(rest)
    assert words[0] == "python", f"not a python command: {cmd}"
    if words[1] == "-c":
        if "gymnax" in words[2] and importlib.util.find_spec("gymnax") is None:
            return  # the interop extra; CI installs it
        r = subprocess.run([sys.executable, "-c", words[2]], cwd=cwd, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{cmd}\n{r.stderr[-2000:]}"
        return
    assert words[1] == "-m", cmd
    module, argv = words[2], [_repo_path(a, cwd) for a in tiny(words[2], words[3:])]
    if "fate_cp" in rest and importlib.util.find_spec("ortools") is None:
        return  # the cp extra; CI installs it
    if env_prefix:  # XLA_FLAGS must be set before JAX starts: a process of its own
        r = subprocess.run([sys.executable, "-m", module, *argv], cwd=cwd, env={**os.environ, **env_prefix},
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"{cmd}\n-> {' '.join(argv)}\n{r.stderr[-2000:]}"
        return
    old_argv, old_cwd = sys.argv, os.getcwd()
    buf = io.StringIO()
    sys.path.insert(0, str(cwd))
    try:
        os.chdir(cwd)
        sys.argv = [module, *argv]
        with contextlib.redirect_stdout(buf):
            try:
                with warnings.catch_warnings():  # runpy on a module the test process has imported already
                    warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
                    runpy.run_module(module, run_name="__main__", alter_sys=True)
            except SystemExit as e:
                assert e.code in (0, None), f"{cmd}\n-> {module} {' '.join(argv)}: exit {e.code}"
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
        sys.path.remove(str(cwd))
    if redirect:
        (cwd / redirect.strip()).write_text(buf.getvalue())


def test_every_docs_command_is_run_or_has_a_reason():
    cmds = [(p.name, c) for p in PAGES for c in commands(p)]
    assert len(cmds) > 30
    for page, c in cmds:
        if reason_not_run(c):
            continue
        words = shlex.split(_strip_comment(re.sub(r"^([A-Z_]+=\S+ )+", "", c)).partition(" > ")[0])
        assert words[:2] in (["python", "-m"], ["python", "-c"]), f"{page}: {c!r}: add it to NOT_RUN with a reason"
        if words[1] == "-m":
            assert importlib.util.find_spec(words[2]) is not None, f"{page}: {c!r}: no module {words[2]}"


def test_the_rewrites_only_shrink():
    argv = tiny("train.evaluate", ["--checkpoint", "runs/ppo/<run>", "--servers", "16,32,48", "--seeds", "10",
                                   "--policies", "eft"])
    assert argv == ["--checkpoint", "runs/ppo/tiny", "--servers", "4", "--seeds", "1", "--policies", "eft"]
    assert tiny("train.ppo", ["--preset", "gpu", "--srr_kl=0.05"])[:3] == ["--preset", "cpu-quick", "--srr_kl=0.05"]


@pytest.mark.slow  # about fifty commands, a dozen compiled programs: `python -m pytest -m slow`, as CI does
@pytest.mark.timeout(2400)
@pytest.mark.parametrize("page", [p for p in PAGES if commands(p)], ids=lambda p: p.name)
def test_every_docs_command_runs_on_a_tiny_config(page, scratch):
    for cmd in commands(page):
        if reason_not_run(cmd):
            continue
        try:
            run_command(cmd, scratch)
        except AssertionError:
            raise
        except Exception as e:  # name the page and command, then fail with the original error
            raise AssertionError(f"{page.name}: {cmd}\n-> {type(e).__name__}: {e}") from e
