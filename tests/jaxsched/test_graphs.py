"""The DAG view as a jraph GraphsTuple: same graph, fixed sizes, works under jit and vmap."""

import jax
import jraph
import numpy as np

from envs import EnvConfig, make_params, reset
from jaxsched.graphs import dag_to_graphs_tuple


def test_graphs_tuple_matches_the_adjacency_and_passes_messages():
    params = make_params(EnvConfig(n_servers=4, bank_size=64, n_workflows=8))
    obs, _ = jax.vmap(reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), 16), params)
    graphs = jax.jit(jax.vmap(dag_to_graphs_tuple))(obs.dag)
    t = params.max_tasks
    for i in range(16):
        g = jax.tree.map(lambda x, i=i: np.asarray(x[i]), graphs)
        adj = np.asarray(obs.dag.adjacency[i])
        n_real = int(g.n_edge[0])
        assert n_real == adj.sum() and int(g.n_edge.sum()) == t * (t - 1) // 2
        edges = {(int(s), int(r)) for s, r in zip(g.senders[:n_real], g.receivers[:n_real])}
        assert edges == {(int(p), int(c)) for p, c in zip(*np.nonzero(adj))}
        assert (g.senders[n_real:] == t).all() and (g.receivers[n_real:] == t).all()
    # one round of sum aggregation equals the dense adjacency product on real nodes
    g0 = jax.tree.map(lambda x: x[0], graphs)
    agg = jraph.segment_sum(g0.nodes[g0.senders] * g0.edges, g0.receivers, num_segments=t + 1)
    dense = np.asarray(obs.dag.adjacency[0]).T.astype(np.float32) @ np.asarray(obs.dag.nodes[0])
    np.testing.assert_allclose(np.asarray(agg[:t]), dense, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(agg[t]), 0.0)
