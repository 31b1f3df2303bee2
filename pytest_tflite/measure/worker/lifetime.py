"""The worker's own limits, set before anything heavy is imported: it dies with its parent and
runs under the memory cap the parent chose.

The parent passes both through the environment (``PARENT_VARIABLE``, ``CAP_VARIABLE``) so that
no ``preexec_fn`` runs between fork and exec in a threaded parent. Standard library only.
"""

from __future__ import annotations

import os
import signal
import sys

PARENT_VARIABLE = "PYTEST_TFLITE_PARENT_PID"
CAP_VARIABLE = "PYTEST_TFLITE_MAX_MEMORY"  # bytes of address space; absent: no cap
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def bind_to_parent() -> None:
    """SIGKILL this process when the thread that spawned it dies (Linux), even by SIGKILL.

    A pytest killed mid-measurement otherwise leaves its worker timing for minutes, reparented
    to init. The parent's pid guards the race where the parent died before this ran.
    """
    expected = os.environ.get(PARENT_VARIABLE)
    if not sys.platform.startswith("linux") or not expected:
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the parent's process-group kill still holds
        return
    if str(os.getppid()) != expected:
        os._exit(70)  # the parent is already gone: nobody will read the result


def apply_memory_cap() -> int | None:
    """Limit this process's address space to the cap; the cap in bytes, or None without one.

    The backstop behind the parent's static refusal: an allocation past it fails here (a
    ``MemoryError`` or a native allocation failure) instead of taking the machine down.
    """
    value = os.environ.get(CAP_VARIABLE)
    if not value:
        return None
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    cap = int(value)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY and hard < cap:
        cap = hard  # never ask for more than an outer limit already allows
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return cap


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` reads as an allocation past the cap: a MemoryError, or the interpreter's
    RuntimeError with no message at all, which is how its arena allocation fails (seen on
    ``allocate_tensors()`` under RLIMIT_AS; every other failure of it carries a message)."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and not str(exc).strip() and bool(os.environ.get(CAP_VARIABLE))
