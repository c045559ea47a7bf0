"""`python -m train.bench`: PPO training throughput on this machine.

Prints env decisions processed per second for the whole update (rollout with
the policy network + GAE + epochs x minibatches of gradient steps) and for the
rollout alone, after a warm-up chunk (compilation excluded), as the median of
`--repeats` timed chunks. Any `train.ppo` option can be given
(`--preset gpu --num_envs=4096`).

    python -m train.bench                       # the default cpu preset
    python -m train.bench --preset gpu --json
"""

from __future__ import annotations

import json
import platform
import sys
import time

import jax
import numpy as np

from train.config import parse_args
from train.ppo import make_train


def measure(argv) -> dict:
    repeats = 3
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--repeats"):
            repeats = int(a.split("=", 1)[1]) if "=" in a else int(argv[i + 1])
            i += 0 if "=" in a else 1
        elif a == "--json":
            pass  # handled by main
        else:
            rest.append(a)
        i += 1
    config, _ = parse_args(rest + ["--wandb_mode=disabled"])
    trainer = make_train(config)
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(config.seed))
    n = config.updates_per_chunk
    chunk = jax.jit(trainer.update_chunk, static_argnums=1)
    t0 = time.perf_counter()
    runner, _, _ = chunk(runner, n)
    jax.block_until_ready(runner)
    compile_s = time.perf_counter() - t0
    # the same rollout the update runs, for as many decisions as one chunk, without the update
    roll = jax.jit(lambda r: trainer.rollout(r.train_state.params, r.env_state, r.obs, r.rng, config.num_steps * n)[0])
    jax.block_until_ready(roll(runner))
    full, only = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner, _, _ = chunk(runner, n)
        jax.block_until_ready(runner)
        full.append(n * config.decisions_per_update / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        jax.block_until_ready(roll(runner))
        only.append(n * config.decisions_per_update / (time.perf_counter() - t0))
    return {
        "device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(), "cpu": platform.processor() or platform.machine(),
        "num_envs": config.num_envs, "num_steps": config.num_steps, "train_servers": list(config.train_servers),
        "embed_dim": config.embed_dim, "updates_per_chunk": n, "compile_s": compile_s,
        "train_decisions_per_s": float(np.median(full)), "rollout_decisions_per_s": float(np.median(only)),
        "update_share": 1.0 - float(np.median(full)) / float(np.median(only)),
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        r = measure(argv)
    except ValueError as e:
        print(f"python -m train.bench: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if "--json" in argv:
        print(json.dumps(r))
    else:
        print(f"{r['backend']} ({r['device']}), {r['num_envs']} envs x {r['num_steps']} steps, N={r['train_servers']}, "
              f"embed {r['embed_dim']}")
        print(f"  training (rollout + update): {r['train_decisions_per_s']:>10,.0f} decisions/s")
        print(f"  rollout only (policy + env): {r['rollout_decisions_per_s']:>10,.0f} decisions/s")
        print(f"  share of time in the update: {r['update_share']:.0%}   (first chunk incl. compile: {r['compile_s']:.1f} s)")
    return r


if __name__ == "__main__":
    main()
