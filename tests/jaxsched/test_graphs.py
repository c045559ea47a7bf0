"""The DAG as a jraph GraphsTuple, and the encoder's fast paths against its jraph formulation."""

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import EnvConfig, bitset, make_params, reset
from envs.types import DagView
from jaxsched.graphs import DagEncoder, dag_to_graphs_tuple, dense_adjacency, resolve_encoder


def random_dag(rng, n: int, t: int, e_cap: int, f: int = 9) -> DagView:
    """A random DAG of n real tasks padded to t tasks and e_cap edge slots (edges in (parent, child) order)."""
    edges = sorted((p, c) for c in range(n) for p in range(c) if rng.random() < 0.35)
    edges = edges[:e_cap]
    s = np.full(e_cap, t, np.int32)
    r = np.full(e_cap, t, np.int32)
    for k, (p, c) in enumerate(edges):
        s[k], r[k] = p, c
    nodes = np.zeros((t, f), np.float32)
    nodes[:n] = rng.normal(size=(n, f)) * rng.choice([0.1, 1.0, 50.0], size=(n, 1))
    return DagView(nodes=jnp.asarray(nodes), senders=jnp.asarray(s), receivers=jnp.asarray(r),
                   n_edges=jnp.int32(len(edges)), node_mask=jnp.arange(t) < n, current=jnp.int32(rng.integers(n)))


def pad(dag: DagView, t: int, e_cap: int) -> DagView:
    """The same DAG with more padding nodes and edge slots."""
    t0, e0 = dag.nodes.shape[0], dag.senders.shape[0]
    remap = lambda x: jnp.where(x >= t0, t, x)  # noqa: E731
    return DagView(nodes=jnp.pad(dag.nodes, ((0, t - t0), (0, 0))),
                   senders=jnp.pad(remap(dag.senders), (0, e_cap - e0), constant_values=t),
                   receivers=jnp.pad(remap(dag.receivers), (0, e_cap - e0), constant_values=t),
                   n_edges=dag.n_edges, node_mask=jnp.pad(dag.node_mask, (0, t - t0)), current=dag.current)


def embed(mode, params, dag, dim=32, layers=2):
    return jax.jit(lambda p, d: DagEncoder(dim, layers, mode).apply(p, d))(params, dag)


def test_graphs_tuple_matches_the_env_dag():
    params = make_params(EnvConfig(n_servers=4, bank_size=64, n_workflows=8))
    obs, _ = jax.vmap(reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), 16), params)
    graphs = jax.jit(jax.vmap(dag_to_graphs_tuple))(obs.dag)
    t, e = params.max_tasks, params.bank.edges.shape[1]
    for i in range(16):
        g = jax.tree.map(lambda x, i=i: np.asarray(x[i]), graphs)
        n_real = int(g.n_edge[0])
        assert int(g.n_edge.sum()) == e and list(g.n_node) == [t, 1]
        got = {(int(s), int(r)) for s, r in zip(g.senders[:n_real], g.receivers[:n_real])}
        adj = np.asarray(obs.dag.adjacency[i])
        assert got == {(int(p), int(c)) for p, c in zip(*np.nonzero(adj))} and n_real == adj.sum()
        assert (g.senders[n_real:] == t).all() and (g.receivers[n_real:] == t).all()
        assert list(zip(g.senders[:n_real], g.receivers[:n_real])) == sorted(got)  # (parent, child) order


def test_a_bank_dag_view_lists_each_workflows_real_edges():
    params = make_params(EnvConfig(n_servers=4, bank_size=64, n_workflows=8))
    t = params.max_tasks
    parents = bitset.np_flags(np.asarray(params.bank.parents), t)  # [B, c, p]
    for b in range(8):
        want = sorted((p, c) for c in range(t) for p in range(t) if parents[b, c, p])
        e = np.asarray(params.bank.edges[b])
        assert int(params.bank.n_edges[b]) == len(want)
        assert [tuple(x) for x in e[: len(want)]] == want and (e[len(want):] == t).all()


@pytest.mark.parametrize("mode", ["dense", "edges"])
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 16))
def test_fast_paths_equal_the_jraph_reference_and_ignore_padding(mode, seed, n):
    rng = np.random.default_rng(seed)
    dag = random_dag(rng, n, 16, 48)
    params = DagEncoder(32, 2, "jraph").init(jax.random.PRNGKey(seed % 1000), dag)
    want = embed("jraph", params, dag)
    got = embed(mode, params, dag)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5)
    # more padding (nodes and edge slots) changes nothing, in every implementation
    big = pad(dag, 24, 80)
    for m in (mode, "jraph"):
        for a, b in zip(embed(m, params, big), want):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5)


def test_messages_flow_both_ways_along_edges():
    """A parent's features reach its child and a child's reach its parent; an unrelated node's do not."""
    t = 4
    s = jnp.array([0, 4, 4], jnp.int32)  # one edge 0 -> 1; node 2 is isolated
    r = jnp.array([1, 4, 4], jnp.int32)
    nodes = jnp.ones((t, 5), jnp.float32)
    dag = DagView(nodes=nodes, senders=s, receivers=r, n_edges=jnp.int32(1), node_mask=jnp.arange(t) < 3,
                  current=jnp.int32(1))
    params = DagEncoder(16, 1, "dense").init(jax.random.PRNGKey(0), dag)

    def node_embeddings(d):
        enc = DagEncoder(16, 1, "dense")
        return enc.apply(params, d.replace(current=jnp.int32(0)))[0], enc.apply(params, d)[0], \
            enc.apply(params, d.replace(current=jnp.int32(2)))[0]

    base = node_embeddings(dag)
    for changed, moved in ((0, (0, 1)), (1, (0, 1)), (2, (2,))):
        out = node_embeddings(dag.replace(nodes=nodes.at[changed].multiply(3.0)))
        for i, (a, b) in enumerate(zip(out, base)):
            assert (not np.allclose(a, b)) == ((0, 1, 2)[i] in moved), (changed, i)


def test_dense_adjacency_and_message_sum_match_segment_sums():
    rng = np.random.default_rng(3)
    dag = random_dag(rng, 12, 16, 40)
    a = np.asarray(dense_adjacency(dag))
    np.testing.assert_array_equal(a > 0, np.asarray(dag.adjacency))
    g = dag_to_graphs_tuple(dag)
    agg = jraph.segment_sum(g.nodes[g.senders], g.receivers, num_segments=17)
    np.testing.assert_allclose(np.asarray(agg[:16]), a.T @ np.asarray(dag.nodes), rtol=1e-5, atol=1e-4)


def test_auto_picks_by_size_and_unknown_names_are_refused():
    assert resolve_encoder("auto", 16) == "dense" and resolve_encoder("auto", 256) == "edges"
    with pytest.raises(ValueError, match="dag_encoder"):
        resolve_encoder("sparse", 16)
