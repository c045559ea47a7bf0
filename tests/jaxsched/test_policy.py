"""The SCALE policy network and SRR: equivariance, masking, any N, and the regularizer's values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import EnvConfig, make_params, reset
from envs.features import GLOBAL
from jaxsched import srr
from jaxsched.policy import PolicyConfig, SchedulerNet

CFG = PolicyConfig(embed_dim=16, num_heads=2, gnn_layers=1, hidden=32)


def obs_at(n, max_servers=None, seed=0):
    params = make_params(EnvConfig(n_servers=n, max_servers=max_servers, bank_size=64))
    return jax.jit(reset)(jax.random.PRNGKey(seed), params)[0]


@pytest.fixture(scope="module")
def net_params():
    net = SchedulerNet(CFG)
    return net, net.init(jax.random.PRNGKey(1), obs_at(16))


@pytest.mark.parametrize("log_n", [False, True])
def test_permuting_servers_permutes_logits_and_keeps_h(log_n):
    net = SchedulerNet(CFG.replace(log_n_scaling=log_n))
    obs = obs_at(8)
    params = net.init(jax.random.PRNGKey(2), obs)
    perm = np.random.default_rng(0).permutation(8)
    pobs = obs.replace(servers=obs.servers[perm], action_mask=obs.action_mask[perm])
    logits, value, aux = net.apply(params, obs)
    plogits, pvalue, paux = net.apply(params, pobs)
    np.testing.assert_allclose(plogits, logits[perm], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(paux["h"], aux["h"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pvalue, value, rtol=1e-5, atol=1e-5)


def test_padded_and_masked_servers_get_zero_probability(net_params):
    net, params = net_params
    obs = obs_at(5, max_servers=12)
    mask = np.asarray(obs.action_mask)
    assert not mask[5:].any()
    logits, _, aux = net.apply(params, obs)
    probs = np.asarray(jax.nn.softmax(logits))
    assert probs[~mask].max() == 0.0
    assert np.asarray(aux["attention"])[:, ~mask].max() == 0.0
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-6)


def test_padding_does_not_change_the_output(net_params):
    """The same cluster at max_servers 6 and 40: identical logits on the real servers."""
    net, params = net_params
    a, b = obs_at(6), obs_at(6, max_servers=40)
    la, va, _ = net.apply(params, a)
    lb, vb, _ = net.apply(params, b)
    np.testing.assert_allclose(lb[:6], la, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vb, va, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [4, 16, 128])
def test_same_parameters_run_at_any_size(net_params, n):
    net, params = net_params
    obs = obs_at(n)
    logits, value, aux = jax.jit(net.apply)(params, obs)
    assert logits.shape == (n,) and aux["h"].shape == (CFG.embed_dim,) and np.isfinite(value)
    assert np.isfinite(np.asarray(logits)[np.asarray(obs.action_mask)]).all()
    assert obs.globals[GLOBAL["n_active"]] == n


def test_log_n_scaling_multiplies_the_pointer_logits_by_s_log_n():
    net = SchedulerNet(CFG.replace(log_n_scaling=True))
    obs = obs_at(16)
    params = net.init(jax.random.PRNGKey(3), obs)
    assert "ssmax_attention" in params["params"] and "ssmax_pointer" in params["params"]
    base, _, _ = net.apply(params, obs)
    doubled = jax.tree_util.tree_map_with_path(
        lambda p, x: x * 2.0 if "ssmax_pointer" in jax.tree_util.keystr(p) else x, params)
    twice, _, _ = net.apply(doubled, obs)
    mask = np.asarray(obs.action_mask)
    np.testing.assert_allclose(np.asarray(twice)[mask], 2.0 * np.asarray(base)[mask], rtol=1e-5)


def other_task(obs, seed=5):
    """The same cluster with another task's features and DAG (the query changes, the servers do not)."""
    rng = np.random.default_rng(seed)
    return obs.replace(task=obs.task * jnp.asarray(rng.uniform(0.2, 3.0, obs.task.shape), obs.task.dtype),
                       dag=obs.dag.replace(nodes=obs.dag.nodes * 1.7 + 0.3))


@pytest.mark.parametrize("bypass", [False, True])
def test_the_pointer_reads_the_task_only_through_h(bypass):
    """Default: with h held fixed, the task's features cannot move the logits (every decision goes
    through h); the v1 bypass (pointer_bypass=True) lets the query reach the pointer directly."""
    net = SchedulerNet(CFG.replace(pointer_bypass=bypass))
    obs = obs_at(8)
    params = net.init(jax.random.PRNGKey(4), obs)
    fixed = jnp.linspace(-1.0, 1.0, CFG.embed_dim)
    a, _, _ = net.apply(params, obs, h_override=fixed)
    b, _, _ = net.apply(params, other_task(obs), h_override=fixed)
    mask = np.asarray(obs.action_mask)
    free = net.apply(params, obs)[0]
    assert not np.allclose(np.asarray(free)[mask], np.asarray(a)[mask])  # the override is used
    if bypass:
        assert not np.allclose(np.asarray(a)[mask], np.asarray(b)[mask], atol=1e-5)
    else:
        np.testing.assert_allclose(np.asarray(a)[mask], np.asarray(b)[mask], rtol=1e-6, atol=1e-6)


def test_n_free_globals_hide_the_cluster_size():
    """global_inputs=per_server: a cluster three times larger with three times the open, queued and
    remaining workflows and decisions (and another clock) gives the same output; raw inputs see it."""
    from envs.features import GLOBAL as G

    obs = obs_at(8)
    g = obs.globals
    for k, v in (("open_workflows", 4.0), ("queued_workflows", 2.0), ("decision_index", 40.0), ("workflows_left", 20.0)):
        g = g.at[G[k]].set(v)
    small = obs.replace(globals=g.at[G["n_active"]].set(8.0).at[G["clock_s"]].set(100.0))
    big_g = g
    for k in ("open_workflows", "queued_workflows", "decision_index", "workflows_left"):
        big_g = big_g.at[G[k]].multiply(3.0)
    big = obs.replace(globals=big_g.at[G["n_active"]].set(24.0).at[G["clock_s"]].set(900.0))
    for mode, same in (("per_server", True), ("raw", False)):
        net = SchedulerNet(CFG.replace(global_inputs=mode))
        params = net.init(jax.random.PRNGKey(6), obs)
        (la, va, _), (lb, vb, _) = net.apply(params, small), net.apply(params, big)
        if same:
            np.testing.assert_allclose(np.asarray(la), np.asarray(lb), rtol=1e-6)
            assert float(va) == pytest.approx(float(vb), rel=1e-6)
        else:
            assert not np.allclose(np.asarray(la), np.asarray(lb)) or float(va) != pytest.approx(float(vb))
    # rho is not a count: per_server keeps it
    net = SchedulerNet(CFG.replace(global_inputs="per_server"))
    params = net.init(jax.random.PRNGKey(6), obs)
    hot = small.replace(globals=small.globals.at[G["rho"]].set(0.95))
    assert float(net.apply(params, hot)[1]) != pytest.approx(float(net.apply(params, small)[1]))


def whitened(b=512, d=8, seed=0):
    """A batch whose biased sample mean is 0 and covariance exactly I."""
    x = np.random.default_rng(seed).normal(size=(b, d))
    x -= x.mean(0)
    cov = x.T @ x / b
    w = np.linalg.cholesky(np.linalg.inv(cov))
    return jnp.asarray(x @ w, jnp.float32)


def test_srr_terms_vanish_on_whitened_features():
    h = whitened()
    assert float(srr.decorrelation_loss(h)) == pytest.approx(0.0, abs=1e-6)
    assert float(srr.gaussian_kl(h)) == pytest.approx(0.0, abs=1e-3)
    total, terms = srr.srr_loss(h, 1.0, 1.0)
    assert float(total) == pytest.approx(0.0, abs=1e-3)


def test_srr_terms_are_positive_for_correlated_or_shifted_features():
    h = whitened()
    mix = jnp.eye(8).at[0, 1].set(0.9)
    corr = h @ mix
    assert float(srr.decorrelation_loss(corr)) > 1e-3
    assert float(srr.gaussian_kl(corr)) > 1e-2
    # KL per dimension. A mean shift of 1 in every dimension: KL = |mu|^2 / 2 / d = 1 / 2 exactly
    assert float(srr.gaussian_kl(h + 1.0)) == pytest.approx(0.5, rel=1e-3)
    # scaling by 2: KL = (tr 4I - d - log det 4I) / 2 / d = (4 - 1 - log 4) / 2
    assert float(srr.gaussian_kl(2.0 * h)) == pytest.approx((4 - 1 - np.log(4)) / 2, rel=1e-3)


@pytest.mark.parametrize("d", [4, 8, 32])
def test_srr_kl_is_per_dimension(d):
    """The same per-dimension mismatch scores the same at any width (the sum over dimensions grew
    with d, so one weight meant a different regularizer per embed_dim)."""
    h = whitened(b=1024, d=d)
    assert float(srr.gaussian_kl(1.5 * h + 0.5)) == pytest.approx((2.25 + 0.25 - 1 - np.log(2.25)) / 2, rel=1e-3)


def test_decorrelation_is_scale_free():
    """Shrinking or stretching h leaves the decorrelation term unchanged (the covariance form was
    minimised by shrinking h) and its gradient along h has no component toward 0."""
    h = whitened(b=256, d=8) @ (jnp.eye(8).at[0, 1].set(0.9).at[2, 5].set(-0.5))
    base = float(srr.decorrelation_loss(h))
    assert base > 1e-3
    for c in (0.01, 0.5, 3.0, 100.0):
        assert float(srr.decorrelation_loss(c * h)) == pytest.approx(base, rel=1e-4)
    along_scale = jax.grad(lambda c: srr.decorrelation_loss(c * h))(1.0)
    assert abs(float(along_scale)) < 1e-5
    # bounded by 1: perfectly correlated dimensions
    col = h[:, :1]
    assert float(srr.decorrelation_loss(jnp.concatenate([col, 2 * col, -col], axis=1))) == pytest.approx(1.0, rel=1e-4)


def test_a_constant_dimension_is_not_nan():
    h = whitened(b=64, d=4).at[:, 2].set(3.0)
    val, grad = jax.value_and_grad(srr.decorrelation_loss)(h)
    assert np.isfinite(float(val)) and np.isfinite(np.asarray(grad)).all()


def test_srr_weights_zero_turn_it_off_but_terms_still_report():
    h = whitened() @ jnp.eye(8).at[0, 1].set(0.9)
    total, terms = srr.srr_loss(h, 0.0, 0.0)
    assert float(total) == 0.0 and float(terms["srr_decorrelation"]) > 0 and float(terms["srr_kl"]) > 0
