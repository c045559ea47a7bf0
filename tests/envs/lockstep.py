"""Drive the JAX env and the reference simulator through the same episode, comparing as they go."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from envs import make_params, reset, step
from envs.instance import materialize
from envs.reference import ReferenceSim

TIME_ATOL = 2e-3  # seconds; float32 times reach ~1e3 s
REWARD_ATOL = 5e-5


@functools.cache
def jitted():
    return jax.jit(reset), jax.jit(step)


class Lockstep:
    def __init__(self, config, seed: int):
        self.config = config
        self.params = make_params(config)
        self.key = jax.random.PRNGKey(seed)
        self.inst = materialize(self.key, config, self.params)
        self.sim = ReferenceSim(self.inst, max_servers=self.params.max_servers, max_tasks=self.params.max_tasks,
                                max_edges=self.params.bank.edges.shape[1])
        self.rng = np.random.default_rng(seed)
        self.resyncs = 0
        j_reset, self.j_step = jitted()
        self.obs, self.state = j_reset(self.key, self.params)
        self.robs = self.sim.reset()
        self.rows, self.rewards = [], []

    def jax_current(self):
        w = int(self.state.cur_slot)
        return int(self.state.slots.seq[w]), int(self.state.cur_task)

    def sync_order(self):
        """Same pending decision on both sides; a float32 near-tie may order two tasks differently."""
        jw = self.jax_current()
        if jw != self.sim.current:
            # Only a near-tie may be resolved differently; an exact tie must follow the tie-break rule.
            assert self.sim.ready_time(*jw) != self.sim.clock, f"tie broken differently: jax {jw}, ref {self.sim.current}"
            self.sim.force_next(*jw, tol=TIME_ATOL)
            self.resyncs += 1
            self.robs = self.sim.observe()
        assert abs(float(self.state.clock) - self.sim.clock) < TIME_ATOL + 1e-5 * self.sim.clock

    def compare_obs(self):
        o, r = jax.device_get(self.obs), self.robs
        np.testing.assert_array_equal(o.action_mask, r.action_mask)
        np.testing.assert_array_equal(o.dag.senders, r.senders)
        np.testing.assert_array_equal(o.dag.receivers, r.receivers)
        assert int(o.dag.n_edges) == r.n_edges
        np.testing.assert_array_equal(o.dag.node_mask, r.node_mask)
        assert int(o.dag.current) == r.current
        for name, a, b in (("task", o.task, r.task), ("servers", o.servers, r.servers),
                           ("nodes", o.dag.nodes, r.nodes), ("globals", o.globals, r.globals)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=TIME_ATOL, err_msg=name)

    def step(self, action: int):
        self.obs, self.state, reward, done, info = self.j_step(self.key, self.state, jnp.int32(action), self.params)
        robs, rreward, rdone, rinfo = self.sim.step(action)
        d, rd = jax.device_get(info["decision"]), rinfo["decision"]
        for f in ("seq", "workflow", "task", "server", "n_evicted", "n_kept"):
            assert int(getattr(d, f)) == rd[f], (f, int(getattr(d, f)), rd[f])
        assert bool(d.prefix_hit) == rd["prefix_hit"]
        for f in ("decision_time", "start", "finish", "load_s", "prefix_s", "remote_s", "prefill_s", "decode_s"):
            np.testing.assert_allclose(float(getattr(d, f)), rd[f], rtol=1e-5, atol=TIME_ATOL, err_msg=f)
        np.testing.assert_allclose(float(reward), rreward, rtol=1e-4, atol=REWARD_ATOL)
        assert bool(done) == rdone
        self.rows.append(rd)
        self.rewards.append(float(reward))
        self.robs, self.info, self.rinfo = robs, jax.device_get(info), rinfo
        return bool(done)

    def run(self, choose, compare_obs_every: int = 1):
        """choose(obs, rng) -> action among valid servers. Returns the number of decisions."""
        k = 0
        while True:
            self.sync_order()
            if k % compare_obs_every == 0:
                self.compare_obs()
            action = choose(jax.device_get(self.obs), self.rng)
            k += 1
            if self.step(action):
                break
        for f in ("mean_response", "mean_slowdown", "p95_response", "makespan", "utilization", "episode_return"):
            np.testing.assert_allclose(float(self.info[f]), self.rinfo[f], rtol=1e-4, atol=1e-3, err_msg=f)
        return k


def random_valid(obs, rng):
    return int(rng.choice(np.flatnonzero(obs.action_mask)))
