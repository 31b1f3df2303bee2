"""``[regression]`` against a baseline: the rules a surviving mutant once broke unnoticed.

Each test states figures whose verdict is known by hand: a tolerance "N%" is N% of the
baseline's value; gzip compares gzip bytes, size file bytes; an error metric (mae) regresses
when it grows; an inconclusive latency comparison is a skip, a failure under --tflite-strict.
Budgets go through the real loader and ``verdicts.judge``, as a run does.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite.budget import load
from pytest_tflite.results import (
    Accuracy,
    Check,
    Comparison,
    ComparisonVerdict,
    DelegateResult,
    Measurement,
)
from pytest_tflite.verdicts import Context, judge


def budget_of(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "budget.toml"
    path.write_text(textwrap.dedent(text))
    return load(path)


def figures(size: int = 100_000, gzip: int = 50_000, arena: int = 4096, **more: Any) -> Measurement:
    return Measurement(size_bytes=size, gzip_bytes=gzip, ops={"FULLY_CONNECTED": 1}, subgraphs=[],
                       planned_arena_bytes=arena, inputs=[], outputs=[], sparsity=0.0,
                       sparsity_layers=[], **more)


def regression_checks(tmp_path: Path, text: str, head: Measurement, base: Measurement,
                      strict: bool = False) -> dict[str, Check]:
    """The ``regression.*`` checks of ``[variants.v]`` + ``text``, head against base;
    ``strict`` as --tflite-strict."""
    budget = budget_of(tmp_path, "[variants.v]\n" + textwrap.dedent(text))
    checks = judge(head, budget.variant("v"), budget.spec.regression, Context(strict=strict),
                   baseline=base)
    return {c.metric: c for c in checks if c.metric.startswith("regression.")}


# --- "N%" is of the baseline's value ---------------------------------------------------------


def test_a_percentage_is_taken_of_the_baseline_not_the_head(tmp_path: Path) -> None:
    # 1% of the base's 100,000 B allows +1,000 B. Of the head's 101,001 B it would allow
    # +1,010.01 B and pass; of the base, +1,001 B is 1 B too many.
    checks = regression_checks(tmp_path, '[regression]\nsize = "1%"\n',
                               figures(size=101_001), figures(size=100_000))
    check = checks["regression.size"]
    assert check.verdict == "fail", check
    assert check.budget == 100_000 * 1.01 == 101_000.0
    assert (check.measured, check.baseline, check.delta) == (101_001, 100_000, 1_001)
    assert check.reason == "+1,001 B vs baseline, 1,000 B allowed"


def test_a_percentage_allows_exactly_that_share_of_the_baseline(tmp_path: Path) -> None:
    checks = regression_checks(tmp_path, '[regression]\nsize = "1%"\nplanned_arena = "50%"\n',
                               figures(size=101_000, arena=6144), figures(size=100_000, arena=4096))
    assert checks["regression.size"].verdict == "pass"  # +1,000 B: exactly the 1% allowed
    # Planned arena 4,096 -> 6,144 B: +2,048 B, 50% of the base. Of the head it would be 3,072.
    assert (checks["regression.planned_arena"].verdict, checks["regression.planned_arena"].budget) \
        == ("pass", 6144.0)
    over = regression_checks(tmp_path, '[regression]\nplanned_arena = "50%"\n',
                             figures(arena=6145), figures(arena=4096))
    assert over["regression.planned_arena"].verdict == "fail"


# --- gzip compares gzip bytes ----------------------------------------------------------------


def test_regression_gzip_reads_the_gzip_size_not_the_file_size(tmp_path: Path) -> None:
    # Same file size; the compressed size grew 20% (weights that no longer compress as well).
    checks = regression_checks(tmp_path, '[regression]\nsize = "1%"\ngzip = "1%"\n',
                               figures(size=100_000, gzip=60_000),
                               figures(size=100_000, gzip=50_000))
    assert (checks["regression.size"].verdict, checks["regression.size"].delta) == ("pass", 0)
    gzip = checks["regression.gzip"]
    assert gzip.verdict == "fail", gzip
    assert (gzip.measured, gzip.baseline, gzip.budget) == (60_000, 50_000, 50_500.0)


def test_regression_size_reads_the_file_size_not_the_gzip_size(tmp_path: Path) -> None:
    checks = regression_checks(tmp_path, '[regression]\nsize = 500\ngzip = 500\n',
                               figures(size=101_000, gzip=50_000),
                               figures(size=100_000, gzip=50_000))
    assert checks["regression.size"].verdict == "fail"
    assert (checks["regression.gzip"].verdict, checks["regression.gzip"].delta) == ("pass", 0)


# --- an error metric regresses when it grows ---------------------------------------------------


def mae(value: float) -> Accuracy:
    return Accuracy(metric="mae", candidate=value, reference=None, drop=None, samples=100,
                    batched=True)


MAE_BUDGET = """
    accuracy = { metric = "mae", max = 1.0 }
    [regression]
    accuracy = 0.05
"""


def test_a_grown_mean_absolute_error_fails_the_accuracy_regression(tmp_path: Path) -> None:
    # mae 0.10 -> 0.20: +0.10, twice the 0.05 allowed. Lower is better for an error.
    checks = regression_checks(tmp_path, MAE_BUDGET, figures(accuracy=mae(0.20)),
                               figures(accuracy=mae(0.10)))
    check = checks["regression.accuracy"]
    assert check.verdict == "fail", check
    assert check.budget == pytest.approx(0.15)  # the base's error plus the tolerance
    assert check.delta == pytest.approx(0.10)


def test_a_fallen_mean_absolute_error_passes_the_accuracy_regression(tmp_path: Path) -> None:
    # mae 0.30 -> 0.10: better by far; for a higher-is-better metric this drop would fail.
    checks = regression_checks(tmp_path, MAE_BUDGET, figures(accuracy=mae(0.10)),
                               figures(accuracy=mae(0.30)))
    assert checks["regression.accuracy"].verdict == "pass", checks["regression.accuracy"]


# --- an inconclusive latency comparison is never a pass --------------------------------------


def compared(verdict: ComparisonVerdict, low: float, high: float) -> Measurement:
    comparison = Comparison(ratio=(low + high) / 2, low=low, high=high, pairs=40,
                            verdict=verdict, tolerance=0.1)
    return figures(delegates={"builtin": DelegateResult("ok", comparison=comparison)})


@pytest.mark.parametrize(("strict", "expected"), [(False, "skip"), (True, "fail")])
def test_an_inconclusive_latency_comparison_skips_or_fails_under_strict(
        tmp_path: Path, strict: bool, expected: str) -> None:
    # [0.98, 1.15] straddles 1.10: neither surely within 10% nor surely past it.
    checks = regression_checks(tmp_path, '[regression]\nlatency = "10%"\n',
                               compared("inconclusive", 0.98, 1.15), figures(),
                               strict=strict)
    check = checks["regression.latency.builtin"]
    assert check.verdict == expected, check
    assert check.reason.startswith("inconclusive: candidate/baseline 1.065 [0.980, 1.150]")
    assert "--tflite-strict fails it" in check.reason


@pytest.mark.parametrize(("verdict", "low", "high", "expected"), [
    ("unchanged", 0.95, 1.05, "pass"), ("improved", 0.5, 0.6, "pass"),
    ("regressed", 1.2, 1.3, "fail")])
def test_decisive_latency_comparisons_pass_or_fail(
        tmp_path: Path, verdict: ComparisonVerdict, low: float, high: float, expected: str) -> None:
    checks = regression_checks(tmp_path, '[regression]\nlatency = "10%"\n',
                               compared(verdict, low, high), figures())
    assert checks["regression.latency.builtin"].verdict == expected

