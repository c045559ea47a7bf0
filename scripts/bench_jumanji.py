"""Jumanji's JobShop-v0 stepped the way `python -m envs.bench` steps ours: a reference point, not a dependency.

Run it in a separate venv (never the project's):

    python -m venv /tmp/jvenv && /tmp/jvenv/bin/pip install "jax==0.10.2" "jaxlib==0.10.2" "jumanji==1.1.2"
    /tmp/jvenv/bin/python scripts/bench_jumanji.py --envs 4096 --steps 256

`--envs` environments under vmap with Jumanji's auto-reset, `--steps` steps in one `lax.scan`, a random
valid action per machine from the observation's action mask at every step; compilation excluded (the
timed call is the second). Prints env-steps per second as JSON. A JobShop step schedules every machine
at once; one of ours places one task, so compare as steps of each env's own unit, as docs/benchmarks.md
says.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import jumanji
from jumanji.wrappers import AutoResetWrapper


def random_valid(key, mask):
    """Per row of `mask` [..., options], a uniformly random True entry (Gumbel-free: random scores, masked argmax)."""
    scores = jax.random.uniform(key, mask.shape)
    return jnp.argmax(jnp.where(mask, scores, -1.0), axis=-1).astype(jnp.int32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default="JobShop-v0")
    ap.add_argument("--envs", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    env = AutoResetWrapper(jumanji.make(a.env))
    keys = jax.random.split(jax.random.PRNGKey(0), a.envs)
    state, ts = jax.jit(jax.vmap(env.reset))(keys)

    @jax.jit
    def run(state, ts, key):
        def body(carry, k):
            state, ts = carry
            action = random_valid(k, ts.observation.action_mask)
            state, ts = jax.vmap(env.step)(state, action)
            return (state, ts), ts.reward.sum()

        (state, ts), r = jax.lax.scan(body, (state, ts), jax.random.split(key, a.steps))
        return state, ts, r.sum()

    out = run(state, ts, jax.random.PRNGKey(1))
    jax.block_until_ready(out)
    rates = []
    for i in range(a.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(state, ts, jax.random.PRNGKey(2 + i)))
        rates.append(a.envs * a.steps / (time.perf_counter() - t0))
    print(json.dumps({"env": a.env, "envs": a.envs, "steps": a.steps, "jax": jax.__version__,
                      "jumanji": jumanji.__version__, "steps_per_s": sorted(rates)}))


if __name__ == "__main__":
    main()
