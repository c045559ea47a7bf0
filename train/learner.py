"""PPO for the SCALE policy as pure functions (PureJaxRL shape).

`make_train(config)` builds a `Trainer`: one PPO update is a `lax.scan` over
the rollout (vmapped envs with auto-reset) followed by GAE and a `lax.scan`
over epochs x minibatches. `train(rng)` is a whole run as one more scan: jit
it, and `jax.vmap` it over seeds (the loop trains `num_seeds` seeds that way,
in one compiled program).

Two details that matter for correctness:

* **Waiting transitions.** With optimistic resets (`reset_ratio > 1`) an env
  whose episode ended may wait a few steps for a fresh one; those steps made
  no decision (`info["valid"]` False). They are masked out of every loss term,
  the advantage normalization, SRR's batch statistics and the logged means,
  and GAE neither bootstraps through them nor gives them an advantage.
* **Discounting.** `discount="decision"`: gamma per decision (the classic MDP
  view). `discount="time"`: gamma_per_s ** (seconds to the next decision), the
  semi-MDP view, so the horizon in seconds is the same at every cluster size
  (decisions come faster on larger clusters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from envs import make_params
from envs.types import Observation
from envs.wrappers import VecEnv, VecState
from jaxsched.policy import SchedulerNet, apply_batch
from jaxsched.srr import feature_stats, srr_loss
from train.config import PPOConfig


class Transition(NamedTuple):
    obs: Observation
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array
    valid: jax.Array  # a decision was made (False: an env waiting for a fresh episode)
    elapsed_s: jax.Array  # seconds from this decision to the next one of the episode


class RunnerState(NamedTuple):
    train_state: TrainState
    env_state: VecState
    obs: Observation
    rng: jax.Array
    update: jax.Array  # updates done
    hyper: dict  # lr, SRR weights, entropy bonus as data: one compiled program serves any values


HYPER_FIELDS = ("lr", "srr_decorrelation", "srr_kl", "ent_coef")


def hyper_from(config: PPOConfig) -> dict:
    return {k: jnp.float32(getattr(config, k)) for k in HYPER_FIELDS}


def make_vec_env(config: PPOConfig) -> VecEnv:
    params = make_params(config.env())
    sizes = None
    if len(config.train_servers) > 1 or config.padded_servers != config.train_servers[0]:
        sizes = jnp.asarray([config.train_servers[i % len(config.train_servers)] for i in range(config.num_envs)], jnp.int32)
    return VecEnv(params, config.num_envs, reset_ratio=config.reset_ratio, env_servers=sizes)


def lr_shape(config: PPOConfig):
    """The learning-rate schedule over gradient steps with peak 1 (the peak, `hyper["lr"]`, is data)."""
    steps_per_update = config.update_epochs * config.num_minibatches
    total = config.lr_horizon_updates * steps_per_update
    warm = config.warmup_updates * steps_per_update
    if config.lr_schedule == "constant":
        main = optax.constant_schedule(1.0)
    elif config.lr_schedule == "linear":
        main = optax.linear_schedule(1.0, 0.0, max(total - warm, 1))
    else:
        main = optax.cosine_decay_schedule(1.0, max(total - warm, 1))
    if warm:
        return optax.join_schedules([optax.linear_schedule(0.0, 1.0, warm), main], [warm])
    return main


def discounts(traj: Transition, config: PPOConfig):
    """Per-transition discount to the next decision: gamma, or gamma_per_s ** elapsed seconds."""
    if config.discount == "time":
        return jnp.power(jnp.float32(config.gamma_per_s), traj.elapsed_s)
    return jnp.full(traj.reward.shape, config.gamma, jnp.float32)


def gae(traj: Transition, last_value, discount, lam: float):
    """Generalized advantage estimates [S, E] and value targets.

    `done` ends an episode at that step (the next observation belongs to a fresh one). A
    transition that is not `valid` (an env waiting for a fresh episode) gets advantage 0 and
    passes the running estimate through untouched, so nothing bootstraps through it.
    """
    def body(carry, t):
        adv, next_value = carry
        gamma, valid, done = t[1], t[0].valid, t[0].done
        # selects, not products with (1 - done): the value after an episode's end may be a waiting
        # env's frozen (and possibly non-finite) estimate, and 0 * inf is NaN
        delta = t[0].reward + jnp.where(done, 0.0, gamma * next_value) - t[0].value
        new_adv = delta + jnp.where(done, 0.0, gamma * lam * adv)
        adv = jnp.where(valid, new_adv, adv)
        next_value = jnp.where(valid, t[0].value, next_value)
        return (adv, next_value), jnp.where(valid, new_adv, 0.0)

    _, advantages = jax.lax.scan(body, (jnp.zeros_like(last_value), last_value), (traj, discount), reverse=True)
    return advantages, advantages + traj.value


def masked_mean(x, w):
    """Mean of x over the rows with w > 0 (where, not a product: a masked row's inf or NaN stays out)."""
    return jnp.sum(jnp.where(w > 0, x * w, 0.0)) / jnp.maximum(jnp.sum(w), 1.0)


def zero_invalid(tree, valid):
    """Zero every row (leading axis) of `tree` where `valid` is False: a waiting env's frozen
    observation may hold infinities (a finished episode's clock arithmetic), and the gradient of a
    masked-out NaN is still NaN, so those rows must not reach the network at all."""
    def one(x):
        x = jnp.asarray(x)
        return jnp.where(jnp.reshape(valid, valid.shape + (1,) * (x.ndim - valid.ndim)), x, jnp.zeros((), x.dtype))

    return jax.tree.map(one, tree)


def ppo_part(params, net: SchedulerNet, batch, config: PPOConfig, hyper: dict):
    """(PPO loss, attention feature h [B, d], row weights [B], stats). The stats' SRR and feature
    values are computed on stop_gradient(h): logging them costs no backward pass."""
    valid = batch[0].valid
    traj, advantages, targets = zero_invalid(batch, valid)
    w = valid.astype(jnp.float32)
    logits, value, aux = apply_batch(net, params, traj.obs)
    logp_all = jax.nn.log_softmax(logits)
    logp = jnp.take_along_axis(logp_all, traj.action[:, None], axis=1)[:, 0]
    # masked rows get ratio 1: their (meaningless) log-probabilities cannot overflow into the gradient
    ratio = jnp.exp(jnp.where(valid, logp - traj.log_prob, 0.0))
    mean = masked_mean(advantages, w)
    std = jnp.sqrt(masked_mean((advantages - mean) ** 2, w))
    adv = (advantages - mean) / (std + 1e-8)
    actor = -masked_mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps) * adv), w)
    v_clip = traj.value + jnp.clip(value - traj.value, -config.clip_eps, config.clip_eps)
    critic = 0.5 * masked_mean(jnp.maximum((value - targets) ** 2, (v_clip - targets) ** 2), w)
    probs = jnp.exp(logp_all)
    entropy = -masked_mean(jnp.sum(jnp.where(traj.obs.action_mask, probs * logp_all, 0.0), axis=1), w)
    h = aux["h"]
    h_logged = jax.lax.stop_gradient(h)
    _, srr_terms = srr_loss(h_logged, 0.0, 0.0, weights=w)
    ppo = actor + config.vf_coef * critic - hyper["ent_coef"] * entropy
    stats = {"loss/ppo": ppo, "loss/actor": actor, "loss/critic": critic, "loss/entropy": entropy,
             "loss/approx_kl": masked_mean((ratio - 1) - jnp.log(ratio), w),
             "loss/clip_frac": masked_mean((jnp.abs(ratio - 1) > config.clip_eps).astype(jnp.float32), w),
             **{f"srr/{k[4:]}": v for k, v in srr_terms.items()},
             **{f"feature/{k}": v for k, v in feature_stats(h_logged, weights=w).items()}}
    return ppo, h, w, stats


def ppo_loss_terms(params, net: SchedulerNet, batch, config: PPOConfig, hyper: dict):
    """(PPO part, SRR decorrelation, SRR KL, stats): the loss's three parts, unweighted SRR terms,
    each differentiable (the per-part gradient norms need all three)."""
    ppo, h, w, stats = ppo_part(params, net, batch, config, hyper)
    _, terms = srr_loss(h, 0.0, 0.0, weights=w)
    return ppo, terms["srr_decorrelation"], terms["srr_kl"], stats


def srr_penalty(h, w, hyper: dict):
    """The weighted SRR loss on h, behind a `lax.cond` on its weights: at weight 0 (the default)
    neither it nor its backward pass (a 64x64 log-determinant's inverse, the correlation matrix)
    is computed. A vmap with batched weights would turn the cond into a select that runs both
    sides; `train.loop.over_seeds` passes the seeds' shared weights unbatched. When on, the
    SRR forward runs twice (here and for the logged values on stop_gradient(h)): a 64x64 pass,
    under 1% of a step."""
    dec_w, kl_w = hyper["srr_decorrelation"], hyper["srr_kl"]

    def on(h):
        return srr_loss(h, dec_w, kl_w, weights=w)[0]

    return jax.lax.cond((dec_w != 0) | (kl_w != 0), on, lambda h: jnp.zeros((), h.dtype), h)


def ppo_loss(params, net: SchedulerNet, batch, config: PPOConfig, hyper: dict):
    ppo, h, w, stats = ppo_part(params, net, batch, config, hyper)
    total = ppo + srr_penalty(h, w, hyper)
    return total, {"loss/total": total, **stats}


def loss_gradients(params, net: SchedulerNet, batch, config: PPOConfig, hyper: dict):
    """(gradient of the total loss, stats). With `config.log_grad_norms` the stats also carry the
    global gradient norm of each part: `grad/ppo` (actor + critic + entropy) and, per unit weight,
    `grad/srr_decorrelation` and `grad/srr_kl` (multiply by the weight for the term's share), so a
    run shows whether its SRR weights are in balance with PPO. That costs one backward pass per part
    (a reverse-mode Jacobian of the three parts); off, it is one ordinary gradient."""
    if not config.log_grad_norms:
        return jax.grad(lambda p: ppo_loss(p, net, batch, config, hyper), has_aux=True)(params)

    def parts(p):
        ppo, dec, kl, stats = ppo_loss_terms(p, net, batch, config, hyper)
        return jnp.stack([ppo, dec, kl]), stats

    jac, stats = jax.jacrev(parts, has_aux=True)(params)
    weights = jnp.stack([jnp.float32(1.0), hyper["srr_decorrelation"], hyper["srr_kl"]])
    grads = jax.tree.map(lambda j: jnp.tensordot(weights, j, axes=1), jac)
    norms = [optax.global_norm(jax.tree.map(lambda j, i=i: j[i], jac)) for i in range(3)]
    total = stats["loss/ppo"] + weights[1] * stats["srr/decorrelation"] + weights[2] * stats["srr/kl"]
    return grads, {"loss/total": total, **stats, "grad/ppo": norms[0], "grad/srr_decorrelation": norms[1], "grad/srr_kl": norms[2]}


class Trainer(NamedTuple):
    """The pure pieces `make_train` builds (jit them as needed; vmap over seeds)."""

    init: Callable  # rng -> RunnerState
    rollout: Callable  # (params, env_state, obs, rng, length) -> ((env_state, obs, rng), (Transition, episode info))
    update: Callable  # RunnerState -> (RunnerState, metrics)
    update_chunk: Callable  # (RunnerState, n[, length]) -> (RunnerState, last metrics, stacked metrics)
    train: Callable  # rng -> (RunnerState, per-update metrics): the whole run
    net: SchedulerNet


def make_train(config: PPOConfig, sharding=None) -> Trainer:
    """Pure pieces of training (see `Trainer`).

    `sharding`: an optional `jax.sharding.NamedSharding` for the env batch axis (data parallelism);
    parameters stay replicated and XLA averages gradients across devices once per minibatch.
    """
    config.validate()
    venv = make_vec_env(config)
    net = SchedulerNet(config.policy())
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

    def minibatches(key, tree):
        """[S, E, ...] leaves -> [num_minibatches, mb_size, ...]: one random permutation of the batch
        (the same partition whatever the device count, so sharded runs match one-device runs)."""
        flat = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), tree)
        perm = jax.random.permutation(key, batch_size)
        return jax.tree.map(lambda x: x[perm].reshape((config.num_minibatches, mb_size) + x.shape[1:]), flat)

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
            tr = Transition(obs, action, logp, value, reward, done, info["valid"], info["elapsed_s"])
            return (env_state, next_obs, rng), (tr, ep)

        return jax.lax.scan(env_step, (env_state, obs, rng), length=length)

    def update(runner: RunnerState):
        ts, env_state, obs, rng, n_up, hyper = runner
        (env_state, obs, rng), (traj, ep) = rollout(ts.params, env_state, obs, rng, config.num_steps)
        _, last_value, _ = apply_batch(net, ts.params, constrain(obs))
        advantages, targets = gae(traj, last_value, discounts(traj, config), config.gae_lambda)

        def epoch(carry, _):
            ts, rng = carry
            rng, k = jax.random.split(rng)
            mbs = minibatches(k, (traj, advantages, targets))

            def minibatch(ts, mb):
                grads, stats = loss_gradients(ts.params, net, constrain(mb), config, hyper)
                updates, opt_state = ts.tx.update(grads, ts.opt_state, ts.params)
                updates = jax.tree.map(lambda u: u * hyper["lr"], updates)
                params = optax.apply_updates(ts.params, updates)
                return ts.replace(step=ts.step + 1, params=params, opt_state=opt_state), stats

            ts, stats = jax.lax.scan(minibatch, ts, mbs)
            return (ts, rng), stats

        (ts, rng), stats = jax.lax.scan(epoch, (ts, rng), length=config.update_epochs)
        metrics = jax.tree.map(jnp.mean, stats)
        n_done = jnp.sum(ep["done"])
        valid = traj.valid.astype(jnp.float32)
        nan = jnp.float32(jnp.nan)
        metrics.update({
            "train/episodes": n_done,
            # no episode ended in this update: NaN, not 0 (which would read as a perfect score)
            "train/mean_response": jnp.where(n_done > 0, jnp.sum(jnp.where(ep["done"], ep["mean_response"], 0.0))
                                             / jnp.maximum(n_done, 1), nan),
            "train/episode_return": jnp.where(n_done > 0, jnp.sum(jnp.where(ep["done"], ep["episode_return"], 0.0))
                                              / jnp.maximum(n_done, 1), nan),
            "train/reward_per_step": masked_mean(traj.reward, valid),
            "train/invalid_actions": jnp.sum(ep["invalid"]),
            "train/waiting_share": 1.0 - jnp.mean(valid),
        })
        return RunnerState(ts, env_state, obs, rng, n_up + 1, hyper), metrics

    traced_update = jax.jit(update)  # inlined where it is called; jit only so its trace is cached

    def update_chunk(runner: RunnerState, n, length: int | None = None):
        """`n` updates. With `length` (static, >= n) the count may be traced: one compiled program then
        serves every chunk of up to `length` updates (the loop's short chunks at evaluations,
        checkpoints and stop points cost no recompilation); the stacked metrics have `length` rows,
        the first `n` real and the rest zeros."""
        if length is None:
            runner, metrics = jax.lax.scan(lambda r, _: update(r), runner, length=n)
            return runner, jax.tree.map(lambda x: x[-1], metrics), metrics
        shapes = jax.eval_shape(traced_update, runner)[1]  # the trace is cached: the loop body reuses it
        buf = jax.tree.map(lambda s: jnp.zeros((length, *s.shape), s.dtype), shapes)

        def body(i, carry):
            r, rows = carry
            r, m = traced_update(r)
            return r, jax.tree.map(lambda b, x: b.at[i].set(x), rows, m)

        runner, rows = jax.lax.fori_loop(0, n, body, (runner, buf))
        return runner, jax.tree.map(lambda x: x[n - 1], rows), rows

    def train(rng):
        """The whole run, pure: init, then `total_updates` updates. Returns (runner, per-update metrics)."""
        runner = init(rng)
        return jax.lax.scan(lambda r, _: update(r), runner, length=config.total_updates)

    return Trainer(init=init, rollout=rollout, update=update, update_chunk=update_chunk, train=train, net=net)
