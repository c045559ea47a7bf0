"""Orbax checkpoints of a PPO run: the whole runner state (exact resume), params alone, config.

The manager keeps the latest two steps and the `keep_best` steps with the
lowest `best_metric` (`AnyPreservationPolicy([LatestN(2), BestN(...)])`;
`max_to_keep` with a `best_fn` alone may delete the latest and break resume;
`best_fn` is set only so that the manager writes each step's metrics, which
`BestN` reads back). A run directory holds `<dir>/<step>/{state,params,config}`.

The saved config carries the format version (`train.config.CONFIG_FORMAT`);
a checkpoint of another format is refused with one line, before orbax is
asked to fit arrays of another shape.
"""

from __future__ import annotations

import logging
import os
import sys

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as cm

from train.config import CONFIG_FORMAT, FORMAT_UPGRADES

FORMAT_KEY = "_format"
RUNNER_KEY = "_runner"
# The layout of the saved training state (params, optimizer, env states), which only an exact resume
# reads: 1 before envs.types.EnvState grouped its fields (servers, slots, tasks), 2 after, 3 since the
# state keeps per-key counts (`key_copies`, `key_pending`), 4 since each server keeps its eviction
# table (`ServerState.evict_if`). A resume of another layout stops with one line; the parameters of
# any layout still load for evaluation.
RUNNER_FORMAT = 4


class CheckpointError(RuntimeError):
    """A checkpoint directory that cannot be used (missing, empty, unreadable, another format)."""


class LayoutError(CheckpointError):
    """A training state saved by a version with another layout: no older step of the run reads either."""


def quiet_orbax() -> None:
    """Orbax logs through absl at WARNING for things a user cannot act on (a read-only manager,
    a directory that is not a checkpoint yet); keep errors."""
    for name in ("absl", "orbax", "orbax.checkpoint"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _manager(directory: str, best_metric: str | None = None, keep_best: int = 1, read_only: bool = False):
    # the latest two: a K-seed run saves its seeds one after another, so after a kill mid-save every
    # seed still has the previous step (resume picks the newest step every seed has)
    policies = [cm.LatestN(n=2)]
    if best_metric:
        policies.append(cm.BestN(get_metric_fn=lambda m: m[best_metric], reverse=True, n=keep_best,
                                 keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=cm.AnyPreservationPolicy(policies), create=not read_only, read_only=read_only,
        best_fn=(lambda m: m[best_metric]) if best_metric else None, best_mode="min",
        enable_async_checkpointing=False)
    try:
        return ocp.CheckpointManager(os.path.abspath(directory), options=options)
    except Exception as e:  # orbax reads every step's metrics when it opens a directory
        bad = [s for s in _step_dirs(directory) if not _metrics_readable(os.path.join(directory, s))]
        where = f"step {', '.join(bad)}: metrics unreadable" if bad else _first_line(e)
        raise CheckpointError(f"checkpoint directory {directory!r} cannot be opened ({where}); move the damaged "
                              "step directory aside to use the others") from None


def _step_dirs(directory: str) -> list[str]:
    return sorted((e for e in os.listdir(directory) if e.isdigit()), key=int) if os.path.isdir(directory) else []


def _metrics_readable(step_dir: str) -> bool:
    import json

    folder = os.path.join(step_dir, "metrics")
    for root, _, files in os.walk(folder):
        for f in files:
            try:
                with open(os.path.join(root, f)) as fh:
                    if f == "metrics" or f.endswith(".json"):
                        json.load(fh)
            except (OSError, ValueError, UnicodeDecodeError):
                return False
    return True


class Checkpointer:
    def __init__(self, directory: str, best_metric: str, keep_best: int = 1):
        quiet_orbax()
        self.directory = os.path.abspath(directory)
        self.best_metric = best_metric
        self.manager = _manager(self.directory, best_metric, keep_best)

    def save(self, step: int, runner, params, config: dict, metrics: dict) -> None:
        metrics = {k: float(v) for k, v in metrics.items()}
        if self.best_metric not in metrics:
            metrics[self.best_metric] = float("inf")
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(runner), params=ocp.args.StandardSave(params),
            config=ocp.args.JsonSave({**config, FORMAT_KEY: CONFIG_FORMAT, RUNNER_KEY: RUNNER_FORMAT})),
            metrics=metrics, force=True)
        self.manager.wait_until_finished()

    def close(self):
        self.manager.close()


def steps(directory: str) -> list[int]:
    """Checkpoint steps in a run directory, oldest first; CheckpointError if there are none."""
    quiet_orbax()
    if not os.path.isdir(directory):
        raise CheckpointError(f"checkpoint directory {directory!r} does not exist")
    mgr = _manager(directory, read_only=True)
    out = sorted(mgr.all_steps())
    mgr.close()
    if not out:
        raise CheckpointError(f"checkpoint directory {directory!r} holds no checkpoint steps")
    return out


def best_step(directory: str, best_metric: str) -> int:
    """The kept step with the lowest `best_metric` (CheckpointError when no step has the metric)."""
    steps(directory)
    mgr = _manager(directory, best_metric=best_metric, read_only=True)
    try:
        step = mgr.best_step()
    finally:
        mgr.close()
    if step is None:
        raise CheckpointError(f"{directory!r}: no checkpoint has the metric {best_metric!r}")
    return int(step)


def _check_format(directory: str, step: int, config: dict) -> dict:
    config = dict(config)
    config.pop(RUNNER_KEY, None)  # read by restore_runner only
    fmt = config.pop(FORMAT_KEY, 1)
    if fmt in FORMAT_UPGRADES:  # an older layout whose meaning is known: fill in what it implied
        config = {**FORMAT_UPGRADES[fmt], **config}
    elif fmt != CONFIG_FORMAT:
        raise CheckpointError(f"{directory!r} step {step}: written by another version of jaxsched (checkpoint format "
                              f"{fmt}, this code reads format {CONFIG_FORMAT}); retrain, or use the version that wrote it")
    return config


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}" if text else type(e).__name__


def _restore(directory: str, make_args, what: str, step: int | None = None):
    """Restore `step`, or the newest readable step (falling back to older ones, saying so on stderr)."""
    available = steps(directory)
    if step is not None and step not in available:
        raise CheckpointError(f"{what}: {directory!r} has no step {step} (it has {', '.join(map(str, available))})")
    mgr = _manager(directory, read_only=True)
    errors = []
    try:
        for s in ([step] if step is not None else list(reversed(available))):
            try:
                out = mgr.restore(s, args=make_args(s))
            except Exception as e:  # orbax raises many types for damaged files
                errors.append(f"step {s}: {_first_line(e)}")
                continue
            out = dict(out)
            out["runner_format"] = out["config"].get(RUNNER_KEY, 1)
            out["config"] = _check_format(directory, s, out["config"])
            if errors:
                print(f"warning: {what}: fell back to step {s} of {directory!r}; newer steps unreadable: "
                      + "; ".join(errors), file=sys.stderr)
            return s, out
    finally:
        mgr.close()
    raise CheckpointError(f"{what}: no readable checkpoint in {directory!r} ({'; '.join(errors)})")


def set_aside(directory: str, step: int) -> str:
    """Rename an unreadable step's directory out of the manager's sight (`<step>.unreadable-<n>`), so a
    resume that fell back past it can save that step again; nothing is deleted."""
    src = os.path.join(os.path.abspath(directory), str(step))
    n = 0
    while os.path.exists(dst := f"{src}.unreadable-{n}"):
        n += 1
    os.replace(src, dst)
    return dst


def load_config(directory: str, step: int | None = None) -> tuple[int, dict]:
    s, out = _restore(directory, lambda _: ocp.args.Composite(config=ocp.args.JsonRestore()), "config", step)
    return s, out["config"]


def restore_runner(directory: str, target, step: int | None = None):
    """(step, runner state, config) of `step` or the newest readable one, with `target`'s structure and
    shardings (a pytree of arrays or `jax.ShapeDtypeStruct`s)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)

    def args(_):
        return ocp.args.Composite(state=ocp.args.StandardRestore(abstract), config=ocp.args.JsonRestore())

    # read the config first: a checkpoint of another format or architecture fails here with one line,
    # not deep in orbax while fitting arrays of another shape
    s, head = _restore(directory, lambda _: ocp.args.Composite(config=ocp.args.JsonRestore()), "config", step)
    if head["runner_format"] != RUNNER_FORMAT:
        raise LayoutError(f"resume: {directory!r} step {s} holds the training state of another jaxsched version "
                              f"(layout {head['runner_format']}, this code resumes layout {RUNNER_FORMAT}); its "
                              "parameters still load for evaluation, but resuming needs a run of this version")
    s, out = _restore(directory, args, "resume", s)
    return s, out["state"], out["config"]


def load_params(directory: str, which: str | int = "latest"):
    """(step, params, config dict) for evaluation: `which` = "latest" (newest readable), "best"
    (lowest best_metric of the run) or a step number."""
    step = None
    if which == "best":
        _, config = load_config(directory)
        step = best_step(directory, config["best_metric"])
    elif which != "latest":
        step = int(which)
    s, out = _restore(directory, lambda s: ocp.args.Composite(
        params=ocp.args.StandardRestore(_on_this_device(os.path.join(directory, str(s), "params"))),
        config=ocp.args.JsonRestore()), "checkpoint", step)
    return s, out["params"], out["config"]


def _on_this_device(item_dir: str):
    """The saved tree's shapes and dtypes, placed on this process's first device: a checkpoint
    written by several processes (or over several devices) reads back anywhere."""
    meta = ocp.StandardCheckpointer().metadata(item_dir)
    tree = getattr(meta, "item_metadata", meta)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=device), tree)
