"""Every PPO hyperparameter in one dataclass, presets, and `--key=value` parsing.

The CLI accepts `--key=value` and `--key value` (dashes or underscores), which
is what wandb agents pass, plus `--preset NAME`. Values are parsed by the
field's type; tuples take comma-separated lists (`--eval_servers=16,32,48`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field, fields

CONFIG_FORMAT = 3  # the layout of a saved config (checkpoints and summaries carry it)
# Format 2 predates the h-only pointer and N-free inputs: its networks read [h, query] and raw globals.
FORMAT_UPGRADES = {2: {"pointer_bypass": True, "global_inputs": "raw"}}


def opt(default, help: str):
    """A PPOConfig field with a one-line description (shown by --help)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class PPOConfig:
    # --- run ---
    seed: int = opt(0, "training seed (with num_seeds=K: seeds seed .. seed+K-1)")
    num_seeds: int = opt(1, "independent seeds trained at once in one compiled program")
    seed_batching: str = opt("vmap", "vmap: seeds batched (fastest) | map: one after another in the program (bit-identical to one-seed runs)")
    total_updates: int = opt(80, "PPO updates; each is num_envs x num_steps decisions, then the epochs")
    updates_per_chunk: int = opt(10, "updates per jitted call (logging happens between calls)")
    # --- environment ---
    train_servers: tuple[int, ...] = opt((16,), "cluster sizes to train on (several: env i gets size i mod k)")
    max_servers: int | None = opt(None, "pad the server axis to this (default: the largest train size)")
    rho: float = opt(0.7, "offered load of the training clusters")
    workflows_per_server: float = opt(4.0, "episode length: workflows per server")
    workload_seed: int = opt(0, "seed of the training workflow bank")
    workflows: tuple[str, ...] = opt((), "workflow files (own JSON or WfFormat) that replace the generated training bank")
    eval_workflows: tuple[str, ...] = opt((), "workflow files of the evaluation bank (default: --workflows if given)")
    max_tasks: int = opt(16, "largest workflow allowed (raise for big workflow files, up to 1024)")
    catalog: str | None = opt(None, "catalog file of extra GPU types and models (docs/environment.md)")
    gpu_mix: str | None = opt(None, "sampling weights of GPU types, e.g. H100=2,L4=1 (default: the catalog's mix)")
    num_envs: int = opt(32, "environments stepped in parallel")
    num_steps: int = opt(64, "rollout length per update")
    reset_ratio: int = opt(4, "optimistic resets: num_envs/reset_ratio fresh episodes per step (1 = exact)")
    # --- PPO ---
    lr: float = opt(3e-4, "peak learning rate (Adam)")
    lr_schedule: str = opt("linear", "linear | cosine | constant decay of the learning rate")
    lr_decay_updates: int = opt(0, "updates over which the schedule decays (0: total_updates at the run's start)")
    warmup_updates: int = opt(0, "linear warm-up updates")
    max_grad_norm: float = opt(0.5, "gradient clipping (global norm)")
    discount: str = opt("decision", "decision: gamma per decision | time: gamma_per_s per second to the next decision")
    gamma: float = opt(0.99, "discount per decision (discount=decision)")
    gamma_per_s: float = opt(0.99, "discount per second of simulated time (discount=time)")
    gae_lambda: float = opt(0.95, "GAE lambda")
    clip_eps: float = opt(0.2, "PPO clipping of the probability ratio (and of the value change)")
    vf_coef: float = opt(0.5, "weight of the value loss")
    ent_coef: float = opt(0.01, "entropy bonus")
    update_epochs: int = opt(4, "passes over each rollout")
    num_minibatches: int = opt(4, "minibatches per pass")
    # --- policy ---
    embed_dim: int = opt(64, "width of the DAG embeddings, attention and the feature h")
    num_heads: int = opt(4, "attention heads")
    gnn_layers: int = opt(2, "message-passing layers over the workflow DAG")
    hidden: int = opt(128, "hidden width of the query, server and critic MLPs")
    dag_encoder: str = opt("auto", "auto | dense | edges | jraph: how the DAG encoder aggregates (same function)")
    log_n_scaling: bool = opt(False, "Scalable-Softmax: attention and pointer logits x s log(n_active)")
    pointer_bypass: bool = opt(False, "pointer reads [h, query] (v1, an ablation) instead of the attention feature h alone")
    global_inputs: str = opt("raw", "raw | per_server: global counts per active server, N and clock dropped (N-free)")
    # --- SRR on the attention feature ---
    srr_decorrelation: float = opt(0.0, "weight of SRR's decorrelation term")
    srr_kl: float = opt(0.0, "weight of SRR's KL-to-N(0, I) term (per dimension)")
    log_grad_norms: bool = opt(False, "log the gradient norm of the PPO loss and of each SRR term (one backward pass each)")
    # --- evaluation ---
    eval_servers: tuple[int, ...] = opt((16, 32, 48), "cluster sizes of the periodic greedy evaluation")
    eval_seeds: int = opt(4, "evaluation episodes per size")
    eval_every: int = opt(40, "evaluate every this many updates (and at the end); 0 = only at the end")
    eval_workload_seed: int = opt(1, "seed of the validation bank of the periodic evaluation, best checkpoints and sweeps "
                                     "(held out from training; never the test bank, 3)")
    best_metric: str = opt("eval/16/norm_mean_response", "lower is better; the checkpoint kept as 'best'")
    # --- checkpoints ---
    checkpoint_dir: str | None = opt("runs/ppo", "where run directories go (none: no checkpoints)")
    checkpoint_every: int = opt(0, "also checkpoint every this many updates (0: at evaluations only)")
    keep_best: int = opt(1, "best checkpoints kept besides the latest")
    resume: str | None = opt(None, "a run directory to continue")
    stop_after: int = opt(0, "stop (checkpointed) after this many updates, as if preempted; 0 = run to the end")
    # --- logging ---
    wandb_mode: str = opt("offline", "online | offline | disabled (offline when no API key is configured)")
    wandb_project: str = opt("jaxsched", "wandb project")
    wandb_entity: str | None = opt(None, "wandb entity")
    wandb_name: str | None = opt(None, "run name (and directory name; default: a timestamp and a unique id)")
    wandb_group: str | None = opt(None, "wandb group (K-seed runs: the run's name)")
    progress: bool = opt(True, "progress bar (else one line per chunk)")
    # --- devices ---
    distributed: bool = opt(False, "multi-process: jax.distributed.initialize() (cluster auto-detected, e.g. SLURM)")
    coordinator_address: str | None = opt(None, "multi-process: host:port of process 0 (else auto-detected)")
    num_processes: int = opt(0, "multi-process: how many processes (0: auto-detected)")
    process_id: int = opt(-1, "multi-process: this process's index (-1: auto-detected)")
    devices: int = opt(0, "shard envs over this many devices (0 = all; several processes: all of theirs)")
    cpu_devices: int = opt(0, "on a CPU: split it into this many XLA devices to shard the envs over (0 = auto = off)")

    @property
    def padded_servers(self) -> int:
        return self.max_servers or max(self.train_servers)

    @property
    def decisions_per_update(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def lr_horizon_updates(self) -> int:
        return self.lr_decay_updates or self.total_updates

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.num_seeds))

    def replace(self, **kw) -> PPOConfig:
        return dataclasses.replace(self, **kw)

    def policy(self):
        """The network's architecture (`jaxsched.policy.PolicyConfig`)."""
        from jaxsched.policy import PolicyConfig

        return PolicyConfig(embed_dim=self.embed_dim, num_heads=self.num_heads, gnn_layers=self.gnn_layers,
                            hidden=self.hidden, log_n_scaling=self.log_n_scaling, dag_encoder=self.dag_encoder,
                            pointer_bypass=self.pointer_bypass, global_inputs=self.global_inputs)

    def env(self, n_servers: int | None = None, workload_seed: int | None = None):
        """The training environment (`envs.EnvConfig`), or the same world at `n_servers` / another bank."""
        from envs import EnvConfig
        from envs.world import build_world

        n = n_servers if n_servers is not None else max(self.train_servers)
        seed = self.workload_seed if workload_seed is None else workload_seed
        base = EnvConfig(n_servers=n, max_servers=max(n, self.padded_servers) if n_servers is None else None,
                         rho=self.rho, workflows_per_server=self.workflows_per_server, workload_seed=seed)
        return build_world(base, catalog_file=self.catalog, gpu_mix=self.gpu_mix, workflows=self.workflows,
                           max_tasks=self.max_tasks, seed=seed)

    def eval_env(self, workload_seed: int | None = None):
        """The evaluation world (resized per N by the evaluator): the training world on the held-out
        bank (`eval_workload_seed`), or on `eval_workflows` (else `workflows`) when files are given."""
        from envs import EnvConfig
        from envs.world import build_world

        seed = self.eval_workload_seed if workload_seed is None else workload_seed
        base = EnvConfig(rho=self.rho, workflows_per_server=self.workflows_per_server, workload_seed=seed)
        return build_world(base, catalog_file=self.catalog, gpu_mix=self.gpu_mix,
                           workflows=self.eval_workflows or self.workflows, max_tasks=self.max_tasks, seed=seed)

    def validate(self) -> None:
        def need(cond, name, msg):
            if not cond:
                raise ValueError(f"{name}: {msg}")

        for name in ("total_updates", "updates_per_chunk", "num_envs", "num_steps", "reset_ratio", "update_epochs",
                     "num_minibatches", "embed_dim", "num_heads", "hidden", "eval_seeds", "keep_best", "num_seeds"):
            need(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("gnn_layers", "eval_every", "checkpoint_every", "lr_decay_updates", "warmup_updates", "devices",
                     "cpu_devices", "stop_after", "num_processes"):
            need(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        need(self.embed_dim % self.num_heads == 0, "embed_dim", f"{self.embed_dim} is not divisible by num_heads={self.num_heads}")
        need((self.num_envs * self.num_steps) % self.num_minibatches == 0, "num_minibatches",
             f"{self.num_minibatches} does not divide num_envs x num_steps = {self.num_envs * self.num_steps}")
        need(len(self.train_servers) >= 1 and min(self.train_servers) >= 1, "train_servers", f"sizes must be >= 1, got {self.train_servers}")
        need(len(self.eval_servers) >= 1 and min(self.eval_servers) >= 1, "eval_servers", f"sizes must be >= 1, got {self.eval_servers}")
        need(self.padded_servers >= max(self.train_servers), "max_servers", f"{self.max_servers} is below the largest train size")
        need(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        need(self.lr_schedule in ("linear", "cosine", "constant"), "lr_schedule", f"linear | cosine | constant, got {self.lr_schedule!r}")
        need(self.seed_batching in ("vmap", "map"), "seed_batching", f"vmap | map, got {self.seed_batching!r}")
        need(self.discount in ("decision", "time"), "discount", f"decision | time, got {self.discount!r}")
        need(0 < self.gamma <= 1, "gamma", f"must be in (0, 1], got {self.gamma}")
        need(0 < self.gamma_per_s <= 1, "gamma_per_s", f"must be in (0, 1], got {self.gamma_per_s}")
        need(0 <= self.gae_lambda <= 1, "gae_lambda", f"must be in [0, 1], got {self.gae_lambda}")
        need(self.clip_eps > 0, "clip_eps", f"must be > 0, got {self.clip_eps}")
        from jaxsched.evaluation import TEST

        need(self.eval_workload_seed != TEST.workload_seed, "eval_workload_seed",
             f"{TEST.workload_seed} is the test bank, kept for final reports; the periodic evaluation selects checkpoints, "
             "so it runs on a validation bank (default 1)")
        need(self.eval_workload_seed != self.workload_seed or bool(self.eval_workflows or self.workflows),
             "eval_workload_seed", f"{self.eval_workload_seed} is the training bank (workload_seed); validate on another")
        need(self.srr_decorrelation >= 0 and self.srr_kl >= 0, "srr_decorrelation/srr_kl", "SRR weights must be >= 0")
        need(self.wandb_mode in ("online", "offline", "disabled"), "wandb_mode", f"online | offline | disabled, got {self.wandb_mode!r}")
        need(self.rho > 0, "rho", f"must be > 0, got {self.rho}")
        from jaxsched.graphs import ENCODERS

        need(self.global_inputs in ("raw", "per_server"), "global_inputs", f"raw | per_server, got {self.global_inputs!r}")
        need(self.dag_encoder in ENCODERS, "dag_encoder", f"{' | '.join(ENCODERS)}, got {self.dag_encoder!r}")
        if self.workflows or self.eval_workflows or self.catalog or self.gpu_mix or self.max_tasks != 16:
            # the world from files: refuse a bad file or setting now, in one line, before any work
            for env in (self.env(), self.eval_env()):
                env.validate()

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
                      train_servers=(4,), eval_servers=(4, 6), eval_seeds=2, eval_every=2, embed_dim=16, num_heads=2,
                      hidden=32, gnn_layers=1, best_metric="eval/4/norm_mean_response"),
    # the default: about 10 minutes on a 2-core CPU
    "cpu": dict(),
    # one GPU: thousands of envs
    "gpu": dict(total_updates=2000, updates_per_chunk=20, num_envs=1024, num_steps=128, num_minibatches=8, reset_ratio=16,
                eval_seeds=16, eval_every=100, lr=5e-4),
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
    preset, overrides = split_args(argv)
    config = PPOConfig(**{k: parse_value(k, v) for k, v in PRESETS[preset].items()})
    config = config.replace(**overrides)
    config.validate()
    return config, overrides


def split_args(argv: list[str]) -> tuple[str, dict]:
    """argv -> (preset name, {option: parsed value}); an option given twice, or two presets, is an error."""
    preset = None
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
            if preset is not None:
                raise ValueError(f"--preset: given twice ({preset!r} and {value!r}); give one")
            preset = value
        else:
            if key in overrides:
                raise ValueError(f"--{key}: given twice; give it once")
            overrides[key] = parse_value(key, value)
        i += 1
    return preset or default_preset(), overrides


def default_preset() -> str:
    """The preset when none is given: $JAXSCHED_PRESET (how a sweep agent picks one), else cpu."""
    name = os.environ.get("JAXSCHED_PRESET", "cpu")
    if name not in PRESETS:
        raise ValueError(f"JAXSCHED_PRESET: unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return name


def dumps(config: PPOConfig) -> str:
    return json.dumps(config.to_dict(), indent=1, sort_keys=True)


def preset_of(argv: list[str]) -> str:
    """The preset an argv asks for (for --help), without validating the rest."""
    for i, tok in enumerate(argv):
        if tok.startswith("--preset="):
            return tok.split("=", 1)[1]
        if tok == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
    return os.environ.get("JAXSCHED_PRESET", "cpu")


def help_text(preset: str = "cpu") -> str:
    if preset not in PRESETS:
        preset = "cpu"
    base = PPOConfig(**{k: parse_value(k, v) for k, v in PRESETS[preset].items()})
    lines = [f"python -m train.ppo [--preset {'|'.join(PRESETS)}] [--key=value ...]", "",
             f"options (defaults of the {preset} preset; presets: {', '.join(PRESETS)}; see docs/training.md):"]
    for f in fields(PPOConfig):
        value = getattr(base, f.name)
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        lines.append(f"  --{f.name}={shown}".ljust(40) + f"  {f.metadata.get('help', '')}")
    return "\n".join(lines)
