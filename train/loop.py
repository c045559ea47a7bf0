"""The Python loop around the jitted PPO chunks: logging, evaluation, checkpoints, progress.

Each chunk runs `updates_per_chunk` PPO updates in one compiled call; between
chunks the loop logs (wandb, progress bar), and every `eval_every` chunks (and
at the end) evaluates the greedy policy at `eval_servers` and saves a
checkpoint with those metrics (the best by `best_metric` is kept, and the
latest always).
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from envs import EnvConfig
from envs.files import atomic_write_json, atomic_write_text
from train.checkpoint import Checkpointer, CheckpointError, load_config, restore_runner
from train.config import PPOConfig, help_text, parse_args
from train.policy_eval import PolicyEvaluator
from train.ppo import make_train
from train.tracking import Tracker


def data_sharding(config: PPOConfig):
    """NamedSharding of the env-batch axis over the local devices (None on one device)."""
    devices = jax.devices()
    n = config.devices or len(devices)
    if n > len(devices):
        raise ValueError(f"devices: {n} requested, {len(devices)} available")
    if n == 1:
        return None
    for name, size in (("num_envs", config.num_envs), ("minibatch size", config.num_envs * config.num_steps // config.num_minibatches)):
        if size % n:
            raise ValueError(f"{name}: {size} is not divisible by the {n} devices")
    mesh = Mesh(np.array(devices[:n]), ("envs",))
    return NamedSharding(mesh, PartitionSpec("envs"))


def place(runner, sharding, num_envs: int):
    """Env-batch leaves sharded over devices, everything else (parameters, optimizer) replicated."""
    if sharding is None:
        return runner
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    return jax.tree.map(lambda x: jax.device_put(x, sharding if x.ndim >= 1 and x.shape[0] == num_envs else replicated), runner)


def _resolve(argv):
    config, explicit = parse_args(argv)
    if config.resume:
        run_dir = os.path.abspath(config.resume)
        _, saved = load_config(run_dir)
        keep = {k: v for k, v in explicit.items() if k != "resume"}
        keep.setdefault("stop_after", 0)  # a stop point is for one invocation, not inherited
        config = PPOConfig.from_dict(saved).replace(resume=run_dir, **keep)
        config.validate()
        return config, explicit, run_dir
    name = config.wandb_name or time.strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.abspath(os.path.join(config.checkpoint_dir, name)) if config.checkpoint_dir else None
    return config, explicit, run_dir


def run(argv) -> dict:
    if any(a in ("-h", "--help") for a in argv):
        print(help_text())
        return {}
    try:
        config, explicit, run_dir = _resolve(argv)
    except (ValueError, CheckpointError) as e:
        print(f"python -m train.ppo: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if config.distributed:
        jax.distributed.initialize()
    tracker = Tracker(config, run_dir, explicit)
    config = tracker.config
    try:
        sharding = data_sharding(config)
    except ValueError as e:
        print(f"python -m train.ppo: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    trainer = make_train(config, sharding)
    runner = place(jax.jit(trainer.init)(jax.random.PRNGKey(config.seed)), sharding, config.num_envs)
    done = 0
    if config.resume:
        try:
            done, runner, _ = restore_runner(run_dir, runner)
        except CheckpointError as e:
            print(f"python -m train.ppo: error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        from train.ppo import hyper_from

        runner = place(runner._replace(hyper=hyper_from(config)), sharding, config.num_envs)  # options given now win
        print(f"resumed {run_dir} at update {done}", file=sys.stderr)
    ckpt = Checkpointer(run_dir, config.best_metric, config.keep_best) if run_dir else None
    evaluator = PolicyEvaluator(trainer.net, config.eval_servers, config.eval_seeds,
                                EnvConfig(rho=config.rho, workflows_per_server=config.workflows_per_server,
                                          workload_seed=config.eval_workload_seed))
    chunk = jax.jit(trainer.update_chunk, static_argnums=1)
    stop = config.total_updates if not config.stop_after else min(config.total_updates, config.stop_after)
    bar = None
    if config.progress:
        from tqdm import tqdm

        bar = tqdm(total=config.total_updates, initial=done, unit="update", dynamic_ncols=True, file=sys.stderr)
    eval_metrics: dict = {}
    history = []
    chunks = 0
    t_start = time.perf_counter()
    while done < stop:
        n = min(config.updates_per_chunk, stop - done)
        t0 = time.perf_counter()
        runner, last, stacked = chunk(runner, n)
        last = {k: float(v) for k, v in jax.device_get(last).items()}
        stacked = jax.device_get(stacked)
        eps = np.asarray(stacked["train/episodes"], np.float64)
        for k in ("train/mean_response", "train/episode_return"):  # over every episode that ended in the chunk
            last[k] = float(np.sum(np.asarray(stacked[k]) * eps) / max(eps.sum(), 1.0))
        last["train/episodes"] = float(eps.sum())
        dt = time.perf_counter() - t0
        done += n
        chunks += 1
        last["perf/decisions_per_s"] = n * config.decisions_per_update / dt
        last["perf/decisions"] = done * config.decisions_per_update
        last["perf/wall_s"] = time.perf_counter() - t_start
        final = done >= stop
        if final or (config.eval_every and chunks % config.eval_every == 0):
            eval_metrics = evaluator(runner.train_state.params)
            last.update(eval_metrics)
            if ckpt:
                ckpt.save(done, runner, runner.train_state.params, config.to_dict(), eval_metrics)
        tracker.log(last, step=done)
        history.append({"update": done, **last})
        if bar is None:
            ev = f" eval {config.best_metric}={eval_metrics[config.best_metric]:.3f}" if config.best_metric in eval_metrics else ""
            print(f"update {done}/{config.total_updates} decisions/s {last['perf/decisions_per_s']:.0f} "
                  f"train resp {last['train/mean_response']:.1f} entropy {last['loss/entropy']:.3f}{ev} "
                  f"({last['perf/wall_s']:.0f} s)", file=sys.stderr, flush=True)
        else:
            post = {"dec/s": f"{last['perf/decisions_per_s']:.0f}", "resp": f"{last['train/mean_response']:.1f}"}
            if config.best_metric in eval_metrics:
                post["eval"] = f"{eval_metrics[config.best_metric]:.3f}"
            bar.set_postfix(post)
            bar.update(n)
    if bar is not None:
        bar.close()
    if ckpt:
        ckpt.close()
    summary = {"run_dir": run_dir, "updates": done, "config": config.to_dict(), "final": history[-1] if history else {},
               "eval": eval_metrics}
    if run_dir:
        atomic_write_json(os.path.join(run_dir, "summary.json"), summary)
        atomic_write_text(os.path.join(run_dir, "history.jsonl"), "".join(json.dumps(r) + "\n" for r in history))
    if eval_metrics:
        print(format_eval(eval_metrics, config.eval_servers))
    if run_dir:
        print(f"checkpoints: {run_dir}  (evaluate: python -m train.evaluate --checkpoint {run_dir})")
    tracker.finish()
    summary["params"] = runner.train_state.params
    return summary




def format_eval(metrics: dict, sizes) -> str:
    lines = [f"{'N':>4}{'mean resp':>11}{'P95 resp':>10}{'makespan':>10}{'norm mean resp (vs RR)':>24}"]
    for n in sizes:
        lines.append(f"{n:>4}{metrics[f'eval/{n}/mean_response']:>11.1f}{metrics[f'eval/{n}/p95_response']:>10.1f}"
                     f"{metrics[f'eval/{n}/makespan']:>10.1f}{metrics[f'eval/{n}/norm_mean_response']:>24.3f}")
    return "\n".join(lines)
