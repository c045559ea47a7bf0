"""Structured Representation Regularization (SRR) of the attention feature h.

Over a minibatch H [B, d] of attention features:

* decorrelation: the mean squared off-diagonal entry of the *correlation*
  matrix of H, pushing the dimensions of h apart. It is scale-free: shrinking
  h does not lower it (the covariance form, v1 of this module, was minimised
  by shrinking h, so a decorrelation-only run was degenerate, and its gradient
  was ~1e-3 of the KL term's on trained features, so SRR was KL-only);
* KL: KL(N(mu, Sigma) || N(0, I)) of the moment-matched Gaussian,
  0.5 (tr Sigma + |mu|^2 - d - log det Sigma), *per dimension* (divided by d),
  pinning the feature's location and scale at a weight that does not depend on
  the embedding width.

Both terms lie in comparable ranges (decorrelation in [0, 1], KL per dimension
a few units for an untrained network), so one weight range serves both. Both
use the biased (1/B) moments, so a batch that is exactly whitened (mean 0,
covariance I) scores exactly 0 on both. `train.learner` can log each term's
gradient norm beside the PPO loss's (`--log_grad_norms`), the check that the
weights balance.
"""

from __future__ import annotations

import jax.numpy as jnp

SD_FLOOR = 1e-6  # a constant dimension has correlation 0 with the others (not NaN)


def moments(h, weights=None):
    """Mean [d] and biased covariance [d, d] over the batch axis of h [B, d]; `weights` [B]
    (e.g. 0 for transitions that made no decision) weight the rows."""
    if weights is None:
        weights = jnp.ones(h.shape[0], h.dtype)
    w = weights.astype(h.dtype) / jnp.maximum(jnp.sum(weights), 1e-12)
    mu = w @ h
    x = h - mu
    return mu, (x * w[:, None]).T @ x


def correlation(cov):
    """The correlation matrix of a covariance; dimensions with variance below SD_FLOOR**2 count as
    uncorrelated (their row and column are 0 off the diagonal)."""
    sd = jnp.sqrt(jnp.maximum(jnp.diag(cov), SD_FLOOR**2))
    return cov / (sd[:, None] * sd[None, :])


def decorrelation_loss(h, weights=None):
    """Mean squared off-diagonal correlation of h's dimensions, in [0, 1]; invariant to scaling h."""
    _, cov = moments(h, weights)
    d = cov.shape[0]
    if d < 2:
        return jnp.float32(0.0)
    corr = correlation(cov)
    off = corr - jnp.diag(jnp.diag(corr))
    return jnp.sum(off**2) / (d * (d - 1))


def gaussian_kl(h, eps: float = 1e-4, weights=None):
    """KL of the moment-matched Gaussian of h to N(0, I), per dimension; eps keeps log det finite
    for rank-deficient batches (and is subtracted again, so a whitened batch scores 0)."""
    mu, cov = moments(h, weights)
    d = cov.shape[0]
    cov = cov + eps * jnp.eye(d)
    _, logdet = jnp.linalg.slogdet(cov)
    total = 0.5 * (jnp.trace(cov) + mu @ mu - d - logdet) - 0.5 * (d * eps - d * jnp.log1p(eps))
    return total / d


def srr_loss(h, decorrelation_weight: float, kl_weight: float, weights=None):
    """(weighted total, {"srr_decorrelation": ..., "srr_kl": ...}); the terms are logged even at weight 0."""
    dec = decorrelation_loss(h, weights)
    kl = gaussian_kl(h, weights=weights)
    return decorrelation_weight * dec + kl_weight * kl, {"srr_decorrelation": dec, "srr_kl": kl}


def feature_stats(h, weights=None):
    """Summary statistics of h for logging: mean, mean variance, mean |off-diagonal correlation|."""
    mu, cov = moments(h, weights)
    var = jnp.diag(cov)
    corr = correlation(cov)
    d = cov.shape[0]
    off = jnp.sum(jnp.abs(corr - jnp.diag(jnp.diag(corr)))) / max(d * (d - 1), 1)
    norms = jnp.linalg.norm(h, axis=1)
    w = jnp.ones_like(norms) if weights is None else weights.astype(norms.dtype)
    return {"h_mean": jnp.mean(mu), "h_var": jnp.mean(var), "h_offdiag_corr": off,
            "h_norm": jnp.sum(norms * w) / jnp.maximum(jnp.sum(w), 1e-12)}
