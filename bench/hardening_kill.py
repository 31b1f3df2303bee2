"""Killed runs, many times: no half-written file trusted, no orphan left.

    python bench/hardening_kill.py [--trials 54] [--sessions 3] [--controller-kills 5] [--seed 0]

Write trials SIGKILL a process at a seeded random line inside one of the plugin's writes (the
reports, the baseline save, the budget rewrite: replayed on the entries of a real -n 4 run of
four budget files with ``.tflite`` sources; the conversion cache: four processes sharing one
cache, each killed at its own point), then check what the next run finds: every file whole (old
or new), and every incomplete entry refused or redone with a message naming it. ``--sessions``
real -n 4 runs are killed the same way inside their own end-of-run writes. Controller kills
SIGKILL the controller of a -n 2 run mid-measurement and time until every xdist worker and
measurement worker is gone. ``main()`` returns the figures; the command prints them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_kill import (
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


def main(trials: int = 54, sessions: int = 3, controller_kills: int = 5,
         seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    tally = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hardening-kill-") as scratch:
        root = Path(scratch)
        project = controller_project(root / "project")
        directory, total = cache_setup(root / "cache")
        kinds = [*WRITE_KINDS, "cache"]
        per_kind = {kind: 0 for kind in kinds}
        for trial in range(trials):
            kind = kinds[trial % len(kinds)]
            per_kind[kind] += 1
            if kind == "cache":
                cache_trial(directory, rng, tally, total)
            else:
                write_trial(project, kind, rng, tally, trial)
        session_kinds = [session_trial(project, rng, tally) for _ in range(sessions)]
        cleanups = [kill_controller_trial(root / f"controller{i}") for i in range(controller_kills)]
    seconds = [c["seconds"] for c in cleanups]
    return {
        **tally.as_dict(),
        "trials per kind": per_kind,
        "killed -n 4 sessions": session_kinds,
        "orphan-cleanup seconds": {**summary(seconds), "each": [round(s, 2) for s in seconds]}
        if seconds else None,
        "orphans left": sum(len(c["left"]) for c in cleanups),
        "processes seen per controller kill": [c["processes"] for c in cleanups],
        "wall seconds": round(time.monotonic() - started, 1),
        "load average": os.getloadavg(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=54)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--controller-kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.trials, arguments.sessions, arguments.controller_kills,
                          arguments.seed), indent=2))
