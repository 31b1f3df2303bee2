"""Outputs are paired by the SignatureDef's output names, never by position or shape.

The fixture is the shape of a real model that the position-and-shape pairing broke: a SavedModel
with three outputs, two of them of the same shape, whose converted ``.tflite`` lists its output
tensors in another order than the signature's keys. The test asserts both facts first, so a
TensorFlow that changes either turns this file red rather than quietly testing nothing.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite import ConversionError, convert
from pytest_tflite.conversion.reference import run_reference
from pytest_tflite.errors import EvaluationError, OutputOrderWarning
from pytest_tflite.measure import accuracy
from tests.helpers.models import Op, Subgraph, Tensor, build_model, keras3_mlp

FEATURES = 6


@pytest.fixture(scope="module")
def three_outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``x_logits`` (4), ``y_aux`` (3), ``z_probs`` (4): the .tflite orders them y, z, x."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    module = tf.Module()
    module.w1 = tf.Variable(rng.normal(size=(FEATURES, 4)).astype("float32"))
    module.w2 = tf.Variable(rng.normal(size=(FEATURES, 3)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="features")])
    def serve(features: Any) -> dict[str, Any]:
        logits = tf.matmul(features, module.w1)
        return {"z_probs": tf.nn.softmax(logits), "y_aux": tf.matmul(features, module.w2),
                "x_logits": logits}

    module.serve = serve
    path = tmp_path_factory.mktemp("three_outputs") / "saved_model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(40, FEATURES)).astype(np.float32)


def saved_model_outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The SavedModel's own outputs, by signature key, computed by TensorFlow here."""
    import tensorflow as tf

    function = tf.saved_model.load(str(path)).signatures["serving_default"]
    return {k: v.numpy() for k, v in function(features=tf.constant(x)).items()}


def tflite_order(content: bytes) -> tuple[list[str], list[str]]:
    """(signature output names in the signature's own order, the same names in tensor order)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    runner = interpreter.get_signature_runner()
    by_index = {detail["index"]: name for name, detail in runner.get_output_details().items()}
    signature = interpreter.get_signature_list()["serving_default"]["outputs"]
    return list(signature), [by_index[d["index"]] for d in interpreter.get_output_details()]


@pytest.fixture(scope="module")
def converted(three_outputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    # sanity=False: these tests look at output selection, not at the sanity check.
    return convert(three_outputs, sanity=False, output_dir=tmp_path_factory.mktemp("converted"))


def test_the_fixture_has_shared_shapes_and_a_tensor_order_other_than_the_signatures(
        three_outputs, samples):
    import tensorflow as tf

    function = tf.saved_model.load(str(three_outputs)).signatures["serving_default"]
    shapes = {k: tuple(s.shape.as_list()[1:]) for k, s in function.structured_outputs.items()}
    assert shapes == {"x_logits": (4,), "y_aux": (3,), "z_probs": (4,)}  # two share a shape
    content = tf.lite.TFLiteConverter.from_saved_model(str(three_outputs)).convert()
    signature, tensors = tflite_order(content)
    assert sorted(signature) == sorted(saved_model_outputs(three_outputs, samples))
    assert tensors != sorted(signature), (tensors, signature)
    # Not only shifted: the two outputs of the same shape come in the other order too.
    assert tensors.index("z_probs") < tensors.index("x_logits")


def test_float32_conversion_passes_sanity(three_outputs, samples, tmp_path):
    model = convert(three_outputs, "float32", output_dir=tmp_path)  # raised SanityError before
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(model.path)).get_signature_runner()
    want = saved_model_outputs(three_outputs, samples[:1])
    got = runner(features=samples[:1])
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["x_logits", "y_aux", "z_probs"])
def test_output_name_selects_the_same_output_on_candidate_and_reference(
        converted, three_outputs, samples, name):
    want = saved_model_outputs(three_outputs, samples)[name]
    data = accuracy.eval_data(samples)
    candidate, _ = accuracy.run_candidate(converted.path, data, name)
    np.testing.assert_allclose(candidate, want, rtol=1e-5, atol=1e-5)
    for reference in (three_outputs, converted):  # a SavedModel and a float .tflite reference
        np.testing.assert_allclose(run_reference(reference, data, name), want,
                                   rtol=1e-5, atol=1e-5)


def test_output_index_counts_the_signatures_names_on_both_sides(converted, three_outputs,
                                                                 samples):
    want = saved_model_outputs(three_outputs, samples)
    data = accuracy.eval_data(samples)
    for index, name in enumerate(["x_logits", "y_aux", "z_probs"]):
        candidate, _ = accuracy.run_candidate(converted.path, data, index)
        reference = run_reference(three_outputs, data, index)
        np.testing.assert_allclose(candidate, want[name], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(reference, want[name], rtol=1e-5, atol=1e-5)


def test_unknown_output_name_is_an_error_listing_the_names(converted, three_outputs, samples):
    data = accuracy.eval_data(samples)
    names = r"\['x_logits', 'y_aux', 'z_probs'\]"
    with pytest.raises(EvaluationError, match=rf"output='scores'.*{names}"):
        accuracy.run_candidate(converted.path, data, "scores")
    with pytest.raises(EvaluationError, match=rf"output='scores'.*{names}"):
        run_reference(three_outputs, data, "scores")
    pick = rf"3 outputs: pick one with output=NAME \(one of {names}\)"
    with pytest.raises(EvaluationError, match=pick):
        accuracy.run_candidate(converted.path, data, None)
    with pytest.raises(EvaluationError, match=pick):
        run_reference(three_outputs, data, None)


def test_dict_eval_data_must_use_the_models_input_names(converted, three_outputs, samples):
    want = saved_model_outputs(three_outputs, samples)["y_aux"]
    wrong = accuracy.eval_data({"feature": samples})
    for run in (lambda: accuracy.run_candidate(converted.path, wrong, "y_aux"),
                lambda: run_reference(three_outputs, wrong, "y_aux"),
                lambda: run_reference(converted, wrong, "y_aux")):
        with pytest.raises(EvaluationError, match=r"\['feature'\].*\['features'\]"):
            run()
    for key in ("features", "serving_default_features:0"):
        data = accuracy.eval_data({key: samples})
        candidate, _ = accuracy.run_candidate(converted.path, data, "y_aux")
        np.testing.assert_allclose(candidate, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(run_reference(three_outputs, data, "y_aux"), want,
                                   rtol=1e-5, atol=1e-5)


def two_outputs_without_signature() -> bytes:
    """x -> RELU -> relu, x -> TANH -> tanh: two outputs, no SignatureDef, tensor order known."""
    tensors = [Tensor("x", [1, 4], shape_signature=[-1, 4]),
               Tensor("relu", [1, 4], shape_signature=[-1, 4]),
               Tensor("tanh", [1, 4], shape_signature=[-1, 4])]
    return build_model([Subgraph(tensors, [Op("RELU", [0], [1]), Op("TANH", [0], [2])],
                                 inputs=[0], outputs=[2, 1])])


def test_a_model_without_signature_warns_and_falls_back_to_tensor_order(tmp_path, samples):
    from ai_edge_litert.interpreter import Interpreter

    from pytest_tflite.conversion.sanity import compare

    path = tmp_path / "unsigned.tflite"
    path.write_bytes(two_outputs_without_signature())
    assert Interpreter(model_path=str(path)).get_signature_list() == {}
    x = samples[:, :4]
    data = accuracy.eval_data(x)
    with pytest.warns(OutputOrderWarning, match="no SignatureDef"):
        first, _ = accuracy.run_candidate(path, data, 0)
    np.testing.assert_allclose(first, np.tanh(x), rtol=1e-6, atol=1e-6)  # tensor order: tanh
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a tensor name is a name: no warning
        relu, _ = accuracy.run_candidate(path, data, "relu")
    np.testing.assert_allclose(relu, np.maximum(x, 0))
    reference = {"a": np.tanh(x), "b": np.maximum(x, 0)}
    with pytest.warns(OutputOrderWarning, match="no SignatureDef"):
        compare(reference, [np.tanh(x), np.maximum(x, 0)], "float32")


def test_sanity_pairs_by_name_and_names_both_lists_when_they_differ():
    from pytest_tflite.conversion.sanity import compare
    from pytest_tflite.errors import SanityError

    a, b = np.ones((2, 4), np.float32), np.arange(8, dtype=np.float32).reshape(2, 4)
    # Same shapes in the other order: paired by name, they agree.
    assert compare({"a": a, "b": b}, {"b": b, "a": a}, "float32").relative_error == 0
    with pytest.raises(SanityError, match=r"\['a', 'c'\].*\['a', 'b'\]"):
        compare({"a": a, "b": b}, {"a": a, "c": b}, "float32")


def test_unknown_sanity_keys_are_an_error_naming_the_valid_ones(tmp_path):
    with pytest.raises(ConversionError, match=r"min_cosin.*max_relative_error.*min_cosine"):
        convert(keras3_mlp(), sanity={"min_cosin": 0.8}, output_dir=tmp_path)
    with pytest.raises(ConversionError, match=r"min_cosine.*a number"):
        convert(keras3_mlp(), sanity={"min_cosine": "high"}, output_dir=tmp_path)


def test_the_sanity_setting_is_part_of_the_cache_key(isolated_cache):
    cache, stats = isolated_cache
    unchecked = convert(keras3_mlp(seed=5), sanity=False, cache=cache, stats=stats)
    checked = convert(keras3_mlp(seed=5), cache=cache, stats=stats)
    again = convert(keras3_mlp(seed=5), sanity=True, cache=cache, stats=stats)
    looser = convert(keras3_mlp(seed=5), sanity={"max_relative_error": 0.5}, cache=cache,
                     stats=stats)
    assert (unchecked.cache_hit, checked.cache_hit, again.cache_hit, looser.cache_hit) == (
        False, False, True, False)
    assert (stats.hits, stats.misses) == (1, 3)


def keras_heads(flavour: str, as_dict: bool) -> Any:
    """Two heads of the same shape and one other, named so that name and model order differ."""
    keras: Any
    if flavour == "tf_keras":
        import tf_keras as keras
    else:
        import keras
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    heads = {"zeta": keras.layers.Dense(4, name="zeta")(hidden),
             "beta": keras.layers.Dense(3, name="beta")(hidden),
             "alpha": keras.layers.Dense(4, name="alpha")(hidden)}
    return keras.Model(inputs, heads if as_dict else list(heads.values()))


@pytest.mark.parametrize("as_dict", [False, True], ids=["list", "dict"])
@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
def test_keras_references_name_outputs_as_the_converter_does(flavour, as_dict, tmp_path):
    model = keras_heads(flavour, as_dict)
    converted = convert(model, output_dir=tmp_path)  # sanity pairs them by name
    x = np.random.default_rng(2).normal(size=(20, 8)).astype(np.float32)
    data = accuracy.eval_data(x)
    predicted = model.predict(x, verbose=0)
    by_layer = (predicted if as_dict else dict(zip(["zeta", "beta", "alpha"], predicted)))
    from ai_edge_litert.interpreter import Interpreter

    names = Interpreter(model_path=str(converted.path)).get_signature_list()[
        "serving_default"]["outputs"]
    for layer, want in by_layer.items():
        if flavour == "keras" and not as_dict:  # Keras 3 exports name a list output_0, ...
            name = f"output_{['zeta', 'beta', 'alpha'].index(layer)}"
        else:
            name = layer
        assert name in names
        candidate, _ = accuracy.run_candidate(converted.path, data, name)
        np.testing.assert_allclose(candidate, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(run_reference(model, data, name), want,
                                   rtol=1e-5, atol=1e-5)


def test_timeout_reaches_the_worker(converted, samples):
    with pytest.raises(EvaluationError, match=r"timed out after 0\.001 s"):
        accuracy.run_candidate(converted.path, accuracy.eval_data(samples), "y_aux",
                               timeout=0.001)


def test_several_keras3_inputs_go_in_by_name(tmp_path):
    """Keras 3 names inputs keras_tensor, keras_tensor_1...; the .tflite lists them in another
    order. The sanity run, int8 calibration and dict eval_data all pair them by name."""
    import keras

    from pytest_tflite.conversion.sources import keras_input_name

    keras.utils.set_random_seed(6)
    wide, narrow = keras.Input((4,)), keras.Input((3,))
    joined = keras.layers.Concatenate()([wide, narrow])
    model = keras.Model([wide, narrow], keras.layers.Dense(2)(joined))
    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=(32, 4)).astype(np.float32),
              rng.normal(size=(32, 3)).astype(np.float32)]
    names = [keras_input_name(t, i) for i, t in enumerate(model.inputs)]
    want = model.predict(arrays, verbose=0)
    data = accuracy.eval_data(dict(zip(names, arrays)))
    for recipe, tolerance in (("float32", 1e-5), ("int8", 0.1)):
        converted = convert(model, recipe, arrays, float_io=True, output_dir=tmp_path)
        candidate, _ = accuracy.run_candidate(converted.path, data, None)
        np.testing.assert_allclose(candidate, want, atol=tolerance)
    np.testing.assert_allclose(run_reference(model, data, None), want, atol=1e-5)
