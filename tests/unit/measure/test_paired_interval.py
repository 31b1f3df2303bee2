"""The latency comparison's bootstrap interval is a 95% interval (the README's and the
report's word), pinned two ways: exactly, recomputed here with numpy on a fixed seed and
sample; and by its width, which for a large sample must be 1.96 standard errors of the trimmed
mean either side (a 90% interval is 1.645, 16% narrower; a 99% one 2.576, 31% wider)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from pytest_tflite.measure.worker.compare import BOOTSTRAP_RESAMPLES, TRIM, ratio_interval

SEED = 12345


def trimmed(values: np.ndarray) -> np.ndarray:
    """Mean along the last axis after dropping floor(n x TRIM) of the sorted values each end."""
    n = values.shape[-1]
    cut = int(n * TRIM)
    return np.asarray(np.sort(values, axis=-1)[..., cut:n - cut].mean(axis=-1))


def test_the_interval_is_the_2_5_and_97_5_percentiles_of_the_seeded_bootstrap() -> None:
    logs = np.random.default_rng(3).normal(0.04, 0.05, 60)
    draws = np.random.default_rng(SEED).integers(0, logs.size, (BOOTSTRAP_RESAMPLES, logs.size))
    low, high = np.exp(np.percentile(trimmed(logs[draws]), [2.5, 97.5]))
    assert ratio_interval(list(logs), SEED) == pytest.approx(
        (math.exp(trimmed(logs)), low, high), rel=1e-12)


def test_the_interval_is_1_96_standard_errors_of_the_trimmed_mean_wide() -> None:
    # A sample with the shape of a normal distribution, exactly: its quantiles, shuffled.
    n, sigma = 400, 0.05
    quantiles = [NormalDist(0.0, sigma).inv_cdf((i + 0.5) / n) for i in range(n)]
    logs = np.random.default_rng(0).permutation(quantiles)
    # The trimmed mean's standard error: the winsorized standard deviation over (1 - 2 TRIM)
    # and the root of n (Tukey and McLaughlin).
    cut = int(n * TRIM)
    ordered = np.sort(logs)
    winsorized = np.clip(ordered, ordered[cut], ordered[n - cut - 1])
    error = winsorized.std() / (1 - 2 * TRIM) / math.sqrt(n)
    _, low, high = ratio_interval(list(logs), SEED)
    half_width = (math.log(high) - math.log(low)) / 2
    z = NormalDist().inv_cdf(0.975)  # 1.96
    assert half_width / error == pytest.approx(z, rel=0.06)
