"""Confidence intervals: every number we print carries its N and a seeded bootstrap interval.

``ScoreWithCI`` is the result type: ``str(result)`` gives ``"55.42 [53.10, 57.90] (N=150)"``.

Two bootstraps:

* :func:`bootstrap_mean` for per-video scores (VBench dimensions, camera-following error, PSNR):
  resample the N per-video values with replacement, take the mean.
* :func:`bootstrap_statistic` for set-level metrics (FID, FVD, KID), whose value is not a mean of
  per-video numbers: resample the *videos* (both sets with the same indices when the sets are paired,
  i.e. generated video i comes from source video i) and recompute the statistic on each resample.
  Set-level metrics are biased upward on small resamples (FID grows as N shrinks), so the bootstrap
  interval shows spread, not an unbiased interval around the full-set value; the point estimate is
  always the full-set value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ex4d.utils.errors import InputError


@dataclass(frozen=True)
class ScoreWithCI:
    """A metric value with its sample size and a bootstrap confidence interval.

    Attributes:
        value: the point estimate on the full set.
        n: number of videos (or items) it was computed on; always printed.
        low, high: bounds of the ``level`` confidence interval (percentile bootstrap); NaN when the
            interval could not be computed (N < 2).
        level: confidence level, e.g. 0.95.
        n_boot: number of bootstrap resamples.
        seed: the bootstrap seed (intervals are reproducible).
    """

    value: float
    n: int
    low: float = math.nan
    high: float = math.nan
    level: float = 0.95
    n_boot: int = 0
    seed: int | None = None

    def format(self, digits: int = 2) -> str:
        """``"55.42 [53.10, 57.90] (N=150)"``; without an interval ``"55.42 (N=150)"``."""
        v = f"{self.value:.{digits}f}"
        if math.isnan(self.low) or math.isnan(self.high):
            return f"{v} (N={self.n})"
        return f"{v} [{self.low:.{digits}f}, {self.high:.{digits}f}] (N={self.n})"

    def __str__(self) -> str:
        return self.format()

    def to_dict(self) -> dict:
        """JSON-friendly dict (for results.json)."""
        return {
            "value": self.value,
            "n": self.n,
            "ci_low": None if math.isnan(self.low) else self.low,
            "ci_high": None if math.isnan(self.high) else self.high,
            "ci_level": self.level,
            "n_boot": self.n_boot,
            "seed": self.seed,
        }


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _check_level(level: float, n_boot: int) -> None:
    if not 0.0 < level < 1.0:
        raise InputError(f"bootstrap: level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise InputError(f"bootstrap: n_boot must be >= 1, got {n_boot}")


def bootstrap_mean(
    values: Sequence[float] | np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> ScoreWithCI:
    """Mean of per-item scores with a percentile-bootstrap interval.

    Args:
        values: (N,) per-video scores; NaN values are an error (a failed video must be reported, not
            silently averaged away).
        n_boot: number of resamples.
        level: confidence level.
        seed: RNG seed; the same inputs and seed give the same interval.
    """
    _check_level(level, n_boot)
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise InputError("bootstrap_mean: no values (N=0)")
    if not np.all(np.isfinite(x)):
        raise InputError(f"bootstrap_mean: {int((~np.isfinite(x)).sum())} of {x.size} values are NaN or inf")
    value = float(x.mean())
    if x.size < 2:
        return ScoreWithCI(value, int(x.size), level=level, n_boot=0, seed=seed)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    lo, hi = _percentiles(means, level)
    return ScoreWithCI(value, int(x.size), lo, hi, level, n_boot, seed)


def bootstrap_statistic(
    statistic: Callable[[np.ndarray], float],
    n: int,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    value: float | None = None,
) -> ScoreWithCI:
    """Bootstrap a set-level statistic over N items.

    Args:
        statistic: called with an (N,) int64 array of item indices (with repeats) and returns the
            statistic on that resample, e.g. ``lambda idx: fid_from_features(gen[idx], src[idx])``.
            Use the same indices for both sets when they are paired.
        n: number of items (videos).
        n_boot: number of resamples (set-level metrics are expensive; 200 is plenty for a 95% interval).
        level: confidence level.
        seed: RNG seed.
        value: the full-set value when already computed (otherwise ``statistic(arange(n))``).
    """
    _check_level(level, n_boot)
    if n < 1:
        raise InputError("bootstrap_statistic: no items (N=0)")
    full = float(statistic(np.arange(n))) if value is None else float(value)
    if n < 2:
        return ScoreWithCI(full, n, level=level, n_boot=0, seed=seed)
    rng = np.random.default_rng(seed)
    samples = np.array([float(statistic(rng.integers(0, n, size=n))) for _ in range(n_boot)])
    lo, hi = _percentiles(samples, level)
    return ScoreWithCI(full, n, lo, hi, level, n_boot, seed)
