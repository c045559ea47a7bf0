"""wandb for a PPO run: offline unless a key is configured, `disabled` for tests.

Under a wandb sweep agent, `wandb.config` holds the sampled values; options
the agent did not pass on the command line are read from it, so a run is
configured the same whichever way the agent delivers them.
"""

from __future__ import annotations

import os
import sys

from train.config import PPOConfig, parse_value


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = os.path.expanduser("~/.netrc")
    return os.path.exists(netrc) and "api.wandb.ai" in open(netrc).read()


def resolve_mode(config: PPOConfig) -> str:
    if os.environ.get("WANDB_MODE") in ("disabled", "offline", "online"):
        return os.environ["WANDB_MODE"]
    if config.wandb_mode == "online" and not _has_api_key():
        print("wandb: no API key configured; logging offline (`wandb sync` later)", file=sys.stderr)
        return "offline"
    return config.wandb_mode


class Tracker:
    def __init__(self, config: PPOConfig, run_dir: str | None, explicit: dict):
        self.mode = resolve_mode(config)
        self.run = None
        self.config = config
        if self.mode == "disabled":
            return
        import wandb

        self.run = wandb.init(project=config.wandb_project, entity=config.wandb_entity, name=config.wandb_name,
                              group=config.wandb_group, mode=self.mode, config=config.to_dict(),
                              dir=run_dir, reinit="finish_previous")
        # a sweep agent's values (for options not given explicitly on the command line)
        updates = {}
        for k, v in dict(wandb.config).items():
            if k in config.to_dict() and k not in explicit and parse_value(k, v) != getattr(config, k):
                updates[k] = parse_value(k, v)
        if updates:
            self.config = config.replace(**updates)
            self.config.validate()
            wandb.config.update(self.config.to_dict(), allow_val_change=True)

    def log(self, metrics: dict, step: int) -> None:
        if self.run is not None:
            self.run.log({k: float(v) for k, v in metrics.items()}, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
