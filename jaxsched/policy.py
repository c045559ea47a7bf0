"""The SCALE policy: a size-agnostic cross-attention pointer network (Flax linen).

The current task's workflow DAG goes through a graph network (`jaxsched.graphs`); the current node's
embedding plus a pooled graph embedding, with the task and global features,
form the query. Each server's task-conditioned features give a key and a value.
Multi-head cross-attention (the task queries the servers) yields the attention
feature `h`, the representation SRR regularizes. A pointer head scores every
server against `h` (one logit per server, masked), and a critic reads `h` with
the task and global features. Nothing depends on the number of servers, so
the same parameters run at any N; padded and masked servers get -inf logits.

Optional Scalable-Softmax: attention and pointer logits are multiplied by
`s * log(n_active)` with a learnable `s` per head (and one for the pointer),
so the softmax does not flatten as N grows.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from envs.features import GLOBAL
from envs.types import Observation
from jaxsched.graphs import MLP, DagEncoder, symlog

NEG = -1e9  # masked logits (finite, so log-softmax stays finite where every server is masked)


@struct.dataclass
class PolicyConfig:
    """Architecture (static: every field fixes shapes or structure)."""

    embed_dim: int = struct.field(pytree_node=False, default=64)
    num_heads: int = struct.field(pytree_node=False, default=4)
    gnn_layers: int = struct.field(pytree_node=False, default=2)
    hidden: int = struct.field(pytree_node=False, default=128)
    log_n_scaling: bool = struct.field(pytree_node=False, default=False)
    dag_encoder: str = struct.field(pytree_node=False, default="auto")  # auto | dense | edges | jraph (jaxsched.graphs)
    pointer_bypass: bool = struct.field(pytree_node=False, default=False)  # pointer reads [h, query], not h alone
    global_inputs: str = struct.field(pytree_node=False, default="raw")  # raw | per_server (see GLOBAL_INPUTS)


GLOBAL_INPUTS = ("raw", "per_server")
_PER_SERVER = tuple(GLOBAL[k] for k in ("open_workflows", "queued_workflows", "decision_index", "workflows_left"))
_DROPPED = tuple(GLOBAL[k] for k in ("clock_s", "n_active"))


def policy_globals(globals_, mode: str):
    """The global features as the network reads them: as observed (`raw`), or N-free (`per_server`:
    counts per active server, the server count and the clock zeroed)."""
    if mode == "raw":
        return globals_
    n = jnp.maximum(globals_[GLOBAL["n_active"]], 1.0)
    scale = jnp.ones_like(globals_).at[jnp.asarray(_PER_SERVER)].set(1.0 / n)
    return (globals_ * scale).at[jnp.asarray(_DROPPED)].set(0.0)


class SchedulerNet(nn.Module):
    """obs (one, unbatched) -> (logits [max_servers], value, aux {h, attention, pointer_logits}).

    `h_override` [embed_dim] replaces the attention feature in the pointer and the critic (the
    mean-ablation probe of `analysis.h_probe`: how much do decisions depend on h)."""

    config: PolicyConfig = PolicyConfig()

    @nn.compact
    def __call__(self, obs: Observation, h_override=None):
        cfg = self.config
        d, nh = cfg.embed_dim, cfg.num_heads
        dk = d // nh
        current, pooled = DagEncoder(d, cfg.gnn_layers, cfg.dag_encoder, name="dag")(obs.dag)
        glob = symlog(policy_globals(obs.globals, cfg.global_inputs))
        context = jnp.concatenate([symlog(obs.task), glob, current, pooled])
        query = MLP((cfg.hidden, d), name="query")(context)
        servers = MLP((cfg.hidden, d), activate_last=True, name="server_encoder")(symlog(obs.servers))  # [N, d]
        # attention keys, values and pointer keys of every server: one [N, d] x [d, 3d] product
        proj = nn.Dense(3 * d, name="server_proj")(servers)
        keys, values, ptr_k = proj[:, :d].reshape(-1, nh, dk), proj[:, d:2 * d].reshape(-1, nh, dk), proj[:, 2 * d:]
        q = nn.Dense(d, name="q")(query).reshape(nh, dk)
        mask = obs.action_mask
        n_active = jnp.maximum(obs.globals[GLOBAL["n_active"]], 2.0)
        att_logits = jnp.einsum("hk,nhk->hn", q, keys) / jnp.sqrt(dk)  # [H, N]
        if cfg.log_n_scaling:
            s_att = self.param("ssmax_attention", nn.initializers.ones, (nh,))
            att_logits = att_logits * (s_att * jnp.log(n_active))[:, None]
        att_logits = jnp.where(mask[None, :], att_logits, NEG)
        attention = jax.nn.softmax(att_logits, axis=-1)  # [H, N]
        mixed = jnp.einsum("hn,nhk->hk", attention, values).reshape(d)
        h = nn.Dense(d, name="attention_out")(mixed)  # the attention feature SRR regularizes
        if h_override is not None:
            h = jnp.broadcast_to(jnp.asarray(h_override, h.dtype), h.shape)

        ptr_q = nn.Dense(d, name="pointer_query")(jnp.concatenate([h, query]) if cfg.pointer_bypass else h)
        logits = ptr_k @ ptr_q / jnp.sqrt(d)
        if cfg.log_n_scaling:
            s_ptr = self.param("ssmax_pointer", nn.initializers.ones, ())
            logits = logits * s_ptr * jnp.log(n_active)
        logits = jnp.where(mask, logits, NEG)
        value = MLP((cfg.hidden, cfg.hidden, 1), name="critic")(
            jnp.concatenate([h, symlog(obs.task), glob]))[0]
        return logits, value, {"h": h, "attention": attention, "pointer_logits": logits}


def apply_batch(net: SchedulerNet, params, obs: Observation):
    """The network over a batch of observations (leading axis)."""
    return jax.vmap(net.apply, in_axes=(None, 0))(params, obs)


def greedy_policy(net: SchedulerNet, params):
    """A jittable `policy(key, obs) -> server` that takes the most likely server."""
    def policy(key, obs):
        del key
        logits, _, _ = net.apply(params, obs)
        return jnp.argmax(logits).astype(jnp.int32)

    return policy
