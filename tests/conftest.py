"""Test setup: a persistent JAX compilation cache outside the clone, wandb off, Agg plots."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("MPLBACKEND", "Agg")
# as environment variables too, so subprocesses (multi-device, sweep agent) share the cache
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ.get(
    "JAXSCHED_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "jaxsched-jax")))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
