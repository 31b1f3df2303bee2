"""Every worker runs bounded: under a memory cap, killed with its process group on a timeout or
an interrupt, dead when its parent dies, its output read leniently and only its last part; and
lock waits end with an error naming the lock file.

The memory-cap session runs under an outer RLIMIT_AS of 6 GiB, so a cap that does not hold
fails this test instead of taking the machine down.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_tflite.measure import isolated, lock, memory_cap
from tests.helpers.models import Op, Subgraph, Tensor, build_model

GIB = 2**30
# The processes these tests wait on would live 120 s if the feature under test failed; bounds of
# a fraction of that catch it and still hold on a loaded machine (4 busy loops on 2 cores).
BOUND_S = 30.0
ROWS = 12 * GIB // 16  # rows of four float32: a 12 GiB intermediate from a 16-byte input


def tile_model(declared_rows: int) -> bytes:
    """x[1,4] -> TILE(multiples [ROWS, 1]) -> MEAN over axis 0 -> y[4]; no constant data but the
    two small index vectors. ``declared_rows`` is the shape the file states for the tiled
    tensor: ROWS is honest (the static plan sees 12 GiB), 1 hides it until TILE's Prepare."""
    return build_model([Subgraph(
        tensors=[Tensor("x", [1, 4]), Tensor("multiples", [2], dtype="int32", data=[ROWS, 1]),
                 Tensor("tiled", [declared_rows, 4]), Tensor("axis", [1], dtype="int32", data=[0]),
                 Tensor("y", [4])],
        ops=[Op("TILE", [0, 1], [2]), Op("MEAN", [2, 3], [4])],
        inputs=[0], outputs=[4])])


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_gone(pid: int, seconds: float = BOUND_S) -> float | None:
    """Seconds until ``pid`` is gone, or None if it outlived ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not alive(pid):
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def run_capped_session(root: Path, delegates: tuple[str, ...], cap: str = "2 GiB",
                       outer_gib: int = 6) -> tuple[subprocess.CompletedProcess[str], str, int]:
    """One pytest session over budget files for the honest and the hidden 12 GiB model, each
    under ``runtime.max_memory = cap`` with a latency budget per delegate, run inside an outer
    RLIMIT_AS of ``outer_gib`` so a broken cap fails the run, not the machine. Returns the
    finished process, its output and the peak RSS of every worker it started (bytes)."""
    (root / "honest.tflite").write_bytes(tile_model(ROWS))
    (root / "hidden.tflite").write_bytes(tile_model(1))
    (root / "budgets").mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    latency = "".join(f'latency.{d} = {{ median = "10 s" }}\n' for d in delegates)
    for name in ("honest", "hidden"):
        (root / "budgets" / f"{name}.toml").write_text(textwrap.dedent(f"""
            source = "../{name}.tflite"
            [defaults.runtime]
            max_memory = "{cap}"
            timing = {{ min_runs = 1, min_seconds = 0 }}
            warmup = {{ min_runs = 1, min_seconds = 0 }}
            [variants.float]
        """) + latency)
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({outer_gib} * 2**30, {outer_gib} * 2**30))
        import pytest
        code = pytest.main(["-p", "no:randomly", "-p", "no:cacheprovider", "-n", "0",
                            "--tflite-report=report.json", "budgets"])
        print("CHILDREN_MAXRSS_KIB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        sys.exit(int(code))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                          text=True, timeout=300, env=env)
    output = done.stdout + done.stderr
    kib = output.split("CHILDREN_MAXRSS_KIB")[1].split()[0] if "CHILDREN_MAXRSS_KIB" in output \
        else "0"
    return done, output, int(kib) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc: Linux")
def test_a_model_past_the_memory_cap_is_refused_or_stopped_and_the_session_survives(
        tmp_path: Path) -> None:
    done, output, children_bytes = run_capped_session(tmp_path, ("builtin",))
    assert done.returncode == 1, output  # tests failed; the session itself ran to its end
    assert "INTERNALERROR" not in output and "Traceback" not in output, output
    # The honest plan is refused before any worker starts; the hidden one stops at the cap.
    assert "needs 12.0 GiB for its tensors (planned arena), the memory cap is 2.0 GiB" in output
    assert "builtin: exceeded the memory cap of 2.0 GiB (runtime.max_memory)" in output
    assert "2 failed" in output, output
    entries = {e["model"]: e for e in json.loads((tmp_path / "report.json").read_text())["entries"]}
    assert {name: e["verdict"] for name, e in entries.items()} == {"honest": "error",
                                                                   "hidden": "error"}
    assert entries["honest"]["refused"].endswith(
        "honest.tflite: needs 12.0 GiB for its tensors (planned arena), the memory cap is "
        "2.0 GiB: raise runtime.max_memory (or --tflite-max-memory) if this machine has it")
    assert entries["hidden"]["refused"] is None  # its plan fit: the backstop stopped it
    assert entries["honest"]["planned_arena_bytes"] >= 12 * GIB
    # Every measurement worker of the session stayed under the cap.
    assert 0 < children_bytes < 2 * GIB, children_bytes


def test_the_default_cap_is_the_memory_divided_by_the_xdist_workers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    total = None
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            total = int(line.split()[1]) * 1024
    memory = memory_cap.machine_memory()
    assert memory is not None and total is not None and 0 < memory <= total
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    assert memory_cap.default_cap() == memory // 4
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT")
    assert memory_cap.default_cap() == memory
    with memory_cap.limit(3 * GIB) as cap:
        assert cap == 3 * GIB and memory_cap.resolve() == 3 * GIB
    assert memory_cap.resolve() == memory


def fake_worker(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """The worker replaced by a script, started the way call_worker starts the real one."""
    monkeypatch.setattr(isolated, "worker_command",
                        lambda: [sys.executable, "-c", textwrap.dedent(code)])


def test_worker_output_is_decoded_leniently_and_only_its_tail_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_worker(monkeypatch, """
        import sys
        sys.stderr.buffer.write(b"\\xff\\xfe not utf-8 \\xc3\\n" * 400_000)  # 6 MB
        sys.stderr.buffer.write(b"the last words\\n")
        sys.exit(3)
    """)
    with pytest.raises(isolated.WorkerFailed) as failed:
        isolated.call_worker([], timeout=60)
    assert "worker exited 3" in failed.value.reason
    assert "the last words" in failed.value.reason
    assert "\ufffd" in failed.value.reason
    assert len(failed.value.reason) < 1000


def test_a_timeout_kills_the_workers_whole_process_group(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    fake_worker(monkeypatch, f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(120)
    """)
    start = time.monotonic()
    # 5 s: time enough for the fake worker to start its child and write its pid, even when loaded.
    with pytest.raises(isolated.WorkerFailed, match=r"timed out after 5 s"):
        isolated.call_worker([], timeout=5)
    assert time.monotonic() - start < BOUND_S  # killed at its timeout, not waited for (120 s)
    assert wait_gone(int(pid_file.read_text())) is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_a_worker_dies_with_its_parent_even_on_sigkill(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    parent = textwrap.dedent(f"""
        import sys
        from pytest_tflite.measure import isolated
        isolated.worker_command = lambda: [sys.executable, "-c", '''
        import os, time
        from pytest_tflite.measure.worker.lifetime import bind_to_parent
        bind_to_parent()
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(120)
        ''']
        isolated.call_worker([], timeout=120)
    """)
    process = subprocess.Popen([sys.executable, "-c", parent], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.05)
        worker = int(pid_file.read_text())
        assert alive(worker)
        process.kill()
        process.wait()
        assert wait_gone(worker) is not None, "the worker outlived its SIGKILLed parent"
    finally:
        process.kill()
        if pid_file.exists() and pid_file.read_text():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_a_lock_wait_on_a_hung_holder_times_out_naming_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "timing.lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with pytest.raises(lock.LockTimeout, match=rf"waited 0.5 s for the lock {path}.*delete"), \
                lock.shared(path, 0.5):
            pass
        assert 0.5 <= time.monotonic() - start < BOUND_S  # the holder holds on for 120 s
    finally:
        holder.kill()
        holder.wait()
    with lock.exclusive(path, 5):  # the holder's death released it
        pass


def test_the_timing_lock_waits_the_worker_timeout_per_delegate_plus_a_margin(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert lock.wait_limit(300, runs=3) == 300 * 3 + lock.MARGIN_S
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert lock.wait_limit(10, runs=1) == 10 * 2 + lock.MARGIN_S
