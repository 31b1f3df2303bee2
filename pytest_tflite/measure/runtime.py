"""Runtime measurement, parent side: one fresh worker process per (model, delegate).

A fresh process per delegate keeps peak RSS honest (a reused process under-reports it as the
allocator keeps freed memory) and contains crashes: a segfault, abort or hang becomes that
delegate's ``error`` with the reason, and the session goes on. Native stderr is kept for the
reason and never shown to the user.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..nodes import NodePlacement
from ..op_names import builtin_op_names
from ..results import DelegateResult
from ..settings import RuntimeSettings
from . import lock
from .isolated import WorkerFailed, call_worker, explained

# What the ``measure`` command reads of the settings; the rest is the parent's.
WORKER_KEYS = ("threads", "warmup", "timing", "input_shapes", "seed", "batch_sizes")


def measure_delegate(
    model_path: Path, delegate: str, settings: RuntimeSettings, *, lock_file: Path | None = None,
    sample_path: Path | None = None, runs: int = 1,
) -> DelegateResult:
    """The JSON contract's ``delegates[NAME]`` for one delegate, whatever happens to the worker.

    ``sample_path``: an ``.npz`` of ``input_0``, ``input_1``... to run instead of random data.
    ``runs``: the delegates measured in turn, for how long another run may hold the timing lock.
    """
    wire = settings.worker_json()
    worker_settings: dict[str, Any] = {key: wire[key] for key in WORKER_KEYS}
    worker_settings["sample_path"] = str(sample_path) if sample_path else None
    arguments = ["measure", str(model_path), delegate, json.dumps(worker_settings)]
    with lock.exclusive(lock_file, lock.wait_limit(settings.timeout, runs)):
        try:
            found = call_worker(arguments, settings.timeout, settings.max_memory)
        except WorkerFailed as exc:
            return DelegateResult("error", explained(exc), threads=settings.threads)
    result = DelegateResult.from_json(found)
    result.threads = result.threads or settings.threads
    _name_custom_ops(result.placement)
    return result


def _name_custom_ops(placement: list[NodePlacement] | None) -> None:
    """The worker names a custom op by its code alone, as the runtime does; the flatbuffer
    view, budget files and reports say ``CUSTOM:code``, and one the delegate left is
    ``custom``, not a fallback to a builtin kernel."""
    if placement is None:
        return
    builtin = builtin_op_names()
    for node in placement:
        if node.op not in builtin:
            node.op = f"CUSTOM:{node.op}"
            if node.placed == "fallback":
                node.placed = "custom"


def measure_delegates(
    model_path: Path, delegates: Iterable[str], settings: RuntimeSettings, *,
    lock_file: Path | None = None, sample: Any = None,
) -> dict[str, DelegateResult]:
    """Each delegate in turn; ``sample`` (an array, or one per input) replaces random inputs."""
    delegates = list(delegates)
    if sample is None:
        return {d: measure_delegate(model_path, d, settings, lock_file=lock_file,
                                    runs=len(delegates)) for d in delegates}
    import numpy as np

    arrays = list(sample) if isinstance(sample, (list, tuple)) else [sample]
    with tempfile.TemporaryDirectory(prefix="pytest-tflite-") as scratch:
        sample_path = Path(scratch, "sample.npz")
        named: dict[str, Any] = {f"input_{i}": np.asarray(a) for i, a in enumerate(arrays)}
        np.savez(sample_path, **named)
        return {d: measure_delegate(model_path, d, settings, lock_file=lock_file,
                                    sample_path=sample_path, runs=len(delegates))
                for d in delegates}
