"""Per-delegate limits (``latency.<delegate>.*``, ``memory.<delegate>.*``) are "at most": a
figure exactly at its limit passes, one just over it fails. The limits are written so that
each parses to exactly the figure given (2 ms, 1,024 B), with no rounding in between."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite.budget import load
from pytest_tflite.results import DelegateResult, Latency, Measurement
from pytest_tflite.verdicts import judge

BUDGET = """
    [variants.v.latency.builtin]
    median = "2 ms"
    mean = "2 ms"
    p90 = "2 ms"
    p99 = "2 ms"
    cpu = "2 ms"
    init = "2 ms"
    first_invoke = "2 ms"

    [variants.v.memory.builtin]
    arena = "1 KiB"
    peak_rss = 1024
"""
LATENCY_KEYS = ("median", "mean", "p90", "p99", "cpu", "init", "first_invoke")
MEMORY_KEYS = ("arena", "peak_rss")


def measured(ms: float, size: int) -> Measurement:
    """Every latency figure ``ms`` and every memory figure ``size`` under builtin."""
    latency = Latency(median=ms, p90=ms, p99=ms, min=ms, mean=ms, std=0.0, n=5)
    found = DelegateResult("ok", threads=1, latency_ms=latency, init_ms=ms, first_invoke_ms=ms,
                           cpu_ms=ms, arena_bytes=size, peak_rss_bytes=size)
    return Measurement(size_bytes=1000, gzip_bytes=900, ops={"RELU": 1}, subgraphs=[],
                       planned_arena_bytes=64, inputs=[], outputs=[], sparsity=0.0,
                       sparsity_layers=[], delegates={"builtin": found})


def verdicts(tmp_path: Path, measurement: Measurement) -> dict[str, Any]:
    path = tmp_path / "budget.toml"
    path.write_text(textwrap.dedent(BUDGET))
    budget = load(path)
    return {c.metric: (c.verdict, c.measured, c.budget) for c in judge(measurement,
                                                                       budget.variant("v"))}


def test_every_per_delegate_figure_exactly_at_its_limit_passes(tmp_path: Path) -> None:
    found = verdicts(tmp_path, measured(2.0, 1024))
    expected = {f"latency.builtin.{key}": ("pass", 2.0, 2.0) for key in LATENCY_KEYS}
    expected |= {f"memory.builtin.{key}": ("pass", 1024, 1024) for key in MEMORY_KEYS}
    assert found == expected


@pytest.mark.parametrize(("ms", "size"), [(2.001, 1025), (2.000001, 1025)])
def test_every_per_delegate_figure_just_over_its_limit_fails(tmp_path: Path, ms: float,
                                                             size: int) -> None:
    found = verdicts(tmp_path, measured(ms, size))
    assert {metric: verdict for metric, (verdict, _, _) in found.items()} == {
        **{f"latency.builtin.{key}": "fail" for key in LATENCY_KEYS},
        **{f"memory.builtin.{key}": "fail" for key in MEMORY_KEYS}}
