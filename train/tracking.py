"""Where a run's metrics go: one `Tracker` per seed owns its sinks.

* `history.jsonl`: one line per chunk, append-only. On resume the lines past
  the restored checkpoint (updates that will be recomputed) are dropped once,
  so after any number of interruptions the file holds every update exactly once.
* `summary.json`: the final record, written atomically at the end.
* wandb: offline unless a key is configured, `disabled` in tests. The run id
  is kept in the run directory (`run.json`) and reused with `resume="allow"`,
  so a resumed run continues the same wandb run (offline too: `wandb sync`
  merges them). Under a wandb sweep agent, options the agent did not pass on
  the command line are read from `wandb.config`.

Only process 0 of a multi-process run tracks anything (the others get a
`Tracker` whose sinks are off).
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid

from envs.files import atomic_write_json, atomic_write_text
from train.config import CONFIG_FORMAT, PPOConfig, parse_value


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


def jsonable(v):
    """Floats as JSON allows: NaN and inf (no finished episode, say) become null."""
    v = float(v)
    return v if math.isfinite(v) else None


def read_run_file(run_dir: str) -> dict:
    path = os.path.join(run_dir, "run.json")
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable ({e})") from None


def write_run_file(run_dir: str, **fields) -> dict:
    info = {**read_run_file(run_dir), **fields, "format": CONFIG_FORMAT}
    atomic_write_json(os.path.join(run_dir, "run.json"), info)
    return info


class Tracker:
    """The sinks of one seed's run directory (`run_dir` None: nothing is written)."""

    def __init__(self, config: PPOConfig, run_dir: str | None, explicit: dict, active: bool = True,
                 resume_from: int | None = None):
        self.config = config
        self.run_dir = run_dir if active else None
        self.mode = resolve_mode(config) if active else "disabled"
        self.run = None
        if self.run_dir:
            os.makedirs(self.run_dir, exist_ok=True)
            self._trim_history(resume_from or 0)
        if self.mode == "disabled":
            return
        import wandb

        info = read_run_file(self.run_dir) if self.run_dir else {}
        run_id = info.get("wandb_id") or uuid.uuid4().hex[:12]
        self.run = wandb.init(project=config.wandb_project, entity=config.wandb_entity, name=config.wandb_name,
                              group=config.wandb_group, mode=self.mode, config=config.to_dict(), id=run_id,
                              resume="allow", dir=self.run_dir, reinit="create_new")
        if self.run_dir:
            write_run_file(self.run_dir, wandb_id=run_id)
        # a sweep agent's values (for options not given explicitly on the command line)
        updates = {}
        for k, v in dict(self.run.config).items():
            if k in config.to_dict() and k not in explicit and parse_value(k, v) != getattr(config, k):
                updates[k] = parse_value(k, v)
        if updates:
            self.config = config.replace(**updates)
            self.config.validate()
            self.run.config.update(self.config.to_dict(), allow_val_change=True)

    @property
    def history_path(self) -> str | None:
        return os.path.join(self.run_dir, "history.jsonl") if self.run_dir else None

    def _trim_history(self, done: int) -> None:
        """Keep the lines of updates <= done (the restored checkpoint); later ones will be recomputed."""
        path = self.history_path
        if not os.path.exists(path):
            return
        keep = []
        with open(path) as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if row.get("update", 0) <= done:
                    keep.append(json.dumps(row) + "\n")
        atomic_write_text(path, "".join(keep))

    def history(self) -> list[dict]:
        if not self.run_dir or not os.path.exists(self.history_path):
            return []
        with open(self.history_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def log(self, metrics: dict, step: int) -> None:
        row = {"update": step, **{k: jsonable(v) for k, v in metrics.items()}}
        if self.run_dir:
            with open(self.history_path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
        if self.run is not None:
            self.run.log({k: float(v) for k, v in metrics.items()}, step=step)

    def write_summary(self, summary: dict) -> None:
        if self.run_dir:
            atomic_write_json(os.path.join(self.run_dir, "summary.json"), summary)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
