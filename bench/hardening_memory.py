"""The memory cap against a model whose intermediates need 12 GiB (issue 10, part 4).

Two hand-built models (no constant data but two index vectors; a 16-byte input): x[1,4] ->
TILE(multiples [805306368, 1]) -> MEAN -> y[4]. "honest" declares the tiled tensor's real shape,
so the static plan sees 12 GiB; "hidden" declares [1, 4], so only TILE's Prepare finds out.

One pytest session checks both (budget files with ``source =``, ``runtime.max_memory = "2 GiB"``,
a builtin and an xnnpack latency budget), inside an outer RLIMIT_AS of 6 GiB so a broken cap
fails the run instead of the machine. Reports each model's verdict and reason, the session's
exit code and wall time, and the peak RSS of every worker it started (RUSAGE_CHILDREN).

Target: honest refused statically, hidden stopped by the worker's rlimit, workers' peak RSS
under the 2 GiB cap, the session ends normally (exit code 1: tests failed).

Run: python bench/hardening_memory.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_worker_limits import ROWS, tile_model

CAP = "2 GiB"
OUTER_GIB = 6


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hardening-memory-") as folder:
        root = Path(folder)
        (root / "honest.tflite").write_bytes(tile_model(ROWS))
        (root / "hidden.tflite").write_bytes(tile_model(1))
        (root / "budgets").mkdir()
        (root / "pytest.ini").write_text("[pytest]\n")
        for name in ("honest", "hidden"):
            (root / "budgets" / f"{name}.toml").write_text(textwrap.dedent(f"""
                source = "../{name}.tflite"
                [defaults.runtime]
                max_memory = "{CAP}"
                timing = {{ min_runs = 1, min_seconds = 0 }}
                warmup = {{ min_runs = 1, min_seconds = 0 }}
                [variants.float]
                latency.builtin = {{ median = "10 s" }}
                latency.xnnpack = {{ median = "10 s" }}
            """))
        script = textwrap.dedent(f"""
            import resource, sys
            resource.setrlimit(resource.RLIMIT_AS, ({OUTER_GIB} * 2**30, {OUTER_GIB} * 2**30))
            import pytest
            code = pytest.main(["-p", "no:randomly", "-p", "no:cacheprovider", "-n", "0", "-q",
                                "--tflite-report=report.json", "budgets"])
            print("CHILDREN_MAXRSS_KIB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            sys.exit(int(code))
        """)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                              text=True, timeout=600, env=env)
        seconds = time.perf_counter() - start
        output = done.stdout + done.stderr
        entries = json.loads((root / "report.json").read_text())["entries"]
    children_kib = int(output.split("CHILDREN_MAXRSS_KIB")[1].split()[0])
    models = {}
    for entry in entries:
        reasons = sorted({d["reason"] for d in entry["delegates"].values()})
        models[entry["model"]] = {"verdict": entry["verdict"], "refused": entry["refused"],
                                  "delegate reasons": reasons}
    return {"exit code": done.returncode, "session seconds": round(seconds, 1),
            "workers' peak RSS MiB": round(children_kib / 1024, 1), "cap": CAP,
            "outer RLIMIT_AS GiB": OUTER_GIB, "internal error": "INTERNALERROR" in output,
            "models": models}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
