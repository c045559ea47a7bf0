"""Greedy evaluation of network parameters at several cluster sizes, compiled once.

Every eval size runs in one program padded to the largest (a seed draws the
same episode whatever the padding), vmapped over (size, seed) pairs with the
size as data, so periodic evaluation during training costs one compilation.
The metrics are the evaluation harness's (`train.evaluate`), normalized per
seed to round-robin on the same episodes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs import EnvConfig, make_params
from jaxsched.baselines import round_robin
from train.evaluate import METRICS, episode_keys, mean_ci, play


class PolicyEvaluator:
    def __init__(self, net, sizes, seeds: int, base: EnvConfig):
        self.net, self.sizes, self.seeds = net, tuple(int(n) for n in sizes), int(seeds)
        big = max(self.sizes)
        self.params = make_params(base.replace(n_servers=big, max_servers=big, window=None, max_workflows=None))
        n = jnp.repeat(jnp.asarray(self.sizes, jnp.int32), self.seeds)
        keys = jnp.tile(episode_keys(self.seeds), (len(self.sizes), 1))
        env_params = self.params

        def one(policy_fn, net_params, n_servers, key):
            return play(lambda k, o: policy_fn(net_params, k, o), key, env_params.replace(n_servers=n_servers))

        def greedy(net_params, key, obs):
            del key
            return jnp.argmax(net.apply(net_params, obs)[0]).astype(jnp.int32)

        self._net = jax.jit(lambda q: jax.vmap(lambda ns, k: one(greedy, q, ns, k))(n, keys))
        self._rr = jax.jit(lambda: jax.vmap(lambda ns, k: one(lambda _, k2, o: round_robin(k2, o), None, ns, k))(n, keys))
        self._baseline = None

    def _split(self, metrics) -> dict[int, dict[str, np.ndarray]]:
        host = jax.device_get(metrics)
        return {size: {m: np.asarray(host[m][i * self.seeds:(i + 1) * self.seeds], np.float64) for m in METRICS}
                for i, size in enumerate(self.sizes)}

    def raw(self, net_params) -> dict[int, dict[str, np.ndarray]]:
        return self._split(self._net(net_params))

    def __call__(self, net_params) -> dict[str, float]:
        """Flat metrics `eval/<N>/<metric>` and `eval/<N>/norm_<metric>` (ratio to round-robin, mean over seeds)."""
        if self._baseline is None:
            self._baseline = self._split(self._rr())
        out = {}
        for size, metrics in self.raw(net_params).items():
            for m in METRICS:
                out[f"eval/{size}/{m}"] = float(metrics[m].mean())
                ratio = metrics[m] / np.maximum(self._baseline[size][m], 1e-12)
                out[f"eval/{size}/norm_{m}"], lo, hi = mean_ci(ratio)
        return out
