"""One cause, as a pull request brings it: the example project's hidden Dense layer grows 64 -> 96.

Runs the example gate twice, as the composite action does in one job: the base saves a
baseline, the head (the widened layer) is judged against the budgets and that baseline. Prints
the PR comment the head run wrote, its headline, and how many failed and error rows it holds,
so the before/after of a reporting change can be pasted into a note.

    python bench/one_layer_change.py [--out DIR] [--width 96] [--no-node-data]

Both runs pass --tflite-node-data (as the gate action does), so the comment also lists the
nodes whose quantization error grew, and OUT/node-data holds the Model Explorer overlays.

Uses whichever ``pytest_tflite`` Python imports (set PYTHONPATH to try another checkout).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLE = REPOSITORY / "example_project"


def run_gate(project: Path, *options: str) -> tuple[int, float]:
    started = time.perf_counter()
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options],
                          cwd=project, env=environment, capture_output=True, text=True)
    tail = "\n".join(done.stdout.splitlines()[-15:])
    print(f"--- {project.name}: exit {done.returncode}\n{tail}\n", flush=True)
    return done.returncode, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="where the comment and reports go")
    parser.add_argument("--width", type=int, default=96, help="the head's hidden Dense width")
    parser.add_argument("--no-node-data", action="store_true",
                        help="leave --tflite-node-data out (the gate as it was before it)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="one-layer-"))
    out = (args.out or work / "out").resolve()
    out.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.json.tmp")
    base, head = work / "base", work / "head"
    shutil.copytree(EXAMPLE, base, ignore=ignore)
    shutil.copytree(EXAMPLE, head, ignore=ignore)
    conftest = head / "conftest.py"
    text = conftest.read_text()
    widened = re.sub(r"Dense\(64\b", f"Dense({args.width}", text)
    assert widened != text, "the example's hidden Dense(64) layer was not found"
    conftest.write_text(widened)

    baseline = work / "baseline"
    node_data = [] if args.no_node_data else [f"--tflite-node-data={work / 'base-node-data'}"]
    code, base_s = run_gate(base, f"--tflite-baseline-save={baseline}", *node_data)
    print(f"base: exit {code} in {base_s:.0f} s")
    code, head_s = run_gate(head, f"--tflite-baseline={baseline}",
                            f"--tflite-markdown={out / 'comment.md'}",
                            f"--tflite-report={out / 'report.json'}",
                            f"--tflite-html={out / 'report.html'}",
                            *([f"--tflite-node-data={out / 'node-data'}"] if node_data else []))
    print(f"head: exit {code} in {head_s:.0f} s")
    comment = (out / "comment.md").read_text()
    rows = [line for line in comment.splitlines() if line.startswith("|")]
    failed = sum("❌" in line or "fail" in line.lower() for line in rows)
    errors = sum("💥" in line for line in rows)
    print(f"comment: {len(comment)} characters, {len(rows)} table rows, "
          f"{failed} failed-looking rows, {errors} error rows -> {out / 'comment.md'}")
    print(comment)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
