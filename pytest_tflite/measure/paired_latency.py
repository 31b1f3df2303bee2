"""Candidate vs baseline latency, parent side: one worker times both models in alternation.

Two latencies measured apart on a shared machine differ by the machine's drift (tens of percent
between processes), not by the models; so the candidate and the baseline's ``.tflite`` are timed
in the same worker process, in alternating small blocks, and judged by the bootstrap interval
of their ratio (see ``worker/compare.py`` for the protocol). An interval that straddles a
tolerance edge gets one more worker run, whose pairs are pooled with the first run's.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ModelError
from ..results import Comparison, Latency
from ..settings import RuntimeSettings
from . import lock
from .isolated import WorkerFailed, call_worker, explained
from .worker.compare import DEFAULT_COMPARE, judge_interval, ratio_interval

__all__ = ["DEFAULT_COMPARE", "ComparisonFailed", "LatencyComparison", "compare_latency",
           "judge_interval", "measure_comparison"]

FailureStatus = Literal["unavailable", "unsupported", "error"]
# Per-pair ratios kept in the report (for the HTML plot): a 4 s run of 10 ms blocks gives ~200,
# a re-measure twice that; a microsecond model's thousands would only weigh down the JSON.
MAX_RATIOS = 500


class ComparisonFailed(ModelError):
    """The comparison could not be made. ``status`` as a delegate's: ``unavailable`` (the
    machine lacks the delegate, in the loader's words), ``unsupported`` (the delegate cannot
    run the candidate or the baseline, the reason names which) or ``error`` (either model
    crashed, hung past the timeout or was rejected as corrupt). ``reason`` says which."""

    def __init__(self, status: FailureStatus, reason: str) -> None:
        super().__init__(reason)
        self.status: FailureStatus = status
        self.reason = reason


@dataclass
class LatencyComparison:
    """A comparison with what it was made of: the last worker run's latency of each model
    (with its samples, for plots), the worker runs (2 after a re-measure) and the wall time
    they took, worker starts included."""

    comparison: Comparison
    candidate: Latency
    baseline: Latency
    runs: int
    seconds: float
    block_runs: int  # invokes per block in the last run
    inputs: str  # what both models were fed, e.g. "random (seed 0)"


def measure_comparison(
    candidate_path: Path | str, baseline_path: Path | str, delegate: str,
    settings: RuntimeSettings, tolerance: float, *, lock_file: Path | None = None,
) -> LatencyComparison:
    """Time ``candidate_path`` against ``baseline_path`` under ``delegate`` and judge the ratio.

    ``settings``: the resolved runtime settings (``settings.resolve_runtime``): ``threads``,
    ``warmup``, ``input_shapes``, ``seed``, ``timeout`` (seconds, for each worker run) and
    ``compare`` = {min_pairs, min_seconds, max_seconds, block_ms, clock} (``DEFAULT_COMPARE``
    fills what is unset: at least 20 pairs and 2 s of timing, up to 4 s while the interval
    straddles a tolerance edge, blocks of ~10 ms, the CPU clock with one thread and the wall
    clock with several). ``tolerance``: a fraction, 0.025 for "2.5%".

    The verdict is ``judge_interval``'s. ``inconclusive`` gets one more worker run whose pairs
    are pooled with the first's (``remeasured=True``); still inconclusive stays inconclusive.
    Each worker run holds the exclusive timing lock. Raises ``ComparisonFailed`` when the
    delegate is unavailable, either model cannot run, crashes or times out.
    """
    timeout_s, seed, wire = settings.timeout, settings.seed, settings.worker_json()
    worker_settings = {k: wire[k] for k in ("threads", "warmup", "input_shapes", "seed")}
    worker_settings["compare"] = {**DEFAULT_COMPARE, **wire["compare"]}
    worker_settings["tolerance"] = float(tolerance)
    arguments = ["compare", str(candidate_path), str(baseline_path), delegate,
                 json.dumps(worker_settings)]

    started = time.perf_counter()
    found = _run(arguments, timeout_s, lock_file, settings)
    log_ratios = list(found["log_ratios"])
    blocks = _block_means(found, {"candidate": [], "baseline": []})
    ratio, low, high = float(found["ratio"]), float(found["low"]), float(found["high"])
    verdict = judge_interval(low, high, tolerance)
    remeasured = False
    if verdict == "inconclusive":
        # One bounded re-measure: a fresh worker, its pairs pooled with the first run's (each
        # pair is a self-contained ratio, so pairs from two processes pool as they are).
        found = _run(arguments, timeout_s, lock_file, settings)
        log_ratios += list(found["log_ratios"])
        blocks = _block_means(found, blocks)
        ratio, low, high = ratio_interval(log_ratios, seed)
        verdict = judge_interval(low, high, tolerance)
        remeasured = True
    comparison = Comparison(ratio=ratio, low=low, high=high, pairs=len(log_ratios),
                            verdict=verdict, tolerance=float(tolerance), remeasured=remeasured,
                            base_median_ms=_median(blocks["baseline"]),
                            head_median_ms=_median(blocks["candidate"]),
                            clock=clock_label(str(found.get("clock") or ""),
                                              int(found.get("threads") or 0)),
                            ratios=[math.exp(x) for x in log_ratios[:MAX_RATIOS]])
    return LatencyComparison(
        comparison=comparison,
        candidate=Latency(**found["candidate"]),
        baseline=Latency(**found["baseline"]),
        runs=2 if remeasured else 1,
        seconds=time.perf_counter() - started,
        block_runs=int(found["block_runs"]),
        inputs=str(found.get("inputs") or ""),
    )


def compare_latency(
    candidate_path: Path | str, baseline_path: Path | str, delegate: str,
    settings: RuntimeSettings, tolerance: float, *, lock_file: Path | None = None,
) -> Comparison:
    """The ``Comparison`` of ``measure_comparison`` (see there): ratio candidate/baseline (>1 is
    slower), its 95% interval, the pairs it rests on and the verdict. Raises
    ``ComparisonFailed`` (a ``ModelError``) when no comparison could be made."""
    return measure_comparison(candidate_path, baseline_path, delegate, settings, tolerance,
                              lock_file=lock_file).comparison


def clock_label(clock: str, threads: int) -> str:
    """What a block's time was measured on, for people: "CPU time, 1 thread" (the process CPU
    clock, which leaves out time other processes held the core) or "wall time, 4 threads"."""
    name = {"cpu": "CPU time", "wall": "wall time"}.get(clock)
    if name is None:
        return ""
    return f"{name}, {threads} thread{'s' if threads != 1 else ''}" if threads else name


def _block_means(found: dict[str, Any], pooled: dict[str, list[float]]) -> dict[str, list[float]]:
    """``pooled`` with this worker run's per-block times per invoke (ms, on the ratio's clock)
    added: a re-measure pools its blocks as it pools its pairs."""
    given = found.get("block_means_ms") or {}
    return {name: [*pooled[name], *(float(x) for x in given.get(name) or [])]
            for name in ("candidate", "baseline")}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _run(arguments: list[str], timeout_s: float, lock_file: Path | None,
         settings: RuntimeSettings) -> dict[str, Any]:
    with lock.exclusive(lock_file, lock.wait_limit(timeout_s)):
        try:
            found = call_worker(arguments, timeout_s, settings.max_memory)
        except WorkerFailed as exc:
            raise ComparisonFailed("error", f"latency comparison: {explained(exc)}") from None
    status = found.get("status")
    if status != "ok":
        failure: FailureStatus = status if status in ("unavailable", "unsupported") else "error"
        raise ComparisonFailed(failure, f"latency comparison: {found.get('reason') or status}")
    return found
