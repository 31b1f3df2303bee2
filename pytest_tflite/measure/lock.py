"""A cross-process reader-writer lock: timing runs alone, heavy work shares.

Under xdist a latency measured while another worker converts or evaluates a model reads the
neighbour's load. Timing takes the lock exclusively; conversion and evaluation take it shared,
so they still run side by side with each other. POSIX ``flock``; elsewhere a no-op.

A holder that dies releases the lock with its last descriptor; one that hangs would hold it
forever, so every wait has a limit (``wait_limit``) and ends in ``LockTimeout`` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import TFLiteError

# Room beyond the holder's own limits: process start, static checks, writing results.
MARGIN_S = 60.0


class LockTimeout(TFLiteError):
    """Waited past the limit for the lock another run holds."""


def wait_limit(timeout_s: float, runs: int = 1) -> float:
    """How long to wait for holders doing ``runs`` worker runs of at most ``timeout_s`` each
    (the timing lock is held up to the worker timeout per delegate), plus a margin: each other
    xdist worker may take its turn first."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
    turns = max(1, int(workers) if workers.isdigit() else 1)
    return timeout_s * max(1, runs) * turns + MARGIN_S


def lock_path(rootdir: Path) -> Path:
    """One lock per project, shared by every xdist worker of a run."""
    digest = hashlib.sha256(str(rootdir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"pytest-tflite-{digest}.lock"


@contextlib.contextmanager
def _flock(path: Path | None, exclusive: bool, wait_s: float) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    if path is None:
        yield
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _acquire(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, path, wait_s)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _acquire(descriptor: int, mode: int, path: Path, wait_s: float) -> None:
    import fcntl

    deadline = time.monotonic() + wait_s
    pause = 0.01
    while True:
        try:
            fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"waited {wait_s:g} s for the lock {path}: another pytest-tflite run holds it "
                    f"and has not let go (a hung measurement?). Stop that run; if none is going, "
                    f"delete {path}") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.25)


def exclusive(path: Path | None, wait_s: float) -> contextlib.AbstractContextManager[None]:
    return _flock(path, exclusive=True, wait_s=wait_s)


def shared(path: Path | None, wait_s: float) -> contextlib.AbstractContextManager[None]:
    return _flock(path, exclusive=False, wait_s=wait_s)
