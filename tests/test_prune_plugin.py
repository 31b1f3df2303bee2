"""Pruning in a test: the tflite_prune fixture, a pruned_int8 variant, its sparsity budget."""

from __future__ import annotations

import json

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


def test_pruned_variant_meets_its_sparsity_budget_and_reruns_from_cache(project):
    p = project({"dense": BUDGET}, test_prune=PRUNE_TEST)
    first = p.runpytest_subprocess("-p", "no:randomly", "-s", "--tflite-report=report.json")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["conversion cache: 0 hit(s), 2 miss(es)"])
    entry = json.loads((p.path / "report.json").read_text())["entries"][0]
    assert entry["variant"] == "pruned_int8"
    hidden = next(layer for layer in entry["sparsity_layers"] if layer["name"] == "hidden")
    # tfmot prunes each kernel to the target; int8 rounding can only add zeros.
    assert hidden["elements"] == 16 * 64 and hidden["zeros"] >= 0.75 * 16 * 64 - 1
    assert {c["metric"]: c["verdict"] for c in entry["checks"]} == {
        "sparsity.min": "pass", "sparsity.layers.hidden.min": "pass"}
    second = p.runpytest_subprocess("-p", "no:randomly")
    second.stdout.fnmatch_lines(["conversion cache: 2 hit(s), 0 miss(es)"])


def test_a_sparsity_budget_the_model_misses_fails(project):
    p = project({"dense": BUDGET}, test_prune=PRUNE_TEST.replace('variant="pruned_int8"',
                                                                 'variant="strict"'))
    result = p.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sparsity.min*0.9*fail*"])
