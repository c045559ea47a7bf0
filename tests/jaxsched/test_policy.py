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
    # a mean shift of 1 in every dimension: KL = |mu|^2 / 2 = d / 2 exactly
    assert float(srr.gaussian_kl(h + 1.0)) == pytest.approx(4.0, rel=1e-3)
    # scaling by 2: KL = (tr 4I - d - log det 4I) / 2 = (32 - 8 - 8 log 4) / 2
    assert float(srr.gaussian_kl(2.0 * h)) == pytest.approx((32 - 8 - 8 * np.log(4)) / 2, rel=1e-3)


def test_srr_weights_zero_turn_it_off_but_terms_still_report():
    h = whitened() @ jnp.eye(8).at[0, 1].set(0.9)
    total, terms = srr.srr_loss(h, 0.0, 0.0)
    assert float(total) == 0.0 and float(terms["srr_decorrelation"]) > 0 and float(terms["srr_kl"]) > 0
