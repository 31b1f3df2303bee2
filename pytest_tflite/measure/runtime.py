"""Runtime measurement, parent side: one fresh worker process per (model, delegate).

A fresh process per delegate keeps peak RSS honest (a reused process under-reports it as the
allocator keeps freed memory) and contains crashes: a segfault, abort or hang becomes that
delegate's ``error`` with the reason, and the session goes on. Native stderr is kept for the
reason and never shown to the user.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..results import DelegateResult
from . import lock
from .isolated import WorkerFailed, call_worker, explained
from .worker.protocol import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_SEED,
    DEFAULT_THREADS,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TIMING,
    DEFAULT_WARMUP,
)

BUILTIN_DEFAULTS: dict[str, Any] = {
    "threads": DEFAULT_THREADS,
    "delegates": [],
    "warmup": DEFAULT_WARMUP,
    "timing": DEFAULT_TIMING,
    "input_shapes": {},
    "seed": DEFAULT_SEED,
    "batch_sizes": DEFAULT_BATCH_SIZES,
    "timeout": DEFAULT_TIMEOUT_S * 1000,  # milliseconds, like every time in a budget file
}


def resolve_settings(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge settings from lowest to highest precedence; unset (None) values fall through."""
    merged: dict[str, Any] = json.loads(json.dumps(BUILTIN_DEFAULTS))
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is None:
                continue
            if isinstance(value, Mapping) and key in ("warmup", "timing"):
                merged[key] = {**merged[key], **{k: v for k, v in value.items() if v is not None}}
            else:
                merged[key] = value
    return merged


def measure_delegate(
    model_path: Path, delegate: str, settings: Mapping[str, Any], *, lock_file: Path | None = None,
    sample_path: Path | None = None, runs: int = 1,
) -> DelegateResult:
    """The JSON contract's ``delegates[NAME]`` for one delegate, whatever happens to the worker.

    ``sample_path``: an ``.npz`` of ``input_0``, ``input_1``... to run instead of random data.
    ``runs``: the delegates measured in turn, for how long another run may hold the timing lock.
    """
    timeout_s = float(settings.get("timeout") or DEFAULT_TIMEOUT_S * 1000) / 1000
    worker_settings = {k: settings.get(k) for k in
                       ("threads", "warmup", "timing", "input_shapes", "seed", "batch_sizes")}
    worker_settings["sample_path"] = str(sample_path) if sample_path else None
    arguments = ["measure", str(model_path), delegate, json.dumps(worker_settings)]
    with lock.exclusive(lock_file, lock.wait_limit(timeout_s, runs)):
        try:
            found = call_worker(arguments, timeout_s, settings.get("max_memory"))
        except WorkerFailed as exc:
            return DelegateResult("error", explained(exc), threads=settings.get("threads"))
    result = DelegateResult.from_json(found)
    result.threads = result.threads or settings.get("threads")
    return result


def measure_delegates(
    model_path: Path, delegates: Iterable[str], settings: Mapping[str, Any], *,
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
