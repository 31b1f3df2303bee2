"""LiteRT missing or broken is an environment error naming the package and the install command,
never a verdict on the model (measure/isolated.py, measure/worker/main.py, errors.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_tflite.errors import LiteRTMissingError, ModelError
from pytest_tflite.measure.isolated import run_model
from pytest_tflite.measure.runtime import measure_delegate
from pytest_tflite.settings import Runs, RuntimeSettings
from tests.helpers.litert_shadow import NATIVE_ERROR, broken_litert
from tests.helpers.models import dense_model

QUICK = RuntimeSettings(warmup=Runs(1, 0), timing=Runs(3, 0))
SAYS = ("the LiteRT runtime (package ai_edge_litert) cannot be imported: in the worker process: "
        f"ImportError: {NATIVE_ERROR}. This is the Python environment, not the model: install it "
        "with `pip install ai-edge-litert` (or repair it: `pip install ai-edge-litert "
        "--force-reinstall`)")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "dense.tflite"
    path.write_bytes(dense_model(4))
    return path


def _run(path: Path) -> object:
    return run_model(path, [np.ones((2, 8), np.float32)])


def _measure(path: Path) -> object:
    return measure_delegate(path, "xnnpack", QUICK)


@pytest.mark.parametrize("work", [_run, _measure], ids=["run", "measure"])
def test_litert_that_cannot_load_in_the_worker_is_an_environment_error(
        work, model, tmp_path, monkeypatch):
    found = work(model)  # the model itself runs: whatever fails below is the environment
    assert found is not None
    monkeypatch.setenv("PYTHONPATH", str(broken_litert(tmp_path / "shadow")))
    with pytest.raises(LiteRTMissingError) as missing:
        work(model)
    assert str(missing.value) == SAYS
    assert not isinstance(missing.value, ModelError)  # no model verdict, no report row


def test_only_litert_failing_to_import_is_named_as_litert():
    assert LiteRTMissingError.caused(ValueError("ai_edge_litert")) is None
    assert LiteRTMissingError.caused(ImportError("no numpy", name="numpy")) is None
    named = LiteRTMissingError.caused(
        ModuleNotFoundError("No module named 'ai_edge_litert'", name="ai_edge_litert"))
    assert str(named).startswith("the LiteRT runtime (package ai_edge_litert) cannot be "
                                 "imported: ModuleNotFoundError: No module named 'ai_edge_litert'")
    # A native library of the package failing to load: the error names no module, the frame
    # the package's file does.
    try:
        exec(compile("raise ImportError('GLIBC_2.38 not found')",
                     "/site-packages/ai_edge_litert/interpreter.py", "exec"))
    except ImportError as exc:
        native = LiteRTMissingError.caused(exc)
    assert "ImportError: GLIBC_2.38 not found" in str(native)
    assert "`pip install ai-edge-litert`" in str(native)
