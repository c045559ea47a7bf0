"""Greedy evaluation of network parameters at several cluster sizes, compiled once.

Every eval size runs in one program padded to the largest (a seed draws the
same episode whatever the padding), vmapped over (size, episode) pairs with
the size as data, and over the seeds of a K-seed run, so periodic evaluation
during training costs one compilation. The metrics are the evaluation
harness's (`jaxsched.evaluation`), as ratios per episode to round-robin
(`norm_*`) and to EFT (`vs_eft_*`) on the same episodes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs import EnvConfig, make_params
from jaxsched.baselines import earliest_finish, round_robin
from jaxsched.evaluation import METRICS, episode_keys, mean_ci, play

REFERENCES = {"norm": round_robin, "vs_eft": earliest_finish}
_BASELINES: dict = {}  # (sizes, seeds, EnvConfig) -> prefix -> size -> metric -> [seeds]: runs in one process share them


def _baselines(cache_key, references, split) -> dict:
    """The reference policies' metrics on the evaluation episodes, computed once per process and
    configuration (they depend on nothing a run trains)."""
    if cache_key not in _BASELINES:
        host = jax.device_get(jax.jit(references)())
        per = len(cache_key[0]) * cache_key[1]  # (size, episode) pairs per reference policy
        _BASELINES[cache_key] = {prefix: split(jax.tree.map(lambda x, i=i: x[i * per:(i + 1) * per], host))
                                 for i, prefix in enumerate(REFERENCES)}
    return _BASELINES[cache_key]


class PolicyEvaluator:
    def __init__(self, net, sizes, seeds: int, base: EnvConfig, first_episode: int = 0):
        self.net, self.sizes, self.seeds = net, tuple(int(n) for n in sizes), int(seeds)
        big = max(self.sizes)
        self.params = make_params(base.replace(n_servers=big, max_servers=big, window=None, max_workflows=None))
        n = jnp.repeat(jnp.asarray(self.sizes, jnp.int32), self.seeds)
        keys = jnp.tile(episode_keys(self.seeds, first_episode), (len(self.sizes), 1))
        env_params = self.params

        def one(policy_fn, net_params, n_servers, key):
            return play(lambda k, o: policy_fn(net_params, k, o), key, env_params.replace(n_servers=n_servers))

        def greedy(net_params, key, obs):
            del key
            return jnp.argmax(net.apply(net_params, obs)[0]).astype(jnp.int32)

        per_pair = lambda q: jax.vmap(lambda ns, k: one(greedy, q, ns, k))(n, keys)  # noqa: E731
        self._net = jax.jit(per_pair)
        self._net_seeds = jax.jit(jax.vmap(per_pair))  # stacked parameters of K seeds
        refs = list(REFERENCES.values())

        def references():  # every reference policy in one program (one compilation, not one each)
            pid = jnp.repeat(jnp.arange(len(refs)), n.shape[0])
            ref = lambda i, ns, k: one(lambda _, k2, o: jax.lax.switch(i, refs, k2, o), None, ns, k)  # noqa: E731
            return jax.vmap(ref)(pid, jnp.tile(n, len(refs)), jnp.tile(keys, (len(refs), 1)))

        self._references = references
        self._cache_key = (self.sizes, self.seeds, base, int(first_episode))
        self._baselines = None

    def _split(self, metrics) -> dict[int, dict[str, np.ndarray]]:
        host = jax.device_get(metrics)
        return {size: {m: np.asarray(host[m][i * self.seeds:(i + 1) * self.seeds], np.float64) for m in METRICS}
                for i, size in enumerate(self.sizes)}

    def raw(self, net_params) -> dict[int, dict[str, np.ndarray]]:
        return self._split(self._net(net_params))

    def _flat(self, raw) -> dict[str, float]:
        if self._baselines is None:
            self._baselines = _baselines(self._cache_key, self._references, self._split)
        out = {}
        for size, metrics in raw.items():
            for m in METRICS:
                out[f"eval/{size}/{m}"] = float(metrics[m].mean())
                for prefix, base in self._baselines.items():
                    ratio = metrics[m] / np.maximum(base[size][m], 1e-12)
                    out[f"eval/{size}/{prefix}_{m}"] = mean_ci(ratio)[0]
        return out

    def __call__(self, net_params) -> dict[str, float]:
        """Flat metrics `eval/<N>/<metric>`, `eval/<N>/norm_<metric>` (mean per-episode ratio to round-robin)
        and `eval/<N>/vs_eft_<metric>` (to EFT)."""
        return self._flat(self.raw(net_params))

    def seeds_stacked(self, stacked_params) -> list[dict[str, float]]:
        """The same for the K seeds of stacked parameters (leading axis K), in one call."""
        host = jax.device_get(self._net_seeds(stacked_params))
        k = jax.tree.leaves(host)[0].shape[0]
        return [self._flat(self._split(jax.tree.map(lambda x, i=i: x[i], host))) for i in range(k)]
