"""Frechet distance and KID on feature vectors, in float64.

FID and FVD are the same number on different features: fit a Gaussian to each feature set and take

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}).

Statistics are accumulated in a stream (:class:`FeatureStats`: count, sum and sum of outer products,
all float64), so features never have to be held in memory and chunked accumulation equals one pass
(to float64 rounding). The covariance divisor is a choice that differs between reference codes:
``ddof=1`` (``np.cov``; pytorch-fid, torch-fidelity, TF FID, and the widely copied StyleGAN-V FVD
snippets) or ``ddof=0`` (StyleGAN-V's own ``FeatureStats.get_mean_cov``). The difference is O(1/N).

The matrix square root: ``Tr((S_1 S_2)^{1/2})`` equals ``Tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2})`` (the two
matrices are similar), and the latter is symmetric PSD, so a symmetric eigendecomposition gives it
without complex round-off or the singular-matrix failures that ``scipy.linalg.sqrtm`` shows on
rank-deficient covariances (fewer samples than dimensions, e.g. 150 videos x 400-d I3D features).
``method="sqrtm"`` keeps the scipy path of the reference implementations for comparison.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ex4d.utils.errors import InputError


def _as_float64_2d(features: Tensor | np.ndarray, name: str = "features") -> np.ndarray:
    if isinstance(features, Tensor):
        features = features.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise InputError(f"{name}: expected features of shape (N, D), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name}: {int((~np.isfinite(x)).sum())} feature values are NaN or inf")
    return x


class FeatureStats:
    """Streaming first and second moments of D-dimensional features, float64.

    Attributes:
        n: number of feature vectors seen.
        sum: (D,) float64 sum of features.
        outer: (D, D) float64 sum of outer products x x^T.
    """

    def __init__(self, num_features: int | None = None) -> None:
        self.n = 0
        self.num_features = num_features
        self.sum: np.ndarray | None = None
        self.outer: np.ndarray | None = None
        if num_features is not None:
            self._init(num_features)

    def _init(self, d: int) -> None:
        self.num_features = d
        self.sum = np.zeros(d, dtype=np.float64)
        self.outer = np.zeros((d, d), dtype=np.float64)

    def update(self, features: Tensor | np.ndarray) -> FeatureStats:
        """Add a chunk of features (N, D) (any float dtype; converted to float64 first)."""
        x = _as_float64_2d(features)
        if self.sum is None:
            self._init(x.shape[1])
        if x.shape[1] != self.num_features:
            raise InputError(f"features: expected dimension {self.num_features}, got {x.shape[1]}")
        self.n += x.shape[0]
        self.sum += x.sum(axis=0)
        self.outer += x.T @ x
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add another accumulator's moments (e.g. from another process or shard) into this one."""
        if other.n == 0:
            return self
        if self.sum is None:
            self._init(other.num_features)
        if other.num_features != self.num_features:
            raise InputError(f"cannot merge feature stats of dimension {other.num_features} into {self.num_features}")
        self.n += other.n
        self.sum += other.sum
        self.outer += other.outer
        return self

    @classmethod
    def from_features(cls, features: Tensor | np.ndarray) -> FeatureStats:
        return cls().update(features)

    def mean(self) -> np.ndarray:
        """(D,) float64 mean."""
        if self.n < 1:
            raise InputError("feature stats: no samples were accumulated")
        return self.sum / self.n

    def cov(self, ddof: int = 1) -> np.ndarray:
        """(D, D) float64 covariance with divisor ``n - ddof`` (ddof=1: np.cov; ddof=0: StyleGAN-V)."""
        if self.n - ddof < 1:
            raise InputError(f"feature stats: need more than {ddof} samples for a covariance, got {self.n}")
        mu = self.mean()
        c = (self.outer - self.n * np.outer(mu, mu)) / (self.n - ddof)
        return 0.5 * (c + c.T)

    def save(self, path: str | Path) -> None:
        """Write the raw moments to an ``.npz`` (cache of the source-set statistics)."""
        np.savez(path, n=self.n, sum=self.sum, outer=self.outer)

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        try:
            data = np.load(path)
            s = cls(int(data["sum"].shape[0]))
            s.n = int(data["n"])
            s.sum = data["sum"].astype(np.float64)
            s.outer = data["outer"].astype(np.float64)
        except (OSError, KeyError, ValueError) as e:
            raise InputError(f"{path}: not a feature-stats file written by FeatureStats.save ({e})") from e
        return s


def _clip_eigenvalues(w: np.ndarray) -> np.ndarray:
    # Eigenvalues below the round-off level of the largest one are zero in exact arithmetic (a rank-
    # deficient covariance); their square roots (~1e-8 each) would otherwise add up over 2048 dims.
    tol = w.shape[0] * np.finfo(np.float64).eps * max(float(np.abs(w).max()), 0.0)
    return np.where(w > tol, w, 0.0)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(0.5 * (a + a.T))
    return (v * np.sqrt(_clip_eigenvalues(w))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str = "eigh") -> float:
    """``Tr((sigma1 @ sigma2)^{1/2})`` for two PSD matrices, float64.

    Args:
        method: ``"eigh"`` (symmetric form, stable on singular covariances) or ``"sqrtm"``
            (scipy.linalg.sqrtm of the product, real part; the reference codes' path).
    """
    s1 = np.asarray(sigma1, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    if method == "eigh":
        r = _sqrt_psd(s1)
        m = r @ s2 @ r
        ev = np.linalg.eigvalsh(0.5 * (m + m.T))
        return float(np.sqrt(_clip_eigenvalues(ev)).sum())
    if method == "sqrtm":
        import scipy.linalg

        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.all(np.isfinite(covmean)):
            # pytorch-fid's fallback for a singular product: nudge both diagonals.
            offset = np.eye(s1.shape[0]) * 1e-6
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
        return float(np.real(np.trace(covmean)))
    raise InputError(f"trace_sqrt_product: method must be 'eigh' or 'sqrtm', got {method!r}")


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, method: str = "eigh"
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), float64.

    Args:
        mu1, mu2: (D,) means. sigma1, sigma2: (D, D) covariances (symmetric PSD).
        method: see :func:`trace_sqrt_product`.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise InputError(
            f"frechet_distance: shape mismatch mu1 {mu1.shape}, mu2 {mu2.shape}, "
            f"sigma1 {sigma1.shape}, sigma2 {sigma2.shape}"
        )
    diff = mu1 - mu2
    tr = np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2, method)
    return float(diff @ diff + tr)


def frechet_distance_from_stats(
    stats1: FeatureStats, stats2: FeatureStats, ddof: int = 1, method: str = "eigh"
) -> float:
    """Frechet distance between two accumulated feature sets."""
    return frechet_distance(stats1.mean(), stats1.cov(ddof), stats2.mean(), stats2.cov(ddof), method)


def frechet_distance_from_features(
    features1: Tensor | np.ndarray, features2: Tensor | np.ndarray, ddof: int = 1, method: str = "eigh"
) -> float:
    """Frechet distance between two feature arrays (N1, D) and (N2, D)."""
    return frechet_distance_from_stats(
        FeatureStats.from_features(features1), FeatureStats.from_features(features2), ddof, method
    )


def polynomial_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> float:
    """Unbiased MMD^2 with the polynomial kernel k(a, b) = (gamma a.b + coef0)^degree, gamma = 1/D.

    Args:
        x: (m, D) float64; y: (n, D) float64 (m, n >= 2).
    """
    d = x.shape[1]
    g = 1.0 / d if gamma is None else gamma
    kxx = (g * x @ x.T + coef0) ** degree
    kyy = (g * y @ y.T + coef0) ** degree
    kxy = (g * x @ y.T + coef0) ** degree
    m, n = x.shape[0], y.shape[0]
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kernel_inception_distance(
    features1: Tensor | np.ndarray,
    features2: Tensor | np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and std of the unbiased polynomial-kernel MMD^2 over random subsets.

    Follows the KID definition of Binkowski et al. as torch-fidelity and torchmetrics compute it:
    ``num_subsets`` subsets of ``subset_size`` items drawn without replacement from each set (the size
    is capped at the smaller set), kernel ``(x.y / D + 1)^3``. Seeded, so reruns agree.

    Returns:
        (kid_mean, kid_std) in feature units (FID papers print KID x 1e3).
    """
    x = _as_float64_2d(features1, "features1")
    y = _as_float64_2d(features2, "features2")
    if x.shape[1] != y.shape[1]:
        raise InputError(f"KID: feature dimensions differ ({x.shape[1]} vs {y.shape[1]})")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise InputError(f"KID: need at least 2 items per set, got {x.shape[0]} and {y.shape[0]}")
    rng = np.random.default_rng(seed)
    vals = np.empty(num_subsets)
    for i in range(num_subsets):
        xs = x[rng.choice(x.shape[0], m, replace=False)]
        ys = y[rng.choice(y.shape[0], m, replace=False)]
        vals[i] = polynomial_mmd2(xs, ys, degree, gamma, coef0)
    return float(vals.mean()), float(vals.std())


def stack_features(chunks: Iterable[Tensor | np.ndarray]) -> np.ndarray:
    """Concatenate feature chunks into one (N, D) float64 array."""
    arrays = [_as_float64_2d(c) for c in chunks]
    if not arrays:
        raise InputError("no features were extracted")
    return np.concatenate(arrays, axis=0)
