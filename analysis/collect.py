"""Roll a trained policy out at several cluster sizes and collect what it computes per decision.

For each N: `seeds` held-out episodes (the evaluation harness's episodes: same
workload distribution, offered load held at rho), the greedy policy, all seeds
at once (one `lax.scan` under `vmap`). Each episode is played to its end and
`decisions` decisions are recorded at evenly spaced points of it, so every N
is sampled over the same phases of an episode (warm-up, steady state, drain)
rather than only its first decisions, which at large N would be the warm-up.
An episode with fewer decisions than that contributes all of its own.

Returned per N: the attention feature h [n, d], the attention weights
[n, heads, N], the masked pointer logits [n, N], the number of servers the task
may go to (the action mask: active and large enough for its model) [n], and the
episode each sample came from [n] (for tests that must not treat consecutive
decisions of one episode as independent).
"""

from __future__ import annotations

from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

from envs import EnvConfig, make_params
from envs.env import reset, step
from envs.sizes import episode_workflows
from jaxsched.evaluation import episode_keys, eval_config


def _episode_decisions(state, env_params):
    """Decisions in the episode just reset: the tasks of its workflows."""
    e = episode_workflows(env_params)
    wf = jnp.arange(state.wf_bank.shape[0])
    return jnp.sum(jnp.where(wf < e, env_params.bank.n_tasks[state.wf_bank], 0)).astype(jnp.int32)


@jax.jit
def _episode_lengths(env_params, keys):
    return jax.vmap(lambda k: _episode_decisions(reset(jax.random.split(k)[0], env_params)[1], env_params))(keys)


@cache
def _collector(net, decisions: int, steps: int, ablate: bool = False, behaviour=None, stacked: bool = False):
    """One compiled program per (architecture, sample size, episode length): parameters and the
    environment are arguments, so checkpoints of one architecture share it at every N of a shape.
    With `ablate`, each record also holds the masked logits with h replaced by `h_mean`. With a
    `behaviour` policy(key, obs) -> server, that policy acts and the network only reads its states."""

    def episode(params, env_params, key, h_mean):
        k_reset, _ = jax.random.split(key)
        obs, state = reset(k_reset, env_params)
        total = _episode_decisions(state, env_params)
        j = jnp.arange(decisions)
        # evenly spaced decision indices over the whole episode (all of them when it is shorter)
        at = jnp.where(total >= decisions, (j * total) // decisions, j).astype(jnp.int32)
        valid = j < total

        def record(obs):
            logits, _, aux = net.apply(params, obs)
            rec = {"h": aux["h"], "attention": aux["attention"],
                   "logits": jnp.where(obs.action_mask, logits, -jnp.inf),
                   "n_allowed": jnp.sum(obs.action_mask).astype(jnp.int32)}
            if ablate:
                ablated, _, _ = net.apply(params, obs, h_override=h_mean)
                rec["ablated_logits"] = jnp.where(obs.action_mask, ablated, -jnp.inf)
            return logits, rec

        _, proto = jax.eval_shape(record, obs)
        buf = jax.tree.map(lambda s: jnp.zeros((decisions,) + s.shape, s.dtype), proto)

        def body(carry, t):
            obs, state, nxt, buf = carry
            logits, rec = record(obs)
            slot = jnp.minimum(nxt, decisions - 1)
            hit = (nxt < decisions) & (t == at[slot])
            buf = jax.tree.map(lambda b, v: b.at[slot].set(jnp.where(hit, v, b[slot])), buf, rec)
            action = (jnp.argmax(logits) if behaviour is None else behaviour(key, obs)).astype(jnp.int32)
            obs, state, _, _, _ = step(key, state, action, env_params)
            return (obs, state, nxt + hit.astype(jnp.int32), buf), None

        (_, _, _, buf), _ = jax.lax.scan(body, (obs, state, jnp.int32(0), buf), jnp.arange(steps, dtype=jnp.int32))
        return buf, valid

    episodes = jax.vmap(episode, in_axes=(None, None, 0, None))
    # stacked: K seeds' parameters (leading axis K) in one program, each on the same episodes, each with its
    # own h_mean (leading axis K) when ablating
    return jax.jit(jax.vmap(episodes, in_axes=(0, None, None, 0 if ablate else None)) if stacked else episodes)


def _records(buf, valid, decisions: int, first_seed: int, seeds: int) -> dict:
    valid = np.asarray(valid).reshape(-1)
    rec = {k: np.asarray(v).reshape((-1,) + np.asarray(v).shape[2:])[valid] for k, v in buf.items()}
    rec["episode"] = np.repeat(np.arange(first_seed, first_seed + seeds), decisions)[valid]
    return rec


def collect_seeds(net, stacked_params, sizes, seeds: int = 8, decisions: int = 256, base: EnvConfig | None = None,
                  first_seed: int = 0, behaviour=None, h_mean: dict | None = None) -> list[dict]:
    """`collect` for K seeds of one architecture at once (`stacked_params`: leading axis K): one
    program per N for all K, which on a CPU is several times faster than K calls. `h_mean` is
    N -> [K, d], one mean per seed. Returns one `collect` result per seed, in order."""
    k = jax.tree.leaves(stacked_params)[0].shape[0]
    out: list[dict] = [{} for _ in range(k)]
    keys = episode_keys(seeds, first_seed)
    ablate = h_mean is not None
    for n in sizes:
        env_params = make_params(eval_config(n, base))
        steps = int(np.max(jax.device_get(_episode_lengths(env_params, keys))))
        run = _collector(net, int(decisions), steps, ablate, behaviour, stacked=True)
        mean = jnp.asarray(h_mean[int(n)]) if ablate else jnp.zeros(())
        buf, valid = jax.device_get(run(stacked_params, env_params, keys, mean))
        for i in range(k):
            out[i][int(n)] = _records({key: v[i] for key, v in buf.items()}, valid[i], decisions, first_seed, seeds)
    return out


def collect(net, params, sizes, seeds: int = 8, decisions: int = 256, base: EnvConfig | None = None,
            first_seed: int = 0, h_mean: dict | None = None, behaviour=None) -> dict:
    """N -> {h, attention, logits, n_allowed, episode} over episodes first_seed .. first_seed+seeds-1.

    `h_mean` (N -> [d]) adds `ablated_logits`: the same decisions' logits with h replaced by that
    vector (the trajectory stays the policy's own: actions follow the real logits). `behaviour` (a
    jittable policy(key, obs) -> server, e.g. `jaxsched.baselines.earliest_finish`) plays the episodes
    instead of the network, so every network is read on the same states: what then differs between
    networks, or between N, is representation, not the states a policy steers itself into."""
    out = {}
    keys = episode_keys(seeds, first_seed)
    for n in sizes:
        env_params = make_params(eval_config(n, base))
        steps = int(np.max(jax.device_get(_episode_lengths(env_params, keys))))
        ablate = h_mean is not None
        mean = jnp.asarray(h_mean[int(n)]) if ablate else jnp.zeros(())
        run = _collector(net, int(decisions), steps, ablate, behaviour)
        buf, valid = jax.device_get(run(params, env_params, keys, mean))
        out[int(n)] = _records(buf, valid, decisions, first_seed, seeds)
    return out
