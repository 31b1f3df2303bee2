"""Static planned arena vs the arena the interpreter really uses, on the same models.

Builds 5 Keras 3 models (float32, converted with ``pytest_tflite.convert`` into a temp dir):
  mlp          784 -> Dense 256 -> Dense 128 -> Dense 10
  small_cnn    28x28x1: Conv 8, pool, Conv 16, pool, Flatten, Dense 10
  deeper_cnn   64x64x3: 6 Conv 3x3 (16, 32, 32, 64, 64, 128), pool every 2nd, GAP, Dense 10
  residual     32x32x3: stem Conv 32, 3 blocks (Conv, Conv, Add skip), branch Concatenate, GAP, Dense
  separable    96x96x3: stem Conv stride 2, 4 DepthwiseConv + 1x1 Conv blocks, GAP, Dense

For each it prints:
  planned      ``measure_static(TFLiteModel.from_path(p)).planned_arena_bytes`` (greedy plan,
               TFLite Micro rules, 16-byte aligned tensors)
  reference    measured ``arena_bytes`` of ``measure_delegate(p, "reference", ...)`` (span of the
               non-constant tensors' buffers after allocate_tensors, reference kernels)
  builtin      the same under ``builtin`` (optimized kernels, no default delegate: also holds
               kernel scratch such as im2col)
  sum act      sum of the planned tensors' sizes (every activation alive at once: no reuse)
  max act      the largest single activation (no plan can go below it)
and the ratios reference/planned and builtin/planned. Timing settings are minimal (the arena
does not depend on them).

Expectation (DESIGN.md): max act <= planned <= sum act; reference between max act and sum act;
builtin can exceed sum act several times.

Run: python bench/arena_comparison.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MINIMAL = {"threads": 1, "warmup": {"min_runs": 0, "min_seconds": 0},
           "timing": {"min_runs": 1, "min_seconds": 0}}


def build_models() -> dict[str, Any]:
    import keras
    from keras import layers

    def mlp() -> Any:
        x = inputs = keras.Input((784,))
        for units in (256, 128):
            x = layers.Dense(units, activation="relu")(x)
        return keras.Model(inputs, layers.Dense(10)(x))

    def small_cnn() -> Any:
        x = inputs = keras.Input((28, 28, 1))
        for width in (8, 16):
            x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
            x = layers.MaxPooling2D()(x)
        return keras.Model(inputs, layers.Dense(10)(layers.Flatten()(x)))

    def deeper_cnn() -> Any:
        x = inputs = keras.Input((64, 64, 3))
        for i, width in enumerate((16, 32, 32, 64, 64, 128)):
            x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
            if i % 2 == 1:
                x = layers.MaxPooling2D()(x)
        return keras.Model(inputs, layers.Dense(10)(layers.GlobalAveragePooling2D()(x)))

    def residual() -> Any:
        inputs = keras.Input((32, 32, 3))
        x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
        stem = x
        for _ in range(3):
            y = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
            y = layers.Conv2D(32, 3, padding="same")(y)
            x = layers.ReLU()(layers.Add()([x, y]))
        x = layers.Concatenate()([x, stem])  # the stem lives across all the blocks
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, layers.Dense(10)(x))

    def separable() -> Any:
        inputs = keras.Input((96, 96, 3))
        x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
        for width, stride in ((32, 1), (64, 2), (64, 1), (128, 2)):
            x = layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu")(x)
            x = layers.Conv2D(width, 1, activation="relu")(x)
        return keras.Model(inputs, layers.Dense(10)(layers.GlobalAveragePooling2D()(x)))

    return {"mlp": mlp(), "small_cnn": small_cnn(), "deeper_cnn": deeper_cnn(),
            "residual": residual(), "separable": separable()}


def kib(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024:9.1f}"


def main() -> None:
    import pytest_tflite
    from pytest_tflite.measure.planner import planned_arena
    from pytest_tflite.measure.runtime import measure_delegate
    from pytest_tflite.measure.static import measure_static
    from pytest_tflite.model import TFLiteModel
    from pytest_tflite.settings import resolve_runtime

    settings = resolve_runtime(command_line=MINIMAL)
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-arena-") as scratch:
        for name, keras_model in build_models().items():
            path = pytest_tflite.convert(keras_model, output_dir=Path(scratch)).path
            model = TFLiteModel.from_path(path)
            planned = measure_static(model).planned_arena_bytes
            sizes = [p.size for p in planned_arena(model.view).subgraphs[0].placements]
            measured = {}
            for delegate in ("reference", "builtin"):
                result = measure_delegate(path, delegate, settings)
                if result.status != "ok":
                    print(f"{name} {delegate}: {result.status}: {result.reason}")
                measured[delegate] = result.arena_bytes
            rows.append((name, planned, measured["reference"], measured["builtin"],
                         sum(sizes), max(sizes, default=0)))

    print("arena bytes in KiB (float32 models; planned = static greedy plan, 16-byte aligned)\n")
    header = (f"{'model':11s} {'planned':>9s} {'reference':>9s} {'builtin':>9s} {'sum act':>9s} "
              f"{'max act':>9s}  {'ref/plan':>8s} {'blt/plan':>8s}  checks")
    print(header)
    print("-" * len(header))
    for name, planned, reference, builtin, total, largest in rows:
        def ratio(value: int | None, planned: int = planned) -> str:
            return "-" if value is None or not planned else f"{value / planned:8.2f}"

        checks = []
        checks.append("max<=plan<=sum" if largest <= planned <= total else "PLAN OUTSIDE [max, sum]")
        if reference is not None:
            checks.append("ref in [max, sum]" if largest <= reference <= total
                          else "ref OUTSIDE [max, sum]")
        print(f"{name:11s} {kib(planned)} {kib(reference)} {kib(builtin)} {kib(total)} "
              f"{kib(largest)}  {ratio(reference)} {ratio(builtin)}  {'; '.join(checks)}")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
