"""A report with a failing variant and paired latency comparisons, built directly (no model run):
the HTML tests and the before/after screenshots draw it.

int8 grew a layer: size.max and size.max_gzip fail, and the paired comparison says xnnpack
+5.5% [+5.1, +5.9] regressed and builtin +22% regressed; its quality figures pass, close to
their limits or not. The baseline entry's own run timed xnnpack at a third less than the paired
run did (another time, another load) and builtin slower than the head: drawn, those samples would
say +54% and "faster", the opposite of the paired verdict. float32 is unchanged.
"""

from __future__ import annotations

import random

from pytest_tflite.results import Accuracy, Check, Comparison, DelegateResult, Entry, Latency
from tests.helpers.entries import entry

CLOCK = "CPU time, 1 thread"


def timed(center: float, n: int, seed: int, spread: float = 0.04) -> Latency:
    rng = random.Random(seed)
    values = [center * (1 + abs(rng.gauss(0, spread))) for _ in range(n)]
    ordered = sorted(values)
    return Latency(median=ordered[n // 2], p90=ordered[int(n * 0.9)], p99=ordered[-1],
                   min=ordered[0], mean=sum(values) / n, std=0.01, n=n, samples=values)


def paired(ratio: float, half_width: float, verdict: str, base_ms: float, seed: int,
           spread: float = 0.015, ratios: bool = True) -> Comparison:
    """A comparison over 40 pairs whose ratios scatter around ``ratio``."""
    rng = random.Random(seed)
    drawn = [ratio * (1 + rng.gauss(0, spread)) for _ in range(40)]
    return Comparison(ratio, ratio - half_width, ratio + half_width, 40, verdict,  # type: ignore[arg-type]
                      0.05, base_median_ms=base_ms, head_median_ms=base_ms * ratio,
                      clock=CLOCK, ratios=drawn if ratios else None)


def failing_paired_report(ratios: bool = True) -> tuple[list[Entry], dict[tuple[str, str], Entry]]:
    """(entries, baselines): see the module's docstring. ``ratios=False``: as a report written
    before the per-pair ratios were kept."""
    int8 = entry(variant="int8", size=63_283, checks=[
        Check("size.max", 63_283, 46_080, "fail", "bytes", baseline=45_670, delta=17_613),
        Check("size.max_gzip", 50_000, 40_960, "fail", "bytes", baseline=36_000, delta=14_000),
        Check("accuracy.min", 0.962, 0.95, "pass", baseline=0.972, delta=-0.010),
        Check("fidelity.min_top1_agreement", 0.9899, 0.98, "pass", baseline=1.0, delta=-0.0101),
        Check("fidelity.min_cosine", 0.9991, 0.995, "pass"),
        Check("sparsity.min", 0.52, 0.5, "pass"),
        Check("latency.xnnpack.median", 0.48, 1.0, "pass", "ms"),
        Check("latency.builtin.median", 0.75, 0.8, "pass", "ms"),
        Check("memory.planned_arena", 30_000, 65_536, "pass", "bytes"),
        Check("regression.latency.xnnpack", 1.055, 1.05, "fail", "ratio", baseline=1.0,
              delta=0.055),
        Check("regression.latency.builtin", 1.22, 1.05, "fail", "ratio", baseline=1.0,
              delta=0.22),
    ])
    int8.measurement.accuracy = Accuracy("top1", 0.962, 0.975, 0.013, 397, True)
    int8.measurement.delegates = {
        "xnnpack": DelegateResult("ok", latency_ms=timed(0.48, 80, 1),
                                  comparison=paired(1.055, 0.004, "regressed", 0.455, 11,
                                                    ratios=ratios)),
        "builtin": DelegateResult("ok", latency_ms=timed(0.75, 80, 2),
                                  comparison=paired(1.22, 0.04, "regressed", 0.615, 12, 0.05,
                                                    ratios=ratios)),
    }
    float32 = entry(variant="float32", size=180_000, checks=[
        Check("size.max", 180_000, 204_800, "pass", "bytes", baseline=160_000, delta=20_000),
        Check("latency.xnnpack.median", 0.9, 2.0, "pass", "ms"),
        Check("regression.latency.xnnpack", 1.01, 1.05, "pass", "ratio", baseline=1.0,
              delta=0.01),
    ])
    float32.measurement.delegates = {"xnnpack": DelegateResult(
        "ok", latency_ms=timed(0.9, 60, 3),
        comparison=paired(1.01, 0.02, "unchanged", 0.89, 13, 0.02, ratios=ratios))}
    float16 = entry(variant="float16", size=95_000, checks=[
        Check("size.max", 95_000, 102_400, "pass", "bytes")])
    float16.measurement.delegates = {"xnnpack": DelegateResult("ok", latency_ms=timed(0.7, 60, 4))}
    base = entry(variant="int8", size=45_670)
    base.measurement.delegates = {"xnnpack": DelegateResult("ok", latency_ms=timed(0.31, 80, 5)),
                                  "builtin": DelegateResult("ok", latency_ms=timed(0.9, 80, 6))}
    return [float32, int8, float16], {("digits_cnn", "int8"): base}
