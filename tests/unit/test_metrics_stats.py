"""Bootstrap intervals and the result type that always carries N (ex4d.metrics.stats)."""

import math

import numpy as np
import pytest

from ex4d.metrics.stats import ScoreWithCI, bootstrap_mean, bootstrap_statistic
from ex4d.utils.errors import InputError


def test_format_carries_n_and_interval():
    assert str(ScoreWithCI(55.42, 150, 53.1, 57.9)) == "55.42 [53.10, 57.90] (N=150)"
    assert ScoreWithCI(0.4501, 150, 0.44, 0.46).format(3) == "0.450 [0.440, 0.460] (N=150)"
    assert str(ScoreWithCI(823.61, 1)) == "823.61 (N=1)"
    d = ScoreWithCI(1.0, 2, 0.5, 1.5, n_boot=10, seed=0).to_dict()
    assert d["n"] == 2 and d["ci_low"] == 0.5


def test_bootstrap_mean_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(0).normal(10.0, 2.0, size=150)
    a = bootstrap_mean(x, n_boot=500, seed=7)
    b = bootstrap_mean(x, n_boot=500, seed=7)
    assert a == b
    assert a.n == 150 and a.value == pytest.approx(x.mean())
    assert a.low < a.value < a.high
    # Standard error of the mean is 2/sqrt(150) = 0.163: the 95% interval is about +-0.32 wide.
    assert 0.2 < (a.high - a.low) / 2 < 0.45
    assert bootstrap_mean(x, n_boot=500, seed=8) != a


def test_bootstrap_bad_inputs():
    with pytest.raises(InputError, match="N=0"):
        bootstrap_mean([])
    with pytest.raises(InputError, match="NaN"):
        bootstrap_mean([1.0, float("nan")])
    single = bootstrap_mean([3.0])
    assert single.n == 1 and math.isnan(single.low)


def test_bootstrap_statistic_resamples_items():
    values = np.arange(20, dtype=float)
    r = bootstrap_statistic(lambda idx: values[idx].max(), n=20, n_boot=200, seed=0)
    assert r.value == 19.0 and r.n == 20
    assert r.high == 19.0 and r.low < 19.0  # resamples without the maximum exist
