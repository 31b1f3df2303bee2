"""The latency protocol, inside the worker: inputs, first invoke, warm-up, timed runs, statistics.

Construction and ``allocate_tensors()`` happen before this (``init_ms``); the first invoke is
timed on its own (XNNPACK finishes packing there and it runs 1-3x steady state); warm-up and
timing each run until both a minimum count and a minimum time are reached, as LiteRT's
benchmark_model does. ``cpu_ms`` is process CPU time per timed invoke: with several threads it
exceeds wall time, and on machines without power counters it is the honest proxy for energy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# The runtime defaults live in the ground floor, shared with the parent's settings; re-exported
# here for the worker's modules.
from ...runtime_defaults import DEFAULT_BATCH_SIZES as DEFAULT_BATCH_SIZES
from ...runtime_defaults import DEFAULT_SEED as DEFAULT_SEED
from ...runtime_defaults import DEFAULT_THREADS as DEFAULT_THREADS
from ...runtime_defaults import DEFAULT_TIMEOUT_S as DEFAULT_TIMEOUT_S
from ...runtime_defaults import DEFAULT_TIMING as DEFAULT_TIMING
from ...runtime_defaults import DEFAULT_WARMUP as DEFAULT_WARMUP

MAX_SECONDS = 150.0  # benchmark_model's --max_secs: a slow model still ends
# Raw timed runs kept in ``latency_ms["samples"]`` for plots: enough to draw a distribution,
# small enough that a report of hundreds of entries stays a few MB.
MAX_SAMPLES = 1000


@dataclass(frozen=True)
class Runs:
    min_runs: int
    min_seconds: float

    @classmethod
    def from_settings(cls, given: dict[str, Any] | None, default: dict[str, Any]) -> Runs:
        merged = {**default, **{k: v for k, v in (given or {}).items() if v is not None}}
        return cls(int(merged["min_runs"]), float(merged["min_seconds"]))


def random_inputs(details: list[dict[str, Any]], seed: int) -> list[Any]:
    """Deterministic inputs: float in [-1, 1]; quantized ints over their range; bool 0/1."""
    rng = np.random.default_rng(seed)
    arrays = []
    for detail in details:
        dtype = np.dtype(detail["dtype"])
        shape = [int(d) for d in detail["shape"]]
        if np.issubdtype(dtype, np.floating):
            arrays.append(rng.uniform(-1.0, 1.0, shape).astype(dtype))
        elif dtype == np.bool_:
            arrays.append(rng.integers(0, 2, shape).astype(dtype))
        elif np.issubdtype(dtype, np.integer) and dtype.itemsize <= 2:
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype))
        else:
            # int32/int64 inputs are often indices or lengths: small non-negative values are safe.
            arrays.append(rng.integers(0, 2, shape).astype(dtype))
    return arrays


def _repeat(invoke: Callable[[], None], runs: Runs) -> list[float]:
    durations: list[float] = []
    start = time.perf_counter()
    while True:
        before = time.perf_counter_ns()
        invoke()
        durations.append((time.perf_counter_ns() - before) / 1e6)
        elapsed = time.perf_counter() - start
        if (len(durations) >= runs.min_runs and elapsed >= runs.min_seconds) or elapsed > MAX_SECONDS:
            return durations


def capped_samples(durations: list[float]) -> list[float]:
    """At most MAX_SAMPLES of ``durations``, in time order: an evenly spaced subset when more
    were timed (not the first MAX_SAMPLES), so a plot shows the whole run, drift included."""
    if len(durations) <= MAX_SAMPLES:
        return [float(d) for d in durations]
    picked = np.linspace(0, len(durations) - 1, MAX_SAMPLES).round().astype(int)
    return [float(durations[i]) for i in picked]


def latency_stats(durations: list[float]) -> dict[str, Any]:
    """The ``latency_ms`` figures of timed runs, in milliseconds, with the raw samples."""
    values = np.asarray(durations)
    return {
        "median": float(np.median(values)),
        "p90": float(np.percentile(values, 90)),
        "p99": float(np.percentile(values, 99)),
        "min": float(values.min()),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "n": len(durations),
        "samples": capped_samples(durations),
    }


def time_invokes(invoke: Callable[[], None], warmup: Runs, timing: Runs) -> dict[str, Any]:
    before = time.perf_counter_ns()
    invoke()
    first_invoke_ms = (time.perf_counter_ns() - before) / 1e6
    warmup_runs = len(_repeat(invoke, warmup)) if warmup.min_runs or warmup.min_seconds else 0
    cpu_before = time.process_time()
    durations = _repeat(invoke, Runs(max(timing.min_runs, 1), timing.min_seconds))
    cpu_ms = (time.process_time() - cpu_before) * 1000 / len(durations)
    return {
        "first_invoke_ms": first_invoke_ms,
        "warmup_runs": warmup_runs,
        "cpu_ms": cpu_ms,
        "latency_ms": latency_stats(durations),
    }
