"""Evaluation throughput: what ``tflite_budget.check(model, eval_data=...)`` pays per sample.

Model: a small CNN (16x16x1 -> Conv 8 -> MaxPool -> Conv 16 -> Flatten -> Dense 10, Keras 3,
briefly trained on scikit-learn's digits upsampled 2x), converted to int8 with
``pytest_tflite.convert``. Data: 10,000 samples (the 1,797 digits upsampled to 16x16, repeated
with small random shifts and noise), random labels (throughput does not care).

Paths, each timed REPS times, interleaved (order rotating every repetition, one untimed warm-up
of each first):

  plugin batched     ``accuracy.run_candidate`` on the int8 model (shape signature [-1, ...]):
                     the normal path, batches of 256 in the worker
  plugin batch=1     ``isolated.run_model(..., batch=1)`` on the same model: one sample per invoke
  plugin fixed-1     ``accuracy.run_candidate`` on the same CNN exported with a fixed batch of 1
                     (``keras.Input(..., batch_size=1)``): what a model without -1 gets
  keras predict      ``model.predict(x, batch_size=256)`` on the float Keras model, in process
  loop batched       ``inference.run_arrays`` in this process (no worker): Interpreter
                     construction + allocate + the evaluation loop, batches of 256
  loop batch=1       the same with ``batch=1``: the evaluation loop alone, one sample per invoke

The plugin figures INCLUDE the worker subprocess's start-up (python, numpy, ai_edge_litert
import, model load, allocate_tensors) and the .npz round trip of inputs and outputs: that is what
a test pays. The "loop" rows are the evaluation loop alone, which the target is about. The
worker's fixed cost is measured alone too (the same call on 1 sample) and the
batched figure is also given without it. Keras predict is timed after a warm-up call (its
tracing is not counted).

Target: batched >= 5x one-at-a-time.

Run: python bench/eval_throughput.py [REPS]     (default 3)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
SAMPLES = 10_000

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def dataset() -> tuple[Any, Any]:
    import numpy as np
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32) / 16.0
    images = np.kron(images, np.ones((2, 2), np.float32))  # 8x8 -> 16x16
    rng = np.random.default_rng(0)
    picks = images[rng.integers(0, len(images), size=SAMPLES)]
    shifts = rng.integers(-1, 2, size=(SAMPLES, 2))
    x = np.stack([np.roll(img, tuple(s), axis=(0, 1)) for img, s in zip(picks, shifts)])
    x = np.clip(x + rng.normal(scale=0.05, size=x.shape), 0, 1).astype(np.float32)[..., None]
    y = rng.integers(0, 10, size=SAMPLES)
    return x, y


def cnn(batch_size: int | None = None) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((16, 16, 1), batch_size=batch_size),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])


def main() -> None:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    import pytest_tflite
    from pytest_tflite.measure import accuracy
    from pytest_tflite.measure.isolated import run_model
    from pytest_tflite.measure.worker.inference import run_arrays

    x, y = dataset()
    folder = Path(tempfile.mkdtemp(prefix="eval-throughput-"))
    model = cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:2000], y[:2000], epochs=1, batch_size=64, verbose=0)
    int8 = pytest_tflite.convert(model, "int8", representative_data=x[:200], output_dir=folder)
    fixed_model = cnn(batch_size=1)
    fixed_model.set_weights(model.get_weights())
    fixed = pytest_tflite.convert(fixed_model, "int8", representative_data=x[:200],
                                  output_dir=folder, variant="fixed1")
    for name, path in (("resizable", int8.path), ("fixed", fixed.path)):
        signature = Interpreter(model_path=str(path)).get_input_details()[0]["shape_signature"]
        print(f"{name:9s} int8 model: input shape signature {[int(d) for d in signature]}")
    data = accuracy.eval_data((x, y))
    one = accuracy.eval_data((x[:1], y[:1]))

    outputs: dict[str, Any] = {}

    def batched() -> None:
        prediction, was_batched = accuracy.run_candidate(int8.path, data, None)
        assert was_batched
        outputs["batched"] = prediction

    def batch_one() -> None:
        outputs["batch=1"] = run_model(int8.path, data.inputs, batch=1).arrays[0]

    def fixed_one() -> None:
        prediction, was_batched = accuracy.run_candidate(fixed.path, data, None)
        assert not was_batched
        outputs["fixed-1"] = prediction

    def keras_predict() -> None:
        outputs["keras"] = model.predict(x, batch_size=256, verbose=0)

    def loop(batch: int) -> Any:
        def run() -> None:
            interpreter = Interpreter(model_path=str(int8.path))
            interpreter.allocate_tensors()
            outputs[f"loop {batch}"] = run_arrays(interpreter, [x], [""], None, batch)[0][0]
        return run

    def startup() -> None:
        accuracy.run_candidate(int8.path, one, None)

    paths = {"plugin batched": batched, "plugin batch=1": batch_one, "plugin fixed-1": fixed_one,
             "keras predict": keras_predict, "loop batched": loop(256), "loop batch=1": loop(1),
             "worker alone (1 sample)": startup}
    for run in paths.values():  # warm-up: page cache, Keras tracing
        run()
    times: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for rep in range(REPS):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            start = time.perf_counter()
            paths[name]()
            times[name].append(time.perf_counter() - start)

    # Same predictions every way (int8 kernels are exact across batch sizes).
    np.testing.assert_array_equal(outputs["batched"], outputs["batch=1"])
    np.testing.assert_array_equal(outputs["batched"], outputs["fixed-1"])
    np.testing.assert_array_equal(outputs["batched"], outputs["loop 256"])
    np.testing.assert_array_equal(outputs["batched"], outputs["loop 1"])
    agreement = float(np.mean(outputs["batched"].argmax(1) == outputs["keras"].argmax(1)))

    median = {name: statistics.median(t) for name, t in times.items()}
    rate = {name: SAMPLES / m for name, m in median.items()}
    print(f"\n{SAMPLES} samples, {REPS} repetitions; plugin figures include worker start-up "
          f"(spawn + imports + model load) and the .npz round trip\n")
    print(f"{'path':26s} {'median s':>9s} {'min s':>8s} {'max s':>8s} {'samples/s':>11s}")
    for name, t in times.items():
        shown = f"{rate[name]:11,.0f}" if name != "worker alone (1 sample)" else f"{'-':>11s}"
        print(f"{name:26s} {median[name]:9.3f} {min(t):8.3f} {max(t):8.3f} {shown}")
    startup_s = median["worker alone (1 sample)"]
    compute = max(median["plugin batched"] - startup_s, 1e-9)
    print(f"\nplugin batched without the worker's fixed cost (~{startup_s:.3f} s): "
          f"{SAMPLES / compute:,.0f} samples/s")
    print(f"evaluation loop alone, batched / batch=1: "
          f"{median['loop batch=1'] / median['loop batched']:.1f}x (target >= 5x)")
    print("with the worker (what a test pays):")
    print(f"batched / batch=1      : {median['plugin batch=1'] / median['plugin batched']:.1f}x")
    print(f"batched / fixed-1      : {median['plugin fixed-1'] / median['plugin batched']:.1f}x")
    print(f"batched / keras predict: {median['keras predict'] / median['plugin batched']:.2f}x "
          f"(> 1: the plugin is faster)")
    print(f"int8 vs float Keras top-1 agreement: {agreement:.4f}")


if __name__ == "__main__":
    main()
