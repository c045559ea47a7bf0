"""Test setup: a persistent JAX compilation cache outside the clone, wandb off, Agg plots."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ.get(
    "JAXSCHED_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "jaxsched-jax")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
