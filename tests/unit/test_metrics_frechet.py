"""Frechet distance, streaming statistics and KID (ex4d.metrics.frechet)."""

import numpy as np
import pytest
import torch

from ex4d.metrics.frechet import (
    FeatureStats,
    frechet_distance,
    frechet_distance_from_features,
    kernel_inception_distance,
    polynomial_mmd2,
    trace_sqrt_product,
)
from ex4d.utils.errors import InputError


def _random_rotation(d, rng):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_known_gaussians_closed_form(method):
    # Covariances sharing eigenvectors: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(a) - sqrt(b))^2.
    rng = np.random.default_rng(0)
    d = 16
    q = _random_rotation(d, rng)
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T, method=method)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_one_dimensional_closed_form():
    # N(0, 2^2) vs N(3, 5^2): 3^2 + (2 - 5)^2 = 18.
    assert frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([3.0]), np.array([[25.0]])) == pytest.approx(18.0)


def test_eigh_and_sqrtm_agree_on_non_commuting_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(12, 12)), rng.normal(size=(12, 12))
    s1, s2 = a @ a.T + np.eye(12), b @ b.T + np.eye(12)
    assert trace_sqrt_product(s1, s2, "eigh") == pytest.approx(trace_sqrt_product(s1, s2, "sqrtm"), rel=1e-9)


def test_sampled_gaussians_approach_closed_form():
    rng = np.random.default_rng(2)
    s1 = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]])
    s2 = np.array([[1.0, -0.3, 0.1], [-0.3, 2.0, 0.0], [0.1, 0.0, 1.5]])
    mu1, mu2 = np.zeros(3), np.array([1.0, -0.5, 0.25])
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    assert frechet_distance_from_features(x, y) == pytest.approx(frechet_distance(mu1, s1, mu2, s2), abs=0.03)


def test_identical_rank_deficient_sets_give_zero():
    # Fewer samples than dimensions (150 videos x 400-d I3D features is this case): the covariance is singular.
    feats = np.random.default_rng(3).normal(size=(50, 128))
    assert abs(frechet_distance_from_features(feats, feats)) < 1e-9
    assert abs(frechet_distance_from_features(feats, feats.copy(), method="sqrtm")) < 1e-3


def test_streaming_in_chunks_equals_one_pass():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(257, 32)).astype(np.float32) * 3 + 1
    one = FeatureStats().update(x)
    chunked = FeatureStats()
    for start in range(0, 257, 10):
        chunked.update(torch.from_numpy(x[start : start + 10]))
    assert chunked.n == one.n == 257
    np.testing.assert_allclose(chunked.mean(), one.mean(), rtol=1e-12)
    np.testing.assert_allclose(chunked.cov(), one.cov(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(one.cov(ddof=1), np.cov(x.astype(np.float64), rowvar=False), rtol=1e-9, atol=1e-12)
    y = rng.normal(size=(100, 32))
    ref = FeatureStats().update(y)
    from ex4d.metrics.frechet import frechet_distance_from_stats

    assert frechet_distance_from_stats(chunked, ref) == pytest.approx(frechet_distance_from_stats(one, ref), rel=1e-10)


def test_merge_and_save_load(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 8))
    a, b = FeatureStats().update(x[:15]), FeatureStats().update(x[15:])
    merged = a.merge(b)
    full = FeatureStats().update(x)
    np.testing.assert_allclose(merged.cov(ddof=0), full.cov(ddof=0), rtol=1e-12)
    merged.save(tmp_path / "stats.npz")
    loaded = FeatureStats.load(tmp_path / "stats.npz")
    assert loaded.n == 40
    np.testing.assert_array_equal(loaded.outer, merged.outer)


def test_bad_features_raise():
    with pytest.raises(InputError, match="dimension"):
        FeatureStats().update(np.zeros((3, 4))).update(np.zeros((3, 5)))
    with pytest.raises(InputError, match="NaN"):
        FeatureStats().update(np.array([[np.nan, 1.0]]))
    with pytest.raises(InputError, match="more than 1 samples"):
        FeatureStats().update(np.zeros((1, 4))).cov()


def test_kid_formula_and_behaviour():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(20, 4))
    # One subset containing every item (subset size = 20 caps at the smaller set): compare with the sum form.
    k = lambda a, b: (a @ b.T / 4 + 1) ** 3  # noqa: E731
    xs = x[:20]
    expected = (
        (k(xs, xs).sum() - np.trace(k(xs, xs))) / (20 * 19)
        + (k(y, y).sum() - np.trace(k(y, y))) / (20 * 19)
        - 2 * k(xs, y).mean()
    )
    assert polynomial_mmd2(xs, y) == pytest.approx(expected)
    same = rng.normal(size=(400, 8))
    other = rng.normal(size=(400, 8)) + 1.0
    kid_same, _ = kernel_inception_distance(same, same, num_subsets=20, subset_size=100)
    kid_diff, _ = kernel_inception_distance(same, other, num_subsets=20, subset_size=100)
    assert abs(kid_same) < 0.1 and kid_diff > 1.0
    assert kernel_inception_distance(same, other, 5, 50, seed=3) == kernel_inception_distance(same, other, 5, 50, seed=3)
