"""The SCALE seed-study statistics on data where the answer is known."""

import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import norm, trim_mean

from analysis import study as S

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0.05, max_value=50.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=60))
def test_iqm_is_the_25pct_trimmed_mean(xs):
    x = np.array(xs)
    assert S.iqm(x) == pytest.approx(trim_mean(x, 0.25), rel=1e-12, abs=1e-9)


def test_iqm_ignores_an_outlying_seed():
    x = np.array([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 50.0])
    assert S.iqm(x) == pytest.approx(1.0, abs=0.03)
    assert x.mean() > 5


@settings(max_examples=20, deadline=None)
@given(st.lists(positive, min_size=2, max_size=20), st.floats(min_value=0.2, max_value=5.0))
def test_a_known_ratio_is_recovered(control, k):
    c = np.array(control)
    r = S.relative_change(k * c, c, reps=200)
    assert r["estimate_pct"] == pytest.approx(100 * (k - 1), rel=1e-9, abs=1e-9)
    assert r["seeds"] == [len(c), len(c)]


def test_result_fields_and_a_clear_effect():
    rng = np.random.default_rng(1)
    control = rng.normal(1.0, 0.03, 20)
    treatment = 0.8 * control[::-1]
    r = S.relative_change(treatment, control, reps=2000, seed=3)
    assert set(r) == {"estimate_pct", "ci95_pct", "p_value", "seeds", "method"}
    lo, hi = r["ci95_pct"]
    assert lo < -20 < hi and hi < 0
    assert r["p_value"] == pytest.approx(1 / 2000)  # no bootstrap replicate reaches 0
    assert "IQM" in r["method"] and "rliable" in r["method"] and "2000" in r["method"]


def test_no_change_gives_a_large_p_value_and_an_interval_around_zero():
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 0.05, 25)
    r = S.relative_change(x, x.copy(), reps=2000)
    assert r["estimate_pct"] == 0.0
    lo, hi = r["ci95_pct"]
    assert lo < 0 < hi
    assert 0.5 < r["p_value"] <= 1.0


def test_reproducible_and_the_global_rng_is_left_alone():
    rng = np.random.default_rng(4)
    t, c = rng.normal(0.95, 0.05, 10), rng.normal(1.0, 0.05, 10)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = S.relative_change(t, c, reps=500, seed=7)
    assert np.array_equal(np.random.get_state()[1], before)
    b = S.relative_change(t, c, reps=500, seed=7)
    other = S.relative_change(t, c, reps=500, seed=8)
    assert a == b
    assert a["ci95_pct"] != other["ci95_pct"]
    assert a["estimate_pct"] == other["estimate_pct"]


def test_ci_coverage_of_a_known_relative_change():
    """200 simulated studies of 30 vs 30 seeds (500 reps each, to stay fast); for normal scores the population IQM is the mean."""
    true_pct = 100 * (0.92 / 1.0 - 1)
    rng = np.random.default_rng(5)
    covered = 0
    studies = 200
    for i in range(studies):
        t = rng.normal(0.92, 0.06, 30)
        c = rng.normal(1.0, 0.06, 30)
        lo, hi = S.relative_change(t, c, reps=500, seed=i)["ci95_pct"]
        covered += lo <= true_pct <= hi
    assert 0.88 <= covered / studies <= 0.99


def test_the_ci_widens_with_the_seed_sd():
    z_t = np.random.default_rng(6).standard_normal(16)
    z_c = np.random.default_rng(7).standard_normal(16)
    width = {}
    for sd in (0.02, 0.06):
        r = S.relative_change(0.9 + sd * z_t, 1.0 + sd * z_c, reps=2000)
        width[sd] = r["ci95_pct"][1] - r["ci95_pct"][0]
    assert width[0.06] > 2.5 * width[0.02]


def test_seeds_not_episodes_are_the_unit_of_replication():
    """Seed quality shared across episodes: bootstrapping seeds within each episode (episodes as
    rliable tasks) gives a narrower interval than bootstrapping whole seeds, as the module says."""
    from rliable import library, metrics

    rng = np.random.default_rng(8)
    seeds, episodes = 12, 40
    episode_difficulty = rng.normal(1.0, 0.1, episodes)

    def scores(mean):  # [seeds, episodes]: a per-seed offset plus episode noise
        return mean * episode_difficulty[None, :] + rng.normal(0, 0.08, (seeds, 1)) + rng.normal(0, 0.02, (seeds, episodes))

    t, c = scores(0.9), scores(1.0)
    per_seed = S.relative_change(t.mean(1), c.mean(1), reps=2000)
    ours = per_seed["ci95_pct"][1] - per_seed["ci95_pct"][0]

    def ratio(tt, cc):
        return np.array([100 * (metrics.aggregate_iqm(tt.mean(1, keepdims=True)) / metrics.aggregate_iqm(cc.mean(1, keepdims=True)) - 1)])

    np.random.seed(0)
    _, ci = library.get_interval_estimates({"x": [t, c]}, ratio, reps=300)
    wrong = float(ci["x"][1, 0] - ci["x"][0, 0])
    assert wrong < 0.5 * ours


def test_bad_inputs_name_the_argument():
    good = np.array([1.0, 1.1, 0.9])
    with pytest.raises(ValueError, match="treatment"):
        S.relative_change(np.array([1.0]), good)
    with pytest.raises(ValueError, match="control"):
        S.relative_change(good, np.array([1.0, np.nan, 1.2]))
    with pytest.raises(ValueError, match="treatment"):
        S.relative_change(np.array([1.0, np.inf]), good)
    with pytest.raises(ValueError, match="control"):
        S.relative_change(good, -good)
    with pytest.raises(ValueError, match="control"):
        S.relative_change(good, np.zeros(4))
    with pytest.raises(ValueError, match="treatment"):
        S.relative_change(np.ones((3, 2)), good)
    with pytest.raises(ValueError, match="reps"):
        S.relative_change(good, good, reps=0)
    with pytest.raises(ValueError, match="confidence"):
        S.relative_change(good, good, confidence=1.5)
    with pytest.raises(ValueError, match="x"):
        S.iqm([])
    with pytest.raises(ValueError, match="scores"):
        S.seed_sd_pct([1.0])
    with pytest.raises(ValueError, match="p_values"):
        S.holm({"a": 0.2, "b": 1.5})
    with pytest.raises(ValueError, match="p_values"):
        S.holm({"a": float("nan")})
    with pytest.raises(ValueError, match="sd_pct"):
        S.seeds_for_half_width(0.0, 4.0)
    with pytest.raises(ValueError, match="half_width_pct"):
        S.seeds_for_half_width(10.0, -1.0)
    with pytest.raises(ValueError, match="effect_pct"):
        S.seeds_for_power(10.0, 0.0)
    with pytest.raises(ValueError, match="power"):
        S.seeds_for_power(10.0, 5.0, power=1.0)
    with pytest.raises(ValueError, match="alpha"):
        S.seeds_for_power(10.0, 5.0, alpha=0.0)
    with pytest.raises(ValueError, match="seeds"):
        S.half_width_for_seeds(10.0, 1)


def test_missing_rliable_is_reported(monkeypatch):
    for name in ("rliable", "rliable.library", "rliable.metrics"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[analysis\]'"):
        S.iqm([1.0, 2.0])
    with pytest.raises(ImportError, match="rliable is not installed"):
        S.relative_change([1.0, 2.0], [1.0, 2.0])


def test_holm_by_hand():
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
    # sorted: a 0.01*4=0.04, c 0.03*3=0.09, b 0.04*2=0.08 -> max(0.09, 0.08)=0.09, d 0.5*1 -> 0.5
    assert S.holm(p) == pytest.approx({"a": 0.04, "b": 0.09, "c": 0.09, "d": 0.5})
    assert list(S.holm(p)) == list(p)
    assert S.holm({"x": 0.3, "y": 0.6}) == pytest.approx({"x": 0.6, "y": 0.6})
    assert S.holm({"x": 0.7, "y": 0.9}) == {"x": 1.0, "y": 1.0}
    assert S.holm({}) == {}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=12))
def test_holm_is_monotone_capped_and_no_smaller_than_raw(ps):
    p = {f"h{i}": v for i, v in enumerate(ps)}
    adj = S.holm(p)
    m = len(ps)
    for k in p:
        assert p[k] <= adj[k] + 1e-15 and adj[k] <= 1.0
        assert adj[k] <= min(1.0, m * p[k]) + 1e-12  # never more conservative than Bonferroni
    for i in p:
        for j in p:
            if p[i] < p[j]:
                assert adj[i] <= adj[j]


def test_seed_sd_pct():
    x = np.array([0.9, 1.0, 1.1])
    assert S.seed_sd_pct(x) == pytest.approx(10.0)
    assert S.seed_sd_pct(2 * x) == pytest.approx(10.0)


def test_seeds_for_half_width_by_hand():
    assert S.seeds_for_half_width(10, 4.45) == math.ceil(2 * (1.96 * 10 / 4.45) ** 2 / 0.84) == 47
    assert S.seeds_for_half_width(10, 4.45, iqm_efficiency=1.0) == math.ceil(2 * (1.96 * 10 / 4.45) ** 2) == 39
    assert S.seeds_for_half_width(1, 100) == 2  # never fewer than two seeds


def test_seeds_for_power_by_hand():
    z = norm.ppf(0.975) + norm.ppf(0.8)  # 1.96 + 0.8416
    assert S.seeds_for_power(10, 5) == math.ceil(2 * z**2 * 100 / 25 / 0.84) == 75
    assert S.seeds_for_power(10, -5) == 75
    assert S.seeds_for_power(10, 5, power=0.9) > 75
    assert S.seeds_for_power(10, 5, alpha=0.01) > 75


@settings(max_examples=200, deadline=None)
@given(positive, st.integers(min_value=2, max_value=500), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_half_width_and_seeds_round_trip(sd, n, conf):
    hw = S.half_width_for_seeds(sd, n, confidence=conf)
    assert S.seeds_for_half_width(sd, hw, confidence=conf) == n
    # and the seeds asked for reach the half-width asked for, with one seed fewer not reaching it
    n2 = S.seeds_for_half_width(sd, 0.9 * hw, confidence=conf)
    assert S.half_width_for_seeds(sd, n2, confidence=conf) <= 0.9 * hw * (1 + 1e-12)
    assert n2 == 2 or S.half_width_for_seeds(sd, n2 - 1, confidence=conf) > 0.9 * hw


def test_the_default_efficiency_is_that_of_the_25pct_trimmed_mean():
    c = norm.ppf(0.75)
    inner, _ = integrate.quad(lambda x: x * x * norm.pdf(x), -c, c)
    var_trimmed = (inner + 2 * 0.25 * c * c) / (1 - 2 * 0.25) ** 2
    assert 1 / var_trimmed == pytest.approx(S.IQM_EFFICIENCY, abs=0.005)


def test_iqm_interval_brackets_the_iqm_and_narrows_with_more_seeds():
    from scipy.stats import trim_mean

    rng = np.random.default_rng(3)
    few, many = rng.normal(1.0, 0.1, 8), rng.normal(1.0, 0.1, 128)
    a, b = S.iqm_interval(few, reps=2000, seed=1), S.iqm_interval(many, reps=2000, seed=1)
    assert a["iqm"] == pytest.approx(trim_mean(few, 0.25)) and a["seeds"] == 8
    assert a["ci95"][0] <= a["iqm"] <= a["ci95"][1]
    assert np.diff(b["ci95"])[0] < 0.5 * np.diff(a["ci95"])[0]
    assert S.iqm_interval(few, reps=2000, seed=1) == a


def test_spearman_interval_matches_scipy_and_tells_a_relation_from_none():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(4)
    x = rng.normal(size=40)
    related, unrelated = x + 0.3 * rng.normal(size=40), rng.normal(size=40)
    r = S.spearman_interval(x, related, reps=2000)
    assert r["rho"] == pytest.approx(spearmanr(x, related).statistic) and r["ci95"][0] > 0.5
    u = S.spearman_interval(x, unrelated, reps=2000)
    assert u["rho"] == pytest.approx(spearmanr(x, unrelated).statistic) and u["ci95"][0] < 0 < u["ci95"][1]
    ties = S.spearman_interval([1, 2, 2, 3], [1, 3, 2, 4], reps=200)
    assert ties["rho"] == pytest.approx(spearmanr([1, 2, 2, 3], [1, 3, 2, 4]).statistic)
    with pytest.raises(ValueError, match="one value per seed each"):
        S.spearman_interval([1, 2, 3], [1, 2, 3, 4])
