"""`python -m train.ppo`: PPO for the SCALE policy, end to end on the accelerator.

PureJaxRL shape: `make_train(config)` builds pure functions; one PPO update is
a `lax.scan` over the rollout (vmapped envs with auto-reset) followed by GAE
and a `lax.scan` over epochs x minibatches. `train(rng)` is the whole run as
one more scan (jit it, vmap it over seeds). The CLI runs the same update as
jitted chunks of `updates_per_chunk` inside a Python loop that logs, evaluates,
checkpoints and shows progress (Stoix style).

    python -m train.ppo                                   # the default (cpu preset, ~15 min on 2 cores)
    python -m train.ppo --preset gpu --srr_kl=0.01 --srr_decorrelation=0.1
    python -m train.ppo --resume runs/ppo/20261122-101500  # continue a run
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from envs import EnvConfig, make_params
from envs.types import Observation
from envs.wrappers import VecEnv, VecState
from jaxsched.policy import PolicyConfig, SchedulerNet, apply_batch
from jaxsched.srr import feature_stats, srr_loss
from train.config import PPOConfig


class Transition(NamedTuple):
    obs: Observation
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array


class RunnerState(NamedTuple):
    train_state: TrainState
    env_state: VecState
    obs: Observation
    rng: jax.Array
    update: jax.Array  # updates done
    hyper: dict  # loss weights as data (srr_decorrelation, srr_kl, ent_coef): one compiled program serves any values


HYPER_FIELDS = ("lr", "srr_decorrelation", "srr_kl", "ent_coef")


def hyper_from(config: PPOConfig) -> dict:
    return {k: jnp.float32(getattr(config, k)) for k in HYPER_FIELDS}


def policy_config(config: PPOConfig) -> PolicyConfig:
    return PolicyConfig(embed_dim=config.embed_dim, num_heads=config.num_heads, gnn_layers=config.gnn_layers,
                        hidden=config.hidden, log_n_scaling=config.log_n_scaling)


def env_config(config: PPOConfig, n_servers: int | None = None, workload_seed: int | None = None) -> EnvConfig:
    n = n_servers if n_servers is not None else max(config.train_servers)
    return EnvConfig(n_servers=n, max_servers=max(n, config.padded_servers) if n_servers is None else None,
                     rho=config.rho, workflows_per_server=config.workflows_per_server,
                     workload_seed=config.workload_seed if workload_seed is None else workload_seed)


def make_vec_env(config: PPOConfig) -> VecEnv:
    params = make_params(env_config(config))
    sizes = None
    if len(config.train_servers) > 1 or config.padded_servers != config.train_servers[0]:
        sizes = jnp.asarray([config.train_servers[i % len(config.train_servers)] for i in range(config.num_envs)], jnp.int32)
    return VecEnv(params, config.num_envs, reset_ratio=config.reset_ratio, env_servers=sizes)


def lr_shape(config: PPOConfig):
    """The learning-rate schedule over gradient steps with peak 1 (the peak, `hyper["lr"]`, is data)."""
    lr = 1.0
    steps_per_update = config.update_epochs * config.num_minibatches
    total = config.total_updates * steps_per_update
    warm = config.warmup_updates * steps_per_update
    if config.lr_schedule == "constant":
        main = optax.constant_schedule(lr)
    elif config.lr_schedule == "linear":
        main = optax.linear_schedule(lr, 0.0, max(total - warm, 1))
    else:
        main = optax.cosine_decay_schedule(lr, max(total - warm, 1))
    if warm:
        return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), main], [warm])
    return main


def gae(traj: Transition, last_value, gamma: float, lam: float):
    """Generalized advantage estimates [S, E] and value targets; `done` ends an episode at that step
    (the next observation belongs to a fresh one)."""
    def body(carry, t):
        adv, next_value = carry
        nonterminal = 1.0 - t.done.astype(jnp.float32)
        delta = t.reward + gamma * next_value * nonterminal - t.value
        adv = delta + gamma * lam * nonterminal * adv
        return (adv, t.value), adv

    _, advantages = jax.lax.scan(body, (jnp.zeros_like(last_value), last_value), traj, reverse=True)
    return advantages, advantages + traj.value


def ppo_loss(params, net: SchedulerNet, batch, config: PPOConfig, hyper: dict):
    traj, advantages, targets = batch
    logits, value, aux = apply_batch(net, params, traj.obs)
    logp_all = jax.nn.log_softmax(logits)
    logp = jnp.take_along_axis(logp_all, traj.action[:, None], axis=1)[:, 0]
    ratio = jnp.exp(logp - traj.log_prob)
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    actor = -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps) * adv))
    v_clip = traj.value + jnp.clip(value - traj.value, -config.clip_eps, config.clip_eps)
    critic = 0.5 * jnp.mean(jnp.maximum((value - targets) ** 2, (v_clip - targets) ** 2))
    probs = jnp.exp(logp_all)
    entropy = -jnp.mean(jnp.sum(jnp.where(traj.obs.action_mask, probs * logp_all, 0.0), axis=1))
    srr, srr_terms = srr_loss(aux["h"], hyper["srr_decorrelation"], hyper["srr_kl"])
    total = actor + config.vf_coef * critic - hyper["ent_coef"] * entropy + srr
    stats = {"loss/total": total, "loss/actor": actor, "loss/critic": critic, "loss/entropy": entropy,
             "loss/approx_kl": jnp.mean((ratio - 1) - jnp.log(ratio)),
             "loss/clip_frac": jnp.mean(jnp.abs(ratio - 1) > config.clip_eps),
             **{f"srr/{k[4:]}": v for k, v in srr_terms.items()},
             **{f"feature/{k}": v for k, v in feature_stats(aux["h"]).items()}}
    return total, stats


class Trainer(NamedTuple):
    """The pure pieces `make_train` builds (jit them as needed)."""

    init: Callable  # rng -> RunnerState
    rollout: Callable  # (params, env_state, obs, rng, length) -> ((env_state, obs, rng), (Transition, episode info))
    update: Callable  # RunnerState -> (RunnerState, metrics)
    update_chunk: Callable  # (RunnerState, n) -> (RunnerState, last metrics, stacked metrics)
    train: Callable  # rng -> (RunnerState, per-update metrics): the whole run
    net: SchedulerNet


def make_train(config: PPOConfig, sharding=None) -> Trainer:
    """Pure pieces of training (see `Trainer`).

    `sharding`: an optional `jax.sharding.NamedSharding` for the env batch axis (data parallelism);
    parameters stay replicated and XLA averages gradients across devices once per minibatch.
    """
    config.validate()
    venv = make_vec_env(config)
    net = SchedulerNet(policy_config(config))
    # Adam with the schedule's shape; the peak lr multiplies the update as data (hyper["lr"]), so runs
    # that differ only in lr, SRR weights or entropy bonus share one compiled program.
    shape = lr_shape(config)
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.scale_by_adam(eps=1e-5),
                     optax.scale_by_schedule(lambda count: -shape(count)))
    batch_size = config.num_envs * config.num_steps
    mb_size = batch_size // config.num_minibatches

    def constrain(tree):
        if sharding is None:
            return tree
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding) if x.ndim >= 1 else x, tree)

    def init(rng) -> RunnerState:
        k_env, k_net, k_run = jax.random.split(rng, 3)
        obs, env_state = venv.reset(k_env)
        one = jax.tree.map(lambda x: x[0], obs)
        params = net.init(k_net, one)
        ts = TrainState.create(apply_fn=net.apply, params=params, tx=tx)
        ts = ts.replace(step=jnp.asarray(0, jnp.int32))  # not weak-typed: a restored checkpoint reuses the program
        return RunnerState(ts, env_state, obs, k_run, jnp.int32(0), hyper_from(config))

    def rollout(params, env_state, obs, rng, length: int):
        """`length` steps of the vmapped envs under the sampling policy (a `lax.scan`)."""
        def env_step(carry, _):
            env_state, obs, rng = carry
            rng, k_act, k_env = jax.random.split(rng, 3)
            obs = constrain(obs)
            logits, value, _ = apply_batch(net, params, obs)
            action = jax.random.categorical(k_act, logits).astype(jnp.int32)
            logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=1)[:, 0]
            next_obs, env_state, reward, done, info = venv.step(k_env, env_state, action)
            ep = {"done": done, "mean_response": info["mean_response"], "episode_return": info["episode_return"],
                  "invalid": info["invalid_action"]}
            return (env_state, next_obs, rng), (Transition(obs, action, logp, value, reward, done), ep)

        return jax.lax.scan(env_step, (env_state, obs, rng), length=length)

    def update(runner: RunnerState):
        ts, env_state, obs, rng, n_up, hyper = runner
        (env_state, obs, rng), (traj, ep) = rollout(ts.params, env_state, obs, rng, config.num_steps)
        _, last_value, _ = apply_batch(net, ts.params, constrain(obs))
        advantages, targets = gae(traj, last_value, config.gamma, config.gae_lambda)

        def epoch(carry, _):
            ts, rng = carry
            rng, k = jax.random.split(rng)
            flat = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), (traj, advantages, targets))
            perm = jax.random.permutation(k, batch_size)
            mbs = jax.tree.map(lambda x: x[perm].reshape((config.num_minibatches, mb_size) + x.shape[1:]), flat)

            def minibatch(ts, mb):
                grads, stats = jax.grad(lambda p: ppo_loss(p, net, constrain(mb), config, hyper), has_aux=True)(ts.params)
                updates, opt_state = ts.tx.update(grads, ts.opt_state, ts.params)
                updates = jax.tree.map(lambda u: u * hyper["lr"], updates)
                params = optax.apply_updates(ts.params, updates)
                return ts.replace(step=ts.step + 1, params=params, opt_state=opt_state), stats

            ts, stats = jax.lax.scan(minibatch, ts, mbs)
            return (ts, rng), stats

        (ts, rng), stats = jax.lax.scan(epoch, (ts, rng), length=config.update_epochs)
        metrics = jax.tree.map(jnp.mean, stats)
        n_done = jnp.sum(ep["done"])
        metrics.update({
            "train/episodes": n_done,
            "train/mean_response": jnp.sum(jnp.where(ep["done"], ep["mean_response"], 0.0)) / jnp.maximum(n_done, 1),
            "train/episode_return": jnp.sum(jnp.where(ep["done"], ep["episode_return"], 0.0)) / jnp.maximum(n_done, 1),
            "train/reward_per_step": jnp.mean(traj.reward),
            "train/invalid_actions": jnp.sum(ep["invalid"]),
        })
        return RunnerState(ts, env_state, obs, rng, n_up + 1, hyper), metrics

    def update_chunk(runner: RunnerState, n: int):
        runner, metrics = jax.lax.scan(lambda r, _: update(r), runner, length=n)
        return runner, jax.tree.map(lambda x: x[-1], metrics), metrics

    def train(rng):
        """The whole run, pure: init, then `total_updates` updates. Returns (runner, per-update metrics)."""
        runner = init(rng)
        return jax.lax.scan(lambda r, _: update(r), runner, length=config.total_updates)

    return Trainer(init=init, rollout=rollout, update=update, update_chunk=update_chunk, train=train, net=net)


def main(argv=None):
    from train.loop import run

    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
