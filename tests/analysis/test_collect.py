"""`analysis.collect` against a plain Python rollout of the same greedy policy."""

import jax
import jax.numpy as jnp
import numpy as np

from analysis.collect import collect
from envs import EnvConfig, make_params
from envs.env import reset, step
from jaxsched.evaluation import episode_keys, eval_config
from jaxsched.policy import PolicyConfig, SchedulerNet

NET = SchedulerNet(PolicyConfig(embed_dim=16, num_heads=2, hidden=32, gnn_layers=1))
BASE = EnvConfig()


def python_rollout(params, env_params, key):
    """Every decision of one greedy episode: (h, n_allowed) per decision."""
    obs, state = reset(jax.random.split(key)[0], env_params)
    apply, step_ = jax.jit(NET.apply), jax.jit(step)
    hs, allowed = [], []
    while not bool(state.done):
        logits, _, aux = apply(params, obs)
        hs.append(np.asarray(aux["h"]))
        allowed.append(int(np.sum(obs.action_mask)))
        obs, state, _, _, _ = step_(key, state, jnp.argmax(logits).astype(jnp.int32), env_params)
    return np.stack(hs), np.array(allowed)


def test_samples_are_spread_evenly_over_whole_episodes():
    env_params = make_params(eval_config(4, BASE))
    keys = episode_keys(2)
    obs, _ = reset(keys[0], env_params)
    params = NET.init(jax.random.PRNGKey(3), obs)
    full = [python_rollout(params, env_params, k) for k in keys]
    d = 10
    got = collect(NET, params, [4], seeds=2, decisions=d, base=BASE)[4]
    assert np.array_equal(got["episode"], np.repeat([0, 1], d))
    for e, (h, allowed) in enumerate(full):
        at = (np.arange(d) * len(h)) // d  # evenly spaced over the episode, last ones near its end
        assert at[-1] >= len(h) - len(h) // d - 1
        np.testing.assert_allclose(got["h"][got["episode"] == e], h[at], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got["n_allowed"][got["episode"] == e], allowed[at])
    # an episode shorter than the sample size contributes every decision it has
    everything = collect(NET, params, [4], seeds=2, decisions=10_000, base=BASE, first_seed=0)[4]
    assert len(everything["h"]) == sum(len(h) for h, _ in full)
    np.testing.assert_allclose(everything["h"][everything["episode"] == 1], full[1][0], rtol=1e-5, atol=1e-5)
    # a later first seed draws other episodes
    other = collect(NET, params, [4], seeds=2, decisions=d, base=BASE, first_seed=2)[4]
    assert set(other["episode"]) == {2, 3} and not np.allclose(other["h"], got["h"])
