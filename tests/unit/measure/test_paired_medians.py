"""The medians, clock and per-pair ratios a paired latency comparison carries into the report
(measure/paired_latency.py): both medians from the very blocks the ratio was taken on."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite.measure import paired_latency as compare_module
from pytest_tflite.measure.paired_latency import MAX_RATIOS, clock_label, measure_comparison
from pytest_tflite.measure.worker.compare import ratio_interval
from pytest_tflite.results import Comparison, DelegateResult
from pytest_tflite.settings import CompareTiming, Runs, RuntimeSettings
from tests.helpers.models import chain_model

QUICK = RuntimeSettings(warmup=Runs(1, 0.1),
                        compare=CompareTiming(min_pairs=20, min_seconds=0.5, max_seconds=1.5))


def _worker_result(logs: list[float], candidate: list[float], baseline: list[float],
                   clock: str = "cpu", threads: int = 1) -> dict[str, Any]:
    ratio, low, high = ratio_interval(logs)
    latency = {"median": 9.0, "p90": 9.0, "p99": 9.0, "min": 9.0, "mean": 9.0, "std": 0.0,
               "n": 1, "samples": [9.0]}  # wall time: never what the medians show
    return {"status": "ok", "ratio": ratio, "low": low, "high": high, "pairs": len(logs),
            "log_ratios": logs, "block_runs": 5, "inputs": "random (seed 0)", "clock": clock,
            "threads": threads, "block_means_ms": {"candidate": candidate, "baseline": baseline},
            "candidate": latency, "baseline": latency}


def _fake(monkeypatch: pytest.MonkeyPatch, runs: list[dict[str, Any]]) -> None:
    calls: list[int] = []

    def call_worker(arguments: list[str], timeout: float,
                    memory_cap: int | None = None) -> dict[str, Any]:
        calls.append(1)
        return runs[len(calls) - 1]

    monkeypatch.setattr(compare_module, "call_worker", call_worker)


def test_medians_clock_and_ratios_come_from_the_paired_blocks(monkeypatch):
    # 30 pairs: the candidate's blocks 0.22 ms a run, the baseline's 0.20 (CPU time).
    candidate = [0.22, 0.21, 0.23] * 10
    baseline = [0.20, 0.19, 0.21] * 10
    logs = [math.log(c / b) for c, b in zip(candidate, baseline)]
    _fake(monkeypatch, [_worker_result(logs, candidate, baseline)])
    c = measure_comparison("cand.tflite", "base.tflite", "xnnpack", QUICK, 0.05).comparison
    assert c.head_median_ms == pytest.approx(0.22) and c.base_median_ms == pytest.approx(0.20)
    assert c.clock == "CPU time, 1 thread"
    assert c.ratios is not None and len(c.ratios) == 30
    assert c.ratios[:3] == pytest.approx([0.22 / 0.20, 0.21 / 0.19, 0.23 / 0.21])


def test_a_re_measure_pools_its_blocks_and_the_ratios_are_capped(monkeypatch):
    # Straddling 1.025 at first: one more run, whose blocks are pooled with the first's.
    first_logs = [math.log(1.025) + d for d in (-0.05, 0.05) * 150]
    second_logs = [math.log(1.025) + d for d in (-0.05, 0.05) * 150]
    first = _worker_result(first_logs, [1.0] * 300, [2.0] * 300, clock="wall", threads=4)
    second = _worker_result(second_logs, [3.0] * 301, [4.0] * 299, clock="wall", threads=4)
    _fake(monkeypatch, [first, second])
    c = measure_comparison("cand.tflite", "base.tflite", "xnnpack", QUICK, 0.025).comparison
    assert c.remeasured and c.pairs == 600
    # 601 candidate blocks: 300 at 1.0 and 301 at 3.0, so the middle one is 3.0.
    assert c.head_median_ms == 3.0
    assert c.base_median_ms == statistics.median([2.0] * 300 + [4.0] * 299) == 2.0
    assert c.clock == "wall time, 4 threads"
    assert c.ratios is not None and len(c.ratios) == MAX_RATIOS == 500


def test_clock_labels():
    assert clock_label("cpu", 1) == "CPU time, 1 thread"
    assert clock_label("wall", 2) == "wall time, 2 threads"
    assert clock_label("", 1) == ""  # an older worker's answer: no label, never a guess


def test_a_report_written_before_loads_without_them():
    old = {"status": "ok", "comparison": {"ratio": 1.1, "low": 1.05, "high": 1.15, "pairs": 40,
                                          "verdict": "regressed", "tolerance": 0.05,
                                          "remeasured": False}}
    c = DelegateResult.from_json(old).comparison
    assert c == Comparison(1.1, 1.05, 1.15, 40, "regressed", 0.05)
    assert c.base_median_ms is None and c.head_median_ms is None and c.clock == ""
    assert c.ratios is None


def test_a_real_run_gives_medians_whose_ratio_agrees_with_the_pairs(tmp_path: Path):
    # 6 TANHs against 2 over the same tensor: ~3x the work (tests/unit/measure/test_latency_compare).
    light, heavy = tmp_path / "light.tflite", tmp_path / "heavy.tflite"
    light.write_bytes(chain_model([1 << 16] * 3, op="TANH"))
    heavy.write_bytes(chain_model([1 << 16] * 7, op="TANH"))
    c = measure_comparison(heavy, light, "builtin", QUICK, 0.1).comparison
    assert c.base_median_ms is not None and c.head_median_ms is not None
    assert 0 < c.base_median_ms < c.head_median_ms
    # The medians' ratio and the trimmed mean of the pair ratios estimate the same thing.
    assert c.head_median_ms / c.base_median_ms == pytest.approx(c.ratio, rel=0.15)
    assert c.clock == "CPU time, 1 thread"  # one thread on Linux: the CPU clock
    assert c.ratios is not None and len(c.ratios) == c.pairs
    assert statistics.median(c.ratios) == pytest.approx(c.ratio, rel=0.1)
