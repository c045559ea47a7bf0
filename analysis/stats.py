"""Statistics of the attention feature h and of the attention itself, per cluster size.

Plain NumPy/SciPy on collected samples (`analysis.collect`): h is [n, d], the
attention weights [n, heads, N] with a mask of real servers.

* moments: per-dimension mean and variance, mean norm;
* shape: KL of the moment-matched Gaussian to N(0, I), off-diagonal
  correlation mass (mean |corr_ij|, i != j), effective rank (exp of the
  entropy of the normalized singular values of the centred features);
* distances to a reference sample (the training N): RBF-kernel MMD² with the
  median-distance bandwidth and a permutation p-value (whole episodes
  permuted when their labels are given), and the Fréchet (Gaussian
  2-Wasserstein) distance, raw and on reference-standardized features;
* attention: entropy / log(servers the task may go to) (1 = uniform over
  them) and the largest weight;
  the same for the policy's distribution over servers (from the pointer logits).
"""

from __future__ import annotations

import numpy as np


def moments(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = np.asarray(h, np.float64)
    mu = h.mean(axis=0)
    x = h - mu
    return mu, x.T @ x / max(len(h), 1)


def gaussian_kl_to_standard(h: np.ndarray, eps: float = 1e-6) -> float:
    """KL(N(mu, Sigma) || N(0, I)) = 0.5 (tr Sigma + |mu|^2 - d - log det Sigma).

    A ridge of `eps` times the mean variance keeps log det finite for a rank-deficient
    sample without depending on the features' scale."""
    mu, cov = moments(h)
    d = len(mu)
    cov = cov + eps * max(np.trace(cov) / d, 1e-12) * np.eye(d)
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


def median_bandwidth(x: np.ndarray, y: np.ndarray | None = None, max_points: int = 1000, seed: int = 0) -> float:
    """The median pairwise distance of x (pooled with y when given), on at most `max_points` points."""
    z = np.asarray(x, np.float64) if y is None else np.concatenate([x, y])
    if len(z) > max_points:
        z = z[np.random.default_rng(seed).choice(len(z), max_points, replace=False)]
    d = np.sqrt(_sq_dists(z, z))
    iu = np.triu_indices(len(z), 1)
    med = float(np.median(d[iu])) if len(iu[0]) else 1.0
    return med if med > 0 else 1.0


def _rbf(a, b, bandwidth):
    return np.exp(-_sq_dists(a, b) / (2 * bandwidth * bandwidth))


def _mmd2_from_kernel(k, a, b) -> float:
    """Unbiased MMD² from the pooled kernel matrix k and the index sets of the two samples."""
    kxx, kyy, kxy = k[np.ix_(a, a)], k[np.ix_(b, b)], k[np.ix_(a, b)]
    n, m = len(a), len(b)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased RBF-kernel MMD² between samples x [n, d] and y [m, d] (pooled median bandwidth by default)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    bw = median_bandwidth(x, y) if bandwidth is None else bandwidth
    z = np.concatenate([x, y])
    return _mmd2_from_kernel(_rbf(z, z, bw), np.arange(len(x)), np.arange(len(x), len(z)))


def mmd_test(x, y, permutations: int = 200, seed: int = 0, max_points: int = 500, bandwidth: float | None = None,
             groups_x=None, groups_y=None) -> tuple[float, float]:
    """(unbiased MMD², permutation p-value).

    `bandwidth`: the RBF width; by default the pooled sample's median distance (pass one fixed
    width, e.g. the reference sample's, to compare MMD² across several x). `groups_x/y`: labels of
    dependent blocks (samples from one episode): the null then permutes whole blocks between the
    samples, not single rows, so dependence within an episode does not shrink the p-value. Each
    sample is subsampled to `max_points` rows to bound the O(n²) kernels."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    gx = np.zeros(len(x), np.int64) if groups_x is None else np.asarray(groups_x)
    gy = np.zeros(len(y), np.int64) if groups_y is None else np.asarray(groups_y)
    if len(x) > max_points:
        i = rng.choice(len(x), max_points, replace=False)
        x, gx = x[i], gx[i]
    if len(y) > max_points:
        i = rng.choice(len(y), max_points, replace=False)
        y, gy = y[i], gy[i]
    bw = median_bandwidth(x, y, seed=seed) if bandwidth is None else bandwidth
    z = np.concatenate([x, y])
    kz = _rbf(z, z, bw)
    n = len(x)
    observed = _mmd2_from_kernel(kz, np.arange(n), np.arange(n, len(z)))
    if groups_x is None or groups_y is None:
        null = [_mmd2_from_kernel(kz, p[:n], p[n:]) for p in (rng.permutation(len(z)) for _ in range(permutations))]
    else:  # block labels: x's blocks and y's are distinct even where their numbers coincide
        _, block = np.unique(np.concatenate([np.stack([np.zeros_like(gx), gx], 1), np.stack([np.ones_like(gy), gy], 1)]),
                             axis=0, return_inverse=True)
        block = block.reshape(-1)
        n_blocks, n_x_blocks = block.max() + 1, len(np.unique(block[:n]))
        null = []
        for _ in range(permutations):
            to_x = np.isin(block, rng.permutation(n_blocks)[:n_x_blocks])
            a, b = np.flatnonzero(to_x), np.flatnonzero(~to_x)
            if len(a) > 1 and len(b) > 1:
                null.append(_mmd2_from_kernel(kz, a, b))
    null = np.asarray(null)
    return float(observed), float((1 + np.sum(null >= observed)) / (1 + len(null)))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_from_moments(mx, sx, my, sy) -> float:
    """|mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x^1/2 S_y S_x^1/2)^1/2), in the symmetric form
    (eigendecompositions of PSD matrices), which stays real and finite for singular covariances."""
    r = _psd_sqrt(np.asarray(sx, np.float64))
    cross = np.linalg.eigvalsh(r @ np.asarray(sy, np.float64) @ r)
    tr_covmean = np.sqrt(np.clip(cross, 0.0, None)).sum()
    d2 = float(((np.asarray(mx) - np.asarray(my)) ** 2).sum() + np.trace(sx) + np.trace(sy) - 2 * tr_covmean)
    return max(d2, 0.0)  # only rounding takes it below 0


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Squared 2-Wasserstein distance between the moment-matched Gaussians of two samples."""
    return frechet_from_moments(*moments(x), *moments(y))


def standardize(h: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """h in the units of the reference (its per-dimension mean 0 and sd 1), so distances between
    checkpoints whose features differ in scale (SRR pins it near 1) compare shift, not scale."""
    mu, cov = moments(reference)
    return (np.asarray(h, np.float64) - mu) / np.sqrt(np.maximum(np.diag(cov), 1e-12))


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(-1)


def attention_stats(attention: np.ndarray, n_allowed: np.ndarray) -> dict:
    """attention [n, heads, N] (zero on masked servers), n_allowed [n]: the servers the task may go to.

    Entropy is divided by log(n_allowed), so 1 means uniform over the servers the attention can
    see, at any N and GPU mix; decisions with one allowed server (entropy 0/0) are left out of it."""
    a = np.asarray(attention, np.float64)
    k = np.asarray(n_allowed, np.float64)
    ent = _entropy(a)  # [n, heads]
    some = k >= 2
    ratio = float((ent[some] / np.log(k[some])[:, None]).mean()) if some.any() else float("nan")
    return {"attention_entropy_over_log_n": ratio, "attention_max": float(a.max(-1).mean())}


def pointer_stats(logits: np.ndarray, n_allowed: np.ndarray) -> dict:
    """Masked pointer logits [n, N] (-inf where masked) -> the policy's entropy / log(n_allowed)
    (as in `attention_stats`) and its top probability."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.where(np.isfinite(z), np.exp(z), 0.0)
    p = p / p.sum(-1, keepdims=True)
    k = np.asarray(n_allowed, np.float64)
    some = k >= 2
    ratio = float((_entropy(p)[some] / np.log(k[some])).mean()) if some.any() else float("nan")
    return {"policy_entropy_over_log_n": ratio, "policy_max_prob": float(p.max(-1).mean())}


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


def shift_stats(h: np.ndarray, reference: np.ndarray, permutations: int = 200, seed: int = 0,
                bandwidth: float | None = None, groups=None, reference_groups=None) -> dict:
    """Distances of h to the reference sample: MMD² with its p-value, Fréchet, and Fréchet on
    features standardized by the reference (scale-free)."""
    m, p = mmd_test(h, reference, permutations=permutations, seed=seed, bandwidth=bandwidth,
                    groups_x=groups, groups_y=reference_groups)
    return {"mmd2": m, "mmd_p_value": p, "frechet": frechet_distance(h, reference),
            "frechet_standardized": frechet_distance(standardize(h, reference), standardize(reference, reference))}
