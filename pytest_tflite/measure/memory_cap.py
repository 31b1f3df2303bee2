"""The memory cap every worker runs under (``runtime.max_memory``), and its default.

Default: the memory this process may use — the cgroup's limit when one is set (a CI container),
else the machine's MemTotal — divided by the number of xdist workers, since each may run one
worker at a time. A model whose planned arena alone exceeds the cap is refused before it runs;
the worker's RLIMIT_AS (worker/lifetime.py) is the backstop for what the plan cannot see.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import ModelError

_UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a page-rounded 2**63 - 1


class OverCap(ModelError):
    """The model needs more memory than the worker may use."""


def gib(value: float) -> str:
    from ..units import format_bytes

    return f"{value / 2**30:.1f} GiB" if value >= 2**30 else format_bytes(value)


def machine_memory() -> int | None:
    """Bytes this process may use: the tighter of its cgroup's limit and MemTotal."""
    limits = [v for v in (_cgroup_limit(), _mem_total()) if v is not None]
    return min(limits) if limits else None


def default_cap() -> int | None:
    """``machine_memory() / xdist workers``; None where neither figure can be read."""
    memory = machine_memory()
    if memory is None:
        return None
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
    return memory // max(1, int(workers) if workers.isdigit() else 1)


# The cap of the measurement under way (engine.measure, a conversion's sanity run): every worker
# started inside ``limit()`` runs under it without each call site passing it along.
_current: list[int] = []


def resolve(max_memory: int | None = None) -> int | None:
    """The cap a worker runs under: ``max_memory`` when given, else the one ``limit()`` set,
    else the default."""
    if max_memory:
        return int(max_memory)
    return _current[-1] if _current else default_cap()


@contextlib.contextmanager
def limit(max_memory: int | None) -> Iterator[int | None]:
    """Run the block's workers under ``max_memory`` (None: the default); yields the cap."""
    cap = resolve(max_memory)
    if cap is None:
        yield None
        return
    _current.append(cap)
    try:
        yield cap
    finally:
        _current.pop()


def over_cap(path: str, planned_arena: int | None, cap: int | None) -> str | None:
    """Why the model is refused when its static plan alone exceeds the cap (running it could
    only fail), else None."""
    if cap is None or planned_arena is None or planned_arena <= cap:
        return None
    return (f"{path}: needs {gib(planned_arena)} for its tensors (planned arena), the memory cap "
            f"is {gib(cap)}: raise runtime.max_memory (or --tflite-max-memory) if this machine "
            f"has it")


def refuse_over_cap(path: str, planned_arena: int | None, cap: int | None) -> None:
    """Raise ``OverCap`` with ``over_cap``'s reason."""
    reason = over_cap(path, planned_arena, cap)
    if reason is not None:
        raise OverCap(reason)


def _mem_total() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_limit() -> int | None:
    """``memory.max`` (cgroup v2) or ``memory.limit_in_bytes`` (v1) of this process's cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    candidates: list[Path] = []
    for line in lines:
        _, controllers, group = [*line.split(":", 2), "", ""][:3]
        group = group.lstrip("/")
        if controllers == "":
            candidates += [Path("/sys/fs/cgroup", group, "memory.max"), Path("/sys/fs/cgroup/memory.max")]
        elif "memory" in controllers.split(","):
            root = Path("/sys/fs/cgroup/memory")
            candidates += [root / group / "memory.limit_in_bytes", root / "memory.limit_in_bytes"]
    for candidate in candidates:
        try:
            text = candidate.read_text(encoding="ascii").strip()
        except OSError:
            continue
        if text == "max":
            return None
        if text.isdigit():
            value = int(text)
            return None if value >= _UNLIMITED else value
    return None
