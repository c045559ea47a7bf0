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
