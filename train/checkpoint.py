"""Orbax checkpoints of a PPO run: the whole runner state (exact resume), params alone, config.

The manager keeps the latest step always and the `keep_best` steps with the
lowest `best_metric` (`AnyPreservationPolicy([LatestN(1), BestN(...)])`;
`max_to_keep` with a `best_fn` alone may delete the latest and break resume).
A checkpoint directory holds one run: `<dir>/<step>/{state,params,config}`.
"""

from __future__ import annotations

import os
import sys

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as cm


class CheckpointError(RuntimeError):
    """A checkpoint directory that cannot be used (missing, empty or unreadable)."""


def _manager(directory: str, best_metric: str | None = None, keep_best: int = 1, read_only: bool = False):
    policies = [cm.LatestN(n=1)]
    if best_metric:
        policies.append(cm.BestN(get_metric_fn=lambda m: m[best_metric], reverse=True, n=keep_best,
                                 keep_checkpoints_without_metrics=False))
    # best_fn only makes the manager write each step's metrics (BestN reads them back); which
    # steps survive is the preservation policy's decision alone.
    options = ocp.CheckpointManagerOptions(
        preservation_policy=cm.AnyPreservationPolicy(policies), create=not read_only, read_only=read_only,
        best_fn=(lambda m: m[best_metric]) if best_metric else None, best_mode="min",
        enable_async_checkpointing=False)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


class Checkpointer:
    def __init__(self, directory: str, best_metric: str, keep_best: int = 1):
        self.directory = os.path.abspath(directory)
        self.best_metric = best_metric
        self.manager = _manager(self.directory, best_metric, keep_best)

    def save(self, step: int, runner, params, config: dict, metrics: dict) -> None:
        metrics = {k: float(v) for k, v in metrics.items()}
        if self.best_metric not in metrics:
            metrics[self.best_metric] = float("inf")
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(runner), params=ocp.args.StandardSave(params), config=ocp.args.JsonSave(config)),
            metrics=metrics)
        self.manager.wait_until_finished()

    def close(self):
        self.manager.close()


def _steps(directory: str) -> list[int]:
    if not os.path.isdir(directory):
        raise CheckpointError(f"checkpoint directory {directory!r} does not exist")
    mgr = _manager(directory, read_only=True)
    steps = sorted(mgr.all_steps())
    mgr.close()
    if not steps:
        raise CheckpointError(f"checkpoint directory {directory!r} holds no checkpoint steps")
    return steps


def _restore_latest(directory: str, make_args, what: str):
    """Restore the newest readable step; fall back to older ones (saying so on stderr)."""
    steps = _steps(directory)
    mgr = _manager(directory, read_only=True)
    errors = []
    try:
        for step in reversed(steps):
            try:
                out = mgr.restore(step, args=make_args())
                if errors:
                    print(f"warning: {what}: fell back to step {step} of {directory!r}; newer steps unreadable: "
                          + "; ".join(errors), file=sys.stderr)
                return step, out
            except Exception as e:  # orbax raises many types for damaged files
                errors.append(f"step {step}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
    finally:
        mgr.close()
    raise CheckpointError(f"{what}: no readable checkpoint in {directory!r} ({'; '.join(errors)})")


def load_config(directory: str) -> tuple[int, dict]:
    step, out = _restore_latest(directory, lambda: ocp.args.Composite(config=ocp.args.JsonRestore()), "config")
    return step, dict(out["config"])


def restore_runner(directory: str, target):
    """(step, runner state) of the newest readable step, with `target`'s structure and shardings."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    step, out = _restore_latest(directory, lambda: ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), config=ocp.args.JsonRestore()), "resume")
    return step, out["state"], dict(out["config"])


def load_params(directory: str):
    """(step, params, config dict) for evaluation: the newest readable step."""
    step, out = _restore_latest(directory, lambda: ocp.args.Composite(
        params=ocp.args.StandardRestore(), config=ocp.args.JsonRestore()), "checkpoint")
    return step, out["params"], dict(out["config"])
