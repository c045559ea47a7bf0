"""Structured Representation Regularization (SRR) of the attention feature h.

Over a minibatch H [B, d] of attention features:

* decorrelation: the mean squared off-diagonal entry of the covariance of H,
  pushing the dimensions of h apart;
* KL: KL(N(mu, Sigma) || N(0, I)) of the moment-matched Gaussian,
  0.5 (tr Sigma + |mu|^2 - d - log det Sigma), pinning the feature's
  location and scale.

Together they keep h's statistics fixed while the number of servers it
attends over changes. Both use the biased (1/B) covariance, so a batch that is
exactly whitened (mean 0, covariance I) scores exactly 0 on both.
"""

from __future__ import annotations

import jax.numpy as jnp


def moments(h, weights=None):
    """Mean [d] and biased covariance [d, d] over the batch axis of h [B, d]; `weights` [B]
    (e.g. 0 for transitions that made no decision) weight the rows."""
    if weights is None:
        weights = jnp.ones(h.shape[0], h.dtype)
    w = weights.astype(h.dtype) / jnp.maximum(jnp.sum(weights), 1e-12)
    mu = w @ h
    x = h - mu
    return mu, (x * w[:, None]).T @ x


def decorrelation_loss(h, weights=None):
    _, cov = moments(h, weights)
    d = cov.shape[0]
    off = cov - jnp.diag(jnp.diag(cov))
    return jnp.sum(off**2) / (d * (d - 1)) if d > 1 else jnp.float32(0.0)


def gaussian_kl(h, eps: float = 1e-4, weights=None):
    """KL of the moment-matched Gaussian of h to N(0, I); eps keeps log det finite for rank-deficient batches."""
    mu, cov = moments(h, weights)
    d = cov.shape[0]
    cov = cov + eps * jnp.eye(d)
    _, logdet = jnp.linalg.slogdet(cov)
    return 0.5 * (jnp.trace(cov) + mu @ mu - d - logdet) - 0.5 * (d * eps - d * jnp.log1p(eps))


def srr_loss(h, decorrelation_weight: float, kl_weight: float, weights=None):
    """(weighted total, {"srr_decorrelation": ..., "srr_kl": ...}); the terms are logged even at weight 0."""
    dec = decorrelation_loss(h, weights)
    kl = gaussian_kl(h, weights=weights)
    return decorrelation_weight * dec + kl_weight * kl, {"srr_decorrelation": dec, "srr_kl": kl}


def feature_stats(h, weights=None):
    """Summary statistics of h for logging: mean, mean variance, mean |off-diagonal correlation|."""
    mu, cov = moments(h, weights)
    var = jnp.diag(cov)
    sd = jnp.sqrt(jnp.maximum(var, 1e-12))
    corr = cov / (sd[:, None] * sd[None, :])
    d = cov.shape[0]
    off = jnp.sum(jnp.abs(corr - jnp.diag(jnp.diag(corr)))) / max(d * (d - 1), 1)
    norms = jnp.linalg.norm(h, axis=1)
    w = jnp.ones_like(norms) if weights is None else weights.astype(norms.dtype)
    return {"h_mean": jnp.mean(mu), "h_var": jnp.mean(var), "h_offdiag_corr": off,
            "h_norm": jnp.sum(norms * w) / jnp.maximum(jnp.sum(w), 1e-12)}
