"""Real conversions of small models built here: sources, recipes, the sanity guard, the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pytest_tflite import ConversionError, ModelError, SanityError, convert
from tests.helpers.models import keras3_mlp, run, tf_keras_cnn


def io_dtypes(path: Path) -> tuple[list[str], list[str]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    return ([np.dtype(d["dtype"]).name for d in interpreter.get_input_details()],
            [np.dtype(d["dtype"]).name for d in interpreter.get_output_details()])


@pytest.mark.parametrize("flavour", ["tf_keras", "keras"])
@pytest.mark.parametrize("recipe", ["float32", "float16", "dynamic_int8", "int8", "int16x8"])
def test_every_recipe_converts_both_kerases(flavour, recipe, tmp_path, cnn_samples):
    if flavour == "tf_keras":
        model, data = tf_keras_cnn(), cnn_samples
    else:
        model, data = keras3_mlp(), cnn_samples.reshape(64, -1)[:, :8]
    converted = convert(model, recipe, representative_data=data, output_dir=tmp_path)
    assert converted.recipe == recipe and converted.variant == recipe
    assert converted.size_bytes == os.path.getsize(converted.path)
    assert converted.path.read_bytes() == converted.content
    expected = {"int8": "int8", "int16x8": "int16"}.get(recipe, "float32")
    assert io_dtypes(converted.path) == ([expected], [expected])


def test_int8_with_float_io_keeps_float_inputs(tmp_path, cnn_samples):
    converted = convert(tf_keras_cnn(), "int8", cnn_samples, float_io=True, output_dir=tmp_path)
    assert io_dtypes(converted.path) == (["float32"], ["float32"])
    assert "QUANTIZE" in converted.view.ops and "DEQUANTIZE" in converted.view.ops


def test_float16_halves_a_model_past_10k_parameters(tmp_path):
    model = keras3_mlp(inputs=64, hidden=256, outputs=16)
    assert model.count_params() >= 10_000
    full = convert(model, "float32", output_dir=tmp_path)
    half = convert(model, "float16", output_dir=tmp_path)
    assert 0.45 <= half.size_bytes / full.size_bytes <= 0.6


def test_files_and_saved_models_convert(tmp_path, cnn_samples):
    import keras
    import tensorflow as tf

    k3 = keras3_mlp()
    k3.save(tmp_path / "k3.keras")
    k2 = tf_keras_cnn()
    k2.save(tmp_path / "k2.keras")
    k2.save(tmp_path / "k2.h5")
    tf.saved_model.save(k2, str(tmp_path / "saved"))
    k3.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    for source, data in [("k3.keras", None), ("k2.keras", None), ("k2.h5", None),
                         ("saved", cnn_samples), ("exported", None)]:
        recipe = "int8" if data is not None else "float32"
        converted = convert(tmp_path / source, recipe, data, output_dir=tmp_path / "out")
        assert converted.source == str(tmp_path / source)
        source_model = k2 if source.startswith(("k2", "saved")) else k3
        sample = (cnn_samples[:1] if source_model is k2
                  else cnn_samples.reshape(64, -1)[:1, :8])
        assert converted.view.io_details("inputs")[0]["shape"][1:] == list(sample.shape[1:])
        if recipe == "float32":  # the file's model, not some other: same outputs as the source
            got = run(converted.content, sample)[0]
            np.testing.assert_allclose(got, np.asarray(source_model(sample)), rtol=1e-4,
                                       atol=1e-5)
    assert keras.__version__.startswith("3")


def test_saved_model_signature_is_selectable(tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(np.arange(4, dtype="float32"))
    module.double = tf.function(lambda x: {"y": x * 2.0},
                                input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    module.shift = tf.function(lambda x: {"y": x + module.w},
                               input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "sm"),
                        signatures={"double": module.double, "shift": module.shift})
    doubled = convert(tmp_path / "sm", signature="double", output_dir=tmp_path)
    shifted = convert(tmp_path / "sm", signature="shift", output_dir=tmp_path)
    assert "MUL" in doubled.view.ops and "ADD" in shifted.view.ops
    with pytest.raises(ConversionError, match=r"no signature 'nope'.*\['double', 'shift'\]"):
        convert(tmp_path / "sm", signature="nope", output_dir=tmp_path)


def test_several_inputs_take_a_list_or_a_dict(tmp_path):
    import tf_keras

    left, right = tf_keras.Input((4,), name="left"), tf_keras.Input((3,), name="right")
    merged = tf_keras.layers.Concatenate()([tf_keras.layers.Dense(5)(left), right])
    model = tf_keras.Model([left, right], tf_keras.layers.Dense(2)(merged))
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 3)).astype("float32")]
    as_list = convert(model, "int8", data, output_dir=tmp_path)
    as_dict = convert(model, "int8", {"right": data[1], "left": data[0]}, output_dir=tmp_path)
    assert as_list.content == as_dict.content
    with pytest.raises(ConversionError, match=r"gives 1 array\(s\), the model has 2 input\(s\)"):
        convert(model, "int8", data[:1], output_dir=tmp_path)


def test_passing_a_tflite_through(tmp_path):
    converted = convert(keras3_mlp(), output_dir=tmp_path)
    again = convert(converted.path)
    assert again.content == converted.content and again.variant == "default"
    assert convert(converted.content, variant="shipped").variant == "shipped"
    with pytest.raises(ConversionError, match=r"already a \.tflite model: recipe='int8'"):
        convert(converted.path, "int8")


def test_bad_sources_name_the_path(tmp_path):
    (tmp_path / "notes.keras").write_text("not a model")
    with pytest.raises(ModelError, match=r"notes.keras: could not load it as a Keras model"):
        convert(tmp_path / "notes.keras")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"empty is a directory without saved_model.pb"):
        convert(tmp_path / "empty")
    with pytest.raises(ModelError, match=r"unknown model file type '.onnx'"):
        (tmp_path / "m.onnx").write_bytes(b"x")
        convert(tmp_path / "m.onnx")
    with pytest.raises(ModelError, match="cannot convert a dict"):
        convert({"not": "a model"})


def test_sanity_check_catches_a_converter_that_returns_wrong_weights(tmp_path, monkeypatch):
    import tensorflow as tf

    impostor = keras3_mlp(seed=1)  # same architecture, other weights
    original = tf.lite.TFLiteConverter.from_keras_model
    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_keras_model",
                        staticmethod(lambda model: original(impostor)))
    with pytest.raises(SanityError, match=r"outputs disagree with the source model on 8 "
                                          r"sample\(s\) \(max relative error"):
        convert(keras3_mlp(seed=0), output_dir=tmp_path)
    # The guard can be relaxed or turned off, as the message says.
    assert convert(keras3_mlp(seed=0), sanity=False, output_dir=tmp_path).size_bytes > 0


def test_sanity_check_fails_nan_outputs(tmp_path):
    model = keras3_mlp()
    weights = model.get_weights()
    weights[-1] = np.full_like(weights[-1], np.nan)
    model.set_weights(weights)
    with pytest.raises(SanityError, match=r"32 of 32 output values are NaN or Inf"):
        convert(model, output_dir=tmp_path)


def test_in_memory_cache_hits_for_a_rebuilt_identical_model(isolated_cache, cnn_samples):
    cache, stats = isolated_cache
    first = convert(tf_keras_cnn(seed=3), "int8", cnn_samples, cache=cache, stats=stats)
    second = convert(tf_keras_cnn(seed=3), "int8", cnn_samples, cache=cache, stats=stats)
    other_weights = convert(tf_keras_cnn(seed=4), "int8", cnn_samples, cache=cache, stats=stats)
    other_data = convert(tf_keras_cnn(seed=3), "int8", cnn_samples[:32], cache=cache, stats=stats)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.content == first.content and second.path == first.path
    assert (other_weights.cache_hit, other_data.cache_hit) == (False, False)
    assert (stats.hits, stats.misses) == (1, 3)


def test_file_cache_hit_imports_no_tensorflow(tmp_path):
    """A fresh process that finds a file's conversion in the cache never loads TensorFlow.
    The cache is filled here, in this process (a cold miss converting is covered above); only
    the warm run needs a process of its own, where no TensorFlow was imported before."""
    from pytest_tflite.conversion.cache.storage import ConversionCache

    keras3_mlp().save(tmp_path / "m.keras")
    filled = convert(tmp_path / "m.keras", cache=ConversionCache(tmp_path / "cache"))
    assert not filled.cache_hit
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from pytest_tflite import convert
        from pytest_tflite.conversion.cache.storage import ConversionCache
        model = convert(Path({str(tmp_path / "m.keras")!r}),
                        cache=ConversionCache(Path({str(tmp_path / "cache")!r})))
        print(model.cache_hit, "tensorflow" in sys.modules, model.content.hex())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    hit, tensorflow, content = done.stdout.strip().splitlines()[-1].split()
    assert (hit, tensorflow) == ("True", "False"), done.stdout + done.stderr
    assert bytes.fromhex(content) == filled.content  # the model converted here, from the cache
