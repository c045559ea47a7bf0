"""Test setup: wandb off, Agg plots; JAX's persistent compilation cache only when asked for.

The persistent cache is off unless `JAXSCHED_JAX_CACHE` names a directory: with jaxlib 0.10.2 on the CPU it
crashed whole test processes in CI, once inside `deserialize_executable` (a segmentation fault reading an
entry) and once inside `executable.serialize()` (an abort writing one), and a crashed xdist worker or
subprocess can leave a peer waiting. Without it the suite compiles every program in each process that runs
it (slower, never wrong). With it set, the directory is keyed by the host CPU and the jaxlib version, since
XLA:CPU executables are built for the machine that compiled them and jax's cache key does not name the CPU.
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
if os.environ.get("JAXSCHED_JAX_CACHE"):
    # as environment variables too, so subprocesses (multi-device, sweep agent) share the cache
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.environ["JAXSCHED_JAX_CACHE"], _host_key()))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

    import jax

    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
