"""The pure PPO pieces: waiting transitions are masked out, discounting per decision or per second."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsched import srr
from train.config import PRESETS, PPOConfig
from train.learner import discounts, gae, loss_gradients, make_train, ppo_loss

# 8 envs, one fresh episode per step, 2-workflow episodes that all end within a few steps of each other
WAITS = PPOConfig(**PRESETS["cpu-quick"]).replace(num_envs=8, reset_ratio=8, train_servers=(2,), eval_servers=(2,),
                                                  workflows_per_server=1.0, num_steps=48, num_minibatches=2,
                                                  best_metric="eval/2/norm_mean_response")


@pytest.fixture(scope="module")
def rollout():
    trainer = make_train(WAITS)
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    (_, obs, _), (traj, _) = jax.jit(lambda r: trainer.rollout(r.train_state.params, r.env_state, r.obs, r.rng,
                                                               WAITS.num_steps))(runner)
    _, last_value, _ = jax.jit(lambda p, o: jax.vmap(trainer.net.apply, in_axes=(None, 0))(p, o))(
        runner.train_state.params, obs)
    return trainer, runner, jax.device_get(traj), last_value


def test_waiting_envs_are_flagged_and_make_no_decision(rollout):
    _, _, traj, _ = rollout
    waiting = ~traj.valid
    assert waiting.any() and traj.valid.any(), "the setting must force waits"
    assert np.all(traj.reward[waiting] == 0) and not traj.done[waiting].any()
    assert np.all(traj.elapsed_s[waiting] == 0)
    # a wait follows an episode's end (done) in the same env, never a live step
    s, e = np.nonzero(waiting)
    for t, env in zip(s, e):
        if t > 0:
            assert traj.done[t - 1, env] or waiting[t - 1, env]


def perturbed(traj, key=0):
    """The trajectory with wild rewards, values and observations wherever no decision was made."""
    rng = np.random.default_rng(key)
    bad = ~traj.valid

    def noise(x):
        x = np.array(x)
        shape = bad.shape + (1,) * (x.ndim - 2)
        return np.where(np.broadcast_to(bad.reshape(shape), x.shape), rng.normal(size=x.shape).astype(x.dtype) * 50, x)

    obs = traj.obs.replace(task=noise(traj.obs.task), servers=noise(traj.obs.servers),
                           dag=traj.obs.dag.replace(nodes=noise(traj.obs.dag.nodes)))
    return traj._replace(obs=obs, reward=noise(traj.reward), value=noise(traj.value), log_prob=noise(traj.log_prob))


def test_gae_gives_waits_no_advantage_and_does_not_bootstrap_through_them(rollout):
    _, _, traj, last_value = rollout
    disc = discounts(traj, WAITS)
    adv, targets = gae(traj, last_value, disc, WAITS.gae_lambda)
    adv2, _ = gae(perturbed(traj), last_value, disc, WAITS.gae_lambda)
    valid = traj.valid
    assert np.all(np.asarray(adv)[~valid] == 0)
    np.testing.assert_array_equal(np.asarray(adv)[valid], np.asarray(adv2)[valid])


def test_the_loss_and_its_gradient_ignore_waiting_transitions(rollout):
    trainer, runner, traj, last_value = rollout
    adv, targets = gae(traj, last_value, discounts(traj, WAITS), WAITS.gae_lambda)
    hyper = dict(runner.hyper, srr_decorrelation=jnp.float32(0.1), srr_kl=jnp.float32(0.01))

    def flat(tree):
        return jax.tree.map(lambda x: jnp.reshape(x, (-1,) + x.shape[2:]), tree)

    def grads(t):
        return jax.jit(jax.grad(lambda p: ppo_loss(p, trainer.net, flat((t, adv, targets)), WAITS, hyper), has_aux=True))(
            runner.train_state.params)

    g1, s1 = grads(traj)
    g2, s2 = grads(perturbed(traj))
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for k in s1:
        np.testing.assert_array_equal(np.asarray(s1[k]), np.asarray(s2[k]), err_msg=k)
    # and the mask matters: counting the waits as decisions changes the gradient
    g3, _ = grads(traj._replace(valid=np.ones_like(traj.valid)))
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g3)))


def test_gradient_norm_logging_reports_each_part_and_leaves_the_gradient_alone(rollout):
    """--log_grad_norms: the same total gradient (up to rounding) plus each part's norm; the SRR
    terms' norms are those of their own gradients, computed here directly."""
    trainer, runner, traj, last_value = rollout
    adv, targets = gae(traj, last_value, discounts(traj, WAITS), WAITS.gae_lambda)
    hyper = dict(runner.hyper, srr_decorrelation=jnp.float32(0.3), srr_kl=jnp.float32(0.05))
    batch = jax.tree.map(lambda x: jnp.reshape(x, (-1,) + x.shape[2:]), (traj, adv, targets))
    params = runner.train_state.params
    plain, s_plain = jax.jit(lambda p: loss_gradients(p, trainer.net, batch, WAITS, hyper))(params)
    logged = WAITS.replace(log_grad_norms=True)
    g, s = jax.jit(lambda p: loss_gradients(p, trainer.net, batch, logged, hyper))(params)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(g)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert float(s["loss/total"]) == pytest.approx(float(s_plain["loss/total"]), rel=1e-5)
    w = batch[0].valid.astype(jnp.float32)

    def h_of(p):
        return jax.vmap(trainer.net.apply, in_axes=(None, 0))(p, jax.tree.map(
            lambda x: jnp.where(jnp.reshape(batch[0].valid, (-1,) + (1,) * (x.ndim - 1)), x, 0), batch[0].obs))[2]["h"]

    for name, term in (("srr_decorrelation", srr.decorrelation_loss), ("srr_kl", srr.gaussian_kl)):
        direct = jax.jit(jax.grad(lambda p, term=term: term(h_of(p), weights=w)))(params)
        norm = float(jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(direct))))
        assert norm > 0 and float(s[f"grad/{name}"]) == pytest.approx(norm, rel=1e-3), name
    assert float(s["grad/ppo"]) > 0


def test_an_update_with_waits_reports_them():
    trainer = make_train(WAITS)
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(1))
    _, metrics = jax.jit(trainer.update)(runner)
    assert 0 < float(metrics["train/waiting_share"]) < 1
    assert all(np.isfinite(float(v)) for k, v in metrics.items() if not k.startswith("train/mean") and
               not k.startswith("train/episode_return"))


def test_time_discount_follows_elapsed_seconds(rollout):
    _, _, traj, _ = rollout
    c = WAITS.replace(discount="time", gamma_per_s=0.9)
    d = np.asarray(discounts(traj, c))
    np.testing.assert_allclose(d, 0.9 ** np.asarray(traj.elapsed_s), rtol=1e-6)
    assert np.all(d[np.asarray(traj.elapsed_s) == 0] == 1.0)  # simultaneous decisions are not discounted
    np.testing.assert_array_equal(np.asarray(discounts(traj, WAITS)), np.full(traj.reward.shape, WAITS.gamma, np.float32))


def test_gae_matches_a_plain_loop_without_waits():
    rng = np.random.default_rng(0)
    s, e = 7, 3
    reward, value = rng.normal(size=(s, e)).astype(np.float32), rng.normal(size=(s, e)).astype(np.float32)
    done = rng.random((s, e)) < 0.2
    gamma = rng.uniform(0.8, 1.0, size=(s, e)).astype(np.float32)
    last = rng.normal(size=e).astype(np.float32)
    from train.learner import Transition

    traj = Transition(obs=None, action=None, log_prob=None, value=value, reward=reward, done=done,
                      valid=np.ones((s, e), bool), elapsed_s=None)
    adv, _ = gae(traj, last, gamma, 0.9)
    want = np.zeros((s, e))
    nxt_v, nxt_a = last, np.zeros(e)
    for t in reversed(range(s)):
        nt = 1.0 - done[t]
        delta = reward[t] + gamma[t] * nxt_v * nt - value[t]
        nxt_a = delta + gamma[t] * 0.9 * nt * nxt_a
        want[t] = nxt_a
        nxt_v = value[t]
    np.testing.assert_allclose(np.asarray(adv), want, rtol=1e-5, atol=1e-5)


def test_srr_gate_drops_the_terms_only_at_weight_zero(rollout):
    """`srr_penalty` skips the SRR terms (and their backward pass) when both weights are 0: the
    gradient is then the PPO part's alone, and with either weight nonzero it is the full sum."""
    from train.learner import ppo_part

    trainer, runner, traj, last_value = rollout
    adv, targets = gae(traj, last_value, discounts(traj, WAITS), WAITS.gae_lambda)
    batch = jax.tree.map(lambda x: jnp.reshape(x, (-1,) + x.shape[2:]), (traj, adv, targets))
    params = runner.train_state.params

    def reference(p, hyper):  # the ungated sum, written out
        ppo, h, w, _ = ppo_part(p, trainer.net, batch, WAITS, hyper)
        return (ppo + hyper["srr_decorrelation"] * srr.decorrelation_loss(h, weights=w)
                + hyper["srr_kl"] * srr.gaussian_kl(h, weights=w))

    for dec, kl in ((0.0, 0.0), (0.5, 0.0), (0.0, 0.05), (0.5, 0.05)):
        hyper = dict(runner.hyper, srr_decorrelation=jnp.float32(dec), srr_kl=jnp.float32(kl))
        got = jax.jit(jax.grad(lambda p, hyper=hyper: ppo_loss(p, trainer.net, batch, WAITS, hyper)[0]))(params)
        want = jax.jit(jax.grad(lambda p, hyper=hyper: reference(p, hyper)))(params)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-7, err_msg=f"{dec}, {kl}")
        if dec or kl:  # and the SRR part is really there (the comparison above is not vacuous)
            ppo_only = jax.jit(jax.grad(lambda p, hyper=hyper: ppo_part(p, trainer.net, batch, WAITS, hyper)[0]))(params)
            assert any(not np.allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-6)
                       for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ppo_only))), (dec, kl)


def count_primitive(jaxpr, name: str) -> int:
    """Occurrences of a primitive in a closed jaxpr, sub-jaxprs (scan, cond, jit bodies) included."""
    n = 0
    for eqn in jaxpr.eqns:
        n += eqn.primitive.name == name
        for v in eqn.params.values():
            for sub in (v if isinstance(v, (list, tuple)) else [v]):
                inner = getattr(sub, "jaxpr", None)
                if inner is not None:
                    n += count_primitive(inner if hasattr(inner, "eqns") else inner.jaxpr, name)
    return n


def test_k_seed_programs_keep_the_srr_gate_a_branch():
    """Batched over seeds, a cond whose predicate depends on batched data becomes a select that runs
    both sides; `over_seeds` passes the (shared) hyperparameters unbatched, so the K-seed update
    holds exactly the conds of the one-seed update and skips the SRR terms at weight 0 too."""
    from train.loop import over_seeds

    trainer = make_train(WAITS)
    runner = jax.vmap(trainer.init)(jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)]))
    one = count_primitive(jax.make_jaxpr(trainer.update)(jax.tree.map(lambda x: x[0], runner)).jaxpr, "cond")
    many = count_primitive(jax.make_jaxpr(over_seeds(trainer.update, "vmap"))(runner).jaxpr, "cond")
    batched = count_primitive(jax.make_jaxpr(jax.vmap(trainer.update))(runner).jaxpr, "cond")
    assert one >= 1 and many == one
    assert batched < one  # what the test guards against: with batched hyperparameters the gate is a select
