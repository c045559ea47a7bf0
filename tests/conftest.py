"""Test setup: a persistent JAX compilation cache outside the clone, wandb off, Agg plots, and compiled
programs released after each test module.

The cache directory is keyed by the host CPU and the jaxlib version (`~/.cache/jaxsched-jax/jaxlib-<v>-<cpu>`,
or under `JAXSCHED_JAX_CACHE`): XLA:CPU executables are built for the machine that compiled them and jax's
cache key does not name the CPU. `JAXSCHED_JAX_CACHE=off` turns the cache off.

Why the release: with jaxlib 0.10.2 on the CPU, long-lived xdist workers died late in the run (75-93% through
the fast set) inside XLA, three times in four clean runs on 2026-12-02 — a segmentation fault in
`deserialize_executable`, an abort in `executable.serialize()`, an abort in `backend_compile_and_load` with
the cache off — while every file passed on its own. What a worker accumulates is every program the earlier
modules compiled (jit caches hold their executables); `jax.clear_caches()` after each module drops them.
"""

import gc
import hashlib
import os
import platform

import jaxlib
import pytest


def _host_key() -> str:
    """A short name for this CPU and this jax build: what an XLA:CPU executable depends on."""
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features", "CPU part"))]
        cpu += "".join(sorted(set(lines)))
    except OSError:
        cpu += platform.processor()
    digest = hashlib.sha256(cpu.encode()).hexdigest()[:12]
    return f"jaxlib-{jaxlib.__version__}-{digest}"


os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("MPLBACKEND", "Agg")
_cache_root = os.environ.get("JAXSCHED_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "jaxsched-jax"))
if _cache_root != "off":
    # as environment variables too, so subprocesses (multi-device, sweep agent) share the cache
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(_cache_root, _host_key()))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402

if _cache_root != "off":
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """After each test module, drop the programs it compiled (see the module docstring)."""
    yield
    jax.clear_caches()
    gc.collect()
