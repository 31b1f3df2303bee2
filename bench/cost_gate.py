"""The instruction-count gate beside the paired latency gate: false alarms, detections at +0.5%
and +1% compute, the count's spread, and time per comparison; then how a count's time grows with
model size.

Models, built by hand through LiteRT's schema (no TensorFlow), float32, fixed-seed weights; the
candidate widens the LAST layer only, so the added compute is exact:
- ``fc``: [1, 512] through 6 FULLY_CONNECTED 512x512, then 512 -> 128: 1,638,400 MACs. The
  last layer at 144 outputs adds 8,192 MACs (+0.5%), at 160 +16,384 (+1%).
- ``conv``: [1, 16, 16, 32] through 11 CONV_2D 3x3 32->32 (SAME), then a 1x1 CONV_2D 32 -> 32:
  26,214,400 MACs; the 1x1 at 48 channels adds +0.5%, at 64 +1%.
Each family's candidates: a byte-identical copy of the baseline, +0.5%, +1%.

Arms, per family and pairing, in rounds that rotate the order:
- count: ``--count-trials`` (3) counts of the candidate under callgrind (xnnpack, 1 thread), and
  of the baseline once per round; "regressed" when the candidate's instructions exceed the
  baseline's by more than ``--count-tolerance`` (0.1%: the count is exact, so a tolerance far
  below the change it must catch costs no false alarm; at exactly 0.5% the +0.5% candidate
  would sit on the edge, its invoke overhead diluting the change);
- latency: ``--latency-trials`` (30) runs of the paired latency gate
  (``measure_comparison``) at a 0.5% tolerance on the same pairs.
Both again with ``--busy 2`` (two busy-loop processes on the cores).

Then time growth: four conv models from ~0.1 to ~20 ms per invoke natively (the native median
from one ordinary xnnpack measurement), each counted once, with the seconds it took.

Run: python bench/cost_gate.py [--count-trials 3] [--latency-trials 30] [--busy 2]
     [--no-growth] [--no-latency] [--json LOG]
     (~20 min on 2 cores: a count ~12-16 s, a paired latency comparison ~3 s)
     python bench/cost_gate.py --count-trials 0 --no-latency   # time growth only
     python bench/cost_gate.py --exact A.tflite B.tflite        # two counts per CPU delegate
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

FC_WIDTH, FC_LAYERS, FC_LAST = 512, 6, 128
CONV_SIZE, CONV_CHANNELS, CONV_LAYERS, CONV_LAST = 16, 32, 11, 32
PAIRINGS = {"identical": 0, "+0.5%": 16, "+1%": 32}  # outputs added to the last layer
DELEGATE = "xnnpack"


def _schema_options() -> None:
    """Teach the test builder CONV_2D's options table."""
    from tests.helpers import models

    models.OPTIONS.setdefault("CONV_2D", "Conv2DOptions")


def fc_model(last: int, seed: int = 0) -> bytes:
    import numpy as np

    from tests.helpers.models import Op, Subgraph, Tensor, build_model

    rng = np.random.default_rng(seed)
    tensors = [Tensor("x0", [1, FC_WIDTH])]
    ops = []
    widths = [FC_WIDTH] * FC_LAYERS + [last]
    for i, units in enumerate(widths):
        k = len(tensors)
        tensors += [Tensor(f"w{i}", [units, FC_WIDTH],
                           data=rng.normal(0, 0.05, (units, FC_WIDTH)).astype(np.float32)),
                    Tensor(f"b{i}", [units], data=np.zeros(units, np.float32)),
                    Tensor(f"x{i + 1}", [1, units])]
        # The same weights in every file for the layers they share: only the last one differs.
        ops.append(Op("FULLY_CONNECTED", [k - 1 if i else 0, k, k + 1], [k + 2],
                      options={"fused_activation_function": 1 if i < FC_LAYERS else 0}))
    return build_model([Subgraph(tensors, ops, inputs=[0], outputs=[len(tensors) - 1])])


def conv_model(last: int, layers: int = CONV_LAYERS, channels: int = CONV_CHANNELS,
               seed: int = 0) -> bytes:
    import numpy as np

    from tests.helpers.models import Op, Subgraph, Tensor, build_model

    _schema_options()
    rng = np.random.default_rng(seed)
    shape = [1, CONV_SIZE, CONV_SIZE, channels]
    tensors = [Tensor("x0", shape)]
    ops = []
    for i in range(layers + 1):
        kernel, out = (3, channels) if i < layers else (1, last)
        k = len(tensors)
        tensors += [Tensor(f"w{i}", [out, kernel, kernel, channels],
                           data=rng.normal(0, 0.05, (out, kernel, kernel, channels))
                           .astype(np.float32)),
                    Tensor(f"b{i}", [out], data=np.zeros(out, np.float32)),
                    Tensor(f"x{i + 1}", [1, CONV_SIZE, CONV_SIZE, out])]
        ops.append(Op("CONV_2D", [k - 1 if i else 0, k, k + 1], [k + 2],
                      options={"padding": 0, "stride_w": 1, "stride_h": 1,
                               "dilation_w_factor": 1, "dilation_h_factor": 1,
                               "fused_activation_function": 1 if i < layers else 0}))
    return build_model([Subgraph(tensors, ops, inputs=[0], outputs=[len(tensors) - 1])])


FAMILIES: dict[str, tuple[Callable[[int], bytes], int]] = {"fc": (fc_model, FC_LAST),
                                                           "conv": (conv_model, CONV_LAST)}


def build(folder: Path) -> dict[str, dict[str, Path]]:
    """Per family: the baseline and one candidate file per pairing."""
    files: dict[str, dict[str, Path]] = {}
    for family, (builder, last) in FAMILIES.items():
        files[family] = {"baseline": folder / f"{family}-base.tflite"}
        files[family]["baseline"].write_bytes(builder(last))
        for pairing, added in PAIRINGS.items():
            path = folder / f"{family}-{pairing.strip('+%').replace('.', '_')}.tflite"
            path.write_bytes(builder(last + added))  # the identical one: byte for byte
            files[family][pairing] = path
    return files


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def counted(path: Path, delegate: str = DELEGATE) -> tuple[Any, float]:
    from pytest_tflite.measure.cost import measure_cost
    from pytest_tflite.settings import RuntimeSettings

    started = time.perf_counter()
    cost = measure_cost(path, delegate, RuntimeSettings(timeout=1800))
    return cost, time.perf_counter() - started


def count_arm(files: dict[str, dict[str, Path]], trials: int, tolerance: float,
              log: Any) -> dict[tuple[str, str], dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for trial in range(trials):
        for family, paths in files.items():
            base, base_s = counted(paths["baseline"])
            pairings = list(PAIRINGS)
            pairings = pairings[trial % 3:] + pairings[:trial % 3]
            for pairing in pairings:
                head, head_s = counted(paths[pairing])
                change = head.instructions / base.instructions - 1
                verdict = "regressed" if change > tolerance else "unchanged"
                row = rows.setdefault((family, pairing), {"verdicts": [], "head": [], "base": [],
                                                          "seconds": [], "change": [],
                                                          "cycles": []})
                row["cycles"].append(head.estimated_cycles)
                row["verdicts"].append(verdict)
                row["head"].append(head.instructions)
                row["base"].append(base.instructions)
                row["seconds"].append(head_s)
                row["change"].append(change)
                record = {"arm": "count", "family": family, "pairing": pairing, "trial": trial,
                          "verdict": verdict, "change": change, "head": head.instructions,
                          "base": base.instructions, "head_s": head_s, "base_s": base_s,
                          "head_cycles": head.estimated_cycles,
                          "base_cycles": base.estimated_cycles, "head_l1": head.l1_misses,
                          "top": head.top_functions[0]["name"], "load": load()}
                print(json.dumps(record), flush=True)
                log.write(json.dumps(record) + "\n")
                log.flush()
    return rows


def latency_arm(files: dict[str, dict[str, Path]], trials: int, tolerance: float,
                log: Any) -> dict[tuple[str, str], dict[str, Any]]:
    from pytest_tflite.measure.paired_latency import measure_comparison
    from pytest_tflite.settings import RuntimeSettings

    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for trial in range(trials):
        for family, paths in files.items():
            pairings = list(PAIRINGS)
            pairings = pairings[trial % 3:] + pairings[:trial % 3]
            for pairing in pairings:
                found = measure_comparison(paths[pairing], paths["baseline"], DELEGATE,
                                           RuntimeSettings(), tolerance)
                c = found.comparison
                row = rows.setdefault((family, pairing), {"verdicts": [], "seconds": [],
                                                          "ratio": []})
                row["verdicts"].append(c.verdict)
                row["seconds"].append(found.seconds)
                row["ratio"].append(c.ratio)
                record = {"arm": "latency", "family": family, "pairing": pairing,
                          "trial": trial, "verdict": c.verdict, "ratio": c.ratio, "low": c.low,
                          "high": c.high, "seconds": found.seconds, "load": load()}
                print(json.dumps(record), flush=True)
                log.write(json.dumps(record) + "\n")
                log.flush()
    return rows


def summary(name: str, rows: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    lines = [f"{name}:",
             "| family | pairing | regressed | other verdicts | spread | cycles spread | change "
             "| s/comparison |",
             "|---|---|---|---|---|---|---|---|"]
    for (family, pairing), row in rows.items():
        verdicts = row["verdicts"]
        others = {v: verdicts.count(v) for v in sorted(set(verdicts)) if v != "regressed"}
        if "head" in row:
            spread = (max(row["head"]) - min(row["head"])) / min(row["head"])
            cycles = (max(row["cycles"]) - min(row["cycles"])) / min(row["cycles"])
            spread_text = f"{spread:.2e} | {cycles:.2e}"
            change = f"{statistics.median(row['change']):+.3%}"
        else:
            spread_text = "- | -"
            change = f"ratio {statistics.median(row['ratio']):.4f}"
        lines.append(f"| {family} | {pairing} | {verdicts.count('regressed')}/{len(verdicts)} | "
                     f"{others or ''} | {spread_text} | {change} | "
                     f"{statistics.median(row['seconds']):.1f} |")
    return lines


def growth(folder: Path, log: Any) -> list[str]:
    """Four conv models from ~0.1 to ~20 ms per invoke natively: native median, count time."""
    from pytest_tflite.measure.runtime import measure_delegate
    from pytest_tflite.settings import RuntimeSettings

    lines = ["time growth (conv, xnnpack, 1 thread; one count = start-up, 1 warm-up, "
             "1 counted invoke):",
             "| model | native median | instructions/invoke | count time |", "|---|---|---|---|"]
    for name, layers, channels in (("conv 4x32", 4, 32), ("conv 11x32", 11, 32),
                                   ("conv 12x128", 12, 128), ("conv 36x128", 36, 128)):
        path = folder / f"growth-{layers}-{channels}.tflite"
        path.write_bytes(conv_model(channels, layers=layers, channels=channels))
        native = measure_delegate(path, DELEGATE, RuntimeSettings())
        median = native.latency_ms.median if native.latency_ms else float("nan")
        cost, seconds = counted(path)
        record = {"arm": "growth", "model": name, "native_ms": median,
                  "instructions": cost.instructions, "count_s": seconds, "load": load()}
        print(json.dumps(record), flush=True)
        log.write(json.dumps(record) + "\n")
        log.flush()
        lines.append(f"| {name} | {median:.3f} ms | {cost.instructions:,} | {seconds:.1f} s |")
    return lines


def exactness(models: list[Path], log: Any) -> list[str]:
    """Each model counted twice under each CPU delegate, in separate processes: the spread of
    instructions and of estimated cycles between the two counts."""
    from pytest_tflite.measure.cost import COUNTABLE

    lines = ["exactness (two counts each, separate processes):",
             "| model | delegate | instructions | spread | estimated cycles spread | top function |",
             "|---|---|---|---|---|---|"]
    for model in models:
        for delegate in COUNTABLE:
            (first, _), (second, _) = counted(model, delegate), counted(model, delegate)
            spread = abs(first.instructions - second.instructions) / first.instructions
            cycles = abs(first.estimated_cycles - second.estimated_cycles) / first.estimated_cycles
            record = {"arm": "exact", "model": model.name, "delegate": delegate,
                      "instructions": [first.instructions, second.instructions],
                      "cycles": [first.estimated_cycles, second.estimated_cycles]}
            print(json.dumps(record), flush=True)
            log.write(json.dumps(record) + "\n")
            log.flush()
            lines.append(f"| {model.name} | {delegate} | {first.instructions:,} | {spread:.1e} | "
                         f"{cycles:.1e} | {first.top_functions[0]['name'][:60]} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count-trials", type=int, default=3)
    parser.add_argument("--latency-trials", type=int, default=30)
    parser.add_argument("--tolerance", type=float, default=0.005,
                        help="the paired latency gate's tolerance, a fraction (0.005: 0.5%%)")
    parser.add_argument("--count-tolerance", type=float, default=0.001,
                        help="the count gate's tolerance, a fraction (0.001: 0.1%%)")
    parser.add_argument("--busy", type=int, default=0)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--no-growth", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="append every trial here")
    parser.add_argument("--exact", type=Path, nargs="*", default=None, metavar="MODEL",
                        help="only count each MODEL twice under xnnpack, builtin and reference")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cost-gate-"))
    if args.exact is not None:
        with open(args.json or folder / "exact.jsonl", "a", encoding="utf-8") as log:
            print("\n".join(exactness(args.exact, log)))
        return 0
    files = build(folder)
    neighbours = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                  for _ in range(args.busy)]
    log_path = args.json or folder / "trials.jsonl"
    lines = [f"cost gate: {args.busy} busy-loop neighbours, count tolerance "
             f"{args.count_tolerance:.2%}, latency tolerance {args.tolerance:.2%}, load {load()}"]
    try:
        with open(log_path, "a", encoding="utf-8") as log:
            lines += summary("count", count_arm(files, args.count_trials,
                                                args.count_tolerance, log))
            if not args.no_latency:
                lines += summary("paired latency", latency_arm(files, args.latency_trials,
                                                               args.tolerance, log))
            if not args.no_growth:
                lines += growth(folder, log)
    finally:
        for neighbour in neighbours:
            neighbour.kill()
            neighbour.wait()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
