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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hardening.test_worker_limits import run_capped_session

CAP = "2 GiB"
OUTER_GIB = 6


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hardening-memory-") as folder:
        root = Path(folder)
        start = time.perf_counter()
        done, output, children = run_capped_session(root, ("builtin", "xnnpack"), CAP, OUTER_GIB)
        seconds = time.perf_counter() - start
        entries = json.loads((root / "report.json").read_text())["entries"]
    models = {}
    for entry in entries:
        reasons = sorted({d["reason"] for d in entry["delegates"].values()})
        models[entry["model"]] = {"verdict": entry["verdict"], "refused": entry["refused"],
                                  "delegate reasons": reasons}
    return {"exit code": done.returncode, "session seconds": round(seconds, 1),
            "workers' peak RSS MiB": round(children / 2**20, 1), "cap": CAP,
            "outer RLIMIT_AS GiB": OUTER_GIB, "internal error": "INTERNALERROR" in output,
            "models": models}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
