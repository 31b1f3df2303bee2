"""One cause for the report tests: the example's hidden Dense layer grew from 64 to 96 units.

Three variants of ``digits_cnn`` judged against ``budgets/digits_cnn.toml`` (the example's
limits) and a base-branch baseline under ``[regression] size = "5%", gzip = "5%",
accuracy = 0.005, fidelity = 0.005, ops = "exact", latency = "5%"``. The checks are written as
``verdicts.judge`` and ``regressions.regression_checks`` write them (reasons included), so the
reports see what a real run gives: 17 failed checks, all from the one change.
"""

from __future__ import annotations

from pytest_tflite.results import (
    Accuracy,
    Check,
    Comparison,
    DelegateResult,
    Entry,
    Fidelity,
    Latency,
    Measurement,
)

BUDGET = "budgets/digits_cnn.toml"
KIB = 1024
SAMPLES = 397  # evaluation samples: top-1 agreement 397 -> 393 of them


def _latency(median: float) -> Latency:
    return Latency(median=median, p90=median * 1.1, p99=median * 1.3, min=median * 0.95,
                   mean=median * 1.02, std=median * 0.05, n=200)


def _ratios(ratio: float, pairs: int) -> list[float]:
    # Spread evenly around the ratio, as a steady paired run gives them.
    return [ratio * (1 + 0.01 * ((i % 9) - 4) / 4) for i in range(pairs)]


def _comparison(ratio: float, low: float, high: float, base_ms: float, head_ms: float,
                pairs: int = 120) -> Comparison:
    return Comparison(ratio, low, high, pairs, "regressed", 0.05, base_median_ms=base_ms,
                      head_median_ms=head_ms, clock="CPU time, 1 thread",
                      ratios=_ratios(ratio, pairs))


def _grew(metric: str, head: float, base: float, fraction: float) -> Check:
    allowed = fraction * base
    delta = head - base
    return Check(metric, head, base + allowed, "fail" if delta > allowed else "pass", "bytes",
                 reason=f"{delta:+,.0f} B vs baseline, {allowed:,.0f} B allowed",
                 baseline=base, delta=delta)


def _fell(metric: str, head: float, base: float, allowed: float) -> Check:
    delta = head - base
    return Check(metric, head, base - allowed, "fail" if -delta > allowed else "pass",
                 reason=f"{delta:+.4g} vs baseline, -{allowed:.4g} allowed",
                 baseline=base, delta=delta)


def _at_most(metric: str, head: float, limit: float, unit: str) -> Check:
    return Check(metric, head, limit, "pass" if head <= limit else "fail", unit)


def _latency_check(delegate: str, comparison: Comparison) -> Check:
    return Check(f"regression.latency.{delegate}", comparison.ratio, 1.05, "fail", "ratio",
                 reason=(f"regressed: candidate/baseline {comparison.ratio:.3f} "
                         f"[{comparison.low:.3f}, {comparison.high:.3f}] over "
                         f"{comparison.pairs} pairs, tolerance 5.0%"),
                 baseline=1.0, delta=comparison.ratio - 1)


def _sizes(head: tuple[int, int], limits: tuple[float, float | None]) -> list[Check]:
    checks = [_at_most("size.max", head[0], limits[0], "bytes")]
    if limits[1] is not None:
        checks.append(_at_most("size.max_gzip", head[1], limits[1], "bytes"))
    return checks


def _regressions(head: tuple[int, int], base: tuple[int, int]) -> list[Check]:
    return [_grew("regression.size", head[0], base[0], 0.05),
            _grew("regression.gzip", head[1], base[1], 0.05)]


def _no_data() -> list[Check]:
    # A file-wide key on a variant without evaluation data: a skip (issue 16, part 3).
    return [Check("regression.accuracy", None, None, "skip",
                  reason="not compared: this run measured no accuracy (pass eval_data=(x, y))"),
            Check("regression.fidelity", None, None, "skip",
                  reason="not compared: this run measured no fidelity (pass eval_data and "
                         "reference=)")]


def _ops() -> Check:
    return Check("regression.ops", 0.0, 0.0, "pass", reason="op counts unchanged",
                 baseline=0.0, delta=0.0)


def _measurement(size: int, gzip: int, delegates: dict[str, DelegateResult]) -> Measurement:
    return Measurement(size_bytes=size, gzip_bytes=gzip,
                       ops={"CONV_2D": 2, "FULLY_CONNECTED": 2, "MAX_POOL_2D": 1, "SOFTMAX": 1},
                       subgraphs=[], planned_arena_bytes=3_264, inputs=[], outputs=[],
                       sparsity=0.0, sparsity_layers=[], delegates=delegates)


def _float_variant(variant: str, head: tuple[int, int], base: tuple[int, int],
                   limits: tuple[float, float | None], comparison: Comparison) -> Entry:
    checks = [*_sizes(head, limits), *_regressions(head, base), *_no_data(), _ops(),
              _latency_check("xnnpack", comparison)]
    head_ms = comparison.head_median_ms or 0.0
    delegates = {"xnnpack": DelegateResult("ok", threads=1, latency_ms=_latency(head_ms),
                                           comparison=comparison)}
    return Entry(f"test_digits.py::test_digits_budget[{variant}]", "digits_cnn", variant, variant,
                 _measurement(*head, delegates), checks, budget_path=BUDGET)


# Sizes (file, gzip) in bytes, base branch then head.
FLOAT32 = ((158_292, 146_610), (223_667, 207_300))
FLOAT16 = ((81_420, 74_012), (114_236, 104_010))
INT8 = ((45_670, 38_950), (63_250, 53_100))
# Paired comparisons: (ratio, low, high, base median ms, head median ms) on CPU time, 1 thread.
FLOAT32_XNNPACK = (1.300, 1.270, 1.330, 0.1850, 0.2405)
FLOAT16_XNNPACK = (1.280, 1.250, 1.310, 0.1902, 0.2435)
INT8_XNNPACK = (1.055, 1.050, 1.060, 0.2104, 0.2220)
INT8_BUILTIN = (1.220, 1.190, 1.250, 0.9120, 1.1130)
TOP1 = (0.972, 0.962)  # accuracy, base then head; the float reference scores 0.970
AGREEING = (397, 393)  # top-1 agreement with the reference, of SAMPLES, base then head
COSINE = (0.99991, 0.999834)


def int8_entry() -> Entry:
    (base, head) = INT8
    xnnpack, builtin = _comparison(*INT8_XNNPACK), _comparison(*INT8_BUILTIN)
    agreement = (AGREEING[0] / SAMPLES, AGREEING[1] / SAMPLES)
    checks = [
        *_sizes(head, (48 * KIB, 42 * KIB)),
        _at_most("memory.planned_arena", 3_264, 4 * KIB, "bytes"),
        _at_most("latency.xnnpack.median", 0.224, 1.0, "ms"),
        _at_most("latency.xnnpack.p90", 0.241, 2.0, "ms"),
        _at_most("latency.xnnpack.init", 3.1, 100.0, "ms"),
        _at_most("latency.builtin.median", 0.96, 1.0, "ms"),
        _at_most("memory.builtin.arena", 9_800, 16 * KIB, "bytes"),
        _at_most("memory.builtin.peak_rss", 41_000_000, 64 * KIB * KIB, "bytes"),
        Check("delegation.xnnpack.min_fraction", 0.5, 0.5, "pass"),
        Check("delegation.xnnpack.max_partitions", 2, 2, "pass"),
        Check("delegation.xnnpack.forbid_fallback", 0, 0, "pass"),
        Check("accuracy.min", TOP1[1], 0.95, "pass"),
        Check("accuracy.max_drop", 0.008, 0.01, "pass"),
        Check("fidelity.min_top1_agreement", agreement[1], 0.98, "pass"),
        Check("fidelity.min_cosine", COSINE[1], 0.99, "pass"),
        *_regressions(head, base),
        _fell("regression.accuracy", TOP1[1], TOP1[0], 0.005),
        _fell("regression.fidelity.cosine", COSINE[1], COSINE[0], 0.005),
        _fell("regression.fidelity.top1_agreement", agreement[1], agreement[0], 0.005),
        _ops(),
        _latency_check("xnnpack", xnnpack),
        _latency_check("builtin", builtin),
    ]
    delegates = {
        "xnnpack": DelegateResult("ok", threads=1, latency_ms=_latency(0.224), comparison=xnnpack),
        "builtin": DelegateResult("ok", threads=1, latency_ms=_latency(0.96), comparison=builtin),
    }
    measurement = _measurement(*head, delegates)
    measurement.accuracy = Accuracy("top1", TOP1[1], 0.970, 0.008, SAMPLES, True)
    measurement.fidelity = Fidelity(agreement[1], COSINE[1], 0.41, 31.2, samples=SAMPLES,
                                    top1_agreeing=AGREEING[1])
    return Entry("test_digits.py::test_digits_budget[int8]", "digits_cnn", "int8", "int8",
                 measurement, checks, budget_path=BUDGET)


def dense_growth_entries() -> list[Entry]:
    """float32, float16 and int8 after the Dense layer grew: what the PR comment is about."""
    return [
        _float_variant("float32", FLOAT32[1], FLOAT32[0], (160 * KIB, None),
                       _comparison(*FLOAT32_XNNPACK)),
        _float_variant("float16", FLOAT16[1], FLOAT16[0], (84 * KIB, 76 * KIB),
                       _comparison(*FLOAT16_XNNPACK)),
        int8_entry(),
    ]
