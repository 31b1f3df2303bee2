"""A cross-process reader-writer lock: timing runs alone, heavy work shares.

Under xdist a latency measured while another worker converts or evaluates a model reads the
neighbour's load. Timing takes the lock exclusively; conversion and evaluation take it shared,
so they still run side by side with each other. POSIX ``flock``; elsewhere a no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def lock_path(rootdir: Path) -> Path:
    """One lock per project, shared by every xdist worker of a run."""
    digest = hashlib.sha256(str(rootdir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"pytest-tflite-{digest}.lock"


@contextlib.contextmanager
def _flock(path: Path | None, exclusive: bool) -> Iterator[None]:
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
        fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def exclusive(path: Path | None) -> contextlib.AbstractContextManager[None]:
    return _flock(path, exclusive=True)


def shared(path: Path | None) -> contextlib.AbstractContextManager[None]:
    return _flock(path, exclusive=False)
