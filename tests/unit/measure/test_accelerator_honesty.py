"""No budget reads a CPU run as accelerated.

LiteRT's ``CompiledModel.is_fully_accelerated()`` says whether the accelerator *set*, CPU
(XNNPACK) included, took every op: with NPU|CPU and no NPU the model runs on the CPU and still
reads True (shown below on this machine). So gpu and npu are compiled with their accelerator
alone, a machine without one reports the delegate unavailable, and a result whose status is
not ok passes no key; ``delegation.<gpu|npu>.min_fraction`` is the only key that reads
``fully_accelerated`` (verdicts._DelegateJudge._fraction; runner:NAME delegation keys are
refused when the budget loads).
"""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite.budget import load
from pytest_tflite.measure.runtime import measure_delegates
from pytest_tflite.measure.worker.delegates import (
    AcceleratorRunner,
    ModelUnsupported,
    accelerator_flags,
)
from pytest_tflite.measure.worker.trivial import trivial_model
from pytest_tflite.results import DelegateResult, DelegateStatus, Latency, Measurement
from pytest_tflite.settings import Runs, RuntimeSettings
from pytest_tflite.verdicts import LATENCY_KEYS, Context, judge

QUICK = RuntimeSettings(warmup=Runs(1, 0), timing=Runs(3, 0))
ACCELERATORS = ("gpu", "npu")


@pytest.fixture(scope="module")
def trivial_path() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "trivial.tflite")
        path.write_bytes(trivial_model())
        yield path


def _compiles(path: Path, flags: Any) -> bool | None:
    """is_fully_accelerated() after compiling and running ``path`` with ``flags``; None when it
    does not compile."""
    from ai_edge_litert.compiled_model import CompiledModel

    try:
        model = CompiledModel.from_file(str(path), hardware_accel=flags)
        model.run_by_index(0, model.create_input_buffers(0), model.create_output_buffers(0))
    except RuntimeError:
        return None
    return bool(model.is_fully_accelerated())


def test_the_flags_for_gpu_and_npu_never_include_cpu() -> None:
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    assert accelerator_flags("gpu") == HardwareAccelerator.GPU
    assert accelerator_flags("npu") == HardwareAccelerator.NPU
    for delegate in ACCELERATORS:
        assert not accelerator_flags(delegate) & HardwareAccelerator.CPU


@pytest.mark.parametrize("delegate", ACCELERATORS)
def test_the_runner_compiles_with_the_accelerator_alone(monkeypatch: pytest.MonkeyPatch,
                                                        trivial_path: Path,
                                                        delegate: str) -> None:
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    asked: list[Any] = []

    def from_file(path: str, **options: Any) -> Any:
        asked.append(options["options"])
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(CompiledModel, "from_file", staticmethod(from_file))
    with pytest.raises(ModelUnsupported):
        AcceleratorRunner(str(trivial_path), delegate, 1, {})
    (options,) = asked
    assert options.hardware_accelerators == accelerator_flags(delegate)
    assert not options.hardware_accelerators & HardwareAccelerator.CPU
    # The GPU is timed in benchmark mode (each run waits for the GPU's work), never a
    # submission-only time; the NPU has no such option.
    assert (options._gpu_options is not None and options._gpu_options.benchmark_mode) \
        == (delegate == "gpu")


def test_with_cpu_in_the_set_a_missing_npu_still_reads_fully_accelerated(
        trivial_path: Path) -> None:
    """The reason for the rule above, on a machine without an NPU."""
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator as Accelerator

    if _compiles(trivial_path, Accelerator.NPU) is not None:
        pytest.skip("this machine has an NPU")
    assert _compiles(trivial_path, Accelerator.NPU | Accelerator.CPU) is True


def _budget(tmp_path: Path) -> Any:
    tables = []
    for delegate in ACCELERATORS:
        latency = "\n".join(f'{key} = "10 s"' for key in LATENCY_KEYS)
        tables.append(f"[variants.x.latency.{delegate}]\n{latency}\n"
                      f"[variants.x.delegation.{delegate}]\nmin_fraction = 1.0\n")
    path = tmp_path / "budget.toml"
    path.write_text(textwrap.dedent("\n".join(tables)))
    return load(path)


def _measurement(delegates: dict[str, DelegateResult]) -> Measurement:
    return Measurement(size_bytes=100, gzip_bytes=90, ops={}, subgraphs=[], planned_arena_bytes=0,
                       inputs=[], outputs=[], sparsity=0.0, sparsity_layers=[],
                       delegates=delegates)


def test_gpu_and_npu_missing_here_skip_every_key_and_fail_when_required(
        tmp_path: Path, trivial_path: Path) -> None:
    found = measure_delegates(trivial_path, ACCELERATORS, QUICK)
    present = [d for d in ACCELERATORS if found[d].status == "ok"]
    if present:
        pytest.skip(f"this machine has {', '.join(present)}")
    for delegate in ACCELERATORS:
        assert found[delegate].status == "unavailable", found[delegate]
        assert found[delegate].fully_accelerated is None and found[delegate].placement is None
    variant = _budget(tmp_path).variant("x")
    checks = judge(_measurement(found), variant)
    expected = {f"latency.{d}.{key}" for d in ACCELERATORS for key in LATENCY_KEYS} | \
        {f"delegation.{d}.min_fraction" for d in ACCELERATORS}
    assert {c.metric for c in checks} == expected
    assert {c.verdict for c in checks} == {"skip"}
    assert all("unavailable on this machine" in c.reason for c in checks)
    required = judge(_measurement(found), variant, context=Context(require_delegates=True))
    assert {c.verdict for c in required} == {"fail"}


@pytest.mark.parametrize("status", ["unavailable", "unsupported", "error"])
def test_a_result_that_is_not_ok_passes_nothing_whatever_it_claims(tmp_path: Path,
                                                                  status: DelegateStatus) -> None:
    # A result that says "fully accelerated" and fast, but did not run on the accelerator.
    claims = DelegateResult(status, reason="no such device", fully_accelerated=True,
                            latency_ms=Latency(1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 3),
                            init_ms=1.0, first_invoke_ms=1.0, cpu_ms=1.0)
    checks = judge(_measurement({d: claims for d in ACCELERATORS}),
                   _budget(tmp_path).variant("x"))
    assert len(checks) == 2 * (len(LATENCY_KEYS) + 1)
    assert "pass" not in {c.verdict for c in checks}
    assert {c.verdict for c in checks} == {{"unavailable": "skip", "unsupported": "fail",
                                            "error": "error"}[status]}


def test_only_an_ok_result_fully_accelerated_passes_min_fraction(tmp_path: Path) -> None:
    variant = _budget(tmp_path).variant("x")
    fraction = {name: DelegateResult("ok", fully_accelerated=full)
                for name, full in zip(ACCELERATORS, (True, False))}
    verdicts = {c.metric: c.verdict for c in judge(_measurement(fraction), variant)
                if c.metric.startswith("delegation.")}
    assert verdicts == {"delegation.gpu.min_fraction": "pass",
                        "delegation.npu.min_fraction": "fail"}


def test_an_accelerator_run_records_no_placement_and_says_why() -> None:
    # No accelerator on these machines: the runner's coverage over a stand-in CompiledModel.
    class Compiled:
        def is_fully_accelerated(self) -> bool:
            return True

    runner = AcceleratorRunner.__new__(AcceleratorRunner)
    runner.model, runner.delegate = Compiled(), "npu"
    found = DelegateResult.from_json({"status": "ok", **runner.coverage()})
    assert found.fully_accelerated is True and found.placement is None
    assert found.placement_note == ("LiteRT's CompiledModel tells only is_fully_accelerated(), "
                                    "not which ops the npu accelerator took")
    assert found.delegated_nodes is None and found.fallback_ops is None
