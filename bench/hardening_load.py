"""Load: N budget files with generated ``.tflite`` sources in one ``pytest -n 2`` run, and the
parent's memory on a 200 MB model.

Section 1 (N = 10 and N = 100): each model ``m_k.tflite`` is a FULLY_CONNECTED layer whose
constant weights are sized to a target file size, from a few KB to about 50 MB; the sizes repeat
with a period of 10, so the 100-model run is ten times the 10-model run's work and the ratio of
their times shows how the run scales. Each budget file ``m_k.toml`` names its model as
``source``, with a size budget (every 7th too tight, so failures travel through the reports too)
and a latency budget under ``builtin`` timed for 5 runs. The run writes the JSON report, JUnit
XML and the Markdown comment; every item must appear in the JSON report exactly once, and the
JSON, the JUnit properties, the Markdown rows and pytest's own counts must agree.

Peak RSS: the process tree is polled every ~100 ms (``/proc/<pid>/status`` VmHWM, the highest
value read before each process exits): the controller, the xdist workers, and the measurement
workers (``python -m pytest_tflite.measure.worker``) separately. A worker that lives less than
one poll can be missed; the table says how many were seen.

Section 2: the parent's (``pytest -n 0``) peak RSS measuring a tiny model and a 200 MB model;
the rise over the tiny session's peak, divided by the file size, must stay under 1.5. Also the
rise inside one fresh process that loads and statically measures the model (``convert`` +
``measure_static``: the parent's part of the work), which ``tests/plugin/test_load.py`` holds at 50 MB.

    python bench/hardening_load.py              # both sections, N = 10 and 100
    python bench/hardening_load.py --counts 10  # quicker
    python bench/hardening_load.py --skip-big   # section 1 only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KB = 1024
MB = 1024 * KB
# One period of model sizes: most small, one of 4 MB and one of 50 MB.
SIZE_PERIOD = [4 * KB, 8 * KB, 16 * KB, 32 * KB, 64 * KB, 160 * KB, 400 * KB, 1 * MB, 4 * MB,
               50 * MB]
FAILING_EVERY = 7  # m_k with k % 7 == 3 gets a size budget one byte short
BIG_MODEL_BYTES = 200 * MB
RSS_LIMIT_RATIO = 1.5


# --- models and budget files -------------------------------------------------------------------

def dense_model(target_bytes: int, seed: int = 0) -> bytes:
    """A ``.tflite`` of one FULLY_CONNECTED layer whose float32 weights bring the file to about
    ``target_bytes``; random weights (a tenth of them zero), so gzip cannot shrink them away."""
    import numpy as np

    from tests.helpers.models import Op, Subgraph, Tensor, build_model

    inputs = 32 if target_bytes < 64 * KB else 256 if target_bytes < 1 * MB else 1024
    outputs = max(1, (target_bytes - 1200) // (4 * inputs))
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((outputs, inputs), dtype=np.float32)
    weights[rng.random(weights.shape) < 0.1] = 0.0
    return build_model([Subgraph(
        tensors=[Tensor("x", [1, inputs]), Tensor(f"m{seed}/dense/MatMul", [outputs, inputs],
                                                   data=weights), Tensor("y", [1, outputs])],
        ops=[Op("FULLY_CONNECTED", [0, 1, -1], [2])], inputs=[0], outputs=[2])])


def budget_text(size: int, fail: bool) -> str:
    limit = size - 1 if fail else size + 1024
    return textwrap.dedent(f"""\
        source = "{{source}}"

        [defaults.runtime]
        delegates = ["builtin"]
        warmup = {{ min_runs = 1, min_seconds = 0 }}
        timing = {{ min_runs = 5, min_seconds = 0 }}

        [variants.default]
        size = {{ max = {limit} }}

        [variants.default.latency.builtin]
        median = "10 s"
    """)


def write_project(folder: Path, count: int) -> dict[str, dict[str, Any]]:
    """Models and budget files ``budgets/m_k.*``; returns what each item should be, by node id."""
    budgets = folder / "budgets"
    budgets.mkdir(parents=True)
    (folder / "pytest.ini").write_text("[pytest]\n")
    expected = {}
    for k in range(count):
        content = dense_model(SIZE_PERIOD[k % len(SIZE_PERIOD)], seed=k)
        (budgets / f"m_{k}.tflite").write_bytes(content)
        fail = k % FAILING_EVERY == 3
        text = budget_text(len(content), fail).replace("{source}", f"m_{k}.tflite")
        (budgets / f"m_{k}.toml").write_text(text)
        expected[f"budgets/m_{k}.toml::default"] = {
            "model": f"m_{k}", "size": len(content), "outcome": "failed" if fail else "passed"}
    return expected


# --- the process tree's peak RSS ----------------------------------------------------------------

def _status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * KB
    except OSError:
        pass
    return None


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(name))
    return tree


class TreeSampler:
    """Polls the process tree under ``root`` and keeps each process's highest VmHWM, by role."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root = root
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self.roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _role(self, pid: int, parent: int) -> str:
        if pid == self.root:
            return "controller"
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            command = ""
        if "pytest_tflite.measure.worker" in command:
            return "measurement"
        if parent == self.root:
            return "xdist"
        return "other"

    def _run(self) -> None:
        while not self._stop.is_set():
            tree = _children()
            pending = [(self.root, 0)]
            while pending:
                pid, parent = pending.pop()
                hwm = _status_kb(pid, "VmHWM")
                if hwm is not None:
                    self.peaks[pid] = max(self.peaks.get(pid, 0), hwm)
                    if pid not in self.roles:
                        self.roles[pid] = self._role(pid, parent)
                pending += [(child, pid) for child in tree.get(pid, [])]
            self._stop.wait(self.interval)

    def by_role(self, role: str) -> list[int]:
        return [self.peaks[pid] for pid, r in self.roles.items() if r == role]


def clean_environment() -> dict[str, str]:
    """This environment less what an outer pytest or tfmot would leak into the inner run."""
    return {k: v for k, v in os.environ.items()
            if k not in ("TF_USE_LEGACY_KERAS", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER",
                         "PYTEST_XDIST_TESTRUNUID", "PYTEST_CURRENT_TEST", "GITHUB_STEP_SUMMARY")}


def run_sampled(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float,
                                                          TreeSampler]:
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=clean_environment(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with TreeSampler(process.pid) as sampler:
        output, _ = process.communicate()
    seconds = time.perf_counter() - start
    return subprocess.CompletedProcess(command, process.returncode, output, ""), seconds, sampler


# --- consistency of the reports ---------------------------------------------------------------

def pytest_counts(output: str) -> dict[str, int]:
    last = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    counts = {}
    if last:
        for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", last[-1]):
            counts["error" if word.startswith("error") else word] = int(number)
    return counts


def check_reports(folder: Path, expected: dict[str, dict[str, Any]], output: str) -> list[str]:
    """Every disagreement between what was expected, the JSON report, the JUnit XML, the
    Markdown comment and pytest's own counts; empty when they all agree."""
    problems = []
    entries = json.loads((folder / "report.json").read_text())["entries"]
    by_test = Counter(entry["test"] for entry in entries)
    for test in expected:
        if by_test[test] != 1:
            problems.append(f"JSON: {test} appears {by_test[test]} times")
    problems += [f"JSON: unexpected entry {t}" for t in by_test if t not in expected]
    json_checks: Counter[tuple[str, str, str]] = Counter()
    json_outcome = {}
    for entry in entries:
        verdicts = [check["verdict"] for check in entry["checks"]]
        json_outcome[entry["test"]] = ("failed" if {"fail", "error"} & set(verdicts)
                                       else "passed")
        for check in entry["checks"]:
            json_checks[(entry["model"], check["metric"], check["verdict"])] += 1
        if entry.get("delegates", {}).get("builtin", {}).get("status") != "ok":
            problems.append(f"JSON: {entry['test']}: builtin not measured: "
                            f"{entry.get('delegates', {}).get('builtin')}")
        want = expected.get(entry["test"])
        if want and entry["size_bytes"] != want["size"]:
            problems.append(f"JSON: {entry['test']}: size {entry['size_bytes']} != {want['size']}")
    for test, want in expected.items():
        if test in json_outcome and json_outcome[test] != want["outcome"]:
            problems.append(f"JSON: {test} {json_outcome[test]}, expected {want['outcome']}")

    # JUnit: one testcase per item, its tflite_entry property the same entry, failure iff failed.
    junit: Counter[str] = Counter()
    for case in ElementTree.parse(folder / "junit.xml").iter("testcase"):
        properties = [p for p in case.iter("property") if p.get("name") == "tflite_entry"]
        if len(properties) != 1:
            problems.append(f"JUnit: {case.get('classname')}::{case.get('name')} has "
                            f"{len(properties)} tflite_entry properties")
            continue
        entry = json.loads(properties[0].get("value") or "{}")
        test = entry.get("test", "?")
        junit[test] += 1
        failed = case.find("failure") is not None or case.find("error") is not None
        if test in json_outcome and failed != (json_outcome[test] == "failed"):
            problems.append(f"JUnit: {test} failed={failed}, JSON says {json_outcome[test]}")
        if test in by_test and entry.get("checks") != next(
                e["checks"] for e in entries if e["test"] == test):
            problems.append(f"JUnit: {test}: checks differ from the JSON report's")
    for test in expected:
        if junit[test] != 1:
            problems.append(f"JUnit: {test} appears {junit[test]} times")

    # Markdown: one row per model variant and figure, naming each check it shows as the first
    # word of a "·"-separated limit ("size.max 48.0 KiB", "metric: reason"); each figure here
    # is read by one key, so every (model, metric, verdict) appears once, and the counts line.
    markdown = (folder / "comment.md").read_text()
    verdict_words = ("pass", "fail", "error", "skip")
    rows: Counter[tuple[str, str, str]] = Counter()
    for line in markdown.splitlines():
        # Cells escape "_" and "|" with a backslash; model names and metrics hold no pipe.
        cells = [c.strip().replace("\\", "") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and re.fullmatch(r"m_\d+( \[.*\])?", cells[0]):
            verdict = cells[4].split()[-1] if cells[4].split() else ""
            if verdict in verdict_words:
                for limit in cells[3].split(" · "):
                    metric = limit.split()[0].rstrip(":") if limit.split() else ""
                    rows[(cells[0].split()[0], metric, verdict)] += 1
    left_out = re.search(r"([\d,]+) of [\d,]+ rows left out", markdown)
    if rows != json_checks and not left_out:
        missing = json_checks - rows
        extra = rows - json_checks
        problems.append(f"Markdown: rows differ from the JSON checks (missing "
                        f"{sum(missing.values())}, e.g. {list(missing)[:3]}; extra "
                        f"{sum(extra.values())})")
    failed_checks = sum(n for (_, _, v), n in json_checks.items() if v == "fail")
    passed_checks = sum(n for (_, _, v), n in json_checks.items() if v == "pass")
    counts_line = f"{len(entries):,} model variant"
    if counts_line not in markdown or (failed_checks and f"{failed_checks:,} failed" not in markdown) \
            or f"{passed_checks:,} passed" not in markdown:
        problems.append(f"Markdown: counts line does not say {len(entries)} variants, "
                        f"{failed_checks} failed, {passed_checks} passed")

    # pytest's own outcome counts.
    counts = pytest_counts(output)
    want_counts = Counter(want["outcome"] for want in expected.values())
    for outcome in ("passed", "failed"):
        if counts.get(outcome, 0) != want_counts[outcome]:
            problems.append(f"pytest: {counts.get(outcome, 0)} {outcome}, expected "
                            f"{want_counts[outcome]} ({counts})")
    for outcome in ("error", "skipped"):
        if counts.get(outcome):
            problems.append(f"pytest: {counts[outcome]} {outcome}")
    return problems


def load_run(count: int, workers: int = 2) -> dict[str, Any]:
    """Generate ``count`` models and budget files, run them under xdist, and return the figures."""
    with tempfile.TemporaryDirectory(prefix="tflite-load-") as scratch:
        folder = Path(scratch)
        expected = write_project(folder, count)
        command = [sys.executable, "-m", "pytest", "budgets", "-p", "no:randomly",
                   "-p", "no:cacheprovider", "-n", str(workers), "-q",
                   "--tflite-report=report.json", "--junitxml=junit.xml",
                   "--tflite-markdown=comment.md"]
        result, seconds, sampler = run_sampled(command, folder)
        problems = check_reports(folder, expected, result.stdout) \
            if (folder / "report.json").exists() else ["no JSON report written"]
        if problems:
            print(result.stdout[-3000:])
        measurement = sampler.by_role("measurement")
        xdist = sampler.by_role("xdist")
        controller = sampler.by_role("controller")
        return {
            "models": count,
            "total_model_bytes": sum(want["size"] for want in expected.values()),
            "returncode": result.returncode,
            "seconds": seconds,
            "seconds_per_model": seconds / count,
            "controller_peak_rss": max(controller, default=0),
            "xdist_worker_peak_rss": max(xdist, default=0),
            "xdist_workers_seen": len(xdist),
            "measurement_worker_peak_rss": max(measurement, default=0),
            "measurement_worker_median_rss": sorted(measurement)[len(measurement) // 2]
            if measurement else 0,
            "measurement_workers_seen": len(measurement),
            "consistency_problems": problems,
        }


# --- the 200 MB model -------------------------------------------------------------------------

IN_PROCESS = """
import sys
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
import numpy, pydantic, ai_edge_litert.schema_py_generated
from pytest_tflite.conversion.recipes import convert
from pytest_tflite.measure.static import measure_static
from pytest_tflite.measure.sparsity import check_pattern
open("/proc/self/clear_refs", "w").write("5")
base = hwm()
model = convert(sys.argv[1])
measurement = measure_static(model)
print(hwm() - base, model.size_bytes, measurement.gzip_bytes)
"""


def in_process_rise(path: Path) -> dict[str, float]:
    """The peak RSS rise of a fresh process that loads and statically measures ``path``, after
    its imports (``IN_PROCESS``): ``{"rise", "size", "ratio"}``."""
    result = subprocess.run([sys.executable, "-c", IN_PROCESS, str(path)], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    rise, size, _ = (int(v) for v in result.stdout.split()[-3:])
    return {"rise": rise, "size": size, "ratio": rise / size}


def big_model_session(size: int = BIG_MODEL_BYTES) -> dict[str, Any]:
    """The parent's peak RSS in ``pytest -n 0`` on a tiny model and on a ``size`` model."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tflite-big-") as scratch:
        for label, target in (("tiny", 4 * KB), ("big", size)):
            folder = Path(scratch, label)
            budgets = folder / "budgets"
            budgets.mkdir(parents=True)
            (folder / "pytest.ini").write_text("[pytest]\n")
            content = dense_model(target, seed=1)
            (budgets / "m.tflite").write_bytes(content)
            del content
            file_size = (budgets / "m.tflite").stat().st_size
            (budgets / "m.toml").write_text(
                budget_text(file_size, fail=False).replace("{source}", "m.tflite"))
            command = [sys.executable, "-m", "pytest", "budgets", "-p", "no:randomly",
                       "-p", "no:cacheprovider", "-n", "0", "-q", "--tflite-report=report.json"]
            result, seconds, sampler = run_sampled(command, folder)
            if result.returncode != 0:
                print(result.stdout[-3000:])
            figures[label] = {"file_bytes": file_size, "seconds": seconds,
                              "returncode": result.returncode,
                              "parent_peak_rss": max(sampler.by_role("controller"), default=0),
                              "measurement_worker_peak_rss":
                                  max(sampler.by_role("measurement"), default=0)}
            if label == "big":
                figures["in_process"] = in_process_rise(budgets / "m.tflite")
    rise = figures["big"]["parent_peak_rss"] - figures["tiny"]["parent_peak_rss"]
    figures["session_rise"] = rise
    figures["session_ratio"] = rise / figures["big"]["file_bytes"]
    return figures


# --- the table ---------------------------------------------------------------------------------

def _mib(value: float) -> str:
    return f"{value / MB:,.0f} MiB"


def print_load_table(runs: list[dict[str, Any]]) -> None:
    rows = [
        ("models", lambda r: f"{r['models']}"),
        ("model bytes in all", lambda r: _mib(r["total_model_bytes"])),
        ("wall time", lambda r: f"{r['seconds']:.1f} s"),
        ("seconds per model", lambda r: f"{r['seconds_per_model']:.2f} s"),
        ("controller peak RSS", lambda r: _mib(r["controller_peak_rss"])),
        ("xdist worker peak RSS (max)", lambda r: _mib(r["xdist_worker_peak_rss"])),
        ("measurement worker peak RSS (max)",
         lambda r: _mib(r["measurement_worker_peak_rss"])),
        ("measurement worker peak RSS (median)",
         lambda r: _mib(r["measurement_worker_median_rss"])),
        ("measurement workers seen", lambda r: f"{r['measurement_workers_seen']}"),
        ("exit status", lambda r: f"{r['returncode']}"),
        ("report problems", lambda r: f"{len(r['consistency_problems'])}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{value(r):>14}" for r in runs))
    for run in runs:
        for problem in run["consistency_problems"][:20]:
            print(f"  [{run['models']}] {problem}")


def growth(small: dict[str, Any], large: dict[str, Any]) -> dict[str, float]:
    return {key: large[key] / small[key] if small[key] else float("nan") for key in (
        "seconds", "controller_peak_rss", "xdist_worker_peak_rss", "measurement_worker_peak_rss")}


def main(counts: tuple[int, ...] = (10, 100), big: bool = True) -> dict[str, Any]:
    figures: dict[str, Any] = {"runs": [load_run(count) for count in counts]}
    print_load_table(figures["runs"])
    if len(figures["runs"]) >= 2:
        small, large = figures["runs"][0], figures["runs"][-1]
        figures["growth"] = growth(small, large)
        factor = large["models"] / small["models"]
        print(f"\n{small['models']} -> {large['models']} models (x{factor:g}): " + ", ".join(
            f"{key} x{value:.2f}" for key, value in figures["growth"].items()))
        print(f"time linear or better: {figures['growth']['seconds'] <= factor * 1.05}; "
              f"RSS sublinear: {figures['growth']['controller_peak_rss'] < factor}")
    if big:
        session = big_model_session()
        figures["big_model"] = session
        print(f"\n200 MB model ({session['big']['file_bytes']:,} bytes), pytest -n 0:")
        print(f"  parent peak RSS, tiny model   {_mib(session['tiny']['parent_peak_rss'])} "
              f"({session['tiny']['seconds']:.1f} s)")
        print(f"  parent peak RSS, 200 MB model {_mib(session['big']['parent_peak_rss'])} "
              f"({session['big']['seconds']:.1f} s, exit {session['big']['returncode']})")
        print(f"  rise / file size              {session['session_ratio']:.2f} "
              f"(limit {RSS_LIMIT_RATIO})")
        print(f"  measurement worker peak RSS   "
              f"{_mib(session['big']['measurement_worker_peak_rss'])}")
        inside = session["in_process"]
        print(f"  in one process (convert + measure_static): rise {_mib(inside['rise'])}, "
              f"{inside['ratio']:.2f} x the file size")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    main(tuple(args.counts), big=not args.skip_big)
