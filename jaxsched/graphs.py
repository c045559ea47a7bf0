"""The workflow DAG: its jraph `GraphsTuple`, and the encoder that embeds its nodes.

The observation carries the DAG as a fixed-capacity edge list (`DagView`:
senders, receivers, `n_edges`; padding edges point at node T, one past the
last task). `dag_to_graphs_tuple` turns that into a jraph graph with static
sizes (graph 0: the T task nodes and the real edges; graph 1: one padding node
that owns the padding edges), with no sort or search: the env already lists
the real edges first.

The encoder (`DagEncoder`) is one architecture with three implementations
that compute the same embeddings from the same parameters:

    x_0 = Dense(symlog(node features))
    x_{l+1} = LayerNorm(x_l + MLP([x_l, sum over parents x_l[p], sum over children x_l[k]]))

* `dense`: the sums as two [T, T] x [T, d] products with the adjacency matrix
  (built from the edge list with one small one-hot product); the cheapest at
  small T (matmuls only, no scatter);
* `edges`: gathers over the edge list and `segment_sum`s into T + 1 segments;
  its cost follows the edge capacity, not T^2, so it is the one for large DAGs;
* `jraph`: a `jraph.GraphNetwork` per layer (the edge function hands each edge
  its sender's and receiver's state, the node function reads the parents' half
  of what it received and the children's half of what it sent). The reference
  the tests hold the fast paths to.

`auto` picks `dense` up to `DENSE_MAX_TASKS` tasks and `edges` above (chosen
by measurement, docs/benchmarks.md).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from envs.types import DagView

ENCODERS = ("auto", "dense", "edges", "jraph")
DENSE_MAX_TASKS = 64  # `auto`: dense adjacency products up to this many tasks, edge lists above


def symlog(x):
    """sign(x) log(1 + |x|): features span seconds to thousands; keep them O(1) without statistics."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def dag_to_graphs_tuple(dag: DagView):
    """Unbatched DagView -> jraph.GraphsTuple with n_node=[T, 1] and n_edge=[E_real, E - E_real]."""
    import jraph  # only the graph interface and the reference encoder need jraph


    e = dag.senders.shape[-1]
    nodes = jnp.concatenate([dag.nodes, jnp.zeros((1, dag.nodes.shape[-1]), dag.nodes.dtype)])
    n_real = jnp.asarray(dag.n_edges, jnp.int32)
    return jraph.GraphsTuple(
        nodes=nodes, edges=(jnp.arange(e) < n_real).astype(jnp.float32)[:, None],
        senders=dag.senders.astype(jnp.int32), receivers=dag.receivers.astype(jnp.int32), globals=None,
        n_node=jnp.array([dag.nodes.shape[-2], 1], jnp.int32), n_edge=jnp.stack([n_real, e - n_real]).astype(jnp.int32),
    )


def dense_adjacency(dag: DagView, dtype=jnp.float32):
    """[T, T] with A[p, c] = 1 when p is a parent of c, from the edge list (padding edges drop out)."""
    t = dag.nodes.shape[-2]
    s = (dag.senders[:, None] == jnp.arange(t)).astype(dtype)  # [E, T]
    r = (dag.receivers[:, None] == jnp.arange(t)).astype(dtype)
    return s.T @ r


def resolve_encoder(mode: str, max_tasks: int) -> str:
    if mode not in ENCODERS:
        raise ValueError(f"dag_encoder: unknown encoder {mode!r}; choose from {', '.join(ENCODERS)}")
    if mode == "auto":
        return "dense" if max_tasks <= DENSE_MAX_TASKS else "edges"
    return mode


class MLP(nn.Module):
    features: tuple[int, ...]
    activate_last: bool = False

    @nn.compact
    def __call__(self, x):
        for i, f in enumerate(self.features):
            x = nn.Dense(f)(x)
            if i < len(self.features) - 1 or self.activate_last:
                x = nn.gelu(x)
        return x


class NodeUpdate(nn.Module):
    """x + MLP([x, the sum of its parents' states, the sum of its children's states])."""

    dim: int

    @nn.compact
    def __call__(self, x, parents_sum, children_sum):
        h = nn.gelu(nn.Dense(self.dim, name="hidden")(jnp.concatenate([x, parents_sum, children_sum], axis=-1)))
        return x + nn.Dense(self.dim, name="out")(h)


class DagEncoder(nn.Module):
    """DagView (one, unbatched) -> (the current node's embedding [dim], mean over real nodes [dim])."""

    dim: int
    layers: int
    mode: str = "auto"

    @nn.compact
    def __call__(self, dag: DagView):
        t = dag.nodes.shape[-2]
        mode = resolve_encoder(self.mode, t)
        x = nn.Dense(self.dim, name="embed")(symlog(dag.nodes))  # [T, d]
        updates = [NodeUpdate(self.dim, name=f"node_{i}") for i in range(self.layers)]
        norms = [nn.LayerNorm(name=f"norm_{i}") for i in range(self.layers)]
        if mode == "jraph":
            x = self._jraph(dag, x, updates, norms)
        else:
            if mode == "dense":
                a = dense_adjacency(dag, x.dtype)

                def aggregate(x):
                    return a.T @ x, a @ x  # [c]: the sum over its parents; [p]: over its children
            else:
                def aggregate(x):
                    pad = jnp.concatenate([x, jnp.zeros((1, x.shape[-1]), x.dtype)])  # row T: padding edges
                    down = jax.ops.segment_sum(pad[dag.senders], dag.receivers, num_segments=t + 1)[:t]
                    up = jax.ops.segment_sum(pad[dag.receivers], dag.senders, num_segments=t + 1)[:t]
                    return down, up

            for update, norm in zip(updates, norms, strict=True):
                x = norm(update(x, *aggregate(x)))
        mask = dag.node_mask.astype(x.dtype)[:, None]
        pooled = jnp.sum(x * mask, axis=0) / jnp.maximum(jnp.sum(mask), 1.0)
        return x[dag.current], pooled

    def _jraph(self, dag, x, updates, norms):
        import jraph

        d = self.dim
        graph = dag_to_graphs_tuple(dag)
        graph = graph._replace(nodes=jnp.concatenate([x, jnp.zeros((1, d), x.dtype)]))
        for update, norm in zip(updates, norms, strict=True):
            def update_edge(e, s, r, g):
                del e, g
                return jnp.concatenate([s, r], axis=-1)  # [sender state, receiver state]

            def update_node(n, sent, received, g, update=update):
                del g
                # received[:, :d]: the parents' states; sent[:, d:]: the children's
                return update(n, received[:, :d], sent[:, d:])

            graph = jraph.GraphNetwork(update_edge_fn=update_edge, update_node_fn=update_node)(graph)
            graph = graph._replace(nodes=norm(graph.nodes))
        return graph.nodes[: dag.nodes.shape[-2]]
