"""Statistics of the attention feature h and of the attention itself, per cluster size.

Plain NumPy/SciPy on collected samples (`analysis.collect`): h is [n, d], the
attention weights [n, heads, N] with a mask of real servers.

* moments: per-dimension mean and variance, mean norm;
* shape: KL of the moment-matched Gaussian to N(0, I), off-diagonal
  correlation mass (mean |corr_ij|, i != j), effective rank (exp of the
  entropy of the normalized singular values of the centred features);
* distances to a reference sample (the training N): RBF-kernel MMD² with the
  median-distance bandwidth and a permutation p-value, and the Fréchet
  (Gaussian 2-Wasserstein) distance;
* attention: entropy / log(N active) (1 = uniform) and the largest weight;
  the same for the policy's distribution over servers (from the pointer logits).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def moments(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = np.asarray(h, np.float64)
    mu = h.mean(axis=0)
    x = h - mu
    return mu, x.T @ x / max(len(h), 1)


def gaussian_kl_to_standard(h: np.ndarray, eps: float = 1e-6) -> float:
    """KL(N(mu, Sigma) || N(0, I)) = 0.5 (tr Sigma + |mu|^2 - d - log det Sigma)."""
    mu, cov = moments(h)
    d = len(mu)
    cov = cov + eps * np.eye(d)
    _, logdet = np.linalg.slogdet(cov)
    return float(0.5 * (np.trace(cov) + mu @ mu - d - logdet))


def offdiag_correlation(h: np.ndarray) -> float:
    """Mean |corr_ij| over i != j (0: decorrelated dimensions)."""
    _, cov = moments(h)
    sd = np.sqrt(np.maximum(np.diag(cov), 1e-12))
    corr = cov / np.outer(sd, sd)
    d = len(sd)
    return float((np.abs(corr).sum() - np.abs(np.diag(corr)).sum()) / max(d * (d - 1), 1))


def effective_rank(h: np.ndarray) -> float:
    """exp(entropy of the normalized singular values of the centred features); d for isotropic data."""
    x = np.asarray(h, np.float64)
    x = x - x.mean(axis=0)
    s = np.linalg.svd(x, compute_uv=False)
    p = s / max(s.sum(), 1e-300)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def _sq_dists(a, b):
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def median_bandwidth(x: np.ndarray, y: np.ndarray, max_points: int = 1000, seed: int = 0) -> float:
    """The median pairwise distance of the pooled sample (on at most `max_points` points)."""
    z = np.concatenate([x, y])
    if len(z) > max_points:
        z = z[np.random.default_rng(seed).choice(len(z), max_points, replace=False)]
    d = np.sqrt(_sq_dists(z, z))
    iu = np.triu_indices(len(z), 1)
    med = float(np.median(d[iu])) if len(iu[0]) else 1.0
    return med if med > 0 else 1.0


def mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased RBF-kernel MMD² between samples x [n, d] and y [m, d]."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    bw = bandwidth or median_bandwidth(x, y)
    k = lambda a, b: np.exp(-_sq_dists(a, b) / (2 * bw * bw))  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def mmd_test(x, y, permutations: int = 200, seed: int = 0, max_points: int = 500) -> tuple[float, float]:
    """(MMD², permutation p-value) with the median bandwidth of the pooled sample; each sample is
    subsampled to `max_points` to bound the O(n²) kernels."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) > max_points:
        x = x[rng.choice(len(x), max_points, replace=False)]
    if len(y) > max_points:
        y = y[rng.choice(len(y), max_points, replace=False)]
    bw = median_bandwidth(x, y, seed=seed)
    z = np.concatenate([x, y])
    kz = np.exp(-_sq_dists(z, z) / (2 * bw * bw))
    n = len(x)

    def stat(idx):
        a, b = idx[:n], idx[n:]
        kxx, kyy, kxy = kz[np.ix_(a, a)], kz[np.ix_(b, b)], kz[np.ix_(a, b)]
        m = len(b)
        return (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()

    observed = stat(np.arange(len(z)))
    null = np.array([stat(rng.permutation(len(z))) for _ in range(permutations)])
    return float(observed), float((1 + np.sum(null >= observed)) / (1 + permutations))


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Squared 2-Wasserstein distance between the moment-matched Gaussians:
    |mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x S_y)^(1/2))."""
    mx, sx = moments(x)
    my, sy = moments(y)
    covmean = linalg.sqrtm(sx @ sy)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(max(((mx - my) ** 2).sum() + np.trace(sx + sy - 2 * covmean), 0.0))


def attention_stats(attention: np.ndarray, n_active: np.ndarray) -> dict:
    """attention [n, heads, N] (zeros on masked servers), n_active [n] -> normalized entropy and max weight."""
    a = np.asarray(attention, np.float64)
    ent = -(np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0)).sum(-1)  # [n, heads]
    log_n = np.log(np.maximum(np.asarray(n_active, np.float64), 2.0))[:, None]
    return {"attention_entropy_over_log_n": float((ent / log_n).mean()), "attention_max": float(a.max(-1).mean())}


def pointer_stats(logits: np.ndarray, n_active: np.ndarray) -> dict:
    """Masked pointer logits [n, N] (-inf where masked) -> the policy's entropy / log N and its top probability."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.where(np.isfinite(z), np.exp(z), 0.0)
    p = p / p.sum(-1, keepdims=True)
    ent = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(-1)
    log_n = np.log(np.maximum(np.asarray(n_active, np.float64), 2.0))
    return {"policy_entropy_over_log_n": float((ent / log_n).mean()), "policy_max_prob": float(p.max(-1).mean())}


def feature_stats(h: np.ndarray) -> dict:
    mu, cov = moments(h)
    return {
        "mean_abs_mean": float(np.abs(mu).mean()),
        "mean_variance": float(np.diag(cov).mean()),
        "mean_norm": float(np.linalg.norm(np.asarray(h, np.float64), axis=1).mean()),
        "gaussian_kl": gaussian_kl_to_standard(h),
        "offdiag_correlation": offdiag_correlation(h),
        "effective_rank": effective_rank(h),
    }


def shift_stats(h: np.ndarray, reference: np.ndarray, permutations: int = 200, seed: int = 0) -> dict:
    m, p = mmd_test(h, reference, permutations=permutations, seed=seed)
    return {"mmd2": m, "mmd_p_value": p, "frechet": frechet_distance(h, reference)}
