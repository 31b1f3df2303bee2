"""Killed runs, many times: no half-written file trusted, no orphan left.

    python bench/hardening_kill.py [--trials 54] [--sessions 3] [--controller-kills 5]
                                   [--pipeline 2] [--interrupts 3] [--seed 0]

Write trials SIGKILL a process at a seeded random line inside one of the plugin's writes (the
reports, the baseline save, the budget rewrite: replayed on the entries of a real -n 4 run of
four budget files with ``.tflite`` sources; the conversion cache: four processes sharing one
cache, each killed at its own point, or one alone, at a point in a whole lookup or in its
writes), then check what the next run finds: every file whole (old
or new), and every incomplete entry refused or redone with a message naming it. ``--sessions``
real -n 4 runs are killed the same way inside their own end-of-run writes; ``--pipeline`` -n 4
runs convert ``.tflite`` sources with a LiteRT quantizer recipe (the cache's path without
TensorFlow) and have one xdist worker killed inside its cache writes. Controller kills
SIGKILL the controller of a -n 2 run mid-measurement and time until every xdist worker and
measurement worker is gone. ``--interrupts`` Ctrl-C -n 2 runs mid-measurement and time until
the run exits (the suite only holds that exit to a bound a loaded machine cannot miss,
``tests/hardening/test_kill.py``'s EXIT_BOUND_S). ``main()`` returns the figures; the command prints
them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hardening.test_kill import (
    LOOSE_BUDGET,
    WRITE_KINDS,
    Tally,
    cache_setup,
    cache_trial,
    check_baseline,
    check_budgets,
    check_reports,
    cleaned_up,
    controller_project,
    interrupt_trial,
    kill_controller_trial,
    log_tail,
    start_session,
    summary,
    write_trial,
)


def session_trial(project: Path, rng: random.Random, tally: Tally) -> str:
    """A real -n 4 run killed at a random line of one of its end-of-run writes."""
    kind = rng.choice(WRITE_KINDS)
    total = json.loads((project / "counts.json").read_text())[kind]
    for budget in (project / "budgets").glob("*.toml"):
        budget.write_text(LOOSE_BUDGET.format(name=budget.stem))
    session = start_session(project, "-n", "4", "--tflite-no-runtime", "--tflite-report=r.json",
                            "--tflite-html=r.html", "--tflite-markdown=r.md",
                            "--tflite-baseline-save=base", "--tflite-update-budgets",
                            KILL_TARGET=kind, KILL_AT=str(rng.randint(1, total)))
    with cleaned_up(session, []):
        code = session.wait(timeout=600)
    assert code in (0, -signal.SIGKILL), log_tail(project)
    tally.trials += 1
    tally.killed += code == -signal.SIGKILL
    check_reports(project, tally)
    check_baseline(project, tally)
    check_budgets(project, tally)
    return kind


PIPELINE_CONFTEST = """
import os
import killpoint

def pytest_configure(config):
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker and os.environ.get("KILL_WORKER") in (worker, "*"):
        if os.environ.get("KILL_COUNTS"):
            os.environ["KILL_COUNTS"] += "." + worker
        killpoint.arm()
"""
PIPELINE_TEST = """
import pytest

@pytest.mark.parametrize("i", range(8))
def test_quantize(tflite_convert, i):
    assert tflite_convert(f"models/fc{i % 4}.tflite", recipe="lq_wi8").content
"""


def pipeline_project(root: Path) -> tuple[Path, int]:
    """The conversion cache as the plugin writes it without TensorFlow: ``tflite_convert`` with
    a LiteRT quantizer recipe on ``.tflite`` sources, 8 tests over 4 models, -n 4; and the
    lines a worker's conversions take (a complete first run, counted in every worker)."""
    import numpy as np

    from tests.hardening.test_kill import KILLPOINT
    from tests.helpers.models import Op, Subgraph, Tensor, build_model

    (root / "models").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\ntflite_cache_dir = cache\n")
    (root / "killpoint.py").write_text(KILLPOINT)
    (root / "conftest.py").write_text(PIPELINE_CONFTEST)
    (root / "test_quantize.py").write_text(PIPELINE_TEST)
    rng = np.random.default_rng(0)
    for i in range(4):
        n = 32 * (i + 1)
        (root / "models" / f"fc{i}.tflite").write_bytes(build_model([Subgraph(
            tensors=[Tensor("x", [1, n]), Tensor("w", [n, n], data=rng.normal(size=(n, n))),
                     Tensor("b", [n], data=np.zeros(n)), Tensor("y", [1, n])],
            ops=[Op("FULLY_CONNECTED", [0, 1, 2], [3])], inputs=[0], outputs=[3])]))
    code, _ = pipeline_run(root, KILL_WORKER="*", KILL_TARGET="get_or_create",
                           KILL_COUNTS=str(root / "count.out"))
    assert code == 0, log_tail(root)
    return root, max(int(p.read_text()) for p in root.glob("count.out.*"))


def pipeline_run(project: Path, **environment: str) -> tuple[int, str]:
    (project / "session.log").unlink(missing_ok=True)
    session = start_session(project, "-n", "4", "-W", "always::UserWarning", **environment)
    with cleaned_up(session, []):
        code = session.wait(timeout=600)
    return code, (project / "session.log").read_text(errors="replace")


def pipeline_trial(project: Path, total: int, rng: random.Random, tally: Tally) -> None:
    """Kill one xdist worker at a random line of its conversions through the cache, then a
    clean run: every test passes, every incomplete entry named in a warning."""
    import shutil

    shutil.rmtree(project / "cache", ignore_errors=True)  # so that the killed run writes
    worker = f"gw{rng.randrange(4)}"
    code, log = pipeline_run(project, KILL_WORKER=worker, KILL_TARGET="get_or_create",
                             KILL_AT=str(rng.randint(1, total // 2)))  # workers share tests
    tally.trials += 1
    killed = code != 0
    tally.killed += killed
    incomplete = []
    for model in (project / "cache").rglob("*.tflite"):
        note = model.with_suffix(".json")
        if not note.exists():
            incomplete.append(str(model))
        else:
            try:
                json.loads(note.read_text())
            except ValueError:
                tally.corrupt.append(str(note))
    code, log = pipeline_run(project)
    if code != 0:
        tally.corrupt.append(f"the run after a kill failed: {log[-2000:]}")
    flat = " ".join(log.split())
    hits = re.search(r"conversion cache: (\d+) hit\(s\), (\d+) miss", flat)
    if hits:
        tally.used_valid += int(hits.group(1))
        tally.redone += int(hits.group(2))
    for path in incomplete:
        if path in flat:
            tally.said_so += 1
        else:
            tally.silent.append(path)


def main(trials: int = 54, sessions: int = 3, controller_kills: int = 5,
         seed: int = 0, pipeline: int = 2, interrupts: int = 3) -> dict[str, Any]:
    rng = random.Random(seed)
    kinds = [*WRITE_KINDS, "cache"]
    tallies = {kind: Tally() for kind in [*kinds, "-n 4 sessions", "-n 4 quantizer runs"]}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hardening-kill-") as scratch:
        root = Path(scratch)
        project = controller_project(root / "project")
        directory, total = cache_setup(root / "cache")
        for trial in range(trials):
            kind = kinds[trial % len(kinds)]
            if kind == "cache":
                users, target = ((4, "get_or_create"), (1, "get_or_create"), (1, "put"))[
                    trial // len(kinds) % 3]
                cache_trial(directory, rng, tallies[kind], total, users, target)
            else:
                write_trial(project, kind, rng, tallies[kind], trial)
        session_kinds = [session_trial(project, rng, tallies["-n 4 sessions"])
                         for _ in range(sessions)]
        if pipeline:
            quantizing, lines = pipeline_project(root / "pipeline")
            for _ in range(pipeline):
                pipeline_trial(quantizing, lines, rng, tallies["-n 4 quantizer runs"])
        cleanups = [kill_controller_trial(root / f"controller{i}") for i in range(controller_kills)]
        stops = [interrupt_trial(root / f"interrupt{i}") for i in range(interrupts)]
    seconds = [c["seconds"] for c in cleanups]
    exits = [s["seconds"] for s in stops]
    by_kind = {kind: tally.as_dict() for kind, tally in tallies.items() if tally.trials}
    return {
        "kill trials run": sum(t.trials for t in tallies.values()),
        "files found corrupt": sum(len(t.corrupt) for t in tallies.values()),
        "incomplete entries redone silently": sum(len(t.silent) for t in tallies.values()),
        "used valid": sum(t.used_valid for t in tallies.values()),
        "redone": sum(t.redone for t in tallies.values()),
        "by kind": by_kind,
        "killed -n 4 sessions in": session_kinds,
        "orphan-cleanup seconds": {**summary(seconds), "each": [round(s, 2) for s in seconds]}
        if seconds else None,
        "orphans left": sum(len(c["left"]) for c in cleanups),
        "processes seen per controller kill": [c["processes"] for c in cleanups],
        "Ctrl-C to exit seconds": {**summary(exits), "each": [round(s, 2) for s in exits]}
        if exits else None,
        "Ctrl-C exit codes": [s["exit_code"] for s in stops],
        "left after Ctrl-C": sum(len(s["left"]) for s in stops),
        "wall seconds": round(time.monotonic() - started, 1),
        "load average": os.getloadavg(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=54)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--controller-kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interrupts", type=int, default=3,
                        help="-n 2 runs stopped with Ctrl-C mid-measurement, timed to their exit")
    parser.add_argument("--pipeline", type=int, default=2,
                        help="-n 4 runs of lq_wi8 conversions killed in the cache writes")
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.trials, arguments.sessions, arguments.controller_kills,
                          arguments.seed, arguments.pipeline, arguments.interrupts), indent=2))
