"""Wall time of prune + fine-tune + int8 conversion for a small CNN, with a breakdown.

Each repetition runs in a fresh interpreter (the costs of a test session's first prune), on
scikit-learn's digits (1797 8x8 images, 10 classes; 1437 to train and fine-tune, 360 to test):

  1. import TensorFlow + tf_keras (baseline every conversion pays; not billed to pruning)
  2. train the float CNN (Conv 8x3x3 -> MaxPool -> Conv 16x3x3 -> Flatten -> Dense 10), 5 epochs
     (not billed: the user's model)
  3. import tensorflow-model-optimization
  4. ``pytest_tflite.prune(model, 0.75, (x, y), epochs=2)``, split into
     prune + fine-tune (clone, wrap, compile, fit, verify) and strip (``strip_pruning``, timed
     by wrapping tfmot's function)
  5. ``pytest_tflite.convert(pruned, "int8", x[:256])`` (no cache; includes the sanity check,
     which runs the model in a worker subprocess)

Reported per repetition and as the median of REPS: seconds for each step, the kernels'
sparsity, test accuracy of the float, pruned (Keras) and int8 (LiteRT) models, the int8 model's
size and weight sparsity as read from the file.

Run: python bench/prune_convert.py [REPS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

REPS = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "--child" else 3
TARGET = 0.75
STEPS = ("tf_import", "train_float", "tfmot_import", "prune_fine_tune", "strip", "convert_int8")


def child() -> None:
    import tempfile
    from pathlib import Path

    started = time.perf_counter()
    import numpy as np
    import tensorflow as tf  # noqa: F401
    import tf_keras

    timings: dict[str, float] = {"tf_import": time.perf_counter() - started}
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train, x_test, y_test = x[:1437], y[:1437], x[1437:], y[1437:]

    mark = time.perf_counter()
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([
        tf_keras.Input((8, 8, 1)),
        tf_keras.layers.Conv2D(8, 3, activation="relu", padding="same"),
        tf_keras.layers.MaxPooling2D(),
        tf_keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dense(10),
    ])
    model.compile(tf_keras.optimizers.Adam(3e-3),
                  tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=5, batch_size=32, verbose=0)
    timings["train_float"] = time.perf_counter() - mark

    mark = time.perf_counter()
    from pytest_tflite.optimize.pruning import prune
    from pytest_tflite.optimize.session import tfmot_session

    # The import as prune() does it: tf.keras pinned first, TF_USE_LEGACY_KERAS restored after.
    with tfmot_session() as (_, tfmot):
        pass
    timings["tfmot_import"] = time.perf_counter() - mark

    strip = tfmot.sparsity.keras.strip_pruning
    strip_seconds = []

    def timed_strip(wrapped: object) -> object:
        begin = time.perf_counter()
        try:
            return strip(wrapped)
        finally:
            strip_seconds.append(time.perf_counter() - begin)

    tfmot.sparsity.keras.strip_pruning = timed_strip
    mark = time.perf_counter()
    pruned = prune(model, TARGET, (x_train, y_train), epochs=2, batch_size=32)
    total = time.perf_counter() - mark
    timings["strip"] = strip_seconds[0]
    timings["prune_fine_tune"] = total - strip_seconds[0]

    from pytest_tflite import convert
    from pytest_tflite.measure.sparsity import measure_sparsity

    with tempfile.TemporaryDirectory() as scratch:
        mark = time.perf_counter()
        converted = convert(pruned, "int8", x_train[:256], output_dir=Path(scratch))
        timings["convert_int8"] = time.perf_counter() - mark
        int8_accuracy = int8_top1(converted.path, x_test, y_test)

    kernels = [w.numpy() for w in pruned.weights if w.name.split(":")[0].endswith("kernel")]
    print(json.dumps({
        "timings": timings,
        "kernel_sparsity": sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels),
        "float_top1": top1(model, x_test, y_test),
        "pruned_top1": top1(pruned, x_test, y_test),
        "int8_top1": int8_accuracy,
        "int8_bytes": converted.size_bytes,
        "int8_sparsity": measure_sparsity(converted.view)["sparsity"],
        "legacy_keras_env": os.environ.get("TF_USE_LEGACY_KERAS"),
    }))


def top1(model: object, x: object, y: object) -> float:
    import numpy as np

    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))  # type: ignore[attr-defined]


def int8_top1(path: object, x: object, y: object) -> float:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero = inp["quantization"]
    hits = 0
    for sample, label in zip(x, y):  # type: ignore[call-overload]
        interpreter.set_tensor(inp["index"],
                               np.clip(np.round(sample / scale + zero), -128, 127).astype(np.int8)[None])
        interpreter.invoke()
        hits += int(np.argmax(interpreter.get_tensor(out["index"])[0]) == label)
    return hits / len(x)  # type: ignore[arg-type]


def main() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    runs = []
    for rep in range(REPS):
        done = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True,
                              env=env, check=False)
        if done.returncode != 0:
            sys.exit(f"repetition {rep + 1} failed:\n{done.stderr[-4000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))

    header = f"{'step (s)':<18}" + "".join(f"{f'run {i + 1}':>9}" for i in range(REPS)) + f"{'median':>9}"
    print(f"prune to {TARGET} + 2-epoch fine-tune + int8 conversion, sklearn digits CNN, "
          f"{REPS} fresh processes")
    print(header)
    print("-" * len(header))
    billed = ("tfmot_import", "prune_fine_tune", "strip", "convert_int8")
    for step in (*STEPS, "total (billed)"):
        values = ([sum(r["timings"][s] for s in billed) for r in runs] if step.startswith("total")
                  else [r["timings"][step] for r in runs])
        suffix = "" if step in billed or step.startswith("total") else "  (not billed)"
        print(f"{step:<18}" + "".join(f"{v:>9.2f}" for v in values)
              + f"{statistics.median(values):>9.2f}{suffix}")
    print()
    for key in ("kernel_sparsity", "int8_sparsity", "float_top1", "pruned_top1", "int8_top1",
                "int8_bytes", "legacy_keras_env"):
        print(f"{key:<18}" + "".join(f"{r[key]!s:>9.8}" for r in runs))


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()
