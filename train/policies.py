"""Trained policies from run directories: one spec grammar for every command.

    [NAME=]DIR[:latest|:best|:STEP]

`DIR` is a `train.ppo` run directory; `NAME` labels it in tables (default:
the directory's name); the suffix picks the checkpoint: the newest readable
one (`latest`, the default), the one with the lowest `best_metric` (`best`)
or a step number. A directory that exists is taken as a path even when it
contains `=` or `:`. A K-seed run's directory gives one policy per seed
(`NAME/seed<s>`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from train.checkpoint import CheckpointError, load_params
from train.config import PPOConfig
from train.tracking import read_run_file


@dataclass
class LoadedPolicy:
    name: str
    path: str
    step: int
    config: PPOConfig
    net: object  # jaxsched.policy.SchedulerNet
    params: object

    def greedy(self):
        """A jittable `policy(key, obs) -> server` (argmax of the logits)."""
        from jaxsched.policy import greedy_policy

        return greedy_policy(self.net, self.params)

    def eval_env(self, workload_seed: int):
        """The world the policy was trained in (its load, catalog, GPU mix, workflow files) on another bank."""
        return self.config.eval_env(workload_seed)


def parse_spec(spec: str) -> tuple[str, str, str]:
    """`[NAME=]DIR[:latest|:best|:STEP]` -> (name, dir, which). ValueError names the spec."""
    which = "latest"
    body = spec
    m = re.fullmatch(r"(.*):(latest|best|\d+)", spec)
    if m and not os.path.isdir(spec):
        body, which = m.group(1), m.group(2)
    if os.path.isdir(body) or "=" not in body:
        path, name = body, ""
    else:
        name, path = body.split("=", 1)
        if not os.path.isdir(path) and os.path.isdir(body):
            name, path = "", body
    if not os.path.isdir(path):
        raise ValueError(f"--checkpoint {spec}: run directory {path!r} does not exist")
    return name or os.path.basename(os.path.normpath(path)), path, which


def load_policies(spec: str) -> list[LoadedPolicy]:
    """Every policy a spec names (one; or one per seed of a K-seed run)."""
    from jaxsched.policy import SchedulerNet

    name, path, which = parse_spec(spec)
    info = read_run_file(path)
    seeds = info.get("seeds") or []
    if len(seeds) > 1:
        return [p for s in seeds for p in load_policies(f"{name}/seed{s}={os.path.join(path, f'seed{s}')}:{which}")]
    try:
        step, params, saved = load_params(path, which)
    except CheckpointError as e:
        raise CheckpointError(f"--checkpoint {spec}: {e}") from None
    config = PPOConfig.from_dict(saved)
    return [LoadedPolicy(name=name, path=os.path.abspath(path), step=step, config=config,
                         net=SchedulerNet(config.policy()), params=params)]


def load_policy(spec: str) -> LoadedPolicy:
    """The one policy a spec names (a K-seed run's directory is refused: name one seed)."""
    out = load_policies(spec)
    if len(out) > 1:
        raise ValueError(f"--checkpoint {spec}: a {len(out)}-seed run; name one seed's directory "
                         f"({out[0].path}, ...)")
    return out[0]
