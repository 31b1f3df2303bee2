"""Runtime budgets through the plugin (pytester): delegates the machine lacks, the runtime
options, and the reader-writer lock that keeps xdist workers from timing under load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

RUNTIME_BUDGET = """
    [defaults.runtime]
    warmup = { min_runs = 1, min_seconds = 0 }
    timing = { min_runs = 5, min_seconds = 0 }
    delegates = ["builtin"]

    [variants.float32.latency.xnnpack]
    median = "1 s"
    [variants.float32.latency.gpu]
    median = "1 s"

    [variants.float32.memory.xnnpack]
    peak_rss = "512 MiB"

    [variants.float32.delegation.xnnpack]
    min_fraction = 1.0
    max_partitions = 1
    [variants.float32.delegation.gpu]
    min_fraction = 1.0
"""

RUNTIME_TEST = """
    import pytest

    @pytest.mark.tflite_budget("mlp")
    def test_model(tflite_convert, tflite_budget, mlp):
        tflite_budget.check(tflite_convert(mlp))
"""

XNNPACK_CHECKS = ["latency.xnnpack.median", "memory.xnnpack.peak_rss",
                  "delegation.xnnpack.min_fraction", "delegation.xnnpack.max_partitions"]
GPU_CHECKS = ["latency.gpu.median", "delegation.gpu.min_fraction"]
LOADER_WORDS = ("Vulkan", "WebGPU", "adapter", "OpenCL")


def _gpu_here() -> bool:
    return any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/dri/renderD128", "/dev/kgsl-3d0"))


def _run(project: Any, *args: str) -> tuple[Any, dict[str, Any]]:
    p = project({"mlp": RUNTIME_BUDGET}, test_runtime=RUNTIME_TEST)
    result = p.runpytest("-p", "no:randomly", "--tflite-report=report.json", *args)
    entries = json.loads((p.path / "report.json").read_text())["entries"]
    assert len(entries) == 1
    return result, entries[0]


def _checks(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["metric"]: c for c in entry["checks"]}


@pytest.fixture
def no_gpu() -> None:
    if _gpu_here():
        pytest.skip("this machine has a GPU: the gpu budgets would be measured")


def test_missing_gpu_skips_its_checks_with_the_loaders_reason(project, no_gpu):
    result, entry = _run(project)
    result.assert_outcomes(passed=1)
    checks = _checks(entry)
    assert sorted(checks) == sorted(XNNPACK_CHECKS + GPU_CHECKS)
    for metric in XNNPACK_CHECKS:
        assert checks[metric]["verdict"] == "pass", checks[metric]
    assert checks["delegation.xnnpack.min_fraction"]["measured"] == 1.0  # 2 of 2 FULLY_CONNECTED
    assert checks["delegation.xnnpack.max_partitions"]["measured"] == 1
    for metric in GPU_CHECKS:
        assert checks[metric]["verdict"] == "skip", checks[metric]
        assert checks[metric]["reason"].startswith("gpu unavailable on this machine: ")
        assert any(word in checks[metric]["reason"] for word in LOADER_WORDS), checks[metric]
    delegates = entry["delegates"]
    assert set(delegates) == {"builtin", "xnnpack", "gpu"}  # runtime.delegates adds builtin
    assert delegates["gpu"]["status"] == "unavailable"
    assert delegates["builtin"]["status"] == delegates["xnnpack"]["status"] == "ok"
    assert entry["verdict"] == "pass"
    # Loud, not silent: the skip is also a warning in the summary.
    result.stdout.fnmatch_lines(["*DelegateSkippedWarning*gpu budgets skipped*"])


def test_require_delegates_turns_the_gpu_skip_into_a_failure(project, no_gpu):
    result, entry = _run(project, "--tflite-require-delegates")
    result.assert_outcomes(failed=1)
    checks = _checks(entry)
    for metric in GPU_CHECKS:
        assert checks[metric]["verdict"] == "fail", checks[metric]
        assert any(word in checks[metric]["reason"] for word in LOADER_WORDS)
    for metric in XNNPACK_CHECKS:
        assert checks[metric]["verdict"] == "pass"
    assert entry["verdict"] == "fail"
    result.stdout.fnmatch_lines(["*latency.gpu.median*fail*"])


def test_no_runtime_skips_every_runtime_check(project):
    result, entry = _run(project, "--tflite-no-runtime")
    result.assert_outcomes(skipped=1)  # nothing was checked: a skip, never a pass
    checks = _checks(entry)
    assert sorted(checks) == sorted(XNNPACK_CHECKS + GPU_CHECKS)
    for check in checks.values():
        assert check["verdict"] == "skip"
        assert check["reason"] == "runtime measurement off (--tflite-no-runtime)"
        assert check["measured"] is None
    assert entry["delegates"] == {}  # nothing was measured
    assert entry["verdict"] == "skip"


def test_delegate_filter_measures_only_those_named(project):
    result, entry = _run(project, "--tflite-delegates=builtin")
    result.assert_outcomes(skipped=1)  # the budgets name xnnpack and gpu only
    assert set(entry["delegates"]) == {"builtin"}
    assert entry["delegates"]["builtin"]["status"] == "ok"
    checks = _checks(entry)
    for metric in XNNPACK_CHECKS:
        assert checks[metric]["verdict"] == "skip"
        assert checks[metric]["reason"] == "xnnpack not measured in this run (--tflite-delegates)"
    for metric in GPU_CHECKS:
        assert checks[metric]["verdict"] == "skip"
        assert "gpu not measured in this run" in checks[metric]["reason"]


def test_threads_and_timeout_options_reach_the_worker(project):
    result, entry = _run(project, "--tflite-delegates=builtin,xnnpack", "--tflite-threads=2")
    result.assert_outcomes(passed=1)
    assert {d["threads"] for d in entry["delegates"].values()} == {2}
    result, entry = _run(project, "--tflite-delegates=xnnpack", "--tflite-timeout=0.001")
    result.assert_outcomes(failed=1)
    found = entry["delegates"]["xnnpack"]
    assert found["status"] == "error" and "timed out after 0.001 s" in found["reason"]
    checks = _checks(entry)
    for metric in XNNPACK_CHECKS:
        assert checks[metric]["verdict"] == "error"


LOCK_TESTS = """
    import time
    from pathlib import Path

    import pytest
    from pytest_tflite.measure.lock import lock_path, shared

    def wait_for(path, limit=30.0):
        deadline = time.monotonic() + limit
        while not path.exists():
            assert time.monotonic() < deadline, f"{path.name} never appeared"
            time.sleep(0.02)

    def test_hold(request):
        root = request.config.rootpath
        wait_for(root / "ready")  # the other worker converted its model (a shared lock too)
        with shared(lock_path(root), 60):
            (root / "held").write_text(str(time.time()))
            time.sleep(3)
            (root / "releasing").write_text(str(time.time()))

    @pytest.mark.tflite_budget("mlp")
    def test_time(request, monkeypatch, tflite_convert, tflite_budget, mlp):
        import pytest_tflite.measure.runtime as runtime

        root = request.config.rootpath
        model = tflite_convert(mlp)
        # When the timing worker starts: under the lock, so never before the holder let go.
        started = []
        real = runtime.call_worker
        def call_worker(*args, **kwargs):
            started.append(time.time())
            return real(*args, **kwargs)
        monkeypatch.setattr(runtime, "call_worker", call_worker)
        (root / "ready").write_text("")
        wait_for(root / "held")
        start = time.time()
        tflite_budget.check(model)
        end = time.time()
        (root / "timing.txt").write_text(f"{start} {end}")
        assert end - start >= 2.5
        released = float((root / "releasing").read_text())
        assert end >= released
        # The wait was the lock, not the work: the check asked for the lock while it was held,
        # and its timing worker (xnnpack's, the one delegate budgeted) started only once the
        # holder let go.
        assert len(started) == 1 and start < released <= started[0], (start, released, started)
"""

LOCK_BUDGET = """
    [defaults.runtime]
    warmup = { min_runs = 1, min_seconds = 0 }
    timing = { min_runs = 5, min_seconds = 0 }

    [variants.float32.latency.xnnpack]
    median = "1 s"
"""


def test_timing_waits_for_another_workers_shared_lock(project):
    p = project({"mlp": LOCK_BUDGET}, test_lock=LOCK_TESTS)
    result = p.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    start, end = (float(v) for v in (p.path / "timing.txt").read_text().split())
    held = float((p.path / "held").read_text())
    released = float((p.path / "releasing").read_text())
    assert start < released <= end
    assert released - held >= 3.0
