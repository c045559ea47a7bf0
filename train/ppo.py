"""`python -m train.ppo`: train the SCALE policy with PPO (the command line; the learner is
`train.learner`, the loop `train.loop`).

    python -m train.ppo                                    # the default (cpu preset)
    python -m train.ppo --num_seeds=8                      # 8 seeds in one compiled program
    python -m train.ppo --preset gpu --srr_kl=0.05 --srr_decorrelation=0.3
    python -m train.ppo --resume runs/ppo/20261122-101500-3fa2c1   # continue a run exactly

Options are `--key=value` (see `--help`, docs/training.md). Bad options,
unusable checkpoints and incompatible resumes exit with status 2 and one line
that names the problem.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from train.checkpoint import CheckpointError, load_config
from train.config import PPOConfig, help_text, parse_args, preset_of
from train.tracking import read_run_file

# Options that may differ when a run is continued: how long, how it is watched and stored, and the
# hyperparameters that are data of the compiled program. Anything else would make the continuation
# a different experiment than the checkpoint's.
RESUME_OVERRIDES = frozenset({
    "resume", "total_updates", "stop_after", "updates_per_chunk", "eval_every", "eval_seeds", "eval_servers",
    "best_metric", "checkpoint_every", "keep_best", "progress", "wandb_mode", "wandb_project", "wandb_entity",
    "devices", "cpu_devices", "distributed", "coordinator_address", "num_processes", "process_id",
    "lr", "srr_decorrelation", "srr_kl", "ent_coef", "lr_decay_updates",
})


def fail(msg: str):
    print(f"python -m train.ppo: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def saved_config(run_dir: str) -> dict:
    """The config a run directory was started with (`run.json`; else its newest checkpoint's)."""
    info = read_run_file(run_dir)
    if "config" in info:
        return info["config"]
    return load_config(run_dir)[1]


def resolve(argv: list[str]) -> tuple[PPOConfig, dict, str | None]:
    """argv -> (config, options given explicitly, run directory). Raises ValueError / CheckpointError."""
    config, explicit = parse_args(argv)
    if config.resume:
        run_dir = os.path.abspath(config.resume)
        if not os.path.isdir(run_dir):
            raise CheckpointError(f"checkpoint directory {run_dir!r} does not exist")
        saved = PPOConfig.from_dict(saved_config(run_dir))
        changed = sorted(k for k, v in explicit.items() if k not in RESUME_OVERRIDES and v != getattr(saved, k))
        if changed:
            k = changed[0]
            raise ValueError(f"--{k}: cannot change when resuming (the run was trained with {k}={getattr(saved, k)!r}); "
                             "start a new run instead")
        keep = {k: v for k, v in explicit.items() if k != "resume"}
        keep.setdefault("stop_after", 0)  # a stop point is for one invocation, not inherited
        config = saved.replace(resume=run_dir, **keep)
        if config.total_updates > saved.total_updates and config.lr_schedule != "constant" \
                and "lr_decay_updates" not in explicit:
            print(f"note: the {config.lr_schedule} learning-rate schedule decays to 0 over the first "
                  f"{config.lr_horizon_updates} updates, as when the run started, so the updates after those do not "
                  f"learn; pass --lr_decay_updates={config.total_updates} to stretch the decay over the longer run",
                  file=sys.stderr)
        config.validate()
        return config, explicit, run_dir
    if not config.lr_decay_updates:  # fix the schedule's horizon now, so extending the run later keeps it
        config = config.replace(lr_decay_updates=config.total_updates)
    if not config.cpu_devices:  # record the CPU split, so a resume on another machine splits the same way
        from train.devices import cpu_split_count

        config = config.replace(cpu_devices=cpu_split_count(config))
    if not config.checkpoint_dir:
        return config, explicit, None
    name = config.wandb_name or os.environ.get("WANDB_RUN_ID") or unique_name(config.distributed)
    run_dir = os.path.abspath(os.path.join(config.checkpoint_dir, name))
    first = not config.distributed or _process_index() == 0  # the others follow process 0's decision
    if first and (os.path.exists(os.path.join(run_dir, "run.json")) or (
            os.path.isdir(run_dir) and any(e.isdigit() for e in os.listdir(run_dir)))):
        raise ValueError(f"--wandb_name: the run directory {run_dir} already exists; continue it with "
                         f"--resume {run_dir}, or pick another name")
    if config.num_seeds > 1 and not config.wandb_group:
        config = config.replace(wandb_group=name)
    return config, explicit, run_dir


def _process_index() -> int:
    import jax

    return jax.process_index()


def unique_name(distributed: bool = False) -> str:
    """A run directory name no other run can get: the start time and 48 random bits (two sweep
    agents starting in the same second differ). Under jax.distributed every process takes process 0's."""
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}"
    if distributed:
        import jax
        import numpy as np
        from jax.experimental import multihost_utils

        if jax.process_count() > 1:
            raw = np.frombuffer(name.encode().ljust(64), np.uint8)
            name = bytes(np.asarray(multihost_utils.broadcast_one_to_all(raw))).decode().strip()
    return name


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(help_text(preset_of(argv)))
        return {}
    try:
        given, _ = parse_args(argv)
    except ValueError as e:
        fail(str(e))
    if given.distributed:  # before anything touches a device (reading a checkpoint does)
        from train.launch import initialize_distributed

        try:
            initialize_distributed(given.coordinator_address, given.num_processes, given.process_id)
        except (ValueError, RuntimeError) as e:
            fail(f"--distributed: jax.distributed.initialize failed: {str(e).splitlines()[0] if str(e) else e!r}")
    try:
        config, explicit, run_dir = resolve(argv)
    except (ValueError, CheckpointError) as e:
        fail(str(e))
    from train.devices import split_cpu

    split_cpu(config)
    from train.loop import StopRequest, run

    try:
        with StopRequest() as stop:
            return run(config, run_dir, explicit, stop_request=stop)
    except (ValueError, CheckpointError) as e:
        fail(str(e))


if __name__ == "__main__":
    main()
