"""The package's rooms keep their rules: the worker side imports only LiteRT and numpy, and no
module reaches into another's private names."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from .flatbuffer_models import chain_model

PACKAGE = Path(__file__).parents[1] / "pytest_tflite"
FORBIDDEN_IN_WORKER = ("pytest", "_pytest", "tensorflow", "tf_keras", "keras", "pydantic",
                       "tensorflow_model_optimization")


def _top_level_imports(stderr: str) -> set[str]:
    """Top-level packages from ``python -X importtime``'s report."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "package":
                names.add(name.split(".")[0])
    return names


def test_the_worker_imports_only_litert_and_numpy(tmp_path: Path) -> None:
    # The worker as the parent runs it, on a real measurement: every module it loads.
    model = tmp_path / "relu.tflite"
    model.write_bytes(chain_model([16, 16]))
    settings = {"threads": 1, "warmup": {"min_runs": 1, "min_seconds": 0},
                "timing": {"min_runs": 2, "min_seconds": 0}, "input_shapes": {}, "seed": 0}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pytest_tflite.measure.worker", "measure",
         str(model), "builtin", json.dumps(settings)],
        capture_output=True, text=True, timeout=120, env=env)
    assert json.loads(done.stdout.strip().splitlines()[-1])["result"]["status"] == "ok"
    loaded = _top_level_imports(done.stderr)
    assert {"ai_edge_litert", "numpy", "pytest_tflite"} <= loaded
    assert not loaded & set(FORBIDDEN_IN_WORKER), sorted(loaded & set(FORBIDDEN_IN_WORKER))


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            internal = node.level > 0 or (node.module or "").startswith("pytest_tflite")
            private = [a.name for a in node.names if a.name.startswith("_")]
            if internal and private:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {private}")
    assert not offenders
