"""Agreement of our xnnpack latency median with LiteRT's own benchmark tool.

Builds 3 Keras 3 conv nets (3x3 convs + ReLU, max-pool every 2nd layer, GAP, Dense) whose
XNNPACK median on 1 thread is about 2 ms, 10-20 ms and 50-100 ms on these 2-core machines, and
converts each to float32 with ``pytest_tflite.convert(model, output_dir=tmpdir)``.

In each round, for each model, it runs back to back (order alternating each round, so drift hits
both arms alike) our measurement
    ``measure_delegate(path, "xnnpack", RuntimeSettings(threads=1))``  (default protocol:
    fresh worker, 1 first invoke, warm-up >= 1 run and 0.5 s, timing >= 50 runs and 1 s)
and LiteRT's tool
    ``python -m ai_edge_litert.tools.benchmark_litert_model --model M --num_threads 1
      --num_runs 200 --result_json OUT.json``
reading ``latency.median_ms`` (and ``latency.avg_ms``) from OUT.json. The tool (ai_edge_litert
2.3) runs the model through ``CompiledModel`` with the CPU accelerator (XNNPACK), 5 warm-up runs,
and rounds every figure to 0.01 ms; ours uses the ``Interpreter`` with XNNPACK applied.

Reports per model: the median over rounds of our median and of the tool's median, the ratio
ours/tool taken round by round (median and range over rounds), and the spread of each side over
the rounds: (max - min) / median and the coefficient of variation (stdev / mean).

Target: ratio ours/tool within 0.95-1.05 for every model.

Run: python bench/latency_agreement.py [ROUNDS]     (default 10 rounds, about 4-5 minutes)
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
from typing import Any

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
TOOL_RUNS = 200
LOW, HIGH = 0.95, 1.05

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# (name, input size, conv width, conv layers): calibrated on a 2-core shared machine.
MODELS = [
    ("small  ~2 ms", 80, 32, 4),
    ("medium ~15 ms", 112, 64, 6),
    ("large  ~55 ms", 144, 96, 6),
]


def conv_net(size: int, width: int, depth: int) -> Any:
    import keras

    inputs = keras.Input((size, size, 3))
    x = inputs
    for layer in range(depth):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        if layer % 2 == 1:
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def ours(path: Path) -> tuple[float, float]:
    from pytest_tflite.measure.runtime import measure_delegate
    from pytest_tflite.settings import RuntimeSettings

    result = measure_delegate(path, "xnnpack", RuntimeSettings(threads=1))
    if result.status != "ok":
        raise SystemExit(f"measure_delegate failed on {path}: {result.reason}")
    return result.latency_ms.median, result.latency_ms.mean


def tool(path: Path, scratch: Path) -> tuple[float, float]:
    out = scratch / "tool.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model",
               "--model", str(path), "--num_threads", "1", "--num_runs", str(TOOL_RUNS),
               "--result_json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"benchmark_litert_model failed (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    latency = json.loads(out.read_text())["latency"]
    return latency["median_ms"], latency["avg_ms"]


def spread(values: list[float]) -> str:
    middle = statistics.median(values)
    cv = statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0
    return f"(max-min)/median {100 * (max(values) - min(values)) / middle:5.1f}%  CV {100 * cv:4.1f}%"


def main() -> None:
    import pytest_tflite

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as scratch_dir:
        scratch = Path(scratch_dir)
        paths = {}
        for name, size, width, depth in MODELS:
            model = pytest_tflite.convert(conv_net(size, width, depth), output_dir=scratch)
            paths[name] = model.path
            print(f"{name}: input {size}x{size}x3, {depth} convs x {width}, "
                  f"{model.size_bytes / 1024:.0f} KiB", flush=True)
        print(f"converted in {time.perf_counter() - started:.0f} s; {ROUNDS} rounds\n", flush=True)

        runs: dict[str, dict[str, list[tuple[float, float]]]] = {
            name: {"ours": [], "tool": []} for name in paths
        }
        for round_ in range(ROUNDS):
            for name, path in paths.items():
                order = ("ours", "tool") if round_ % 2 == 0 else ("tool", "ours")
                for arm in order:
                    value = ours(path) if arm == "ours" else tool(path, scratch)
                    runs[name][arm].append(value)
                o, t = runs[name]["ours"][-1][0], runs[name]["tool"][-1][0]
                print(f"round {round_ + 1:2d} {name:14s} ours {o:8.3f} ms  tool {t:8.2f} ms  "
                      f"ratio {o / t:.3f}  ({order[0]} first)", flush=True)

    print(f"\nper model over {ROUNDS} rounds (medians of per-run medians; ratio taken round by "
          f"round):")
    verdicts = []
    for name, arms in runs.items():
        our_medians = [m for m, _ in arms["ours"]]
        tool_medians = [m for m, _ in arms["tool"]]
        ratios = [o / t for o, t in zip(our_medians, tool_medians)]
        mean_ratios = [o / t for (_, o), (_, t) in zip(arms["ours"], arms["tool"])]
        ratio = statistics.median(ratios)
        ok = LOW <= ratio <= HIGH
        verdicts.append(ok)
        print(f"  {name}")
        print(f"    median:  ours {statistics.median(our_medians):8.3f} ms   tool "
              f"{statistics.median(tool_medians):8.2f} ms")
        print(f"    ratio ours/tool (median): {ratio:.3f}  range {min(ratios):.3f}-{max(ratios):.3f}"
              f"  [{'ok' if ok else 'OUT OF'} {LOW}-{HIGH}]; rounds within it: "
              f"{sum(LOW <= r <= HIGH for r in ratios)}/{len(ratios)}")
        print(f"    ratio ours/tool (mean):   {statistics.median(mean_ratios):.3f}  range "
              f"{min(mean_ratios):.3f}-{max(mean_ratios):.3f}   (our mean vs the tool's avg_ms)")
        print(f"    spread of the median over rounds: ours {spread(our_medians)}")
        print(f"                                      tool {spread(tool_medians)}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s; target ratio {LOW}-{HIGH}: "
          f"{'met' if all(verdicts) else 'NOT met'} for {sum(verdicts)}/{len(verdicts)} models")


if __name__ == "__main__":
    main()
