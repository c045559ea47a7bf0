"""Test setup: a persistent JAX compilation cache outside the clone, wandb off, Agg plots, per-test time limits.

The cache directory is keyed by the host CPU and the jax/jaxlib versions: XLA:CPU executables are compiled for
the machine that built them and jax's cache key does not name the CPU, so a cache carried to another host (a
disk image moved between machines) can crash the process that loads it (seen in CI: a segmentation fault in
`deserialize_executable`). `JAXSCHED_JAX_CACHE` overrides the directory; `.ci/run` gives each run a fresh one.
"""

import hashlib
import os
import platform

import jaxlib


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
# as environment variables too, so subprocesses (multi-device, sweep agent) share the cache
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ.get(
    "JAXSCHED_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "jaxsched-jax", _host_key())))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
