"""Every PPO hyperparameter in one dataclass, presets, and `--key=value` parsing.

The CLI accepts `--key=value` and `--key value` (dashes or underscores), which
is what wandb agents pass, plus `--preset NAME`. Values are parsed by the
field's type; tuples take comma-separated lists (`--eval_servers=16,32,48`).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class PPOConfig:
    # --- run ---
    seed: int = 0
    total_updates: int = 80  # PPO updates (each: num_envs x num_steps decisions, then the epochs)
    updates_per_chunk: int = 10  # updates per jitted chunk (logging, eval and checkpoints between chunks)
    # --- environment ---
    train_servers: tuple[int, ...] = (16,)  # several sizes: mixed in one batch (env i gets size i mod len)
    max_servers: int | None = None  # padding (default: the largest train size)
    rho: float = 0.7
    workflows_per_server: float = 4.0
    workload_seed: int = 0
    num_envs: int = 32
    num_steps: int = 64  # rollout length per update
    reset_ratio: int = 4  # VecEnv optimistic resets (1 = exact)
    # --- PPO ---
    lr: float = 3e-4
    lr_schedule: str = "linear"  # linear | cosine | constant
    warmup_updates: int = 0
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    update_epochs: int = 4
    num_minibatches: int = 4
    # --- policy ---
    embed_dim: int = 64
    num_heads: int = 4
    gnn_layers: int = 2
    hidden: int = 128
    log_n_scaling: bool = False  # Scalable-Softmax: logits x s log(n_active)
    # --- SRR on the attention feature ---
    srr_decorrelation: float = 0.0
    srr_kl: float = 0.0
    # --- evaluation ---
    eval_servers: tuple[int, ...] = (16, 32, 48)
    eval_seeds: int = 4
    eval_every: int = 4  # chunks; 0 = only at the end
    eval_workload_seed: int = 1
    best_metric: str = "eval/16/norm_mean_response"  # lower is better; the checkpoint kept as "best"
    # --- checkpoints ---
    checkpoint_dir: str | None = "runs/ppo"
    keep_best: int = 1
    resume: str | None = None  # a checkpoint directory to continue
    stop_after: int = 0  # stop (checkpointed) after this many updates, as if preempted; 0 = run to the end
    # --- logging ---
    wandb_mode: str = "offline"  # online | offline | disabled (offline when no API key is configured)
    wandb_project: str = "jaxsched"
    wandb_entity: str | None = None
    wandb_name: str | None = None
    wandb_group: str | None = None
    progress: bool = True
    # --- devices ---
    distributed: bool = False  # jax.distributed.initialize() for multi-host
    devices: int = 0  # shard envs over this many local devices (0 = all)

    @property
    def padded_servers(self) -> int:
        return self.max_servers or max(self.train_servers)

    @property
    def decisions_per_update(self) -> int:
        return self.num_envs * self.num_steps

    def replace(self, **kw) -> PPOConfig:
        return dataclasses.replace(self, **kw)

    def validate(self) -> None:
        def need(cond, name, msg):
            if not cond:
                raise ValueError(f"{name}: {msg}")

        for name in ("total_updates", "updates_per_chunk", "num_envs", "num_steps", "reset_ratio", "update_epochs",
                     "num_minibatches", "embed_dim", "num_heads", "hidden", "eval_seeds", "keep_best"):
            need(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        need(self.gnn_layers >= 0, "gnn_layers", f"must be >= 0, got {self.gnn_layers}")
        need(self.eval_every >= 0, "eval_every", f"must be >= 0, got {self.eval_every}")
        need(self.embed_dim % self.num_heads == 0, "embed_dim", f"{self.embed_dim} is not divisible by num_heads={self.num_heads}")
        need((self.num_envs * self.num_steps) % self.num_minibatches == 0, "num_minibatches",
             f"{self.num_minibatches} does not divide num_envs x num_steps = {self.num_envs * self.num_steps}")
        need(len(self.train_servers) >= 1 and min(self.train_servers) >= 1, "train_servers", f"sizes must be >= 1, got {self.train_servers}")
        need(len(self.eval_servers) >= 1 and min(self.eval_servers) >= 1, "eval_servers", f"sizes must be >= 1, got {self.eval_servers}")
        need(self.padded_servers >= max(self.train_servers), "max_servers", f"{self.max_servers} is below the largest train size")
        need(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        need(self.lr_schedule in ("linear", "cosine", "constant"), "lr_schedule", f"linear | cosine | constant, got {self.lr_schedule!r}")
        need(0 < self.gamma <= 1, "gamma", f"must be in (0, 1], got {self.gamma}")
        need(0 <= self.gae_lambda <= 1, "gae_lambda", f"must be in [0, 1], got {self.gae_lambda}")
        need(self.clip_eps > 0, "clip_eps", f"must be > 0, got {self.clip_eps}")
        need(self.srr_decorrelation >= 0 and self.srr_kl >= 0, "srr_decorrelation/srr_kl", "SRR weights must be >= 0")
        need(self.wandb_mode in ("online", "offline", "disabled"), "wandb_mode", f"online | offline | disabled, got {self.wandb_mode!r}")
        need(self.rho > 0, "rho", f"must be > 0, got {self.rho}")
        need(self.devices >= 0, "devices", f"must be >= 0, got {self.devices}")
        need(self.stop_after >= 0, "stop_after", f"must be >= 0, got {self.stop_after}")

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> PPOConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config: unknown keys {unknown}")
        return cls(**{k: parse_value(k, v) for k, v in d.items()})


PRESETS: dict[str, dict] = {
    # seconds on a CPU: for tests and smoke runs
    "cpu-quick": dict(total_updates=4, updates_per_chunk=2, num_envs=8, num_steps=16, num_minibatches=2, update_epochs=2,
                      train_servers=(4,), eval_servers=(4, 6), eval_seeds=2, eval_every=1, embed_dim=16, num_heads=2,
                      hidden=32, gnn_layers=1, best_metric="eval/4/norm_mean_response"),
    # the default: about 10 minutes on a 2-core CPU
    "cpu": dict(),
    # one GPU: thousands of envs
    "gpu": dict(total_updates=2000, updates_per_chunk=20, num_envs=1024, num_steps=128, num_minibatches=8, reset_ratio=16,
                eval_seeds=16, eval_every=5, lr=5e-4),
}


def _field_type(name: str):
    hints = typing.get_type_hints(PPOConfig)
    if name not in hints:
        raise ValueError(f"unknown option --{name}; see `python -m train.ppo --help`")
    return hints[name]


def parse_value(name: str, value):
    """Convert a CLI / wandb value to the field's type; ValueError names the field."""
    tp = _field_type(name)
    args = typing.get_args(tp)
    optional = type(None) in args
    if optional:
        tp = next(a for a in args if a is not type(None))
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
    try:
        origin = typing.get_origin(tp)
        if origin is tuple:
            if isinstance(value, str):
                value = [v for v in value.replace("[", "").replace("]", "").replace(" ", "").split(",") if v]
            elif isinstance(value, int | float):
                value = [value]
            inner = typing.get_args(tp)[0]
            return tuple(inner(v) for v in value)
        if tp is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true/false, got {value!r}")
        if tp is int:
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--{name}: {e}") from None
    if isinstance(tp, types.UnionType):  # pragma: no cover - every field is covered above
        return value
    return value


def parse_args(argv: list[str]) -> tuple[PPOConfig, dict]:
    """argv -> (config, overrides given explicitly). `--preset` applies first, then the options."""
    preset = "cpu"
    overrides: dict = {}
    i = 0
    argv = list(argv)
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            raise ValueError(f"unexpected argument {tok!r}; options look like --key=value")
        if "=" in tok:
            key, value = tok[2:].split("=", 1)
        else:
            key = tok[2:]
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if nxt is not None and not nxt.startswith("--"):
                value, i = nxt, i + 1
            else:
                value = "true"  # a bare flag
        key = key.replace("-", "_")
        if key == "preset":
            if value not in PRESETS:
                raise ValueError(f"--preset: unknown preset {value!r}; choose from {', '.join(PRESETS)}")
            preset = value
        else:
            overrides[key] = parse_value(key, value)
        i += 1
    config = PPOConfig(**{k: parse_value(k, v) for k, v in PRESETS[preset].items()})
    config = config.replace(**overrides)
    config.validate()
    return config, overrides


def dumps(config: PPOConfig) -> str:
    return json.dumps(config.to_dict(), indent=1, sort_keys=True)


def help_text() -> str:
    lines = ["python -m train.ppo [--preset cpu|cpu-quick|gpu] [--key=value ...]", "", "options (defaults of the cpu preset):"]
    for f in fields(PPOConfig):
        lines.append(f"  --{f.name}={getattr(PPOConfig(), f.name)!r}")
    return "\n".join(lines)
