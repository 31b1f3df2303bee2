"""Runtime settings resolve in one function, layer by layer, and hold every time in seconds."""

from __future__ import annotations

import pytest

from pytest_tflite import runtime_defaults
from pytest_tflite.budget import RuntimeTable
from pytest_tflite.settings import BUILT_IN, CompareTiming, Runs, resolve_runtime, table_layer


def table(**values: object) -> RuntimeTable:
    return RuntimeTable.model_validate(values)


def test_layers_override_in_order_and_none_falls_through() -> None:
    found = resolve_runtime(
        ini={"threads": 4, "timing": {"min_runs": 7, "min_seconds": 2.0}, "seed": 3},
        defaults=table(timing={"min_seconds": 0.1}, delegates=["gpu"], threads=5),
        variant=table(threads=6, timeout="1.5 s"),
        command_line={"threads": 8, "timeout": None, "max_memory": None},
    )
    assert found.threads == 8  # command line > variant > defaults > ini
    assert found.timing == Runs(7, 0.1)  # merged key by key: ini's count, [defaults]' time
    assert found.warmup == Runs(1, 0.5)  # untouched: built in
    assert found.delegates == ("gpu",) and found.seed == 3
    assert found.timeout == 1.5  # the budget file's "1.5 s", in seconds; None fell through
    assert found.max_memory is None and found.batch_sizes == () and dict(found.input_shapes) == {}
    assert resolve_runtime(variant=table(threads=6), defaults=table(threads=5)).threads == 6


def test_the_built_in_defaults_are_the_runtime_defaults_in_seconds() -> None:
    assert resolve_runtime() == BUILT_IN
    assert BUILT_IN.timeout == runtime_defaults.DEFAULT_TIMEOUT_S == 300.0
    assert BUILT_IN.threads == 1 and BUILT_IN.seed == 0
    assert BUILT_IN.warmup == Runs(1, 0.5) and BUILT_IN.timing == Runs(50, 1.0)


def test_a_budget_files_milliseconds_become_seconds_once() -> None:
    assert table_layer(table(timeout="250 ms", threads=2)) == {"timeout": 0.25, "threads": 2}
    assert table_layer(table(timeout="90 s")) == {"timeout": 90.0}
    assert table_layer(None) == {}


def test_an_unknown_setting_is_refused_not_dropped() -> None:
    with pytest.raises(TypeError, match="unknown runtime setting 'thread'"):
        resolve_runtime(command_line={"thread": 2})


def test_the_worker_reads_plain_json() -> None:
    found = resolve_runtime(variant=table(input_shapes={"x": [1, 100]}, batch_sizes=[1, 8]),
                            command_line={"compare": {"min_pairs": 5}})
    assert found.compare == CompareTiming(min_pairs=5)
    assert found.worker_json() == {
        "threads": 1, "warmup": {"min_runs": 1, "min_seconds": 0.5},
        "timing": {"min_runs": 50, "min_seconds": 1.0}, "input_shapes": {"x": [1, 100]},
        "seed": 0, "batch_sizes": [1, 8], "compare": {"min_pairs": 5}}
