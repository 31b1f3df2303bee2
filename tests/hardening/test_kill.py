"""Killed runs: no orphan processes, no half-written file trusted by the next run.

A controller killed with SIGKILL must take its xdist workers and their measurement workers with
it; Ctrl-C stops the run promptly. A run killed while it writes (the conversion cache, the
baseline, the budget files, the reports) leaves each file old or new, and the next run uses a
valid entry or redoes the work, saying so. Kill points are line events inside the writer, drawn
by a seeded generator from the number a complete write takes (``killpoint.py`` below).

The helpers here also drive ``bench/hardening_kill.py``, which runs many more trials.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomllib

from tests.helpers.models import chain_model
from tests.helpers.paths import REPOSITORY

# A measurement in ``measuring_project`` times its model for MEASURE_S, so a run that waits for
# its measurements after Ctrl-C, or leaves a worker behind, is still there long after these
# bounds. They are generous because the assertions must hold on a loaded machine (4 busy loops
# on 2 cores); how prompt the exit and the cleanup are is a figure of bench/hardening_kill.py.
MEASURE_S = 120
EXIT_BOUND_S = 45.0  # Ctrl-C to the session's exit
GONE_BOUND_S = 30.0  # the session's end (or the controller's SIGKILL) to its last process gone

# Loaded by the inner projects' conftest (controller writes) and by the replay drivers: SIGKILL
# at the N-th line event inside a target function (lines of this package and of the standard
# library's file machinery only, so that points spread over the writes, not over JSON encoding
# in pure Python). Count mode records how many lines a complete call takes.
KILLPOINT = textwrap.dedent(
    '''
    import json, os, signal, sys

    TARGETS = {"publish": "publish.py", "save": "baseline.py",
               "update_budget_files": "ratchet.py", "get_or_create": "storage.py",
               "put": "storage.py"}
    WATCHED = ("pytest_tflite", "tempfile.py", "pathlib.py", os.sep + "os.py")

    def arm():
        target = os.environ.get("KILL_TARGET")
        if not target:
            return
        kill_at = int(os.environ.get("KILL_AT") or 0)
        counts_path = os.environ.get("KILL_COUNTS")
        state = {"frame": None, "lines": 0}

        def local(frame, event, arg):
            if event == "line" and any(w in frame.f_code.co_filename for w in WATCHED):
                state["lines"] += 1
                if state["lines"] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            elif event == "return" and frame is state["frame"]:
                state["frame"] = None
                if counts_path:  # the lines so far: the last call's write is the total
                    with open(counts_path, "w") as counts:
                        counts.write(json.dumps(state["lines"]))
            return local

        def on_call(frame, event, arg):
            if state["frame"] is not None:
                return local
            code = frame.f_code
            if code.co_name == target and code.co_filename.endswith(TARGETS[target]):
                state["frame"] = frame
                return local
            return None

        sys.settrace(on_call)
    '''
)

CONTROLLER_CONFTEST = textwrap.dedent(
    """
    import pytest
    import killpoint

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(session):
        if not hasattr(session.config, "workerinput"):  # the controller writes, workers do not
            killpoint.arm()
    """
)

# Replays the controller's writes (the same calls plugin.pytest_sessionfinish makes) on the
# entries of a real run's JSON report, in a process that killpoint may kill.
REPLAY = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import killpoint
    from pytest_tflite.results import Entry

    kind, project, tag = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    document = json.loads((project / "full.json").read_text())
    entries = [Entry.from_json(e) for e in document["entries"]]
    for entry in entries:
        entry.test = entry.test + tag  # every trial writes different bytes than the last
    killpoint.arm()
    if kind == "publish":
        from pytest_tflite.reports.publish import ReportOptions, publish
        publish(entries, ReportOptions(json_path=project / "r.json", html_path=project / "r.html",
                                       markdown_path=project / "r.md"))
    elif kind == "save":
        from pytest_tflite.baseline import save
        from pytest_tflite.environment import environment_fingerprint
        save(project / "base", entries, environment_fingerprint(1))
    else:
        from pytest_tflite.ratchet import DEFAULT_HEADROOM, RatchetOptions, update_budget_files
        update_budget_files(entries, RatchetOptions(headroom=DEFAULT_HEADROOM))
    """
)

# One cache user, like one xdist worker converting models: get_or_create on every key, with a
# deterministic "conversion" per key. Prints what it got, and the warnings it gave.
CACHE_USER = textwrap.dedent(
    """
    import hashlib, json, sys, warnings
    from pathlib import Path
    import killpoint
    from pytest_tflite.conversion.cache.storage import ConversionCache
    from pytest_tflite.errors import CacheEntryWarning

    directory, keys = Path(sys.argv[1]), sys.argv[2].split(",")

    def content(key):
        seed = hashlib.sha256(key.encode()).digest()
        return seed * (200_000 // len(seed))

    cache = ConversionCache(directory)
    killpoint.arm()
    outcome = {"hits": 0, "redone": 0, "wrong": 0, "warnings": []}
    for key in keys:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, found, _, hit = cache.get_or_create(key, lambda: (content(key), {"recipe": "x"}))
        outcome["warnings"] += [str(w.message) for w in caught
                                if issubclass(w.category, CacheEntryWarning)]
        outcome["hits" if hit else "redone"] += 1
        outcome["wrong"] += found != content(key)
    print(json.dumps(outcome))
    """
)

CACHE_KEYS = [f"{prefix}{n:062x}" for prefix, n in (("ab", 1), ("ab", 2), ("cd", 3), ("ef", 4))]
WRITE_KINDS = ("publish", "save", "update_budget_files")
LOOSE_BUDGET = 'source = "../models/{name}.tflite"\n\n[variants.float32]\nsize = {{ max = "1 MiB" }}\n'


# ---------------------------------------------------------------- processes


def inner_environment(**extra: str) -> dict[str, str]:
    """The outer run's environment, without what would make an inner pytest a worker of it."""
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST",
                                        "GITHUB_STEP_SUMMARY", "KILL_"))}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY),
                                                              environment.get("PYTHONPATH")]))
    return {**environment, **extra}


# pytest, with SIGINT handled as in a terminal. A shell starts a background job (`pytest &` in a
# script) with SIGINT ignored, its children inherit that, and Python then installs no Ctrl-C
# handler: the inner session would never hear the Ctrl-C trial's SIGINT.
INTERRUPTIBLE_PYTEST = ("import signal, sys, pytest\n"
                        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                        "sys.exit(pytest.console_main())")


def start_session(project: Path, *args: str, **environment: str) -> subprocess.Popen[bytes]:
    # Its own session and process group: a failing test can kill all of it in its finally.
    # Without hypothesis's plugin: on an interrupt it imports hypothesis in every process
    # (seconds on a loaded machine), which would be measured here as the plugin's delay.
    return subprocess.Popen(
        [sys.executable, "-c", INTERRUPTIBLE_PYTEST, "-p", "no:randomly", "-p", "no:cacheprovider",
         "-p", "no:hypothesispytest", *args],
        cwd=project, env=inner_environment(**environment), start_new_session=True,
        stdout=open(project / "session.log", "ab"), stderr=subprocess.STDOUT)


@dataclass(frozen=True)
class Process:
    pid: int
    started: int  # clock ticks after boot: a reused pid has another
    command: str

    def alive(self) -> bool:
        found = _stat(self.pid)
        return found is not None and found[2] == self.started and found[1] not in "ZX"


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) from /proc/PID/stat; None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> list[Process]:
    """Every living process below ``root``, found by walking /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            children.setdefault(found[0], []).append(int(entry.name))
    result, queue = [], list(children.get(root, []))
    while queue:
        pid = queue.pop()
        found = _stat(pid)
        if found is None or found[1] in "ZX":
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        result.append(Process(pid, found[2], command))
        queue += children.get(pid, [])
    return result


def is_measurement_worker(process: Process) -> bool:
    return "pytest_tflite.measure.worker" in process.command


@contextlib.contextmanager
def cleaned_up(session: subprocess.Popen[bytes], seen: list[Process]) -> Iterator[None]:
    """Whatever the test asserts, nothing it started outlives it: the session's group, then
    each process seen below it (a measurement worker has a group of its own)."""
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(session.pid, signal.SIGKILL)
        for process in seen + descendants(session.pid):
            if process.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            session.wait(timeout=10)


def wait_for_measurement(session: subprocess.Popen[bytes], project: Path,
                         limit: float = 120.0) -> list[Process]:
    """The session's processes once a measurement worker runs under it."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if session.poll() is not None:
            raise AssertionError(f"the session ended before measuring:\n{log_tail(project)}")
        found = descendants(session.pid)
        if any(is_measurement_worker(p) for p in found):
            time.sleep(0.3)  # let the other workers' start settle
            return descendants(session.pid)
        time.sleep(0.1)
    raise AssertionError(f"no measurement worker within {limit:g} s:\n{log_tail(project)}")


def wait_until_gone(processes: list[Process], limit: float = GONE_BOUND_S,
                    start: float | None = None) -> tuple[float, list[Process]]:
    """(seconds from ``start`` until every process was gone, or ``limit``; those alive then)."""
    start = time.monotonic() if start is None else start
    while time.monotonic() - start < limit:
        left = [p for p in processes if p.alive()]
        if not left:
            return time.monotonic() - start, []
        time.sleep(0.05)
    return limit, [p for p in processes if p.alive()]


def log_tail(project: Path, lines: int = 30) -> str:
    try:
        return "\n".join((project / "session.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- projects


def measuring_project(root: Path, models: int = 2) -> Path:
    """Budget files whose ``.tflite`` sources take MEASURE_S each to time: a run that is always
    mid-measurement when it is killed."""
    (root / "models").mkdir(parents=True)
    (root / "budgets").mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    for i in range(models):
        (root / "models" / f"m{i}.tflite").write_bytes(chain_model([256] * 30))
        (root / "budgets" / f"m{i}.toml").write_text(
            LOOSE_BUDGET.format(name=f"m{i}")
            + "\n[variants.float32.latency.builtin]\nmedian = \"1 s\"\n"
            + "\n[variants.float32.runtime]\n"
            + f"timing = {{ min_runs = 10, min_seconds = {MEASURE_S} }}\n")
    return root


def kill_controller_trial(root: Path) -> dict[str, Any]:
    """SIGKILL the controller of a -n 2 run mid-measurement: how long until all is gone."""
    project = measuring_project(root)
    session = start_session(project, "-n", "2", "--tflite-delegates=builtin",
                            "--tflite-timeout=300")
    seen: list[Process] = []
    with cleaned_up(session, seen):
        seen += wait_for_measurement(session, project)
        killed = time.monotonic()
        os.kill(session.pid, signal.SIGKILL)
        session.wait(timeout=10)
        seconds, left = wait_until_gone(seen, start=killed)
    return {"seconds": seconds, "processes": len(seen), "left": [p.command for p in left],
            "measurement_workers": sum(map(is_measurement_worker, seen))}


def interrupt_trial(root: Path) -> dict[str, Any]:
    """Ctrl-C as a terminal sends it (SIGINT to the foreground group) mid-measurement."""
    project = measuring_project(root)
    session = start_session(project, "-n", "2", "--tflite-delegates=builtin",
                            "--tflite-timeout=300")
    seen: list[Process] = []
    with cleaned_up(session, seen):
        seen += wait_for_measurement(session, project)
        start = time.monotonic()
        os.killpg(session.pid, signal.SIGINT)
        try:
            code: int | None = session.wait(timeout=EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            code = None
        exited = time.monotonic() - start
        _, left = wait_until_gone(seen)
    return {"seconds": exited, "exit_code": code, "left": [p.command for p in left],
            "log": log_tail(project)}


# ---------------------------------------------------------------- write trials


@dataclass
class Tally:
    trials: int = 0
    killed: int = 0  # trials the kill point fell inside the write (else it completed)
    corrupt: list[str] = field(default_factory=list)  # files half-written, or trusted when bad
    used_valid: int = 0  # entries or files the next run could use as they were
    redone: int = 0  # entries the next run made again (cache) or refused, to save again
    said_so: int = 0  # incomplete entries the next run named in a warning or an error
    silent: list[str] = field(default_factory=list)  # incomplete entries redone without a word

    def as_dict(self) -> dict[str, Any]:
        return {"kill trials run": self.trials, "killed mid-write": self.killed,
                "files found corrupt": len(self.corrupt), "corrupt": self.corrupt[:10],
                "used valid": self.used_valid, "redone": self.redone, "said so": self.said_so,
                "silent": self.silent[:10]}


def controller_project(root: Path, models: int = 4, workers: int = 4) -> Path:
    """Budget files with ``.tflite`` sources, a -n ``workers`` run of them (reports, baseline and
    budget rewrite), and the line counts of each write."""
    (root / "models").mkdir(parents=True)
    (root / "budgets").mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "killpoint.py").write_text(KILLPOINT)
    (root / "replay.py").write_text(REPLAY)
    (root / "conftest.py").write_text(CONTROLLER_CONFTEST)
    for i in range(models):
        (root / "models" / f"m{i}.tflite").write_bytes(chain_model([32 * (i + 1)] * (10 + i)))
        (root / "budgets" / f"m{i}.toml").write_text(LOOSE_BUDGET.format(name=f"m{i}"))
    session = start_session(root, "-n", str(workers), "--tflite-no-runtime", "--tflite-report=full.json",
                            "--tflite-baseline-save=base", "--tflite-update-budgets")
    with cleaned_up(session, []):
        code = session.wait(timeout=300)
    assert code == 0, log_tail(root)
    for budget in (root / "budgets").glob("*.toml"):
        (root / "budgets" / f"{budget.stem}.tight").write_text(budget.read_text())
    counts = {kind: replay(root, kind, "#count", count=True) for kind in WRITE_KINDS}
    (root / "counts.json").write_text(json.dumps(counts))
    return root


def replay(project: Path, kind: str, tag: str, kill_at: int = 0, count: bool = False) -> int:
    """Run one write kind in a process killed at line ``kill_at``: its exit code (-9: killed),
    or in count mode the number of lines the complete write took."""
    counts = project / "count.out"
    if kind == "update_budget_files":
        for budget in (project / "budgets").glob("*.toml"):
            budget.write_text(LOOSE_BUDGET.format(name=budget.stem))  # so that it rewrites
    result = subprocess.run(
        [sys.executable, "replay.py", kind, str(project), tag], cwd=project, capture_output=True,
        env=inner_environment(KILL_TARGET=kind, KILL_AT=str(kill_at),
                              **({"KILL_COUNTS": str(counts)} if count else {})), timeout=120)
    assert result.returncode in (0, -signal.SIGKILL), result.stderr.decode()[-3000:]
    return int(counts.read_text()) if count else result.returncode


def write_trial(project: Path, kind: str, rng: random.Random, tally: Tally, trial: int) -> None:
    """One seeded kill inside one write kind, then what the next run finds."""
    total = json.loads((project / "counts.json").read_text())[kind]
    code = replay(project, kind, f"#{trial}", kill_at=rng.randint(1, total))
    tally.trials += 1
    tally.killed += code == -signal.SIGKILL
    {"publish": check_reports, "save": check_baseline,
     "update_budget_files": check_budgets}[kind](project, tally)


def check_reports(project: Path, tally: Tally) -> None:
    # Each report is a whole one (this trial's or the last), or absent; never half of one.
    for name, whole in (("r.json", lambda t: len(json.loads(t)["entries"]) == 4),
                        ("r.html", lambda t: t.rstrip().endswith("</html>")),
                        ("r.md", lambda t: t.startswith("<!-- pytest-tflite:"))):
        path = project / name
        if not path.exists():
            continue
        try:
            ok = whole(path.read_text())
        except ValueError:
            ok = False
        if ok:
            tally.used_valid += 1
        else:
            tally.corrupt.append(str(path))


def check_baseline(project: Path, tally: Tally) -> None:
    from pytest_tflite.baseline import Baseline, BaselineError

    base = project / "base"
    for path in base.rglob("*.json"):
        try:
            json.loads(path.read_text())
        except ValueError:
            tally.corrupt.append(str(path))
    baseline = Baseline.open(base)  # the full run saved one: a manifest is always there
    for i in range(4):
        try:
            found = baseline.lookup(f"m{i}", "float32")
        except BaselineError as exc:
            # Refused, with what to do: the next --tflite-baseline-save redoes it.
            assert "save the baseline again" in str(exc), exc
            tally.redone += 1
            tally.said_so += 1
            continue
        model = (project / "models" / f"m{i}.tflite").read_bytes()
        if found is None or found.tflite is None or found.tflite.read_bytes() != model:
            tally.corrupt.append(f"{base}/m{i}: lookup gave {found}")
        else:
            tally.used_valid += 1


def check_budgets(project: Path, tally: Tally) -> None:
    from pytest_tflite.budget import load

    for budget in sorted((project / "budgets").glob("*.toml")):
        text = budget.read_text()
        whole = text in (LOOSE_BUDGET.format(name=budget.stem), budget.with_suffix(".tight").read_text())
        try:
            tomllib.loads(text)
            load(budget)
        except Exception:
            whole = False
        if whole:
            tally.used_valid += 1
        else:
            tally.corrupt.append(f"{budget}: {text!r}")


def cache_trial(directory: Path, rng: random.Random, tally: Tally, totals: dict[str, int],
                users: int = 4, target: str = "get_or_create") -> None:
    """``users`` processes sharing one cache, each killed at its own point; then a clean user.
    With several, a survivor usually completes what the killed left; one alone leaves it.
    ``target``: kill points over all of ``get_or_create``, or only its writes (``put``)."""
    import shutil

    shutil.rmtree(directory, ignore_errors=True)  # so that the killed users write, not hit
    script = directory.parent / "cache_user.py"
    processes = [subprocess.Popen(
        [sys.executable, str(script), str(directory), ",".join(rng.sample(CACHE_KEYS, 4))],
        cwd=script.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=inner_environment(KILL_TARGET=target, KILL_AT=str(rng.randint(1, totals[target]))))
        for _ in range(users)]
    for process in processes:
        _, error = process.communicate(timeout=120)
        assert process.returncode in (0, -signal.SIGKILL), error.decode()[-3000:]
        tally.killed += process.returncode == -signal.SIGKILL
    tally.trials += 1
    # What the killed users left: files under their final names must be whole; an entry
    # missing its note (or the reverse) must be named by the next user.
    incomplete = []
    for key in CACHE_KEYS:
        model, note = directory / key[:2] / f"{key}.tflite", directory / key[:2] / f"{key}.json"
        if note.exists():
            try:
                json.loads(note.read_text())
            except ValueError:
                tally.corrupt.append(str(note))
        if model.exists() and len(model.read_bytes()) != 200_000:
            tally.corrupt.append(str(model))
        if model.exists() != note.exists():
            incomplete.append(str(model))
    outcome = json.loads(run_cache_user(directory, CACHE_KEYS))
    tally.corrupt += ["a cache user got wrong content"] * outcome["wrong"]
    tally.used_valid += outcome["hits"]
    tally.redone += outcome["redone"]
    for path in incomplete:
        if any(path in warning for warning in outcome["warnings"]):
            tally.said_so += 1
        else:
            tally.silent.append(path)


def run_cache_user(directory: Path, keys: list[str], **environment: str) -> str:
    script = directory.parent / "cache_user.py"
    result = subprocess.run([sys.executable, str(script), str(directory), ",".join(keys)],
                            cwd=script.parent, capture_output=True, timeout=120,
                            env=inner_environment(**environment))
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return result.stdout.decode().strip().splitlines()[-1]


def cache_setup(root: Path) -> tuple[Path, dict[str, int]]:
    """A cache user script, and the lines a complete first pass over every key takes: in all of
    ``get_or_create``, and in its writes (``put``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "killpoint.py").write_text(KILLPOINT)
    (root / "cache_user.py").write_text(CACHE_USER)
    totals = {}
    for target in ("get_or_create", "put"):
        counts = root / f"count.{target}"
        run_cache_user(root / target, CACHE_KEYS, KILL_TARGET=target, KILL_COUNTS=str(counts))
        totals[target] = int(counts.read_text())
    return root / "cache", totals


def summary(seconds: list[float]) -> dict[str, float]:
    return {"max": max(seconds), "median": statistics.median(seconds)}


# ---------------------------------------------------------------- the suite's samples


def test_a_killed_controller_takes_every_worker_with_it(tmp_path: Path,
                                                        record_property: Any) -> None:
    found = kill_controller_trial(tmp_path)
    record_property("orphan_cleanup_seconds", found["seconds"])
    assert found["measurement_workers"] >= 1
    assert not found["left"], (f"alive {GONE_BOUND_S:g} s after the controller's SIGKILL: "
                               f"{found['left']}")


def test_ctrl_c_stops_the_run_promptly_with_nothing_left(tmp_path: Path) -> None:
    found = interrupt_trial(tmp_path)
    # An exit code at all means the run ended within EXIT_BOUND_S: it did not wait out its
    # MEASURE_S measurements. INTERRUPTED: it stopped because of Ctrl-C, not by finishing.
    assert found["exit_code"] == pytest.ExitCode.INTERRUPTED, found
    assert found["seconds"] < EXIT_BOUND_S < MEASURE_S
    assert not found["left"], f"alive {GONE_BOUND_S:g} s after Ctrl-C's exit: {found['left']}"


def test_killed_writes_leave_whole_files_and_the_next_run_says_what_it_redid(
        tmp_path: Path) -> None:
    rng = random.Random(10)
    tally = Tally()
    project = controller_project(tmp_path / "project", workers=2)  # the bench's run is -n 4
    for trial, kind in enumerate(WRITE_KINDS):  # many more in bench/hardening_kill.py
        write_trial(project, kind, rng, tally, trial)
    directory, total = cache_setup(tmp_path / "cache")
    for users, target in ((4, "get_or_create"), (1, "put")):
        cache_trial(directory, rng, tally, total, users, target)
    assert not tally.corrupt, tally.as_dict()
    assert not tally.silent, tally.as_dict()
    assert tally.killed, tally.as_dict()  # the seeded points did land inside writes


def test_a_half_written_cache_entry_is_redone_with_a_warning_naming_it(tmp_path: Path) -> None:
    from pytest_tflite.conversion.cache.storage import ConversionCache
    from pytest_tflite.errors import CacheEntryWarning

    cache = ConversionCache(tmp_path)
    key = CACHE_KEYS[0]
    cache.put(key, b"model", {})
    model, note = cache.paths(key)
    note.unlink()  # killed between the model and its note
    with pytest.warns(CacheEntryWarning, match=rf"{model}.*its note {note.name} is missing"):
        assert cache.get_or_create(key, lambda: (b"model", {}))[3] is False
    assert cache.get_or_create(key, lambda: (b"other", {}))[1:] == (b"model", cache.get(key)[1],
                                                                     True)
    note.write_text('{"size_bytes": 5, "sha2')  # a torn note (a writer without rename)
    with pytest.warns(CacheEntryWarning, match="unreadable"):
        assert cache.get(key) is None
    cache.put(key, b"model", {})
    model.write_bytes(b"MODEL")  # same size, other bytes
    with pytest.warns(CacheEntryWarning, match="does not match the hash"):
        assert cache.get(key) is None
    assert not list(tmp_path.rglob(".*.tmp"))


def test_a_held_cache_lock_times_out_naming_the_lock_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_tflite.conversion.cache import storage as cache_module
    from pytest_tflite.errors import ConversionError

    cache = cache_module.ConversionCache(tmp_path)
    key = CACHE_KEYS[0]
    lock = tmp_path / key[:2] / f"{key}.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from filelock import FileLock\n"
         "with FileLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)", str(lock)],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        monkeypatch.delenv(cache_module.LOCK_TIMEOUT_VARIABLE, raising=False)
        monkeypatch.setattr(cache_module, "LOCK_TIMEOUT_S", 0.3)
        with pytest.raises(ConversionError, match=rf"waited 0.3 s for the conversion cache lock "
                                                  rf"{lock}.*If no run is going, delete {lock}"):
            cache.get_or_create(key, lambda: (b"model", {}))
        monkeypatch.setenv(cache_module.LOCK_TIMEOUT_VARIABLE, "0.2")
        with pytest.raises(ConversionError, match=r"waited 0\.2 s"):
            cache.get_or_create(key, lambda: (b"model", {}))
        monkeypatch.setenv(cache_module.LOCK_TIMEOUT_VARIABLE, "soon")
        with pytest.raises(ConversionError, match="PYTEST_TFLITE_LOCK_TIMEOUT='soon'"):
            cache.get_or_create(key, lambda: (b"model", {}))
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.delenv(cache_module.LOCK_TIMEOUT_VARIABLE)
    assert cache.get_or_create(key, lambda: (b"model", {}))[1] == b"model"  # free again


def test_written_files_keep_their_permissions_and_leave_no_temporary(tmp_path: Path) -> None:
    from pytest_tflite.files import write_atomic

    path = tmp_path / "budget.toml"
    path.write_text("old")
    path.chmod(0o640)
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o640
    fresh = tmp_path / "fresh.json"
    write_atomic(fresh, b"{}")
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["budget.toml", "fresh.json"]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
