"""Starter budgets that hold: ``tflite-budget init`` then ten ``pytest budgets/`` runs on the
untouched model, per model; the target is 0 failures.

Models (built here with TensorFlow, each converted with ``pytest_tflite.convert``):
- ``mlp``: Keras 3, 64 -> Dense 256 -> Dense 256 -> Dense 10, float32;
- ``cnn_int8``: Keras 3, 32x32x3 -> 3 x (Conv2D 16/32/32 3x3 + ReLU + max-pool) -> Dense 10,
  full-integer int8 (random representative data);
- ``lstm``: Keras 3, a sequence of 20 x 16 -> LSTM 32 -> Dense 4, float32 (a recurrent graph:
  UNIDIRECTIONAL_SEQUENCE_LSTM).

For each model, in a fresh project folder (its own ``pytest.ini``, so this repository's options
are not read): ``tflite-budget init models/M.tflite -o budgets/M.toml`` as a user runs it (the
default margin unless ``--margin``), then ``--checks`` runs of ``pytest budgets/ -n 0``, each
read back from its ``--tflite-report``. Printed per model: the init time, runs and failures,
each failed check, and for every runtime figure the highest measured / limit seen (1.0 fails):
``--margin`` needed = (1 + margin) x that - 1. Beside them, the spread of the figures init does
not write: peak RSS per run (max / min), to show why it is left out.

Run: python bench/init_stability.py [--checks 10] [--margin 50%] [--delegates xnnpack]
     [--busy N] [--busy-checks N] [--models mlp,cnn_int8,lstm]
     (~5-8 min on 2 shared cores; ``--busy 2`` adds two busy-loop neighbours throughout)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RUNTIME = ("latency.", "memory.xnnpack", "memory.builtin", "memory.reference")


def mlp() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                             keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])


def cnn() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    layers: list[Any] = [keras.Input((32, 32, 3))]
    for filters in (16, 32, 32):
        layers += [keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
                   keras.layers.MaxPooling2D()]
    return keras.Sequential([*layers, keras.layers.Flatten(), keras.layers.Dense(10)])


def lstm() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((20, 16), batch_size=1)
    return keras.Model(inputs, keras.layers.Dense(4)(keras.layers.LSTM(32)(inputs)))


def build(name: str, folder: Path) -> Path:
    import numpy as np

    import pytest_tflite

    if name == "mlp":
        model = pytest_tflite.convert(mlp(), output_dir=folder / name)
    elif name == "cnn_int8":
        data = np.random.default_rng(0).random((64, 32, 32, 3), dtype=np.float32)
        model = pytest_tflite.convert(cnn(), recipe="int8", representative_data=data,
                                      output_dir=folder / name)
    elif name == "lstm":
        model = pytest_tflite.convert(lstm(), output_dir=folder / name)
    else:
        raise SystemExit(f"unknown model {name!r}")
    path = folder / f"{name}.tflite"
    shutil.copyfile(model.path, path)
    return path


def tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def trial(model: Path, project: Path, args: argparse.Namespace) -> dict[str, Any]:
    (project / "models").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    shutil.copyfile(model, project / "models" / model.name)
    budget = f"budgets/{model.stem}.toml"
    command = [tool("tflite-budget"), "init", f"models/{model.name}", "-o", budget]
    if args.margin:
        command += ["--margin", args.margin]
    if args.delegates:
        command += ["--delegates", args.delegates]
    started = time.perf_counter()
    subprocess.run(command, cwd=project, check=True, capture_output=True, text=True)
    init_s = time.perf_counter() - started
    # Neighbours that arrive after init: the budgets were written on a quieter machine.
    neighbours = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                  for _ in range(args.busy_checks)]
    try:
        return _checks(project, budget, init_s, args)
    finally:
        for neighbour in neighbours:
            neighbour.kill()
            neighbour.wait()


def _checks(project: Path, budget: str, init_s: float, args: argparse.Namespace) -> dict[str, Any]:
    failures: list[str] = []
    closest: dict[str, float] = {}
    rss: dict[str, list[int]] = {}
    check_s = []
    for run in range(args.checks):
        report = project / f"report-{run}.json"
        started = time.perf_counter()
        done = subprocess.run([tool("pytest"), "budgets/", "-n", "0", "-q", "-p",
                               "no:cacheprovider", f"--tflite-report={report}"],
                              cwd=project, capture_output=True, text=True)
        check_s.append(time.perf_counter() - started)
        if not report.exists():
            failures.append(f"run {run + 1}: exit {done.returncode}, no report: "
                            f"{done.stdout[-400:]}")
            continue
        for entry in json.loads(report.read_text())["entries"]:
            for check in entry["checks"]:
                if check["verdict"] in ("fail", "error"):
                    failures.append(f"run {run + 1}: {check['metric']} {check['verdict']} "
                                    f"{check['measured']} > {check['budget']} {check['unit']}")
                if check["metric"].startswith(RUNTIME) and check["measured"] and check["budget"]:
                    share = check["measured"] / check["budget"]
                    closest[check["metric"]] = max(closest.get(check["metric"], 0.0), share)
            for delegate, found in entry["delegates"].items():
                if found.get("peak_rss_bytes"):
                    rss.setdefault(delegate, []).append(found["peak_rss_bytes"])
        if done.returncode not in (0, 1) or (done.returncode == 1 and not failures):
            failures.append(f"run {run + 1}: exit {done.returncode}: {done.stdout[-400:]}")
    return {"init_s": init_s, "check_s": check_s, "failures": failures, "closest": closest,
            "rss": rss, "budget": (project / budget).read_text()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=10)
    parser.add_argument("--margin", default=None, help="init's --margin (default: init's own)")
    parser.add_argument("--delegates", default=None, help="init's --delegates")
    parser.add_argument("--models", default="mlp,cnn_int8,lstm")
    parser.add_argument("--busy", type=int, default=0,
                        help="busy-loop neighbours throughout, init included")
    parser.add_argument("--busy-checks", type=int, default=0,
                        help="busy-loop neighbours during the pytest runs only (after init)")
    parser.add_argument("--show-budget", action="store_true")
    args = parser.parse_args()
    neighbours = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                  for _ in range(args.busy)]
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-init-") as scratch:
            folder = Path(scratch)
            models = [build(name, folder / "built") for name in args.models.split(",")]
            print(f"models built in {time.perf_counter() - started:.0f} s; load average "
                  f"{'/'.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs; "
                  f"{args.busy} busy-loop neighbours ({args.busy_checks} during the pytest runs "
                  f"only); margin {args.margin or 'default'}",
                  flush=True)
            total = 0
            for model in models:
                found = trial(model, folder / "projects" / model.stem, args)
                total += len(found["failures"])
                print(f"\n{model.stem}: {args.checks} runs, {len(found['failures'])} failed "
                      f"checks; init {found['init_s']:.1f} s, pytest runs "
                      f"{min(found['check_s']):.1f}-{max(found['check_s']):.1f} s", flush=True)
                for line in found["failures"]:
                    print(f"  FAIL {line}")
                for metric, share in sorted(found["closest"].items()):
                    print(f"  {metric:32s} highest measured / limit {share:.3f}")
                for delegate, values in found["rss"].items():
                    print(f"  peak RSS {delegate:8s} {min(values) / 2**20:.1f}-"
                          f"{max(values) / 2**20:.1f} MiB over {len(values)} runs "
                          f"(max/min {max(values) / min(values):.2f})")
                if args.show_budget:
                    print(found["budget"])
            print(f"\ntotal: {total} failed checks over {len(models)} models x {args.checks} "
                  f"runs; {time.perf_counter() - started:.0f} s; load average at the end "
                  f"{'/'.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        for neighbour in neighbours:
            neighbour.kill()
            neighbour.wait()


if __name__ == "__main__":
    main()
