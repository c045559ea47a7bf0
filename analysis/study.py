"""Statistics of the pre-registered SCALE seed study.

The study trains each policy variant (no_srr, srr, log_n, srr+log_n) with S
independent training seeds and evaluates every seed on the same fixed test
episodes at several cluster sizes N. A seed's score at one N is the mean over
those episodes of (its mean response time / EFT's mean response time on the same
episode); lower is better. This module turns the per-seed scores of two variants
into an effect size with a confidence interval and a p-value, corrects a family
of p-values for multiplicity, and sizes the study (seeds per variant).

The unit of replication is the training seed, so every function here takes one
score per seed (a 1-D array), never a [seeds, episodes] matrix. The episodes are
not independent strata: one seed's policy plays all of them, and a seed that
trained badly is bad on most episodes at once. If the episodes were handed to
rliable as tasks, its stratified bootstrap would redraw the seeds separately in
every episode column, so each bootstrap sample would mix a good seed on one
episode with a bad seed on the next. That averages the seed-to-seed variation
away, and the interval comes out too narrow: it would describe rerunning the
evaluation with the same sort of seeds, when the question is what another set of
training seeds would give. Averaging over episodes first and bootstrapping
whole seeds keeps that variation in.

Effect size: the relative change of the interquartile mean (IQM, the 25%
trimmed mean), 100 * (IQM(treatment) / IQM(control) - 1) percent. The IQM
ignores one diverged seed in a way the mean does not, and it is less noisy
than the median.

The sample-size formulas use the normal approximation for a difference of two
independent means and divide by 0.84. Under normal data the 25% trimmed mean's
variance is about 1/0.84 times the mean's for large samples (its asymptotic
relative efficiency is 0.837), so the IQM needs about 1/0.84 times as many
seeds as the mean for the same precision. SDs and effects are given in percent
of the mean score, so a half-width in percent is close to a half-width of the
relative change when the two variants' means are close.

Pure NumPy (SciPy for normal quantiles); rliable is imported only inside the
functions that use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.stats import norm

IQM_EFFICIENCY = 0.84


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError as e:
        raise ImportError("rliable is not installed: pip install -e '.[analysis]'") from e
    return library, metrics


def _scores(x, name: str, min_seeds: int = 2) -> np.ndarray:
    """One finite score per seed, as a float64 1-D array; a ValueError names the argument otherwise."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array with one score per seed, got shape {a.shape}")
    if a.size < min_seeds:
        raise ValueError(f"{name}: needs at least {min_seeds} seeds, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains non-finite values")
    return a


def _positive(v, name: str) -> float:
    v = float(v)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}: must be a positive finite number, got {v}")
    return v


def _fraction(v, name: str) -> float:
    v = float(v)
    if not (0.0 < v < 1.0):
        raise ValueError(f"{name}: must lie strictly between 0 and 1, got {v}")
    return v


def _iqm_sorted(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """The same trimming as scipy.stats.trim_mean(a, 0.25) along `axis`, vectorized over bootstrap replicates.

    Works on a [reps, seeds] array at once, where rliable's aggregate_iqm would
    pool all the entries into one trimmed mean."""
    a = np.sort(a, axis=axis)
    n = a.shape[axis]
    cut = int(0.25 * n)
    return np.take(a, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def iqm(x) -> float:
    """Interquartile mean of per-seed scores (rliable's aggregate_iqm; equals scipy.stats.trim_mean(x, 0.25)).

    The statistic rliable recommends for few runs: robust to an outlying seed,
    less variable than the median."""
    _, metrics = _rliable()
    a = _scores(x, "x", min_seeds=1)
    return float(metrics.aggregate_iqm(a.reshape(-1, 1)))


def _relative_pct(t: np.ndarray, c: np.ndarray) -> np.ndarray:
    """100 * (IQM(t) / IQM(c) - 1) along the last axis."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * (_iqm_sorted(t) / _iqm_sorted(c) - 1.0)


def relative_change(treatment, control, reps: int = 10000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Percent change of the IQM score from `control` to `treatment`, with a bootstrap CI and p-value.

    Both arguments hold one score per training seed. The interval is rliable's
    stratified bootstrap (percentile method): each variant is given as a
    [seeds, 1] array (one task, no task bootstrap) and the two are resampled
    independently, since their seeds are unrelated. Negative is an improvement
    when lower scores are better.

    The p-value, for "no change", is two-sided: 2 * min(share of bootstrap
    estimates <= 0, share >= 0), kept within [1/reps, 1]. Its replicates are
    drawn here with NumPy (numpy.random.default_rng(seed); each array resampled
    independently with replacement), because rliable returns only the interval
    endpoints. It therefore comes from a different set of replicates than the
    interval, and near the boundary the two can disagree slightly.

    rliable 1.2.0 draws its indices from NumPy's global RNG (its random_state
    argument does not reach them), so the global RNG is seeded with `seed` for
    the call and restored afterwards: the result depends only on the inputs.
    `ci95_pct` holds the interval at `confidence` (95% unless asked otherwise).
    """
    library, _ = _rliable()
    t = _scores(treatment, "treatment")
    c = _scores(control, "control")
    if isinstance(reps, bool) or int(reps) != reps or reps < 1:
        raise ValueError(f"reps: must be a positive integer, got {reps}")
    reps = int(reps)
    confidence = _fraction(confidence, "confidence")
    iqm_c = float(_iqm_sorted(c))
    if not iqm_c > 0:
        raise ValueError(f"control: the IQM must be positive to take a ratio, got {iqm_c}")

    estimate = float(_relative_pct(t, c))

    nt, nc = t.size, c.size
    kt, kc = nt // 4, nc // 4  # int(0.25 * n), the cut of trim_mean(x, 0.25)

    def ratio(tt, cc):  # one bootstrap replicate; inlined, as rliable calls it `reps` times
        st, sc = np.sort(tt, axis=None), np.sort(cc, axis=None)
        return np.array([100.0 * ((st[kt:nt - kt].sum() / (nt - 2 * kt)) / (sc[kc:nc - kc].sum() / (nc - 2 * kc)) - 1.0)])

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        _, intervals = library.get_interval_estimates(
            {"relative_change": [t.reshape(-1, 1), c.reshape(-1, 1)]},
            ratio,
            method="percentile",
            task_bootstrap=False,
            reps=reps,
            confidence_interval_size=confidence,
        )
    finally:
        np.random.set_state(state)
    lo, hi = (float(v) for v in np.asarray(intervals["relative_change"]).ravel())

    rng = np.random.default_rng(seed)
    boot_t = t[rng.integers(0, t.size, size=(reps, t.size))]
    boot_c = c[rng.integers(0, c.size, size=(reps, c.size))]
    boot = _relative_pct(boot_t, boot_c)
    p = 2.0 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0)))
    p = min(max(p, 1.0 / reps), 1.0)

    return {
        "estimate_pct": estimate,
        "ci95_pct": [lo, hi],
        "p_value": p,
        "seeds": [int(t.size), int(c.size)],
        "method": f"IQM ratio; rliable stratified bootstrap (percentile, variants resampled independently, "
                  f"{confidence:.0%} CI); {reps} reps",
    }


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values, in the order of the input keys.

    Controls the family-wise error over the pre-registered comparisons without
    assuming they are independent, and rejects at least as much as Bonferroni.
    The k-th smallest p (k = 1..m) becomes max over j <= k of (m - j + 1) * p_(j),
    capped at 1, so the adjusted values keep the order of the raw ones."""
    names = list(p_values)
    p = np.array([float(p_values[k]) for k in names], dtype=np.float64)
    if not np.all((p >= 0) & (p <= 1)):
        bad = [k for k, v in zip(names, p) if not (0 <= v <= 1)]
        raise ValueError(f"p_values: must lie in [0, 1]; bad entries {bad}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return {k: float(v) for k, v in zip(names, out)}


def iqm_interval(x, reps: int = 10000, seed: int = 0, confidence: float = 0.95) -> dict:
    """IQM of one variant's per-seed values with a percentile bootstrap interval over seeds (seeds
    resampled with replacement; numpy.random.default_rng(seed)): {iqm, ci95: [lo, hi], seeds}."""
    a = _scores(x, "x")
    rng = np.random.default_rng(seed)
    boot = _iqm_sorted(a[rng.integers(0, a.size, size=(int(reps), a.size))])
    q = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [q, 1.0 - q])
    return {"iqm": float(_iqm_sorted(a)), "ci95": [float(lo), float(hi)], "seeds": int(a.size)}


def _ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank) along the last axis."""
    from scipy.stats import rankdata

    return rankdata(a, axis=-1)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x * y).sum(-1) / np.sqrt((x * x).sum(-1) * (y * y).sum(-1))


def spearman_interval(x, y, reps: int = 10000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Spearman's rank correlation between two per-seed quantities (x[i], y[i] from seed i) with a
    percentile bootstrap interval over seeds (pairs resampled together). Replicates where either
    side is constant have no correlation and are left out; `reps_used` says how many remained."""
    a, b = _scores(x, "x", min_seeds=3), _scores(y, "y", min_seeds=3)
    if a.size != b.size:
        raise ValueError(f"x and y: one value per seed each, got {a.size} and {b.size}")
    rho = float(_pearson_rows(_ranks(a), _ranks(b)))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(int(reps), a.size))
    boot = _pearson_rows(_ranks(a[idx]), _ranks(b[idx]))
    boot = boot[np.isfinite(boot)]
    q = (1.0 - confidence) / 2.0
    lo, hi = (np.quantile(boot, [q, 1.0 - q]) if boot.size else (np.nan, np.nan))
    return {"rho": rho, "ci95": [float(lo), float(hi)], "seeds": int(a.size), "reps_used": int(boot.size)}


def seed_sd_pct(scores) -> float:
    """Sample SD (ddof=1) of per-seed scores as a percent of their mean: the input of the sample-size formulas."""
    a = _scores(scores, "scores")
    mean = float(a.mean())
    if not mean > 0:
        raise ValueError(f"scores: the mean must be positive to express the SD as a percent of it, got {mean}")
    return float(100.0 * a.std(ddof=1) / mean)


def _z(confidence: float) -> float:
    return float(norm.ppf(0.5 + confidence / 2.0))


def _ceil(x: float) -> int:
    # a value that is an integer up to rounding (as in a round trip) is not bumped to the next one
    return int(math.ceil(x * (1.0 - 1e-12)))


def seeds_for_half_width(sd_pct, half_width_pct, confidence: float = 0.95, iqm_efficiency: float = IQM_EFFICIENCY) -> int:
    """Seeds per variant so that the CI of the difference of two variants has half-width <= `half_width_pct`.

    The difference of two independent means with n seeds each has SD
    sd * sqrt(2 / n); so n = ceil(2 * (z * sd / hw)^2 / iqm_efficiency), the last
    factor for the IQM's lower efficiency than the mean (module docstring).
    Never fewer than 2, the fewest that give an SD."""
    sd = _positive(sd_pct, "sd_pct")
    hw = _positive(half_width_pct, "half_width_pct")
    z = _z(_fraction(confidence, "confidence"))
    eff = _positive(iqm_efficiency, "iqm_efficiency")
    return max(2, _ceil(2.0 * (z * sd / hw) ** 2 / eff))


def seeds_for_power(sd_pct, effect_pct, power: float = 0.8, alpha: float = 0.05, iqm_efficiency: float = IQM_EFFICIENCY) -> int:
    """Seeds per variant for a two-sided test at `alpha` to detect a change of `effect_pct` with `power`.

    n = ceil(2 * (z_{1-alpha/2} + z_power)^2 * sd^2 / effect^2 / iqm_efficiency);
    the sign of the effect does not matter. Never fewer than 2."""
    sd = _positive(sd_pct, "sd_pct")
    effect = _positive(abs(float(effect_pct)), "effect_pct")
    power = _fraction(power, "power")
    alpha = _fraction(alpha, "alpha")
    eff = _positive(iqm_efficiency, "iqm_efficiency")
    z = float(norm.ppf(1.0 - alpha / 2.0) + norm.ppf(power))
    return max(2, _ceil(2.0 * z**2 * sd**2 / effect**2 / eff))


def half_width_for_seeds(sd_pct, seeds, confidence: float = 0.95, iqm_efficiency: float = IQM_EFFICIENCY) -> float:
    """The CI half-width (percent) that `seeds` per variant buy: z * sd * sqrt(2 / (iqm_efficiency * seeds)).

    The inverse of seeds_for_half_width, to report what a study of a given size can resolve."""
    sd = _positive(sd_pct, "sd_pct")
    if isinstance(seeds, bool) or int(seeds) != seeds or seeds < 2:
        raise ValueError(f"seeds: must be an integer >= 2, got {seeds}")
    z = _z(_fraction(confidence, "confidence"))
    eff = _positive(iqm_efficiency, "iqm_efficiency")
    return float(z * sd * math.sqrt(2.0 / (eff * int(seeds))))
