"""Typed report entries for the report tests, built directly (no model run)."""

from __future__ import annotations

import random

from pytest_tflite.results import (
    Check,
    Comparison,
    Cost,
    CostFunction,
    DelegateResult,
    Entry,
    Latency,
    Measurement,
)

# What makes two counts comparable (measure/cost.py writes the real one).
FINGERPRINT = {"valgrind": "valgrind-3.19.0", "litert": "2.3.0", "glibc": "2.36", "threads": 1,
               "isa": ["sse4_2", "avx2", "fma"], "inputs": "seed 0"}


def cost(instructions: int, functions: dict[str, int] | None = None,
         fingerprint: dict[str, object] | None = None, cycles: int | None = None) -> Cost:
    """A count per invoke as callgrind gives it: ``functions`` by their own instructions."""
    top = [CostFunction(name=name, instructions=count, share=count / instructions)
           for name, count in (functions or {}).items()]
    return Cost(instructions, estimated_cycles=cycles or instructions + 2_000_000,
                l1_misses=20_000, ll_misses=1_500, invokes=1, top_functions=top,
                formula="Ir + 10 * (I1mr + D1mr + D1mw) + 100 * (ILmr + DLmr + DLmw)",
                fingerprint=dict(FINGERPRINT if fingerprint is None else fingerprint),
                symbol="*InterpreterWrapper::Invoke*")


def latency(center: float, n: int = 50, seed: int = 0, samples: bool = True) -> Latency:
    rng = random.Random(seed)
    values = [center * (1 + abs(rng.gauss(0, 0.05))) for _ in range(n)]
    ordered = sorted(values)
    return Latency(median=ordered[n // 2], p90=ordered[int(n * 0.9)], p99=ordered[-1],
                   min=ordered[0], mean=sum(values) / n, std=0.01, n=n,
                   samples=values if samples else None)


def measurement(size: int = 24_000, delegates: dict[str, DelegateResult] | None = None
                ) -> Measurement:
    return Measurement(size_bytes=size, gzip_bytes=int(size * 0.8), ops={"CONV_2D": 2},
                       subgraphs=[], planned_arena_bytes=4096, inputs=[], outputs=[],
                       sparsity=0.1, sparsity_layers=[], delegates=delegates or {})


def entry(model: str = "digits_cnn", variant: str = "int8", checks: list[Check] | None = None,
          size: int = 24_000, delegates: dict[str, DelegateResult] | None = None,
          warnings: list[str] | None = None) -> Entry:
    return Entry(f"test_m.py::test_{model}[{variant}]", model, variant, variant,
                 measurement(size, delegates), checks or [], warnings or [])


def compared_entry() -> Entry:
    """A regressed int8 variant with every baseline field filled."""
    return entry(
        checks=[
            Check("size.max", 25_000, 24_576, "fail", "bytes", baseline=20_000, delta=5_000),
            Check("latency.xnnpack.median", 0.5, 1.0, "pass", "ms", baseline=0.46, delta=0.04),
            Check("accuracy.min", 0.97, 0.95, "pass", baseline=0.98, delta=-0.01),
            Check("latency.builtin.median", None, 1.0, "skip", "ms",
                  reason="not compared: no baseline"),
        ],
        size=25_000,
        delegates={
            "xnnpack": DelegateResult("ok", latency_ms=latency(0.5, seed=1),
                                      comparison=Comparison(1.08, 1.05, 1.11, 40, "regressed",
                                                            0.05)),
            "builtin": DelegateResult("ok", latency_ms=latency(1.0, seed=2, samples=False)),
        },
        warnings=["the baseline was measured on another CPU"])


def many_entries(count: int, failing_every: int = 20) -> list[Entry]:
    entries = []
    for i in range(count):
        fail = i % failing_every == 0
        size = 30_000 if fail else 20_000 + i
        checks = [Check("size.max", size, 24_576, "fail" if fail else "pass", "bytes",
                        baseline=20_000, delta=size - 20_000),
                  Check("latency.xnnpack.median", 0.4, 1.0, "pass", "ms", baseline=0.41),
                  Check("accuracy.min", 0.97, 0.95, "pass")]
        comparison = (Comparison(1.09, 1.07, 1.11, 40, "regressed", 0.05) if i % 50 == 7
                      else Comparison(1.01, 0.99, 1.03, 40, "unchanged", 0.05))
        entries.append(entry(model=f"model_{i:04d}", variant="int8", checks=checks, size=size,
                             delegates={"xnnpack": DelegateResult(
                                 "ok", latency_ms=latency(0.4, samples=False),
                                 comparison=comparison)}))
    return entries
