"""The LiteRT quantizer's recipes against the TFLite converter's, on one float Keras model.

The model is the example project's digits CNN (Keras 3: Conv 16x3x3 -> Conv 32x3x3 -> Flatten
-> Dense 64 -> Dense 10, 8 epochs on scikit-learn's digits, 1400 to train, 397 to test). Pairs:

  int8 dynamic  ``lq_dynamic_wi8`` (dynamic_wi8_afp32)  vs the converter's ``dynamic_int8``
  int8 static   ``lq_static_a8w8`` (static_wi8_ai8)     vs the converter's ``int8``
                both with int8 input and output (float_io=False: the quantizer's static recipe
                has no float-I/O form), calibrated on the same 256 training images
  int4 weights  ``lq_wi4`` (weight_only_wi4_afp32)      vs the converter's ``dynamic_int8``

Per recipe: file size; fidelity against the float32 ``.tflite`` on the test images (top-1
agreement, cosine of the logits, all run in the measurement worker); top-1 accuracy; and
seconds of ``pytest_tflite.convert(model, recipe, sanity=False)`` without a cache, the median of
REPS. TensorFlow is imported and warmed (one float32 conversion) before timing; a quantizer
recipe's seconds include its float32 conversion and the quantizer worker's start (it imports
litert_quantizer: ml_dtypes, scipy, the interpreter).

Run: python bench/quantizer_vs_converter.py [REPS]   (default 3)
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
PAIRS = [
    ("int8 dynamic", "lq_dynamic_wi8", "dynamic_int8"),
    ("int8 static", "lq_static_a8w8", "int8"),
    ("int4 weights", "lq_wi4", "dynamic_int8"),
]


def digits() -> tuple[Any, Any, Any, Any]:
    import numpy as np
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    y = data.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def trained_cnn(x_train: Any, y_train: Any) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0)
    return model


def main() -> None:
    import numpy as np

    from pytest_tflite.conversion.recipes import convert
    from pytest_tflite.measure.isolated import run_model

    x_train, y_train, x_test, y_test = digits()
    model = trained_cnn(x_train, y_train)
    calibration = x_train[:256]
    float32 = convert(model, "float32", sanity=False)  # also warms TensorFlow's converter
    reference = run_model(float32.path, [x_test]).arrays[0]

    rows = []
    recipes = ["float32", *dict.fromkeys(r for _, lq, tf in PAIRS for r in (lq, tf))]
    for recipe in recipes:
        data = calibration if recipe in ("int8", "lq_static_a8w8") else None
        seconds = []
        for _ in range(REPS):
            started = time.perf_counter()
            converted = convert(model, recipe, data, sanity=False)
            seconds.append(time.perf_counter() - started)
        logits = run_model(converted.path, [x_test]).arrays[0]
        cosine = float(np.dot(reference.ravel(), logits.ravel())
                       / (np.linalg.norm(reference) * np.linalg.norm(logits)))
        io = converted.view.io_details("inputs")[0]["dtype"]
        rows.append({
            "recipe": recipe, "size": converted.size_bytes, "io": io,
            "agreement": float(np.mean(logits.argmax(1) == reference.argmax(1))),
            "cosine": cosine, "accuracy": float(np.mean(logits.argmax(1) == y_test)),
            "seconds": statistics.median(seconds),
        })
    by_recipe = {row["recipe"]: row for row in rows}

    print(f"digits CNN, {len(x_test)} test images, median of {REPS} conversion(s)\n")
    print("| recipe | size | I/O | top-1 agreement | cosine | top-1 accuracy | seconds |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| `{row['recipe']}` | {row['size'] / 1024:.1f} KiB | {row['io']} | "
              f"{row['agreement']:.4f} | {row['cosine']:.5f} | {row['accuracy']:.4f} | "
              f"{row['seconds']:.2f} |")
    print("\n| pair | quantizer | converter | size ratio | agreement (q / c) | seconds (q / c) |")
    print("|---|---|---|---:|---|---|")
    for label, lq, tf in PAIRS:
        q, c = by_recipe[lq], by_recipe[tf]
        print(f"| {label} | `{lq}` | `{tf}` | {q['size'] / c['size']:.2f} | "
              f"{q['agreement']:.4f} / {c['agreement']:.4f} | "
              f"{q['seconds']:.2f} / {c['seconds']:.2f} |")


if __name__ == "__main__":
    main()
