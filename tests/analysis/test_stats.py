"""The shift statistics on synthetic data where the answer is known."""

import numpy as np
import pytest

from analysis import stats as S

rng = np.random.default_rng(0)
D = 4


def gauss(n, mean=0.0, seed=0):
    return np.random.default_rng(seed).normal(size=(n, D)) + mean


def test_identical_distributions_are_close():
    x, y = gauss(400, seed=1), gauss(400, seed=2)
    m, p = S.mmd_test(x, y, permutations=100)
    assert abs(m) < 0.01 and p > 0.05
    assert S.frechet_distance(x, y) < 0.1


def test_a_known_mean_shift_gives_the_known_distance():
    delta = np.array([1.5, 0.0, 0.0, 0.0])
    x, y = gauss(20000, seed=3), gauss(20000, mean=delta, seed=4)
    assert S.frechet_distance(x, y) == pytest.approx(1.5**2, rel=0.03)
    m, p = S.mmd_test(x[:300], y[:300], permutations=100)
    assert m > 0.05 and p < 0.02


def test_frechet_of_a_scale_change():
    x, y = gauss(20000, seed=5), 2.0 * gauss(20000, seed=6)
    # same mean; tr(I + 4I - 2 * 2I) = D
    assert S.frechet_distance(x, y) == pytest.approx(D, rel=0.05)


def test_kl_to_standard_normal():
    assert S.gaussian_kl_to_standard(gauss(20000, seed=7)) == pytest.approx(0.0, abs=0.01)
    mu = np.array([1.0, -1.0, 0.0, 0.5])
    assert S.gaussian_kl_to_standard(gauss(20000, mean=mu, seed=8)) == pytest.approx((mu @ mu) / 2, abs=0.02)


def test_effective_rank_and_correlation():
    iso = gauss(20000, seed=9)
    assert S.effective_rank(iso) == pytest.approx(D, rel=0.02)
    z = gauss(5000, seed=10)[:, :1]
    line = np.concatenate([z, 2 * z, -z, 0.5 * z], axis=1)
    assert S.effective_rank(line) == pytest.approx(1.0, abs=1e-3)
    assert S.offdiag_correlation(line) == pytest.approx(1.0, abs=1e-9)
    assert S.offdiag_correlation(iso) < 0.02


def test_attention_statistics():
    n = 6
    uniform = np.zeros((3, 2, 8))
    uniform[:, :, :n] = 1.0 / n
    out = S.attention_stats(uniform, np.full(3, n))
    assert out["attention_entropy_over_log_n"] == pytest.approx(1.0) and out["attention_max"] == pytest.approx(1 / n)
    onehot = np.zeros((3, 2, 8))
    onehot[:, :, 2] = 1.0
    out = S.attention_stats(onehot, np.full(3, n))
    assert out["attention_entropy_over_log_n"] == pytest.approx(0.0) and out["attention_max"] == 1.0


def test_pointer_statistics():
    logits = np.full((2, 8), -np.inf)
    logits[:, :4] = 0.0  # uniform over 4 valid servers
    out = S.pointer_stats(logits, np.full(2, 4))
    assert out["policy_entropy_over_log_n"] == pytest.approx(1.0) and out["policy_max_prob"] == pytest.approx(0.25)
    logits[:, 0] = 50.0
    out = S.pointer_stats(logits, np.full(2, 4))
    assert out["policy_entropy_over_log_n"] < 1e-6 and out["policy_max_prob"] == pytest.approx(1.0)


def test_kl_checks_the_trace_and_log_det_terms():
    # y = s * N(0, I): KL = d/2 (s^2 - 1 - 2 ln s); 3.227 for s=2, d=4 (the mean term alone would give 0)
    s = 2.0
    expected = 0.5 * D * (s * s - 1 - 2 * np.log(s))
    assert S.gaussian_kl_to_standard(s * gauss(40000, seed=11)) == pytest.approx(expected, rel=0.02)
    # a collapsed dimension: finite, and the same whatever the features' scale
    h = gauss(2000, seed=12)
    h[:, 0] = 0.0
    assert np.isfinite(S.gaussian_kl_to_standard(h))


def test_frechet_with_covariances_that_do_not_commute():
    s1, s2 = np.diag([1.0, 4.0]), np.array([[2.0, 1.0], [1.0, 2.0]])
    exact = 9.0 - 2.0 * np.sqrt(10.0 + 2.0 * np.sqrt(12.0))  # tr S1 + tr S2 - 2 tr (S1^½ S2 S1^½)^½ ≈ 0.771
    assert S.frechet_from_moments(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(exact, rel=1e-9)
    assert S.frechet_from_moments(np.ones(2), s1, np.zeros(2), s1) == pytest.approx(2.0, abs=1e-12)
    singular = np.diag([1.0, 0.0])
    assert S.frechet_from_moments(np.zeros(2), singular, np.zeros(2), singular) == pytest.approx(0.0, abs=1e-12)


def test_standardized_frechet_ignores_scale_but_sees_shift():
    ref = gauss(20000, seed=13)
    assert S.frechet_distance(S.standardize(3 * ref, 3 * ref), S.standardize(ref, ref)) == pytest.approx(0.0, abs=1e-9)
    shifted = 3 * (gauss(20000, seed=14) + np.array([1.0, 0, 0, 0]))
    # in units of the reference's sd (3), a shift of 3 is 1 sd
    assert S.frechet_distance(S.standardize(shifted, 3 * ref), S.standardize(3 * ref, 3 * ref)) == pytest.approx(1.0, rel=0.05)


def test_effective_rank_uses_singular_values_of_the_centred_data():
    # columns orthogonal with norms in ratio 2:1, offset by a mean: p = (2/3, 1/3) -> exp(H) = 1.890
    x = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]]) + np.array([5.0, -3.0])
    p = np.array([2 / 3, 1 / 3])
    assert S.effective_rank(x) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-9)


def test_mmd_is_unbiased_under_the_null():
    vals = [S.mmd2(gauss(60, seed=100 + i), gauss(60, seed=200 + i), bandwidth=2.0) for i in range(200)]
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals)) and min(vals) < 0


def test_permuting_whole_episodes_keeps_dependent_samples_from_looking_shifted():
    # 8 + 8 episodes drawn from one distribution; each episode's 40 samples share an episode offset,
    # so rows are strongly dependent. Row permutation calls that a shift; block permutation does not.
    r = np.random.default_rng(15)

    def episodes(k):
        offsets = r.normal(size=(k, 1, D))
        return (offsets + 0.1 * r.normal(size=(k, 40, D))).reshape(-1, D), np.repeat(np.arange(k), 40)

    (x, gx), (y, gy) = episodes(8), episodes(8)
    _, p_rows = S.mmd_test(x, y, permutations=200, max_points=320)
    _, p_blocks = S.mmd_test(x, y, permutations=200, max_points=320, groups_x=gx, groups_y=gy)
    assert p_rows < 0.01 < 0.05 < p_blocks


def test_entropy_is_normalized_by_the_servers_the_task_may_use():
    att = np.zeros((3, 2, 16))
    att[:, :, :5] = 1 / 5  # uniform over the 5 allowed servers of 16 active
    assert S.attention_stats(att, np.full(3, 5))["attention_entropy_over_log_n"] == pytest.approx(1.0)
    single = np.zeros((2, 2, 16))
    single[:, :, 0] = 1.0  # one allowed server: left out of the entropy, not counted as 0/0
    out = S.attention_stats(np.concatenate([att[:1], single]), np.array([5, 1, 1]))
    assert out["attention_entropy_over_log_n"] == pytest.approx(1.0)
