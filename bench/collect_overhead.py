"""Collection overhead of the pytest-tflite plugin on a suite that does not use it.

Generates 500 trivial tests (10 files x 50 tests) in a temp dir with its own empty pytest.ini
(so /work/main's pyproject addopts such as ``-n 2`` are not picked up), then times
``python -m pytest --collect-only -q -p no:cacheprovider -p no:xdist`` run there with the
plugin loaded (default, via its ``pytest11`` entry point) vs disabled (``-p no:tflite``).
REPS runs per arm, interleaved on/off (with the order alternating each round) so drift hits
both arms equally, after one untimed warm-up run of each.

Reports the median wall time of each arm and the ratio of medians (on / off).

Target: ratio <= 1.05.

Run: python bench/collect_overhead.py [REPS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
FILES, TESTS_PER_FILE = 10, 50
TARGET = 1.05


def make_suite(root: Path) -> None:
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    for f in range(FILES):
        body = "".join(f"def test_{f}_{t}():\n    assert {t} == {t}\n\n\n"
                       for t in range(TESTS_PER_FILE))
        (root / f"test_file_{f:02d}.py").write_text(body, encoding="utf-8")


def run(root: Path, plugin_on: bool, env: dict[str, str]) -> float:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
               "-p", "no:xdist", "--rootdir", str(root), "-c", str(root / "pytest.ini")]
    if not plugin_on:
        command += ["-p", "no:tflite"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or f"{FILES * TESTS_PER_FILE} tests collected" not in done.stdout:
        raise SystemExit(f"pytest failed (plugin_on={plugin_on}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # warm-up writes the rewritten-test .pyc files
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as scratch:
        root = Path(scratch)
        make_suite(root)
        # Sanity: the plugin really is loaded in the "on" arm and absent in the "off" arm.
        for on in (True, False):
            extra = [] if on else ["-p", "no:tflite"]
            out = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:xdist",
                                  "-c", str(root / "pytest.ini"), *extra],
                                 cwd=root, env=env, capture_output=True, text=True).stdout
            if ("--tflite-no-cache" in out) != on:
                raise SystemExit(f"plugin on/off check failed (on={on})")
        run(root, True, env)
        run(root, False, env)
        times: dict[bool, list[float]] = {True: [], False: []}
        for i in range(REPS):
            order = (True, False) if i % 2 == 0 else (False, True)
            for on in order:
                times[on].append(run(root, on, env))

    on_med, off_med = statistics.median(times[True]), statistics.median(times[False])
    ratio = on_med / off_med
    print(f"--collect-only of {FILES * TESTS_PER_FILE} tests ({FILES} files x {TESTS_PER_FILE}), "
          f"{REPS} interleaved runs per arm")
    print(f"  plugin on  (default)      median {on_med * 1000:7.1f} ms   "
          f"min {min(times[True]) * 1000:7.1f} ms")
    print(f"  plugin off (-p no:tflite) median {off_med * 1000:7.1f} ms   "
          f"min {min(times[False]) * 1000:7.1f} ms")
    print(f"  ratio of medians on/off: {ratio:.3f}  (target <= {TARGET}) -> "
          f"{'PASS' if ratio <= TARGET else 'FAIL'}")
    sys.exit(0 if ratio <= TARGET else 1)


if __name__ == "__main__":
    main()
