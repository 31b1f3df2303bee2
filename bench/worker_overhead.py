"""Fixed cost of the runtime worker: what one measured (model, delegate) pays before timing.

Converts a tiny Keras 3 model (Dense 8 -> 4, float32) with ``pytest_tflite.convert`` into a temp
dir and times, REPS times each, interleaved stage by stage (order rotating every repetition so
drift hits every stage alike, after one untimed warm-up of each):

  python       ``python -c pass`` (interpreter start-up)
  numpy        ``python -c "import numpy"``
  litert       ``python -c "import ai_edge_litert.interpreter, numpy"`` (what the worker needs)
  +pkg init    litert + ``import pytest_tflite`` (the package __init__, which eagerly imports
               ``pytest_tflite.convert`` and what it imports; the worker pays it too)
  worker mods  litert + ``import pytest_tflite.measure.worker.main`` (and what it imports)
  worker       ``python -m pytest_tflite.measure.worker measure M xnnpack SETTINGS`` run directly
  full call    ``measure_delegate(M, "xnnpack", settings)`` in this process (worker + JSON parse)

all with the worker's own environment (``worker_environment()``) and minimal timing settings:
warm-up 0 runs / 0 s, timing 1 run / 0 s, 1 thread. The worker also reports its ``init_ms``
(Interpreter construction + allocate_tensors) and ``first_invoke_ms`` from inside.

Reports median and min wall time per stage (ms), and the increments between stages, so the full
call splits into start-up + imports + load/measure + teardown and parent-side cost.

Target: none fixed; the figure is what each delegate of each model adds to a test run.

Run: python bench/worker_overhead.py [REPS]     (default 20)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 20

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MINIMAL = {"threads": 1, "warmup": {"min_runs": 0, "min_seconds": 0},
           "timing": {"min_runs": 1, "min_seconds": 0}}


def tiny_model(folder: Path) -> Path:
    import keras

    import pytest_tflite

    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    return pytest_tflite.convert(model, output_dir=folder).path


def main() -> None:
    from pytest_tflite.measure.isolated import worker_environment
    from pytest_tflite.measure.runtime import measure_delegate
    from pytest_tflite.settings import resolve_runtime

    settings = resolve_runtime(command_line=MINIMAL)
    env = worker_environment()
    inner: dict[str, list[float]] = {"init_ms": [], "first_invoke_ms": []}
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as scratch:
        path = tiny_model(Path(scratch))
        worker_settings = json.dumps({k: settings.worker_json()[k] for k in
                                      ("threads", "warmup", "timing", "input_shapes", "seed")})

        def child(*args: str) -> None:
            done = subprocess.run([sys.executable, *args], env=env, capture_output=True,
                                  text=True, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                raise SystemExit(f"{args} failed:\n{done.stderr[-2000:]}")

        def full() -> None:
            result = measure_delegate(path, "xnnpack", settings)
            if result.status != "ok":
                raise SystemExit(f"measure_delegate failed: {result.reason}")
            if result.latency_ms.n != 1:
                raise SystemExit(f"expected 1 timed run, got {result.latency_ms.n}")
            inner["init_ms"].append(result.init_ms)
            inner["first_invoke_ms"].append(result.first_invoke_ms)

        stages = {
            "python": lambda: child("-c", "pass"),
            "numpy": lambda: child("-c", "import numpy"),
            "litert": lambda: child("-c", "import ai_edge_litert.interpreter, numpy"),
            "+pkg init": lambda: child(
                "-c", "import ai_edge_litert.interpreter, numpy, pytest_tflite"),
            "worker mods": lambda: child(
                "-c", "import ai_edge_litert.interpreter, numpy, pytest_tflite.measure.worker, "
                      "pytest_tflite.measure.worker.main, pytest_tflite.measure.worker.delegates"),
            "worker": lambda: child("-m", "pytest_tflite.measure.worker", "measure", str(path),
                                    "xnnpack", worker_settings),
            "full call": full,
        }
        names = list(stages)
        for name in names:  # warm-up: page cache, .pyc files
            stages[name]()
        inner = {k: [] for k in inner}
        times: dict[str, list[float]] = {name: [] for name in names}
        for rep in range(REPS):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                stages[name]()
                times[name].append((time.perf_counter() - start) * 1000)

    print(f"worker overhead, tiny model (Dense 8->4), xnnpack, warm-up 0, timing 1 run; "
          f"{REPS} reps\n")
    print(f"{'stage':12s} {'median ms':>10s} {'min ms':>8s} {'+median vs previous':>20s}")
    previous = 0.0
    for name in names:
        middle = statistics.median(times[name])
        print(f"{name:12s} {middle:10.1f} {min(times[name]):8.1f} {middle - previous:+20.1f}")
        previous = middle
    print(f"\ninside the worker (median): init_ms {statistics.median(inner['init_ms']):.2f} "
          f"(Interpreter + allocate_tensors), first_invoke_ms "
          f"{statistics.median(inner['first_invoke_ms']):.3f}")
    full_ms = statistics.median(times["full call"])
    start_ms = statistics.median(times["python"])
    imports_ms = statistics.median(times["litert"]) - start_ms
    print(f"full measure_delegate: median {full_ms:.0f} ms, min {min(times['full call']):.0f} ms "
          f"per (model, delegate); interpreter start {start_ms:.0f} ms, "
          f"litert+numpy imports {imports_ms:.0f} ms")


if __name__ == "__main__":
    main()
