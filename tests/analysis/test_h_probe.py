"""The h-dependence probe: mean-ablating h moves a policy whose pointer reads h, and not one whose
decisions ignore h; the KL is computed over the allowed servers only."""

import jax
import numpy as np
import pytest

from analysis.h_probe import _kl_rows, h_dependence
from envs import EnvConfig, make_params, reset
from jaxsched.evaluation import eval_config
from jaxsched.policy import PolicyConfig, SchedulerNet

CFG = PolicyConfig(embed_dim=16, num_heads=2, hidden=32, gnn_layers=1)
BASE = EnvConfig()


def init(cfg):
    net = SchedulerNet(cfg)
    obs, _ = reset(jax.random.PRNGKey(0), make_params(eval_config(4, BASE)))
    return net, net.init(jax.random.PRNGKey(7), obs)


def test_ablating_h_changes_decisions_of_the_default_pointer():
    net, params = init(CFG)
    rows = h_dependence(net, params, [4, 6], seeds=2, decisions=16, base=BASE)
    assert [r["servers"] for r in rows] == [4, 6]
    assert all(r["decisions"] == 32 for r in rows)
    assert max(r["changed_share"] for r in rows) > 0 and min(r["policy_kl"] for r in rows) > 0


def test_a_policy_that_ignores_h_scores_zero():
    """The v1 bypass with the h path's pointer weights zeroed reads only the query: ablating h
    changes nothing (the critic still reads h, but decisions do not)."""
    net, params = init(CFG.replace(pointer_bypass=True))
    kernel = params["params"]["pointer_query"]["kernel"]
    params = jax.tree.map(lambda x: x, params)
    params["params"]["pointer_query"]["kernel"] = kernel.at[:CFG.embed_dim].set(0.0)
    rows = h_dependence(net, params, [4], seeds=2, decisions=16, base=BASE)
    assert rows[0]["changed_share"] == 0.0 and rows[0]["policy_kl"] == pytest.approx(0.0, abs=1e-9)


def test_kl_ignores_masked_servers():
    p = np.array([[0.0, 1.0, -np.inf], [2.0, 2.0, 2.0]])
    q = np.array([[0.0, 1.0, -np.inf], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(_kl_rows(p, q), [0.0, 0.0], atol=1e-12)
    r = np.array([[1.0, 0.0, -np.inf]])
    a = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    b = np.exp([1.0, 0.0]) / np.exp([1.0, 0.0]).sum()
    assert _kl_rows(p[:1], r)[0] == pytest.approx(float(np.sum(a * np.log(a / b))))


def test_a_behaviour_policy_plays_the_states_and_the_network_only_reads_them():
    """collect(behaviour=...): the greedy policy as behaviour reproduces the network's own rollout exactly;
    with EFT acting, two different networks are read on the very same decisions."""
    from analysis.collect import collect
    from jaxsched.baselines import earliest_finish
    from jaxsched.policy import greedy_policy

    net, params = init(CFG)
    other = SchedulerNet(CFG).init(jax.random.PRNGKey(8), reset(jax.random.PRNGKey(0), make_params(eval_config(4, BASE)))[0])
    own = collect(net, params, [4], seeds=2, decisions=16, base=BASE)[4]
    again = collect(net, params, [4], seeds=2, decisions=16, base=BASE, behaviour=greedy_policy(net, params))[4]
    for k in own:  # the same decisions (params as constants fold differently in the last float bits)
        np.testing.assert_allclose(own[k], again[k], rtol=1e-5, atol=1e-6, err_msg=k)
    a = collect(net, params, [4], seeds=2, decisions=16, base=BASE, behaviour=earliest_finish)[4]
    b = collect(net, other, [4], seeds=2, decisions=16, base=BASE, behaviour=earliest_finish)[4]
    own_b = collect(net, other, [4], seeds=2, decisions=16, base=BASE)[4]
    # the same states: which servers each decision may use is the same; the networks' h is not
    np.testing.assert_array_equal(a["n_allowed"], b["n_allowed"])
    np.testing.assert_array_equal(np.isfinite(a["logits"]), np.isfinite(b["logits"]))
    assert not np.allclose(a["h"], b["h"])
    # while each network's own rollout goes elsewhere
    assert not np.array_equal(np.isfinite(own["logits"]), np.isfinite(own_b["logits"])) or \
        not np.array_equal(own["n_allowed"], own_b["n_allowed"]) or not np.array_equal(own["h"], a["h"])


@pytest.mark.parametrize("behaviour", [None, "eft"])
def test_collecting_k_seeds_in_one_program_equals_one_at_a_time(behaviour):
    from analysis.collect import collect, collect_seeds
    from jaxsched.baselines import earliest_finish

    behaviour = earliest_finish if behaviour else None
    net, a = init(CFG)
    b = SchedulerNet(CFG).init(jax.random.PRNGKey(9), reset(jax.random.PRNGKey(0), make_params(eval_config(4, BASE)))[0])
    stacked = jax.tree.map(lambda x, y: np.stack([x, y]), a, b)
    both = collect_seeds(net, stacked, [4, 6], seeds=2, decisions=16, base=BASE, behaviour=behaviour)
    for params, got in zip((a, b), both, strict=True):
        alone = collect(net, params, [4, 6], seeds=2, decisions=16, base=BASE, behaviour=behaviour)
        for n in (4, 6):
            assert set(got[n]) == set(alone[n])
            for k in alone[n]:
                np.testing.assert_allclose(got[n][k], alone[n][k], rtol=1e-5, atol=1e-6, err_msg=f"{n}/{k}")


def test_the_probe_of_k_seeds_in_one_program_equals_one_at_a_time():
    """Each seed is ablated to its own mean of h (a shared mean would give other rows)."""
    from analysis.h_probe import h_dependence, h_dependence_seeds

    net, a = init(CFG)
    b = SchedulerNet(CFG).init(jax.random.PRNGKey(9), reset(jax.random.PRNGKey(0), make_params(eval_config(4, BASE)))[0])
    stacked = jax.tree.map(lambda x, y: np.stack([x, y]), a, b)
    both = h_dependence_seeds(net, stacked, [4, 6], seeds=2, decisions=16, base=BASE, first_episode=3)
    for params, got in zip((a, b), both, strict=True):
        alone = h_dependence(net, params, [4, 6], seeds=2, decisions=16, base=BASE, first_episode=3)
        assert [r["servers"] for r in got] == [4, 6] and [r["decisions"] for r in got] == [r["decisions"] for r in alone]
        for g, w in zip(got, alone, strict=True):
            assert g["changed_share"] == pytest.approx(w["changed_share"], abs=1e-9)
            assert g["policy_kl"] == pytest.approx(w["policy_kl"], rel=1e-4, abs=1e-9)
    assert any(r["policy_kl"] > 0 for rows in both for r in rows)  # the probe measures something here
