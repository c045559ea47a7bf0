"""`python -m train.bench_encoder`: the DAG encoder's cost by implementation and DAG size.

For each task count T it builds a batch of random DAGs (each of T real tasks,
`--edges-per-task` edges per task on average, as WfCommons recipes have) and
prints, per implementation (`dense`, `edges`, `jraph`): FLOPs per DAG of a
forward pass (XLA's cost analysis) and the time of a forward + backward pass
over the batch (median of `--repeats`, compilation excluded).

    python -m train.bench_encoder                       # T = 12 (the default workload) and 256
    python -m train.bench_encoder --tasks 16,64,256 --json
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from envs.types import DagView
from jaxsched.graphs import DagEncoder


def random_dags(rng, batch: int, t: int, edges_per_task: float, features: int = 11) -> DagView:
    """`batch` DAGs of t tasks; each task draws its parents among the 8 tasks before it."""
    per_task = min(edges_per_task, 8.0)
    e_cap = max(8, int(np.ceil(per_task * t / 8)) * 8 + 8)
    senders = np.full((batch, e_cap), t, np.int32)
    receivers = np.full((batch, e_cap), t, np.int32)
    n_edges = np.zeros(batch, np.int32)
    for b in range(batch):
        edges = sorted({(p, c) for c in range(1, t) for p in range(max(0, c - 8), c) if rng.random() < per_task / min(c, 8)})
        edges = edges[:e_cap]
        n_edges[b] = len(edges)
        for k, (p, c) in enumerate(edges):
            senders[b, k], receivers[b, k] = p, c
    nodes = rng.normal(size=(batch, t, features)).astype(np.float32)
    return DagView(nodes=jnp.asarray(nodes), senders=jnp.asarray(senders), receivers=jnp.asarray(receivers),
                   n_edges=jnp.asarray(n_edges), node_mask=jnp.ones((batch, t), bool),
                   current=jnp.asarray(rng.integers(0, t, batch), jnp.int32))


def measure(t: int, mode: str, batch: int, dim: int, layers: int, edges_per_task: float, repeats: int, seed: int = 0):
    dags = random_dags(np.random.default_rng(seed), batch, t, edges_per_task)
    enc = DagEncoder(dim, layers, mode)
    params = enc.init(jax.random.PRNGKey(0), jax.tree.map(lambda x: x[0], dags))

    def forward(p, d):
        return jax.vmap(enc.apply, in_axes=(None, 0))(p, d)

    def loss(p, d):
        cur, pooled = forward(p, d)
        return jnp.mean(cur ** 2) + jnp.mean(pooled ** 2)

    fwd = jax.jit(forward).lower(params, dags).compile()
    cost = fwd.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    grad = jax.jit(jax.grad(loss))
    jax.block_until_ready(grad(params, dags))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(grad(params, dags))
        times.append(time.perf_counter() - t0)
    return {"tasks": t, "encoder": mode, "batch": batch, "edges_per_dag": float(np.mean(np.asarray(dags.n_edges))),
            "edge_slots": int(dags.senders.shape[-1]), "mflop_per_dag_forward": float(cost.get("flops", 0.0)) / batch / 1e6,
            "ms_forward_backward": 1e3 * float(np.median(times))}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m train.bench_encoder", description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="12,256", help="task counts T (comma-separated)")
    ap.add_argument("--encoders", default="dense,edges,jraph")
    ap.add_argument("--batch", type=int, default=None, help="DAGs per batch (default: 512 at T <= 32, 64 above)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--edges-per-task", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        tasks = [int(x) for x in a.tasks.split(",") if x]
    except ValueError:
        ap.error(f"--tasks: expected integers, got {a.tasks!r}")
    if not tasks or min(tasks) < 2:
        ap.error("--tasks: task counts must be >= 2")
    rows = []
    for t in tasks:
        for mode in a.encoders.split(","):
            batch = a.batch or (512 if t <= 32 else 64)
            rows.append(measure(t, mode, batch, a.dim, a.layers, a.edges_per_task, a.repeats))
            if not a.json:
                r = rows[-1]
                print(f"T={t:>4} {mode:>6}: {r['mflop_per_dag_forward']:8.3f} MFLOP/DAG forward, "
                      f"{r['ms_forward_backward']:8.2f} ms forward+backward for {batch} DAGs "
                      f"({r['edges_per_dag']:.0f} edges of {r['edge_slots']} slots)", flush=True)
    if a.json:
        print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
