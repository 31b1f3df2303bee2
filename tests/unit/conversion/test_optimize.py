"""Pruning and quantization-aware training on small real tf_keras models, and what they leave behind.

Sparsity is recomputed here with numpy from the returned models' weights. tfmot is imported into
this worker (``pytest_tflite.optimize.session`` pins ``tf.keras`` and restores ``TF_USE_LEGACY_KERAS``
around it); the subprocess test proves that a fresh process, where ``tf.keras`` has never been
touched, still gets Keras 3 after pruning.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite import ConversionError, TFLiteError, convert
from pytest_tflite.errors import OptimizationError
from pytest_tflite.optimize.cached import cached_prune
from pytest_tflite.optimize.pruning import _polynomial_plan, prune
from pytest_tflite.optimize.qat import quantize_aware
from tests.helpers.models import keras3_mlp, tf_keras_cnn

CLASSES = 4


def blobs(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """12x12 images whose class is the quadrant that is brighter: easy for a small CNN."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, samples)
    x = rng.normal(0.0, 0.5, (samples, 12, 12, 1)).astype("float32")
    for k in range(CLASSES):
        row, col = divmod(k, 2)
        x[y == k, row * 6:(row + 1) * 6, col * 6:(col + 1) * 6] += 1.0
    return x, y


def kernel_sparsity(model: Any) -> float:
    kernels = [w.numpy() for w in model.weights if w.name.split(":")[0].endswith("kernel")]
    assert kernels, [w.name for w in model.weights]
    return sum(int(np.count_nonzero(k == 0)) for k in kernels) / sum(k.size for k in kernels)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return blobs(384, seed=0)


@pytest.fixture(scope="module")
def trained(data: tuple[np.ndarray, np.ndarray]) -> Any:
    import tf_keras

    model = tf_keras_cnn(seed=0)
    model.compile(tf_keras.optimizers.Adam(3e-3),
                  tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*data, epochs=4, batch_size=32, verbose=0)
    return model


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def run_int8(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero = inp["quantization"]
    rows = []
    for sample in x:
        quantized = np.clip(np.round(sample / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], quantized[None])
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"])[0])
    return np.array(rows)


# ---------------------------------------------------------------- pruning


@pytest.mark.parametrize("target", [0.5, 0.8])
def test_prune_reaches_the_target_and_leaves_the_source_alone(target, trained, data):
    before = [w.copy() for w in trained.get_weights()]
    legacy_before = os.environ.get("TF_USE_LEGACY_KERAS")
    pruned = prune(trained, target, data, epochs=2, batch_size=32)
    assert abs(kernel_sparsity(pruned) - target) <= 0.01
    assert type(pruned).__module__.startswith("tf_keras")
    assert [type(layer).__name__ for layer in pruned.layers] == \
        [type(layer).__name__ for layer in trained.layers]  # wrappers stripped
    assert all(np.array_equal(a, b) for a, b in zip(before, trained.get_weights()))
    assert kernel_sparsity(trained) < 0.01
    assert os.environ.get("TF_USE_LEGACY_KERAS") == legacy_before
    # The fine-tune keeps the model useful: the task is easy, chance is 0.25.
    assert accuracy(pruned, *blobs(256, seed=1)) >= 0.8


def test_one_shot_prune_masks_by_magnitude_without_training(trained):
    pruned = prune(trained, 0.6)
    assert abs(kernel_sparsity(pruned) - 0.6) <= 0.01
    for (name, source), (_, result) in zip(
        [(w.name, w.numpy()) for w in trained.weights], [(w.name, w.numpy()) for w in pruned.weights]
    ):
        if name.split(":")[0].endswith("kernel"):
            kept = result != 0
            assert np.array_equal(result[kept], source[kept])  # untrained: survivors unchanged
            assert np.abs(source[~kept]).max() <= np.abs(source[kept]).min()  # smallest went
        else:
            assert np.array_equal(result, source)  # biases are not pruned


def test_callable_fine_tune_gets_the_callbacks(trained, data):
    seen = []

    def fine_tune(model, callbacks):
        seen.append(len(callbacks))
        model.fit(*data, epochs=1, batch_size=64, callbacks=callbacks, verbose=0)

    pruned = prune(trained, 0.7, fine_tune)
    assert seen == [1]
    assert abs(kernel_sparsity(pruned) - 0.7) <= 0.01


def test_an_uncompiled_model_gets_a_loss_from_its_labels(data):
    source = tf_keras_cnn(seed=1)  # untrained: about chance (0.25)
    pruned = prune(source, 0.5, data, epochs=3)
    assert abs(kernel_sparsity(pruned) - 0.5) <= 0.01
    assert accuracy(pruned, *data) >= 0.6  # sparse categorical cross-entropy on logits: 0.84


def test_a_fine_tune_that_drops_the_callbacks_is_a_clear_error(trained, data):
    with pytest.raises(OptimizationError, match=r"callbacks=callbacks"):
        prune(trained, 0.5, lambda model, callbacks: model.fit(*data, epochs=1, verbose=0))


def test_a_fine_tune_too_short_for_the_schedule_names_target_and_reached(trained, data):
    def one_step(model, callbacks):
        model.fit(data[0][:32], data[1][:32], epochs=1, callbacks=callbacks, verbose=0)

    with pytest.raises(OptimizationError) as info:
        prune(trained, 0.5, one_step, end_step=10)
    message = str(info.value)
    assert "target 0.5000" in message and "reached sparsity 0.1356" in message  # 0.5 * (1 - 0.9**3)
    assert "PolynomialDecay" in message and "trains past end_step" in message


def test_a_keras3_model_is_refused_with_the_fix():
    with pytest.raises(ConversionError) as info:
        prune(keras3_mlp(), 0.5)
    message = str(info.value)
    assert isinstance(info.value, TFLiteError)
    assert "Keras 3" in message and "import tf_keras as keras" in message
    with pytest.raises(OptimizationError, match="Keras 3"):
        quantize_aware(keras3_mlp(), (np.zeros((4, 8)), np.zeros(4)))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"end_step": 1000}, "past the fine-tune's last step"),
    ({"begin_step": 24}, "never start"),
    ({"end_step": 20, "frequency": 3}, "multiple of frequency"),
])
def test_schedules_that_cannot_reach_the_target_are_refused(kwargs, match, trained, data):
    # 384 samples / 32 = 12 steps per epoch, 2 epochs: 24 steps.
    with pytest.raises(OptimizationError, match=match):
        prune(trained, 0.5, data, epochs=2, **kwargs)


def test_bad_arguments_are_refused(trained, data):
    with pytest.raises(OptimizationError, match=r"target_sparsity must be a fraction in \[0, 1\)"):
        prune(trained, 1.0)
    with pytest.raises(OptimizationError, match="x has 384 samples and y 3"):
        prune(trained, 0.5, (data[0], data[1][:3]))
    with pytest.raises(OptimizationError, match="needs fine_tune"):
        quantize_aware(trained, None)


@pytest.mark.parametrize(("steps", "begin", "end", "frequency", "expected"), [
    (24, 0, None, None, (19, 1)),     # 80% of 24 steps: a ramp of 19, an update every step
    (100, 0, None, None, (80, 8)),    # ten updates on the ramp, the last on end_step
    (1000, 100, None, None, (820, 72)),
    (1, 0, None, None, (1, 1)),       # one step still reaches the target
    (100, 0, 60, None, (60, 6)),      # end_step given: a divisor of the ramp
    (100, 10, 70, 20, (70, 20)),
])
def test_the_last_mask_update_lands_on_end_step(steps, begin, end, frequency, expected):
    end_step, every = _polynomial_plan(steps, begin, end, frequency)
    assert (end_step, every) == expected
    assert (end_step - begin) % every == 0 and end_step <= steps


# ---------------------------------------------------------------- quantization-aware training


def test_qat_model_converts_to_int8_and_agrees_with_the_float_model(trained, data, tmp_path):
    before = [w.copy() for w in trained.get_weights()]
    qat = quantize_aware(trained, data, epochs=1)
    assert all(np.array_equal(a, b) for a, b in zip(before, trained.get_weights()))
    converted = convert(qat, "int8", data[0][:128], output_dir=tmp_path)
    x_test, _ = blobs(200, seed=2)
    agreement = np.mean(np.argmax(run_int8(converted.path, x_test), axis=1)
                        == np.argmax(trained.predict(x_test, verbose=0), axis=1))
    assert agreement >= 0.9
    assert convert(qat, "dynamic_int8", output_dir=tmp_path).size_bytes > 0


def test_pruning_preserving_qat_keeps_the_zeros(trained, data, tmp_path):
    from pytest_tflite.measure.sparsity import measure_sparsity

    pruned = prune(trained, 0.5, data)
    qat = quantize_aware(pruned, data, preserve_sparsity=True)
    assert abs(kernel_sparsity(qat) - 0.5) <= 0.01
    plain = quantize_aware(pruned, data)  # without the scheme, training refills zeros
    assert kernel_sparsity(plain) < 0.45
    converted = convert(qat, "int8", data[0][:128], output_dir=tmp_path)
    # int8 adds zeros (weights that round to the zero point), never loses one.
    reached = measure_sparsity(converted.view)["sparsity"]
    assert 0.49 <= reached <= 0.52


# ---------------------------------------------------------------- cache and environment


def test_cached_prune_skips_the_fine_tune_on_a_rerun(trained, data, tmp_path, monkeypatch):
    from pytest_tflite.conversion.cache.storage import CacheStats, ConversionCache
    from pytest_tflite.optimize import pruning as optimize

    cache, stats = ConversionCache(tmp_path / "cache"), CacheStats()
    first = cached_prune(cache, trained, 0.5, data, stats=stats, epochs=1)
    monkeypatch.setattr(optimize, "prune", lambda *a, **k: pytest.fail("pruned again"))
    again = cached_prune(cache, trained, 0.5, data, stats=stats, epochs=1)
    assert (stats.hits, stats.misses) == (1, 1)
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), again.get_weights()))
    assert abs(kernel_sparsity(again) - 0.5) <= 0.01
    assert type(again).__module__.startswith("tf_keras")
    # Another target, other options or other data are other keys.
    monkeypatch.undo()
    cached_prune(cache, trained, 0.5, data, stats=stats, epochs=2)
    cached_prune(cache, trained, 0.5, (data[0][:192], data[1][:192]), stats=stats, epochs=1)
    assert (stats.hits, stats.misses) == (1, 3)


def test_importing_the_module_imports_no_tensorflow():
    code = "import sys, pytest_tflite.optimize; print(sorted(m for m in ('tensorflow', " \
           "'tf_keras', 'keras', 'tensorflow_model_optimization') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


FRESH_PROCESS = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import tensorflow as tf
    import tf_keras
    from pytest_tflite.optimize.pruning import prune

    model = tf_keras.Sequential([tf_keras.Input((8,)), tf_keras.layers.Dense(16)])
    prune(model, 0.5)
    prune(model, 0.5, (np.ones((8, 8), "float32"), np.ones((8, 16), "float32")), epochs=1)
    print("env=" + str(os.environ.get("TF_USE_LEGACY_KERAS")))
    print("tf.keras=" + type(tf.keras.Sequential()).__module__)

    import keras
    k3 = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    k3.save(sys.argv[1])
    print("loaded=" + type(keras.models.load_model(sys.argv[1])).__module__)
    print("tf.keras loaded=" + type(tf.keras.models.load_model(sys.argv[1])).__module__)
    """
)


@pytest.mark.parametrize("legacy", [None, "0"])
def test_keras3_still_loads_as_keras3_after_pruning(legacy, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    if legacy is not None:
        env["TF_USE_LEGACY_KERAS"] = legacy
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "k3.keras")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert lines["env"] == str(legacy)
    for key in ("tf.keras", "loaded", "tf.keras loaded"):
        assert lines[key].startswith("keras."), (key, lines[key])
