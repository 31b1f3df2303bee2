"""Load: a large model costs the parent about its own size in memory, and every item of a run
appears once in every report (the small version of ``bench/hardening_load.py``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.helpers.models import Op, Subgraph, Tensor, build_model
from tests.helpers.paths import REPOSITORY

ROOT = REPOSITORY
MB = 1024 * 1024

# A fresh interpreter: the suite's own memory does not count. Imports first, then the peak is
# reset (``5`` into clear_refs sets VmHWM back to VmRSS), then the parent's part of measuring
# a model: reading it and the static measurement (size, gzip size, ops, arena, sparsity).
PARENT_SIDE = """
import sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
import numpy, pydantic, ai_edge_litert.schema_py_generated
from pytest_tflite.conversion.recipes import convert
from pytest_tflite.measure.static import measure_static
open("/proc/self/clear_refs", "w").write("5")
base = peak()
model = convert(sys.argv[1])
measurement = measure_static(model)
assert measurement.size_bytes == model.size_bytes
print(peak() - base, model.size_bytes)
"""


def dense_model(outputs: int, inputs: int = 1024, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    # Random weights: their gzip is as large as they are, so a compressed copy would show.
    weights = rng.standard_normal((outputs, inputs), dtype=np.float32)
    return build_model([Subgraph(
        tensors=[Tensor("x", [1, inputs]), Tensor("dense/MatMul", [outputs, inputs], data=weights),
                 Tensor("y", [1, outputs])],
        ops=[Op("FULLY_CONNECTED", [0, 1, -1], [2])], inputs=[0], outputs=[2])])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc")
def test_the_parent_holds_a_large_model_about_once(tmp_path):
    path = tmp_path / "large.tflite"
    path.write_bytes(dense_model(outputs=10 * 1024))  # 40 MiB of weights
    result = subprocess.run([sys.executable, "-c", PARENT_SIDE, str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    rise, size = (int(v) for v in result.stdout.split()[-2:])
    assert size > 40 * MB
    # The bytes themselves are one copy; a second (a gzip output, a copied buffer, a whole
    # zero mask of an int8 model) would pass 2x.
    assert rise < 1.5 * size, f"peak RSS rose {rise / MB:.0f} MiB for a {size / MB:.0f} MiB model"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hardening_load",
                                                  ROOT / "bench" / "hardening_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_item_appears_once_in_every_report(tmp_path):
    bench = _load_bench()
    expected = bench.write_project(tmp_path, 6)  # 3 KiB to 160 KiB; m_3 one byte over budget
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "budgets", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-n", "2", "-q", "--tflite-report=report.json", "--junitxml=junit.xml",
         "--tflite-markdown=comment.md"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=bench.clean_environment())
    assert result.returncode == 1, result.stdout[-3000:]
    assert bench.check_reports(tmp_path, expected, result.stdout) == []
