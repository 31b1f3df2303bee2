"""Import cost of the pytest plugin module.

Measures the wall time of ``import pytest_tflite.plugin`` in a fresh interpreter (timed inside
the child with ``time.perf_counter`` around the import, so interpreter start-up is excluded),
repeated REPS times; reports the median and min in ms, next to the baseline ``import pytest``
alone. The plugin's import time includes importing pytest itself, so the difference is what the
plugin adds.

Also lists which heavy modules are in ``sys.modules`` after the import, among tensorflow,
tf_keras, keras, ai_edge_litert, numpy and pydantic.

Target: no heavy module loaded (the list must be empty); the plugin should add only a few ms
on top of ``import pytest``.

Run: python bench/import_time.py [REPS]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

HEAVY = ("tensorflow", "tf_keras", "keras", "ai_edge_litert", "numpy", "pydantic")
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 25

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import {module}
t1 = time.perf_counter()
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"ms": (t1 - t0) * 1000, "heavy": heavy}}))
"""


def measure(module: str) -> tuple[list[float], list[str]]:
    code = CHILD.format(module=module, heavy=HEAVY)
    # -E: ignore PYTHON* env vars; -s: no user site; keep the venv's site-packages.
    out = subprocess.run([sys.executable, "-E", "-s", "-c", code], check=True,
                         capture_output=True, text=True).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return data["ms"], data["heavy"]


def main() -> None:
    results: dict[str, list[float]] = {"pytest": [], "pytest_tflite.plugin": []}
    heavy_seen: dict[str, set[str]] = {"pytest": set(), "pytest_tflite.plugin": set()}
    # Warm the OS file cache and .pyc files once, then interleave the two imports.
    for module in results:
        measure(module)
    for _ in range(REPS):
        for module in results:
            ms, heavy = measure(module)
            results[module].append(ms)
            heavy_seen[module].update(heavy)

    version = sys.version.split()[0]
    print(f"import time in a fresh subprocess, {REPS} repetitions each (Python {version})")
    for module, times in results.items():
        print(f"  import {module:22s} median {statistics.median(times):7.1f} ms   "
              f"min {min(times):7.1f} ms")
    added = (statistics.median(results["pytest_tflite.plugin"])
             - statistics.median(results["pytest"]))
    print(f"  plugin adds (median - median): {added:+.1f} ms")
    heavy = sorted(heavy_seen["pytest_tflite.plugin"])
    print(f"  heavy modules loaded by the plugin import: {heavy or 'none'}")
    print("  target: none ->", "PASS" if not heavy else "FAIL")
    sys.exit(0 if not heavy else 1)


if __name__ == "__main__":
    main()
