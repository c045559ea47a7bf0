"""Roll a trained policy out at several cluster sizes and collect what it computes per decision.

For each N: `seeds` held-out episodes (the evaluation harness's episodes: same
workload distribution, offered load held at rho), the greedy policy, the first
`decisions` decisions of each, all seeds at once (one `lax.scan` under `vmap`).
Returned per N: the attention feature h [n, d], the attention weights
[n, heads, N], the masked pointer logits [n, N] and the active-server count [n],
for the n decisions that happened (episodes that ended early contribute fewer).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs import EnvConfig, make_params
from envs.env import reset, step
from envs.features import GLOBAL
from train.evaluate import episode_keys, eval_config


def collect(net, params, sizes, seeds: int = 8, decisions: int = 256, base: EnvConfig | None = None) -> dict:
    """Parameters are an argument of the compiled program, so checkpoints of one architecture share it."""
    out = {}
    for n in sizes:
        env_params = make_params(eval_config(n, base))

        def episode(params, key, env_params=env_params):
            k_reset, _ = jax.random.split(key)
            obs, state = reset(k_reset, env_params)

            def body(carry, _):
                obs, state = carry
                logits, _, aux = net.apply(params, obs)
                action = jnp.argmax(logits).astype(jnp.int32)
                rec = {"h": aux["h"], "attention": aux["attention"], "logits": jnp.where(obs.action_mask, logits, -jnp.inf),
                       "n_active": obs.globals[GLOBAL["n_active"]], "valid": ~state.done}
                obs, state, _, _, _ = step(key, state, action, env_params)
                return (obs, state), rec

            _, rec = jax.lax.scan(body, (obs, state), length=decisions)
            return rec

        rec = jax.device_get(jax.jit(jax.vmap(episode, in_axes=(None, 0)))(params, episode_keys(seeds)))
        valid = np.asarray(rec["valid"]).reshape(-1)
        out[int(n)] = {k: np.asarray(v).reshape((-1,) + np.asarray(v).shape[2:])[valid]
                       for k, v in rec.items() if k != "valid"}
    return out
