"""A latency comparison that cannot be made is an error naming why, never a silent pass or a
skip that blames a missing model file (``comparison_error`` in engine.py, read by
regressions.py).

The baseline here is saved from a model the worker rejects (a custom operator no kernel
resolves), the way a base branch's model can stop loading after a runtime upgrade; the head's
model is a plain TANH chain that runs. Both are built by hand: no TensorFlow.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.helpers.models import Op, Subgraph, Tensor, build_model, chain_model

BUDGET = """
    source = "../m.tflite"
    [defaults.runtime]
    delegates = ["builtin"]
    warmup = { min_runs = 1, min_seconds = 0 }
    timing = { min_runs = 3, min_seconds = 0 }

    [variants.float32]
    size = { max = "1 MiB" }

    [regression]
    latency = "10%"
"""


def unresolvable_model() -> bytes:
    """x[64] -> CUSTOM "NoSuchKernel" -> y[64]: a valid file that no interpreter can run."""
    return build_model([Subgraph(
        tensors=[Tensor("x", [64]), Tensor("y", [64])],
        ops=[Op("CUSTOM", [0], [1], custom_code="NoSuchKernel")],
        inputs=[0], outputs=[1])])


def test_a_baseline_model_the_worker_rejects_is_a_latency_error_naming_the_failure(
        pytester: pytest.Pytester) -> None:
    (pytester.path / "budgets").mkdir()
    (pytester.path / "budgets" / "m.toml").write_text(textwrap.dedent(BUDGET))
    model = pytester.path / "m.tflite"
    # The base branch: its model is saved without being run (--tflite-no-runtime).
    model.write_bytes(unresolvable_model())
    pytester.runpytest("budgets", "-p", "no:randomly", "-p", "no:cacheprovider",
                       "--tflite-no-runtime", "--tflite-baseline-save=base"
                       ).assert_outcomes(passed=1)
    assert (pytester.path / "base" / "m" / "float32.tflite").read_bytes() == model.read_bytes()
    # The head: a model that runs, timed against the saved one.
    model.write_bytes(chain_model([64, 64, 64], op="TANH"))
    result = pytester.runpytest("budgets", "-p", "no:randomly", "-p", "no:cacheprovider",
                                "--tflite-baseline=base", "--tflite-report=r.json")
    (entry,) = json.loads((pytester.path / "r.json").read_text())["entries"]
    assert entry["delegates"]["builtin"]["status"] == "ok"  # the head model itself ran
    assert entry["delegates"]["builtin"]["comparison"] is None
    checks = {c["metric"]: c for c in entry["checks"]}
    check = checks["regression.latency.builtin"]
    assert check["verdict"] == "error", check
    assert check["reason"].startswith("comparison failed: "), check["reason"]
    assert "baseline" in check["reason"] and "NoSuchKernel" in check["reason"], check["reason"]
    assert entry["verdict"] == "error"
    assert checks["size.max"]["verdict"] == "pass"
    result.assert_outcomes(failed=1)
