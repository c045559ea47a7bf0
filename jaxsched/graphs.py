"""The observation's workflow DAG as a fixed-size, jittable `jraph.GraphsTuple`.

jraph pads by appending a graph that owns the padding; we do the same with
static sizes so it works under jit and vmap: graph 0 holds the T task nodes
(invalid ones have zero features; `node_mask` says which are real) and the
real parent -> child edges; graph 1 is one padding node that every padding
edge starts and ends at. Edge capacity is T(T-1)/2, the most a DAG over T
topologically ordered tasks can have. Real edges come first, in (parent,
child) order.
"""

from __future__ import annotations

import jax.numpy as jnp
import jraph
import numpy as np

from envs.types import DagView


def dag_to_graphs_tuple(dag: DagView) -> jraph.GraphsTuple:
    """Unbatched DagView -> GraphsTuple with n_node=[T, 1] and n_edge=[E_real, E_max - E_real]."""
    t = dag.adjacency.shape[-1]
    p_idx, c_idx = np.triu_indices(t, k=1)  # every possible edge parent < child
    real = dag.adjacency[p_idx, c_idx]
    order = jnp.argsort(~real, stable=True)  # real edges first, in (parent, child) order
    real_sorted = real[order]
    senders = jnp.where(real_sorted, jnp.asarray(p_idx)[order], t).astype(jnp.int32)
    receivers = jnp.where(real_sorted, jnp.asarray(c_idx)[order], t).astype(jnp.int32)
    n_real = jnp.sum(real).astype(jnp.int32)
    nodes = jnp.concatenate([dag.nodes, jnp.zeros((1, dag.nodes.shape[-1]), dag.nodes.dtype)])
    return jraph.GraphsTuple(
        nodes=nodes,
        edges=real_sorted.astype(jnp.float32)[:, None],
        senders=senders,
        receivers=receivers,
        globals=None,
        n_node=jnp.array([t, 1], jnp.int32),
        n_edge=jnp.stack([n_real, p_idx.shape[0] - n_real]).astype(jnp.int32),
    )
