"""Accuracy and fidelity (measure/accuracy.py, conversion/reference.py, measure/metrics.py,
worker/inference.py) on real models.

Every value the package reports is recomputed here without it: the candidate runs in
``ai_edge_litert``'s Interpreter one sample at a time, with inputs quantized and outputs
dequantized by hand from the tensors' scale and zero point; the reference is Keras ``predict``;
metrics are plain numpy (or scikit-learn). The classifier is a small CNN trained in the test on
scikit-learn's bundled digits, so the accuracies are real ones, not a random model's.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite.budget import load
from pytest_tflite.checker import BudgetChecker
from pytest_tflite.errors import BudgetExceeded, EvaluationError
from tests.helpers.models import Op, Subgraph, Tensor, build_model, keras3_mlp

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

DIGITS_BUDGET = """
    [variants.int8]
    accuracy = { metric = "top1", min = 0.8, max_drop = 0.05 }
"""


# --- data and models ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Digits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@pytest.fixture(scope="session")
def digits() -> Digits:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]  # (1797, 8, 8, 1) in 0..1
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return Digits(x[:1400], y[:1400], x[1400:], y[1400:])


@pytest.fixture(scope="session")
def digits_cnn(digits: Digits) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.x_train, digits.y_train, epochs=5, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def digits_int8(digits_cnn: Any, digits: Digits, models_dir: Path) -> Any:
    import pytest_tflite

    return pytest_tflite.convert(digits_cnn, "int8", representative_data=digits.x_train[:200],
                                 output_dir=models_dir)


@pytest.fixture(scope="session")
def digits_float(digits_cnn: Any, models_dir: Path) -> Any:
    import pytest_tflite

    return pytest_tflite.convert(digits_cnn, output_dir=models_dir)


def checker_for(folder: Path, text: str) -> BudgetChecker:
    path = folder / "budget.toml"
    path.write_text(textwrap.dedent(text))
    return BudgetChecker(load(path), "t", record=lambda name, value: None)


# --- the independent computation ------------------------------------------------------------------


def litert_outputs(path: Path | str, x: np.ndarray, output: int = 0) -> np.ndarray:
    """The model's output ``output`` over ``x``, one sample per invoke, (de)quantized by hand."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[output]
    interpreter.resize_tensor_input(source["index"], [1, *x.shape[1:]])
    interpreter.allocate_tensors()
    in_scale, in_zero = source["quantization"]
    out_scale, out_zero = target["quantization"]
    rows = []
    for sample in x:
        value = sample[None]
        if source["dtype"] == np.int8:
            value = np.clip(np.round(value / in_scale) + in_zero, -128, 127).astype(np.int8)
        interpreter.set_tensor(source["index"], value.astype(source["dtype"]))
        interpreter.invoke()
        got = interpreter.get_tensor(target["index"])[0]
        if target["dtype"] == np.int8:
            got = (got.astype(np.float32) - np.float32(out_zero)) * np.float32(out_scale)
        rows.append(got.astype(np.float32))
    return np.stack(rows)


def keras_outputs(model: Any, x: np.ndarray) -> Any:
    return model.predict(x, batch_size=256, verbose=0)


def top1(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(scores.argmax(axis=1) == labels))


def top_k(scores: np.ndarray, labels: np.ndarray, k: int) -> tuple[float, float]:
    """(optimistic, pessimistic) top-k: a tie with the label's score counts for / against it."""
    own = scores[np.arange(len(labels)), labels][:, None]
    above = np.sum(scores > own, axis=1)
    tied = np.sum(scores == own, axis=1) - 1
    return float(np.mean(above < k)), float(np.mean(above + tied < k))


def fidelity_of(candidate: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    got = candidate.astype(np.float64).reshape(len(candidate), -1)
    want = reference.astype(np.float64).reshape(len(reference), -1)
    cosine = float(np.sum(got * want) / math.sqrt(np.sum(got * got) * np.sum(want * want)))
    agreeing = int(np.sum(got.argmax(axis=1) == want.argmax(axis=1)))
    return {
        "top1_agreement": agreeing / len(got),
        "cosine": cosine,
        "max_abs_error": float(np.abs(got - want).max()),
        "snr_db": float(10 * math.log10(np.sum(want**2) / np.sum((got - want) ** 2))),
        "samples": len(got),  # the counts behind the agreement: "393 of 397 samples"
        "top1_agreeing": agreeing,
    }


def scale_weights(content: bytes, factor: float = 8.0) -> bytes:
    """The model with the first CONV_2D / FULLY_CONNECTED weights' scale(s) multiplied by factor."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    wanted = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.FULLY_CONNECTED}
    graph = model.subgraphs[0]
    for operator in graph.operators:
        code = model.operatorCodes[operator.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) in wanted:
            weights = graph.tensors[operator.inputs[1]]
            assert weights.type == schema.TensorType.INT8
            weights.quantization.scale = [s * factor for s in weights.quantization.scale]
            break
    else:
        raise AssertionError("no CONV_2D or FULLY_CONNECTED operator")
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def mlp_flatbuffer(model: Any, batch_signature: bool, nan: bool = False) -> bytes:
    """A hand-built copy of keras3_mlp's Dense(relu) -> Dense: fixed [1, 8] input, or [-1, 8]."""
    from ai_edge_litert import schema_py_generated as schema

    (k1, b1), (k2, b2) = (layer.get_weights() for layer in model.layers)
    if nan:
        k1 = np.full_like(k1, np.nan)
    inputs, hidden, outputs = k1.shape[0], k1.shape[1], k2.shape[1]

    def sig(width: int) -> list[int] | None:
        return [-1, width] if batch_signature else None

    tensors = [
        Tensor("x", [1, inputs], shape_signature=sig(inputs)),
        Tensor("w1", [hidden, inputs], data=k1.T),
        Tensor("b1", [hidden], data=b1),
        Tensor("h", [1, hidden], shape_signature=sig(hidden)),
        Tensor("w2", [outputs, hidden], data=k2.T),
        Tensor("b2", [outputs], data=b2),
        Tensor("y", [1, outputs], shape_signature=sig(outputs)),
    ]
    ops = [
        Op("FULLY_CONNECTED", [0, 1, 2], [3],
           options={"fused_activation_function": schema.ActivationFunctionType.RELU}),
        Op("FULLY_CONNECTED", [3, 4, 5], [6]),
    ]
    return build_model([Subgraph(tensors, ops, inputs=[0], outputs=[6])])


# --- 1. a trained int8 classifier: accuracy, reference, drop -------------------------------------


def test_int8_digits_accuracy_reference_and_drop_equal_an_independent_computation(
        tmp_path, digits, digits_cnn, digits_int8):
    candidate_scores = litert_outputs(digits_int8.path, digits.x_test)
    candidate = top1(candidate_scores, digits.y_test)
    reference = top1(keras_outputs(digits_cnn, digits.x_test), digits.y_test)
    assert candidate > 0.8 and reference > 0.8  # a trained model, not chance (0.1)

    checker = checker_for(tmp_path, DIGITS_BUDGET)
    entry = checker.check(digits_int8, eval_data=(digits.x_test, digits.y_test), reference=digits_cnn)

    found = entry["accuracy"]
    assert found["metric"] == "top1"
    assert found["candidate"] == pytest.approx(candidate, abs=1e-9)
    assert found["reference"] == pytest.approx(reference, abs=1e-9)
    assert found["drop"] == pytest.approx(reference - candidate, abs=1e-9)
    assert found["samples"] == len(digits.x_test) == 397
    assert found["batched"] is True
    assert {c["metric"]: c["verdict"] for c in entry["checks"]} == {
        "accuracy.min": "pass", "accuracy.max_drop": "pass"}
    by_metric = {c["metric"]: c for c in entry["checks"]}
    assert by_metric["accuracy.min"]["measured"] == pytest.approx(candidate, abs=1e-9)
    assert by_metric["accuracy.max_drop"]["budget"] == 0.05
    # Fidelity comes from the same pass; every value is JSON-serializable builtins.
    assert entry["fidelity"] == pytest.approx(
        fidelity_of(candidate_scores, keras_outputs(digits_cnn, digits.x_test)), rel=1e-9)
    json.dumps(entry)


def test_plugin_reports_the_independently_computed_accuracy(project, digits, digits_cnn):
    p = project({"digits": DIGITS_BUDGET}, test_digits="""
        import keras
        import numpy as np
        import pytest

        @pytest.mark.tflite_budget("digits")
        def test_digits_int8(tflite_convert, tflite_budget):
            data = np.load("digits.npz")
            model = keras.saving.load_model("digits.keras")
            int8 = tflite_convert(model, "int8", representative_data=data["x_train"])
            open("digits_int8.tflite", "wb").write(int8.content)
            tflite_budget.check(int8, eval_data=(data["x_test"], data["y_test"]), reference=model)
    """)
    digits_cnn.save(p.path / "digits.keras")
    np.savez(p.path / "digits.npz", x_train=digits.x_train[:200], x_test=digits.x_test,
             y_test=digits.y_test)
    result = p.runpytest("-p", "no:randomly", "--tflite-report=report.json")
    result.assert_outcomes(passed=1)

    (entry,) = json.loads((p.path / "report.json").read_text())["entries"]
    candidate = top1(litert_outputs(p.path / "digits_int8.tflite", digits.x_test), digits.y_test)
    reference = top1(keras_outputs(digits_cnn, digits.x_test), digits.y_test)
    assert entry["variant"] == "int8"
    assert entry["accuracy"]["candidate"] == pytest.approx(candidate, abs=1e-9)
    assert entry["accuracy"]["reference"] == pytest.approx(reference, abs=1e-9)
    assert entry["accuracy"]["drop"] == pytest.approx(reference - candidate, abs=1e-9)
    assert entry["accuracy"]["samples"] == 397 and entry["accuracy"]["batched"] is True
    assert [c["verdict"] for c in entry["checks"]] == ["pass", "pass"]


# --- 2. topK, error metrics, custom metrics, relative drops --------------------------------------


def test_top3_equals_numpy(tmp_path, digits, digits_cnn, digits_int8):
    optimistic, pessimistic = top_k(litert_outputs(digits_int8.path, digits.x_test), digits.y_test, 3)
    ref_scores = keras_outputs(digits_cnn, digits.x_test)
    reference, reference_low = top_k(ref_scores, digits.y_test, 3)
    assert reference == reference_low  # float scores: no ties

    checker = checker_for(tmp_path, """
        [variants.int8]
        accuracy = { metric = "top3", min = 0.9 }
    """)
    found = checker.check(digits_int8, eval_data=(digits.x_test, digits.y_test),
                          reference=digits_cnn)["accuracy"]
    assert found["metric"] == "top3"
    assert found["reference"] == pytest.approx(reference, abs=1e-9)
    # int8 scores can tie: a tie at the third place may go either way, nothing else may differ.
    assert pessimistic - 1e-9 <= found["candidate"] <= optimistic + 1e-9
    assert found["candidate"] >= top1(ref_scores, digits.y_test) - 0.05  # top3 >= about top1


@pytest.fixture(scope="module")
def regression(models_dir: Path) -> dict[str, Any]:
    """An MLP with one output, its int8 conversion, and targets it predicts only roughly."""
    import pytest_tflite

    model = keras3_mlp(outputs=1, seed=3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    y = (keras_outputs(model, x)[:, 0] + rng.normal(scale=0.1, size=300)).astype(np.float32)
    int8 = pytest_tflite.convert(model, "int8", representative_data=x[:200], output_dir=models_dir,
                                 variant="reg")
    return {"model": model, "x": x, "y": y, "int8": int8}


def test_mae_mse_rmse_equal_numpy(tmp_path, regression):
    x, y = regression["x"], regression["y"].astype(np.float64)
    candidate = litert_outputs(regression["int8"].path, x)[:, 0].astype(np.float64)
    reference = keras_outputs(regression["model"], x)[:, 0].astype(np.float64)
    expected = {
        "mae": (np.mean(np.abs(candidate - y)), np.mean(np.abs(reference - y))),
        "mse": (np.mean((candidate - y) ** 2), np.mean((reference - y) ** 2)),
        "rmse": (np.sqrt(np.mean((candidate - y) ** 2)), np.sqrt(np.mean((reference - y) ** 2))),
    }
    checker = checker_for(tmp_path, """
        [variants.mae]
        accuracy = { metric = "mae", max = 1.0, max_drop = 0.5 }
        [variants.mse]
        accuracy = { metric = "mse", max = 1.0 }
        [variants.rmse]
        accuracy = { metric = "rmse", max = 1.0, max_drop = 0.5 }
    """)
    for metric, (want_candidate, want_reference) in expected.items():
        entry = checker.check(regression["int8"], eval_data=(x, y), reference=regression["model"],
                              variant=metric)
        found = entry["accuracy"]
        assert found["metric"] == metric
        assert found["candidate"] == pytest.approx(want_candidate, rel=1e-6)
        assert found["reference"] == pytest.approx(want_reference, rel=1e-6)
        # Error metrics: worse = higher, so the drop is candidate - reference.
        assert found["drop"] == pytest.approx(want_candidate - want_reference, rel=1e-5, abs=1e-9)
        assert found["batched"] is True and found["samples"] == 300
        assert all(c["verdict"] == "pass" for c in entry["checks"])
    tight = checker_for(tmp_path, '[variants.reg]\naccuracy = { metric = "mae", max = 0.01 }\n')
    with pytest.raises(BudgetExceeded, match=r"accuracy\.max"):
        tight.check(regression["int8"], eval_data=(x, y))


@pytest.fixture(scope="module")
def shifted(regression, models_dir: Path) -> dict[str, Any]:
    """A float candidate whose output bias is 0.3 too high: worse than the reference, on purpose."""
    import keras

    import pytest_tflite

    model = keras.models.clone_model(regression["model"])
    model.set_weights(regression["model"].get_weights())
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel, bias + 0.3])
    candidate = pytest_tflite.convert(model, output_dir=models_dir, variant="shifted")
    x, y = regression["x"], regression["y"].astype(np.float64)
    mae_candidate = float(np.mean(np.abs(litert_outputs(candidate.path, x)[:, 0] - y)))
    mae_reference = float(np.mean(np.abs(keras_outputs(regression["model"], x)[:, 0] - y)))
    assert mae_candidate > mae_reference > 0
    return {"model": candidate, "drop": mae_candidate - mae_reference, "reference": mae_reference}


@pytest.mark.parametrize("margin, verdict", [(1.001, "pass"), (0.999, "fail")])
def test_relative_max_drop_is_a_percentage_of_the_reference(tmp_path, regression, shifted,
                                                           margin, verdict):
    percent = 100 * shifted["drop"] / abs(shifted["reference"]) * margin
    checker = checker_for(tmp_path, f"""
        [variants.shifted]
        accuracy = {{ metric = "mae", max_drop = "{percent:.6f}%" }}
    """)
    data = (regression["x"], regression["y"])
    if verdict == "pass":
        entry = checker.check(shifted["model"], eval_data=data, reference=regression["model"])
    else:
        with pytest.raises(BudgetExceeded, match=r"accuracy\.max_drop"):
            checker.check(shifted["model"], eval_data=data, reference=regression["model"])
        entry = checker.entries[-1].to_json()
    (check,) = entry["checks"]
    assert check["metric"] == "accuracy.max_drop" and check["verdict"] == verdict
    assert check["measured"] == pytest.approx(shifted["drop"], rel=1e-5)
    assert check["budget"] == pytest.approx(float(f"{percent:.6f}") / 100 * shifted["reference"],
                                            rel=1e-9)


def test_custom_metric_is_called_on_candidate_and_reference(tmp_path, digits, digits_cnn,
                                                            digits_int8):
    from sklearn.metrics import balanced_accuracy_score

    calls = []

    def balanced_accuracy(y_true, y_pred):
        calls.append((np.array(y_true), np.array(y_pred)))
        return balanced_accuracy_score(y_true, np.argmax(y_pred, axis=1))

    candidate_scores = litert_outputs(digits_int8.path, digits.x_test)
    reference_scores = keras_outputs(digits_cnn, digits.x_test)
    want_candidate = balanced_accuracy_score(digits.y_test, candidate_scores.argmax(axis=1))
    want_reference = balanced_accuracy_score(digits.y_test, reference_scores.argmax(axis=1))

    checker = checker_for(tmp_path, """
        [variants.int8]
        accuracy = { metric = "custom", direction = "higher", min = 0.8, max_drop = 0.05 }
        [variants.error]
        accuracy = { metric = "custom", direction = "lower", max = 0.5, max_drop = 0.05 }
    """)
    found = checker.check(digits_int8, eval_data=(digits.x_test, digits.y_test),
                          reference=digits_cnn, metric=balanced_accuracy)["accuracy"]
    assert len(calls) == 2
    np.testing.assert_array_equal(calls[0][0], digits.y_test)
    np.testing.assert_array_equal(calls[0][1], candidate_scores)
    np.testing.assert_allclose(calls[1][1], reference_scores, rtol=1e-6)
    assert found["metric"] == "custom"
    assert found["candidate"] == pytest.approx(want_candidate, abs=1e-9)
    assert found["reference"] == pytest.approx(want_reference, abs=1e-9)
    assert found["drop"] == pytest.approx(want_reference - want_candidate, abs=1e-9)

    def error_rate(y_true, y_pred):  # a custom error metric: direction = "lower"
        return 1.0 - balanced_accuracy_score(y_true, np.argmax(y_pred, axis=1))

    found = checker.check(digits_int8, eval_data=(digits.x_test, digits.y_test),
                          reference=digits_cnn, metric=error_rate, variant="error")["accuracy"]
    assert found["candidate"] == pytest.approx(1 - want_candidate, abs=1e-9)
    assert found["drop"] == pytest.approx((1 - want_candidate) - (1 - want_reference), abs=1e-9)


def test_custom_metric_that_raises_is_named(tmp_path, digits, digits_int8):
    def exploding_metric(y_true, y_pred):
        raise ZeroDivisionError("no samples of class 7")

    checker = checker_for(tmp_path, '[variants.int8]\naccuracy = { metric = "custom", direction = "higher", '
                                    'min = 0.5 }\n')
    with pytest.raises(EvaluationError, match=r"exploding_metric.*ZeroDivisionError.*class 7"):
        checker.check(digits_int8, eval_data=(digits.x_test, digits.y_test), metric=exploding_metric)
    with pytest.raises(EvaluationError, match="pass metric=callable"):
        checker.check(digits_int8, eval_data=(digits.x_test, digits.y_test))


# --- 3. batched evaluation ------------------------------------------------------------------------


def test_batched_for_a_resizable_batch_one_at_a_time_otherwise_same_predictions(
        tmp_path, models_dir):
    from ai_edge_litert.interpreter import Interpreter

    import pytest_tflite

    mlp = keras3_mlp(seed=5)
    x = np.random.default_rng(5).normal(size=(300, 8)).astype(np.float32)
    y = np.random.default_rng(6).integers(0, 4, size=300)
    exported = pytest_tflite.convert(mlp, output_dir=models_dir, variant="mlp")
    resizable = models_dir / "resizable.tflite"
    resizable.write_bytes(mlp_flatbuffer(mlp, batch_signature=True))
    fixed = models_dir / "fixed.tflite"
    fixed.write_bytes(mlp_flatbuffer(mlp, batch_signature=False))
    signatures = {path: list(Interpreter(model_path=str(path)).get_input_details()[0]["shape_signature"])
                  for path in (exported.path, resizable, fixed)}
    assert signatures == {exported.path: [-1, 8], resizable: [-1, 8], fixed: [1, 8]}

    want = keras_outputs(mlp, x)
    checker = checker_for(tmp_path, '[variants.mlp]\naccuracy = { metric = "top1", min = 0 }\n')
    found = {}
    for path in signatures:
        entry = checker.check(path, eval_data=(x, y), reference=mlp, variant="mlp")
        found[path] = entry
        independent = litert_outputs(path, x)
        np.testing.assert_allclose(independent, want, rtol=1e-5, atol=1e-6)
        assert entry["accuracy"]["candidate"] == pytest.approx(top1(independent, y), abs=1e-9)
        assert entry["fidelity"]["top1_agreement"] == 1.0
        assert entry["fidelity"]["max_abs_error"] < 1e-5
    assert [found[p]["accuracy"]["batched"] for p in signatures] == [True, True, False]
    assert len({found[p]["accuracy"]["candidate"] for p in signatures}) == 1


def test_batch_one_is_not_reported_as_batched(models_dir):
    from pytest_tflite.measure.isolated import run_model

    path = models_dir / "resizable_b1.tflite"
    path.write_bytes(mlp_flatbuffer(keras3_mlp(seed=5), batch_signature=True))
    assert run_model(path, [np.zeros((10, 8), np.float32)], batch=1).batched is False


# --- 4. fidelity without labels ------------------------------------------------------------------


def test_fidelity_without_labels_equals_numpy(tmp_path, digits, digits_cnn, digits_int8):
    want = fidelity_of(litert_outputs(digits_int8.path, digits.x_test),
                       keras_outputs(digits_cnn, digits.x_test))
    assert want["cosine"] > 0.99 and want["top1_agreement"] > 0.95
    checker = checker_for(tmp_path, """
        [variants.int8]
        fidelity = { min_top1_agreement = 0.95, min_cosine = 0.99, max_abs_error = 1.0, min_snr_db = 20 }
    """)
    entry = checker.check(digits_int8, eval_data=digits.x_test, reference=digits_cnn)
    assert entry["accuracy"] is None  # no labels: nothing to score
    assert set(entry["fidelity"]) == set(want)
    for key, value in want.items():
        assert entry["fidelity"][key] == pytest.approx(value, rel=1e-9), key
    assert [c["verdict"] for c in entry["checks"]] == ["pass"] * 4


def test_fidelity_budget_fails_for_a_wrongly_quantized_candidate(tmp_path, digits, digits_cnn,
                                                                digits_int8):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(scale_weights(digits_int8.content, 8.0))
    want = fidelity_of(litert_outputs(broken, digits.x_test), keras_outputs(digits_cnn, digits.x_test))
    assert want["cosine"] < 0.95  # the edit really broke it

    checker = checker_for(tmp_path, """
        [variants.int8]
        fidelity = { min_top1_agreement = 0.95, min_cosine = 0.99 }
    """)
    with pytest.raises(BudgetExceeded, match=r"fidelity\.min_(cosine|top1_agreement)"):
        checker.check(broken, eval_data=digits.x_test, reference=digits_cnn, variant="int8")
    entry = checker.entries[-1].to_json()
    for key, value in want.items():
        assert entry["fidelity"][key] == pytest.approx(value, rel=1e-9), key
    verdicts = {c["metric"]: c["verdict"] for c in entry["checks"]}
    assert verdicts["fidelity.min_cosine"] == "fail"


def test_the_failure_shows_which_layer_lost_it(tmp_path, digits, digits_cnn, digits_int8):
    from pytest_tflite.measure.isolated import layer_errors

    broken = tmp_path / "broken.tflite"
    broken.write_bytes(scale_weights(digits_int8.content, 8.0))  # the conv's weight scales x8
    sections: list[tuple[str, str]] = []
    path = tmp_path / "budget.toml"
    path.write_text("[variants.int8]\nfidelity = { min_cosine = 0.99 }\n")
    checker = BudgetChecker(load(path), "t", record=lambda name, value: None,
                            add_section=lambda title, text: sections.append((title, text)))
    with pytest.raises(BudgetExceeded, match="Per-layer quantization error, worst first") as caught:
        checker.check(broken, eval_data=digits.x_test, reference=digits_cnn, variant="int8")
    assert [title for title, _ in sections] == ["tflite per-layer quantization error"]
    assert sections[0][1] in str(caught.value)
    broken_rows = {r["tensor"]: r for r in layer_errors(
        broken, _float_of(digits_cnn, tmp_path),
        [digits.x_test])}
    intact_rows = {r["tensor"]: r for r in layer_errors(
        digits_int8.path, _float_of(digits_cnn, tmp_path), [digits.x_test])}
    conv = next(name for name in broken_rows if "conv2d" in name and "Relu" in name)
    # The edited layer's activation error jumps; the untouched input's does not.
    assert broken_rows[conv]["relative_rmse"] > 10 * intact_rows[conv]["relative_rmse"]
    assert broken_rows[conv]["relative_rmse"] > 0.3
    first_input = next(name for name in broken_rows if name.startswith("serving_default"))
    assert broken_rows[first_input]["relative_rmse"] == intact_rows[first_input]["relative_rmse"]
    # The section names the edited conv layer among its rows.
    assert conv[:60] in sections[0][1]


def _float_of(model: Any, folder: Path) -> Path:
    import pytest_tflite

    return pytest_tflite.convert(model, "float32", output_dir=folder / "float").path


# --- 5. bad input ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp_float(models_dir: Path) -> tuple[Any, Any]:
    import pytest_tflite

    mlp = keras3_mlp(seed=7)
    return mlp, pytest_tflite.convert(mlp, output_dir=models_dir, variant="mlp")


MLP_BUDGET = '[variants.mlp]\naccuracy = { metric = "top1", min = 0.0 }\n'


@pytest.mark.parametrize("data, message", [
    (np.array([["a"] * 8] * 4), "eval_data inputs must be numeric arrays, got dtype <U1"),
    (np.zeros((0, 8), np.float32), "eval_data is empty"),
    ((np.zeros((4, 8), np.float32), np.zeros(3, np.int64)), "eval_data has 4 inputs but 3 labels"),
    ((np.zeros((4, 8), np.float32), np.array([0, 1, 2, 4])),
     r"labels out of range: they run 0..4, the model outputs 4 classes \(0..3\)"),
    ((np.zeros((4, 8), np.float32), np.array([0, 1, 2, -1])), "labels out of range"),
], ids=["strings", "empty", "label-count", "label-too-high", "label-negative"])
def test_bad_eval_data_is_named(tmp_path, mlp_float, data, message):
    mlp, model = mlp_float
    with pytest.raises(EvaluationError, match=message):
        checker_for(tmp_path, MLP_BUDGET).check(model, eval_data=data, reference=mlp)


def test_eval_data_of_the_wrong_shape_names_the_input_and_both_shapes(tmp_path, mlp_float):
    mlp, model = mlp_float
    with pytest.raises(EvaluationError, match=r"takes samples of shape \[8\], the data has \[9\]"):
        checker_for(tmp_path, MLP_BUDGET).check(model, eval_data=np.zeros((4, 9), np.float32),
                                                reference=mlp)


def test_eval_data_of_the_wrong_shape_names_eval_data(tmp_path, mlp_float):
    mlp, model = mlp_float
    with pytest.raises(EvaluationError) as caught:
        checker_for(tmp_path, MLP_BUDGET).check(model, eval_data=np.zeros((4, 9), np.float32),
                                                reference=mlp)
    assert "eval_data" in str(caught.value)
    assert "could not run the model" not in str(caught.value)


def test_candidate_that_outputs_nan_is_an_error(tmp_path, models_dir):
    mlp = keras3_mlp(seed=8)
    path = models_dir / "nan.tflite"
    path.write_bytes(mlp_flatbuffer(mlp, batch_signature=True, nan=True))
    assert np.isnan(litert_outputs(path, np.ones((2, 8), np.float32))).all()
    x = np.ones((5, 8), np.float32)
    with pytest.raises(EvaluationError, match="outputs NaN or Inf for 20 of 20 values"):
        checker_for(tmp_path, MLP_BUDGET).check(path, eval_data=(x, np.zeros(5, np.int64)),
                                                variant="mlp")


def test_quantized_reference_is_refused(tmp_path, digits, digits_int8):
    checker = checker_for(tmp_path, DIGITS_BUDGET)
    for reference in (str(digits_int8.path), digits_int8.path, digits_int8):
        with pytest.raises(EvaluationError, match=r"reference .* is itself quantized"):
            checker.check(digits_int8, eval_data=(digits.x_test, digits.y_test), reference=reference)


def test_accuracy_budget_without_eval_data_is_an_error(tmp_path, digits_int8):
    checker = checker_for(tmp_path, DIGITS_BUDGET + "fidelity = { min_cosine = 0.9 }\n")
    with pytest.raises(BudgetExceeded, match="needs eval_data"):
        checker.check(digits_int8)
    entry = checker.entries[-1].to_json()
    assert entry["verdict"] == "error"
    assert {c["metric"]: c["verdict"] for c in entry["checks"]} == {
        "accuracy.min": "error", "accuracy.max_drop": "error", "fidelity.min_cosine": "error"}
    assert all("needs eval_data" in c["reason"] for c in entry["checks"])


def two_heads() -> Any:
    import keras

    keras.utils.set_random_seed(9)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, [keras.layers.Dense(4, name="four")(hidden),
                                keras.layers.Dense(3, name="three")(hidden)])


def test_several_outputs_need_output_and_output_index_picks_one(tmp_path, models_dir):
    import pytest_tflite

    model = two_heads()
    # sanity=False: see test_two_head_keras_model_converts_with_the_sanity_check below.
    converted = pytest_tflite.convert(model, output_dir=models_dir, variant="heads", sanity=False)
    x = np.random.default_rng(9).normal(size=(50, 8)).astype(np.float32)
    checker = checker_for(tmp_path, '[variants.heads]\naccuracy = { metric = "top1", min = 0 }\n')
    with pytest.raises(EvaluationError, match="2 outputs: pick one with output="):
        checker.check(converted, eval_data=(x, np.zeros(50, np.int64)))
    with pytest.raises(EvaluationError, match="2 outputs: pick one with output="):
        checker.check(converted, eval_data=x, reference=model)
    for index in (0, 1):
        # output=INDEX follows the Keras model's order (head "four" first), whatever order
        # the interpreter lists its output tensors in.
        heads = [litert_outputs(converted.path, x, output=k) for k in (0, 1)]
        scores = next(s for s in heads if s.shape[1] == (4, 3)[index])
        labels = np.random.default_rng(index).integers(0, scores.shape[1], size=50)
        entry = checker.check(converted, eval_data=(x, labels), output=index,
                              reference=converted.path)  # same model as float reference: same order
        assert entry["accuracy"]["candidate"] == pytest.approx(top1(scores, labels), abs=1e-9)
        assert entry["accuracy"]["drop"] == 0
        assert entry["fidelity"]["max_abs_error"] == 0


def test_output_index_means_the_same_head_in_candidate_and_keras_reference(tmp_path, models_dir):
    import pytest_tflite

    model = two_heads()
    converted = pytest_tflite.convert(model, output_dir=models_dir, variant="heads", sanity=False)
    x = np.random.default_rng(9).normal(size=(50, 8)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 3, size=50)
    checker = checker_for(tmp_path, '[variants.heads]\naccuracy = { metric = "top1", min = 0 }\n')
    entry = checker.check(converted, eval_data=(x, labels), output=1, reference=model)
    want = top1(model.predict(x, verbose=0)[1], labels)
    assert entry["accuracy"]["candidate"] == pytest.approx(want, abs=1e-9)
    assert entry["fidelity"]["max_abs_error"] < 1e-5


def test_two_head_keras_model_converts_with_the_sanity_check(models_dir):
    import pytest_tflite

    pytest_tflite.convert(two_heads(), output_dir=models_dir, variant="heads")


# --- 6. references: Keras, SavedModel, float .tflite ---------------------------------------------


def test_savedmodel_and_float_tflite_references_match_keras(tmp_path, digits, digits_cnn,
                                                            digits_int8, digits_float):
    from pytest_tflite.conversion.reference import run_reference
    from pytest_tflite.measure import accuracy

    saved = tmp_path / "saved_model"
    digits_cnn.export(str(saved))
    keras_scores = keras_outputs(digits_cnn, digits.x_test)
    want = top1(keras_scores, digits.y_test)
    data = accuracy.eval_data((digits.x_test, digits.y_test))
    checker = checker_for(tmp_path, DIGITS_BUDGET)
    for reference in (digits_cnn, saved, str(saved), digits_float.path, digits_float):
        scores = run_reference(reference, data, None)
        np.testing.assert_array_equal(scores.argmax(axis=1), keras_scores.argmax(axis=1))
        np.testing.assert_allclose(scores, keras_scores, rtol=1e-4, atol=1e-5)
        entry = checker.check(digits_int8, eval_data=(digits.x_test, digits.y_test),
                              reference=reference)
        assert entry["accuracy"]["reference"] == pytest.approx(want, abs=1e-6), reference


def test_a_list_for_several_inputs_is_refused():
    from pytest_tflite.measure import accuracy

    x = [np.zeros((2, 3), "float32"), np.zeros((2, 4), "float32")]
    with pytest.raises(EvaluationError, match=r"2 inputs as a list: pass a dict \{input_name"):
        accuracy.eval_data((x, np.zeros(2)))
