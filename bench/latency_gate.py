"""The latency gate on a noisy machine: false alarms, detections, time per comparison.

Models (Keras 3, converted to float32 with ``pytest_tflite.convert``): a 16x16x32 input through
N identical blocks of Conv2D(32, 3x3, same) + ReLU, nothing else, so compute grows exactly with
N: the baseline has 20 blocks, the candidates 20 (a byte-identical copy of the baseline file),
21 (+5% compute) and 22 (+10%). Under XNNPACK on 1 thread one invoke takes ~1 ms here, with the
builtin kernels ~4-5 ms.

1. True ratios: each pairing timed once in one long alternating run (the compare worker with
   ``min_seconds = max_seconds = --true-seconds``, no early stop), per delegate. Beside it, the
   ratio of the two models' medians over all invokes of that same run.
2. Fixed threshold, measured once: the baseline's median from one ordinary measurement
   (``measure_delegate``, default protocol: warm-up 0.5 s, timing >= 50 runs and 1 s).
3. Trials: ``--trials`` rounds; in each, for each pairing and delegate, in an order that
   rotates from round to round so drift falls on each alike:
   - the gate: ``measure_comparison(candidate, baseline, delegate, settings, 0.025)`` with the
     default ``compare`` settings (CPU clock with one thread; a fresh worker per run, one
     re-measure when inconclusive);
   - the gate on the wall clock (``compare = {clock = "wall"}``), to show what the CPU clock buys
     (``--no-wall`` skips it);
   - the fixed threshold: one ordinary measurement of the candidate, ``regressed`` when its
     median exceeds the baseline median x 1.025.

Counts per arm, delegate and pairing: the verdicts (``regressed`` on the identical pairing is a
false alarm; at +5% and +10% it is a detection), how many were re-measured and how many stayed
inconclusive after it, and seconds per trial (the whole comparison: worker start, loading,
warm-up and re-measure included).

Targets: no false alarm; >= 27/30 detections at +5% and 30/30 at +10%; <= 6 s per comparison.

Run: python bench/latency_gate.py [--trials 30] [--true-seconds 30] [--no-wall] [--busy N]
     (~26-40 min with the defaults on 2 cores, by the load; ``--busy 2`` runs two busy-loop
     processes throughout, neighbours that take turns on both cores)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_tflite.settings import RuntimeSettings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SIZE, WIDTH = 16, 32
BLOCKS = {"identical": 20, "+5%": 21, "+10%": 22}
DELEGATES = ("xnnpack", "builtin")
TOLERANCE = 0.025


def conv_blocks(blocks: int) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, WIDTH))
    x = inputs
    for _ in range(blocks):
        x = keras.layers.Conv2D(WIDTH, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, x)


def build(folder: Path) -> dict[str, Path]:
    """The baseline (20 blocks) and one candidate file per pairing."""
    import pytest_tflite

    paths = {}
    for blocks in sorted(set(BLOCKS.values())):
        converted = pytest_tflite.convert(conv_blocks(blocks), output_dir=folder / str(blocks))
        paths[blocks] = folder / f"blocks{blocks}.tflite"
        shutil.copyfile(converted.path, paths[blocks])
    candidates = {name: paths[blocks] for name, blocks in BLOCKS.items()}
    # The identical candidate is a separate, byte-identical file, as a baseline store holds it.
    candidates["identical"] = folder / "blocks20-copy.tflite"
    shutil.copyfile(paths[20], candidates["identical"])
    candidates["baseline"] = paths[20]
    return candidates


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


VERDICTS = ("regressed", "unchanged", "improved", "inconclusive")


def gate_trial(candidate: Path, baseline: Path, delegate: str,
               settings: RuntimeSettings) -> dict[str, Any]:
    from pytest_tflite.measure.paired_latency import measure_comparison

    found = measure_comparison(candidate, baseline, delegate, settings, TOLERANCE)
    c = found.comparison
    return {"verdict": c.verdict, "remeasured": c.remeasured, "seconds": found.seconds,
            "ratio": c.ratio, "low": c.low, "high": c.high, "pairs": c.pairs}


def fixed_trial(candidate: Path, delegate: str, settings: RuntimeSettings,
                baseline_median: float) -> dict[str, Any]:
    from pytest_tflite.measure.runtime import measure_delegate

    started = time.perf_counter()
    measured = measure_delegate(candidate, delegate, settings)
    assert measured.latency_ms is not None, measured.reason
    ratio = measured.latency_ms.median / baseline_median
    return {"verdict": "regressed" if ratio > 1 + TOLERANCE else "unchanged", "ratio": ratio,
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--true-seconds", type=float, default=30.0)
    parser.add_argument("--delegates", default=",".join(DELEGATES))
    parser.add_argument("--no-wall", action="store_true",
                        help="skip the gate on the wall clock (shown beside the default)")
    parser.add_argument("--busy", type=int, default=0,
                        help="busy-loop processes to run throughout, as neighbours on the cores")
    args = parser.parse_args()
    neighbours = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                  for _ in range(args.busy)]
    try:
        run(args)
    finally:
        for neighbour in neighbours:
            neighbour.kill()
            neighbour.wait()


def run(args: argparse.Namespace) -> None:
    delegates = args.delegates.split(",")

    from pytest_tflite.measure.paired_latency import DEFAULT_COMPARE
    from pytest_tflite.measure.runtime import measure_delegate
    from pytest_tflite.settings import CompareTiming, resolve_runtime

    settings = resolve_runtime(command_line={"threads": 1})
    arms = {"gate": settings}
    if not args.no_wall:
        arms["gate, wall clock"] = replace(settings, compare=CompareTiming(clock="wall"))
    started = time.perf_counter()
    print(f"load average (1/5/15 min) at start: {load()}; {os.cpu_count()} CPUs; "
          f"{args.busy} busy-loop neighbours", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as scratch:
        paths = build(Path(scratch))
        baseline = paths["baseline"]
        print(f"models: {SIZE}x{SIZE}x{WIDTH} input, N x (Conv2D {WIDTH} 3x3 + ReLU), N = "
              f"{', '.join(f'{b} ({n})' for n, b in BLOCKS.items())}; built in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        print(f"gate: compare settings {DEFAULT_COMPARE}, tolerance {TOLERANCE:.1%}\n", flush=True)

        truth: dict[tuple[str, str], tuple[float, float, float, float]] = {}
        long_run = replace(settings, compare=CompareTiming(
            min_pairs=2, min_seconds=args.true_seconds, max_seconds=args.true_seconds))
        for delegate in delegates:
            for name in BLOCKS:
                # Without a tolerance the worker never stops early: it runs to max_seconds.
                found = _long_ratio(paths[name], baseline, delegate, long_run)
                truth[delegate, name] = found
                print(f"true ratio {delegate:8s} {name:9s} {found[0]:.4f} "
                      f"[{found[1]:.4f}, {found[2]:.4f}]  (wall-time medians over all invokes: "
                      f"{found[3]:.4f})", flush=True)

        fixed = {}
        for delegate in delegates:
            measured = measure_delegate(baseline, delegate, settings)
            assert measured.latency_ms is not None, measured.reason
            fixed[delegate] = measured.latency_ms.median
            print(f"fixed threshold {delegate}: baseline median {fixed[delegate]:.4f} ms once, "
                  f"alarm above {fixed[delegate] * (1 + TOLERANCE):.4f} ms", flush=True)
        print(flush=True)

        kinds = [*arms, "fixed threshold"]
        results: dict[tuple[str, str, str], list[dict[str, Any]]] = {
            (k, d, n): [] for k in kinds for d in delegates for n in BLOCKS}
        for trial in range(args.trials):
            for name in BLOCKS:
                for delegate in delegates:
                    # The arms take turns in a rotating order, so drift falls on each alike.
                    shift = trial % len(kinds)
                    for kind in kinds[shift:] + kinds[:shift]:
                        if kind == "fixed threshold":
                            row = fixed_trial(paths[name], delegate, settings, fixed[delegate])
                            detail = f"median / baseline median {row['ratio']:.3f}"
                        else:
                            row = gate_trial(paths[name], baseline, delegate, arms[kind])
                            detail = (f"{row['ratio']:.4f} [{row['low']:.4f}, {row['high']:.4f}] "
                                      f"{row['pairs']:4d} pairs"
                                      f"{' re-measured' if row['remeasured'] else ''}")
                        results[kind, delegate, name].append(row)
                        print(f"trial {trial + 1:2d} {delegate:8s} {name:9s} {kind:16s} "
                              f"{row['verdict']:12s} {detail} {row['seconds']:.1f} s", flush=True)
            print(f"  load average after trial {trial + 1}: {load()}", flush=True)

    n = args.trials
    targets_met = []
    print(f"\n{n} trials per row, tolerance {TOLERANCE:.1%}; seconds per trial: the whole "
          f"comparison, worker start and re-measure included")
    header = (f"{'arm':16s} {'delegate':8s} {'pairing':9s} {'true':>6s} | {'regr':>4s} "
              f"{'unch':>4s} {'impr':>4s} {'inconcl':>7s} {'re-meas':>7s} | {'ratio range':>11s} | "
              f"{'s/trial':>7s} {'max':>5s}")
    print(header)
    print("-" * len(header))
    for kind in kinds:
        for delegate in delegates:
            for name in BLOCKS:
                rows = results[kind, delegate, name]
                count = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
                seconds = [r["seconds"] for r in rows]
                ratios = [r["ratio"] for r in rows]
                remeasured = sum(r.get("remeasured", False) for r in rows)
                print(f"{kind:16s} {delegate:8s} {name:9s} {truth[delegate, name][0]:6.3f} | "
                      f"{count['regressed']:4d} {count['unchanged']:4d} {count['improved']:4d} "
                      f"{count['inconclusive']:7d} {remeasured:7d} | "
                      f"{min(ratios):.3f}-{max(ratios):.3f} | {statistics.mean(seconds):7.2f} "
                      f"{max(seconds):5.1f}")
                if kind == "gate":
                    need = {"identical": count["regressed"] == 0,
                            "+5%": count["regressed"] >= n * 27 / 30,
                            "+10%": count["regressed"] == n}
                    targets_met.append(need[name])
        print()
    gate_seconds = [r["seconds"] for (k, _, _), rows in results.items() if k == "gate"
                    for r in rows]
    print("(fixed threshold: 'regr' = candidate median > baseline median x "
          f"{1 + TOLERANCE} from one measurement of the baseline; its ratio range is "
          "candidate median / that baseline median)")
    print(f"gate targets (no false alarm, >= 27/30 at +5%, 30/30 at +10%): "
          f"{'met' if all(targets_met) else 'NOT met'}; seconds per comparison mean "
          f"{statistics.mean(gate_seconds):.2f}, max {max(gate_seconds):.1f} (target <= 6 s): "
          f"{'met' if statistics.mean(gate_seconds) <= 6 else 'NOT met'}")
    print(f"load average at end: {load()}; total {time.perf_counter() - started:.0f} s")


def _long_ratio(candidate: Path, baseline: Path, delegate: str,
                settings: RuntimeSettings) -> tuple[float, float, float, float]:
    """(ratio, low, high, ratio of medians) from one long alternating run, run to its end."""
    import json

    from pytest_tflite.measure.isolated import call_worker

    wire = settings.worker_json()
    worker = {k: wire[k] for k in ("threads", "warmup", "input_shapes", "seed", "compare")}
    found = call_worker(["compare", str(candidate), str(baseline), delegate, json.dumps(worker)],
                        timeout=float(settings.compare.max_seconds or 0) * 3 + 60)
    if found.get("status") != "ok":
        raise SystemExit(f"long run failed: {found.get('reason')}")
    return (found["ratio"], found["low"], found["high"],
            found["candidate"]["median"] / found["baseline"]["median"])


if __name__ == "__main__":
    main()
