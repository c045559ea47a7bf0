"""`python -m train.bench`: PPO training throughput on this machine.

Prints env decisions processed per second for the whole update (rollout with
the policy network + GAE + epochs x minibatches of gradient steps) and for the
rollout alone, after a warm-up chunk (compilation excluded), as the median of
`--repeats` timed chunks. It runs what `python -m train.ppo` runs with the
same options: `--num_seeds=K` seeds in one program (decisions of all seeds
count), the envs sharded over the run's devices (on a CPU, one XLA device per
core unless `--cpu_devices=1`). Any `train.ppo` option can be given.

    python -m train.bench                       # the default (cpu) preset
    python -m train.bench --preset gpu --json
    python -m train.bench --num_seeds=16 --json
"""

from __future__ import annotations

import json
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from train.config import parse_args
from train.devices import data_sharding, runner_shardings, split_cpu
from train.learner import make_train


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
    split_cpu(config)
    sharding = data_sharding(config)
    trainer = make_train(config, sharding)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in config.seeds])
    init = jax.vmap(trainer.init)
    runner = jax.jit(init, out_shardings=runner_shardings(jax.eval_shape(init, keys), sharding, True))(keys)
    n = config.updates_per_chunk
    from train.loop import over_seeds

    chunk = jax.jit(over_seeds(lambda r: trainer.update_chunk(r, n), config.seed_batching))
    t0 = time.perf_counter()
    runner, _, _ = chunk(runner)
    jax.block_until_ready(runner)
    compile_s = time.perf_counter() - t0
    # the same rollout the update runs, for as many decisions as one chunk, without the update
    roll = jax.jit(jax.vmap(lambda r: trainer.rollout(r.train_state.params, r.env_state, r.obs, r.rng,
                                                      config.num_steps * n)[0]))
    jax.block_until_ready(roll(runner))
    decisions = config.num_seeds * n * config.decisions_per_update
    full, only = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner, _, _ = chunk(runner)
        jax.block_until_ready(runner)
        full.append(decisions / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        jax.block_until_ready(roll(runner))
        only.append(decisions / (time.perf_counter() - t0))
    return {
        "device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(), "devices": len(jax.devices()),
        "cpu": platform.processor() or platform.machine(), "jax": jax.__version__,
        "num_envs": config.num_envs, "num_steps": config.num_steps, "num_seeds": config.num_seeds,
        "seed_batching": config.seed_batching,
        "train_servers": list(config.train_servers), "embed_dim": config.embed_dim, "updates_per_chunk": n,
        "compile_s": compile_s, "train_decisions_per_s": float(np.median(full)),
        "rollout_decisions_per_s": float(np.median(only)),
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
        print(f"{r['backend']} ({r['device']} x {r['devices']}), {r['num_seeds']} seed(s) x {r['num_envs']} envs x "
              f"{r['num_steps']} steps, N={r['train_servers']}, embed {r['embed_dim']}")
        print(f"  training (rollout + update): {r['train_decisions_per_s']:>10,.0f} decisions/s")
        print(f"  rollout only (policy + env): {r['rollout_decisions_per_s']:>10,.0f} decisions/s")
        print(f"  share of time in the update: {r['update_share']:.0%}   (first chunk incl. compile: {r['compile_s']:.1f} s)")
    return r


if __name__ == "__main__":
    main()
