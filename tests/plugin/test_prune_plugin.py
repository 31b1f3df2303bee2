"""Pruning in a test: the tflite_prune fixture, a pruned_int8 variant, its sparsity budget.

Both tests prune and convert the same model: a first, cold session fills one conversion and
pruning cache for the run, and the tests' own sessions read it (cache hits: no fine-tuning, no
converting).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.sessions import INNER_CONFTEST

PRUNE_TEST = """
    import numpy as np
    import pytest

    @pytest.fixture(scope="session")
    def data():
        rng = np.random.default_rng(0)
        x = rng.normal(size=(256, 16)).astype("float32")
        return x, (x[:, :4].sum(axis=1) > 0).astype("int64")

    @pytest.fixture(scope="session")
    def dense_model(data):
        import tf_keras
        tf_keras.utils.set_random_seed(0)
        model = tf_keras.Sequential([
            tf_keras.Input((16,)),
            tf_keras.layers.Dense(64, activation="relu", name="hidden"),
            tf_keras.layers.Dense(2, name="logits"),
        ])
        model.compile("adam", tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(*data, epochs=2, verbose=0)
        return model

    @pytest.mark.tflite_budget("dense")
    def test_pruned_int8(tflite_prune, tflite_convert, tflite_budget, dense_model, data):
        pruned = tflite_prune(dense_model, 0.75, fine_tune=data, epochs=2)
        model = tflite_convert(pruned, "int8", representative_data=data[0][:64],
                               variant="pruned_int8")
        entry = tflite_budget.check(model)
        print("SPARSITY", entry["sparsity"])
"""

BUDGET = """
    [variants.pruned_int8]
    sparsity = { min = 0.74, layers = { hidden = { min = 0.74 } } }

    [variants.strict]
    sparsity = { min = 0.9 }
"""


@dataclass
class ColdRun:
    cache: Path  # the module's conversion and pruning cache, filled by this run
    status: int
    output: str
    report: dict


@pytest.fixture(scope="module")
def cold_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> ColdRun:
    """The pruned_int8 session on an empty cache, run once for the whole run, as pytester's
    runpytest_subprocess would (a module fixture cannot use the per-test pytester). Under xdist
    the two tests may land on two workers: the first to take the lock runs the session, in the
    folder above the workers' base temps (the run's own), and the other reads what it left."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "prune-cold"
    root.mkdir(exist_ok=True)
    project, cache, saved = root / "project", root / "cache", root / "cold.json"
    with FileLock(str(root / "run.lock")):
        if not saved.is_file():
            (project / "budgets").mkdir(parents=True)
            (project / "conftest.py").write_text(INNER_CONFTEST)
            (project / "test_prune.py").write_text(textwrap.dedent(PRUNE_TEST))
            (project / "budgets" / "dense.toml").write_text(textwrap.dedent(BUDGET))
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("PYTEST_") and k != "GITHUB_STEP_SUMMARY"}
            env.update(HOME=str(project), PY_COLORS="0")
            done = subprocess.run(
                [sys.executable, "-m", "pytest", f"--basetemp={root / 'basetemp'}",
                 "-p", "no:randomly", "-s", "--tflite-report=report.json",
                 "-o", f"tflite_cache_dir={cache}"],
                cwd=project, env=env, capture_output=True, text=True, timeout=600)
            report = project / "report.json"
            saved.write_text(json.dumps({
                "status": done.returncode, "output": done.stdout + done.stderr,
                "report": json.loads(report.read_text()) if report.is_file() else {}}))
    found = json.loads(saved.read_text())
    return ColdRun(cache, found["status"], found["output"], found["report"])


def test_pruned_variant_meets_its_sparsity_budget_and_reruns_from_cache(project, cold_run):
    assert cold_run.status == 0 and " 1 passed" in cold_run.output, cold_run.output[-3000:]
    assert "conversion cache: 0 hit(s), 2 miss(es)" in cold_run.output.splitlines()
    entry = cold_run.report["entries"][0]
    assert entry["variant"] == "pruned_int8"
    hidden = next(layer for layer in entry["sparsity_layers"] if layer["name"] == "hidden")
    # tfmot prunes each kernel to the target; int8 rounding can only add zeros.
    assert hidden["elements"] == 16 * 64 and hidden["zeros"] >= 0.75 * 16 * 64 - 1
    assert {c["metric"]: c["verdict"] for c in entry["checks"]} == {
        "sparsity.min": "pass", "sparsity.layers.hidden.min": "pass"}
    p = project({"dense": BUDGET}, test_prune=PRUNE_TEST)
    second = p.runpytest_subprocess("-p", "no:randomly", "-o", f"tflite_cache_dir={cold_run.cache}")
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["conversion cache: 2 hit(s), 0 miss(es)"])


def test_a_sparsity_budget_the_model_misses_fails(project, cold_run):
    p = project({"dense": BUDGET}, test_prune=PRUNE_TEST.replace('variant="pruned_int8"',
                                                                 'variant="strict"'))
    result = p.runpytest_subprocess("-p", "no:randomly", "-o", f"tflite_cache_dir={cold_run.cache}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sparsity.min*0.9*fail*"])
    # The same pruned model as the cold run's: pruning and conversion came from the cache.
    result.stdout.fnmatch_lines(["conversion cache: 2 hit(s), 0 miss(es)"])
