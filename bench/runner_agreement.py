"""Agreement of a runner (LiteRT's own benchmark, declared as a runner) with our xnnpack median.

Builds wide FULLY_CONNECTED chains with ``tests/helpers/models.py`` (input [BATCH, WIDTH],
DEPTH layers of WIDTH x WIDTH float32 weights, seeded), sized so XNNPACK on 1 thread takes 2 ms
or more on these 2-core machines (LiteRT's tool rounds to 0.01 ms: below ~2 ms the rounding
alone moves the ratio by 0.5%).

In each round, for each model, back to back with the order alternating each round (so drift
hits both arms alike):
  ours:   ``measure_delegate(path, "xnnpack", RuntimeSettings(threads=1))`` (the plugin's
          protocol: fresh worker, first invoke, warm-up >= 1 run and 0.5 s, timing >= 50 runs
          and 1 s), its ``latency_ms.median``;
  runner: ``measure_runner`` on the runner a project would declare as
          [tool.pytest-tflite.runners.litert]
          command = "{python} -m ai_edge_litert.tools.benchmark_litert_model --model={model}
                     --num_threads={threads} --num_runs=200 --result_json={result}"
          format = "litert-json"
          its ``latency_ms.median`` (the tool's ``median_ms``).

Reports per model: the median over rounds of each side's median, the ratio runner/ours taken
round by round (median and range), and each side's spread over rounds ((max-min)/median, CV).

Run: python bench/runner_agreement.py [ROUNDS]     (default 10 rounds, about 2 minutes)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
# (name, batch, width, depth): medians on a 2-core shared machine, 1 thread, load ~5.
MODELS = [
    ("fc 512x16", 8, 512, 16),  # ~3.5 ms
    ("fc 768x8", 16, 768, 8),  # ~5 ms
]
COMMAND = ("{python} -m ai_edge_litert.tools.benchmark_litert_model --model={model} "
           "--num_threads={threads} --num_runs=200 --result_json={result}")


def fc_chain(batch: int, width: int, depth: int) -> bytes:
    import numpy as np

    from tests.helpers.models import Op, Subgraph, Tensor, build_model

    rng = np.random.default_rng(0)
    tensors = [Tensor("x0", [batch, width])]
    ops = []
    for layer in range(depth):
        weights = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        tensors += [Tensor(f"w{layer}", [width, width], data=weights),
                    Tensor(f"b{layer}", [width], data=np.zeros(width, np.float32)),
                    Tensor(f"x{layer + 1}", [batch, width])]
        y = len(tensors) - 1  # x{layer} is the previous output: 3 tensors back, or the input
        ops.append(Op("FULLY_CONNECTED", [3 * layer, y - 2, y - 1], [y]))
    return build_model([Subgraph(tensors, ops, inputs=[0], outputs=[len(tensors) - 1])])


def spread(values: list[float]) -> str:
    middle = statistics.median(values)
    cv = statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0
    return f"(max-min)/median {100 * (max(values) - min(values)) / middle:5.1f}%  CV {100 * cv:4.1f}%"


def main() -> None:
    from pytest_tflite.measure.runners import measure_runner
    from pytest_tflite.measure.runtime import measure_delegate
    from pytest_tflite.runner_config import Runner
    from pytest_tflite.settings import RuntimeSettings

    runner = Runner("litert", COMMAND, "litert-json")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as scratch:
        paths = {}
        for name, batch, width, depth in MODELS:
            path = Path(scratch, f"{name.split()[1]}.tflite")
            path.write_bytes(fc_chain(batch, width, depth))
            paths[name] = path
            print(f"{name}: input [{batch}, {width}], {depth} FULLY_CONNECTED {width}x{width}, "
                  f"{path.stat().st_size / 2**20:.1f} MiB", flush=True)
        runs: dict[str, dict[str, list[float]]] = {name: {"ours": [], "runner": []} for name in paths}
        for round_ in range(ROUNDS):
            for name, path in paths.items():
                order = ("ours", "runner") if round_ % 2 == 0 else ("runner", "ours")
                for arm in order:
                    if arm == "ours":
                        found = measure_delegate(path, "xnnpack", RuntimeSettings(threads=1))
                    else:
                        found = measure_runner(runner, path, 1, 300.0)
                    if found.status != "ok" or found.latency_ms is None \
                            or found.latency_ms.median is None:
                        raise SystemExit(f"{arm} failed on {name}: {found.reason}")
                    runs[name][arm].append(found.latency_ms.median)
                o, r = runs[name]["ours"][-1], runs[name]["runner"][-1]
                print(f"round {round_ + 1:2d} {name:10s} ours {o:8.3f} ms  runner {r:8.2f} ms  "
                      f"ratio runner/ours {r / o:.3f}  ({order[0]} first)", flush=True)
    print(f"\nper model over {ROUNDS} rounds (ratio taken round by round), "
          f"{time.perf_counter() - started:.0f} s in all:")
    for name, arms in runs.items():
        ratios = [r / o for o, r in zip(arms["ours"], arms["runner"])]
        print(f"  {name}")
        print(f"    median: ours {statistics.median(arms['ours']):8.3f} ms   runner "
              f"{statistics.median(arms['runner']):8.2f} ms")
        print(f"    ratio runner/ours: median {statistics.median(ratios):.3f}  range "
              f"{min(ratios):.3f}-{max(ratios):.3f}")
        print(f"    spread ours   {spread(arms['ours'])}")
        print(f"    spread runner {spread(arms['runner'])}")


if __name__ == "__main__":
    main()
