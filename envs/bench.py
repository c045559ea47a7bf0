"""`python -m envs.bench`: decisions per second of the jitted, vmapped env vs the reference.

Both sides play random valid actions and build the full observation at every
decision. The JAX side steps `--envs` clusters at once inside one `lax.scan`
of `--steps` steps, with auto-reset on (`--reset-ratio`, see
`envs.wrappers.VecEnv`); compilation is excluded (the timed call is the
second). The reference plays the same configuration's episodes one decision at
a time in Python.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from envs.config import EnvConfig, make_params
from envs.instance import materialize
from envs.reference import ReferenceSim
from envs.wrappers import VecEnv


def random_valid_actions(key, mask):
    """A valid server per env, uniform up to a 32-bit hash: one random word per env, mixed with
    the server index (murmur3's finalizer), and the valid server with the largest score wins.
    Cheaper than N threefry draws or a cumsum, which would dominate the env step on a CPU."""
    word = jax.random.bits(key, mask.shape[:-1], jnp.uint32)[..., None]
    x = word ^ (jnp.arange(mask.shape[-1], dtype=jnp.uint32) * jnp.uint32(0x9E3779B9))
    x = (x ^ (x >> 16)) * jnp.uint32(0x85EBCA6B)
    x = (x ^ (x >> 13)) * jnp.uint32(0xC2B2AE35)
    x = x ^ (x >> 16)
    return jnp.argmax(jnp.where(mask, x, 0), axis=-1).astype(jnp.int32)


def bench_jax(config: EnvConfig, num_envs: int, steps: int, reset_ratio: int, seed: int = 0,
              warmup_calls: int = 2) -> dict:
    params = make_params(config)
    env = VecEnv(params, num_envs, reset_ratio)

    def run(key, obs, state):
        def body(carry, k):
            obs, state = carry
            k_act, k_step = jax.random.split(k)
            live = jnp.sum(~state.done)  # envs waiting for a fresh episode make no decision
            obs, state, reward, done, _ = env.step(k_step, state, random_valid_actions(k_act, obs.action_mask))
            return (obs, state), (jnp.sum(done), live)

        (obs, state), (dones, live) = jax.lax.scan(body, (obs, state), jax.random.split(key, steps))
        return obs, state, jnp.sum(dones), jnp.sum(live)

    run = jax.jit(run, donate_argnums=(1, 2))
    obs, state = jax.jit(env.reset)(jax.random.PRNGKey(seed))
    t0 = time.perf_counter()
    obs, state, _, _ = jax.block_until_ready(run(jax.random.PRNGKey(seed + 1), obs, state))
    compile_s = time.perf_counter() - t0
    # warm up past the first wave of episode ends, so the timed window sees staggered episodes
    for i in range(warmup_calls):
        obs, state, _, _ = jax.block_until_ready(run(jax.random.PRNGKey(seed + 2 + i), obs, state))
    t0 = time.perf_counter()
    obs, state, episodes, live = jax.block_until_ready(run(jax.random.PRNGKey(seed + 100), obs, state))
    dt = time.perf_counter() - t0
    decisions = int(live)  # decisions actually made (waiting envs excluded)
    return {"decisions": decisions, "seconds": dt, "decisions_per_s": decisions / dt,
            "episodes_finished": int(episodes), "first_call_s": compile_s,
            "waiting_share": 1.0 - decisions / (num_envs * steps)}


def bench_reference(config: EnvConfig, min_decisions: int, seed: int = 0) -> dict:
    params = make_params(config)
    bank = config.make_bank()
    rng = np.random.default_rng(seed)
    decisions, dt, episode = 0, 0.0, 0
    while decisions < min_decisions:
        inst = materialize(jax.random.PRNGKey(seed + episode), config, params, bank)
        episode += 1
        t0 = time.perf_counter()
        sim = ReferenceSim(inst, max_servers=params.max_servers, max_tasks=params.max_tasks,
                           max_edges=params.bank.edges.shape[1])
        obs = sim.reset()
        done = False
        while not done:
            obs, _, done, _ = sim.step(int(rng.choice(np.flatnonzero(obs.action_mask))))
            decisions += 1
        dt += time.perf_counter() - t0
    return {"decisions": decisions, "seconds": dt, "decisions_per_s": decisions / dt, "episodes": episode}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m envs.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=16)
    ap.add_argument("--max-servers", type=int, default=None, help="pad to this many servers (default: --servers)")
    ap.add_argument("--envs", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--reset-ratio", type=int, default=16,
                    help="draw envs/ratio fresh episodes per step (1: exact per-env resets)")
    ap.add_argument("--reference-decisions", type=int, default=3000, help="decisions the reference plays (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    if a.servers < 1:
        ap.error("--servers must be >= 1")
    if a.envs < 1 or a.steps < 1:
        ap.error("--envs and --steps must be >= 1")
    config = EnvConfig(n_servers=a.servers, max_servers=a.max_servers)
    j = bench_jax(config, a.envs, a.steps, a.reset_ratio, a.seed)
    r = bench_reference(config, a.reference_decisions, a.seed) if a.reference_decisions > 0 else None
    out = {
        "jax_decisions_per_s": j["decisions_per_s"],
        "reference_decisions_per_s": r["decisions_per_s"] if r else None,
        "ratio": j["decisions_per_s"] / r["decisions_per_s"] if r else None,
    }
    if a.json:
        print(json.dumps(out))
        return out
    dev = jax.devices()[0]
    print(f"machine: {platform.processor() or platform.machine()}, {dev.platform} ({dev.device_kind}), "
          f"jax {jax.__version__}")
    print(f"N={a.servers} envs={a.envs} steps={a.steps} reset_ratio={a.reset_ratio}")
    print(f"jax       : {j['decisions_per_s']:>14,.0f} decisions/s  ({j['decisions']:,} in {j['seconds']:.3f} s; "
          f"first call {j['first_call_s']:.1f} s; {j['episodes_finished']} episodes finished; "
          f"{100 * j['waiting_share']:.2f}% env-steps waiting for a fresh episode)")
    if r:
        print(f"reference : {r['decisions_per_s']:>14,.0f} decisions/s  ({r['decisions']:,} in {r['seconds']:.2f} s)")
        print(f"ratio     : {out['ratio']:>14,.0f} x")
    return out


if __name__ == "__main__":
    main()
