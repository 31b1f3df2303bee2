"""Runtime settings, typed and resolved in one place.

``RuntimeSettings``: how one model variant is measured. ``resolve_runtime`` is the one function
that builds it, from its layers: command line > the variant's ``[runtime]`` >
``[defaults.runtime]`` > ini > the built-in defaults (``runtime_defaults``). Every time here is
in seconds; a budget file's ``runtime.timeout`` is the one input in milliseconds (a budget file's
durations parse to milliseconds), converted where its table is read (``table_layer``).

A ground-floor room: measurement receives these settings and the plugin imports them, so nothing
here imports pydantic; budget tables arrive already loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .runtime_defaults import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_SEED,
    DEFAULT_THREADS,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TIMING,
    DEFAULT_WARMUP,
)


class Table(Protocol):
    """A budget file's ``[runtime]`` or ``[defaults.runtime]`` table (``budget.RuntimeTable``)."""

    def model_dump(self, *, exclude_none: bool = ...) -> dict[str, Any]: ...


# A layer: some of RuntimeSettings' fields by name (timeout in seconds); None or absent falls
# through to the layer below. ``warmup``, ``timing`` and ``compare`` merge key by key.
Layer = Mapping[str, Any]


@dataclass(frozen=True)
class Runs:
    """Warm-up or timing: run until both a count and a time (seconds) are reached."""

    min_runs: int
    min_seconds: float


@dataclass(frozen=True)
class CompareTiming:
    """How a latency comparison times its pairs; None leaves the worker's ``DEFAULT_COMPARE``."""

    min_pairs: int | None = None
    min_seconds: float | None = None
    max_seconds: float | None = None
    block_ms: float | None = None
    clock: str | None = None  # "auto", "cpu" or "wall"


@dataclass(frozen=True)
class RuntimeSettings:
    """How a model is measured, every layer resolved."""

    threads: int = DEFAULT_THREADS
    delegates: tuple[str, ...] = ()  # measured besides those the budgets name
    warmup: Runs = Runs(int(DEFAULT_WARMUP["min_runs"]), DEFAULT_WARMUP["min_seconds"])
    timing: Runs = Runs(int(DEFAULT_TIMING["min_runs"]), DEFAULT_TIMING["min_seconds"])
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    seed: int = DEFAULT_SEED
    batch_sizes: tuple[int, ...] = tuple(DEFAULT_BATCH_SIZES)
    timeout: float = DEFAULT_TIMEOUT_S  # seconds, for each worker run
    max_memory: int | None = None  # bytes; None: memory_cap's default for this machine
    compare: CompareTiming = CompareTiming()

    def worker_json(self) -> dict[str, Any]:
        """What the worker reads (``measure`` and ``compare`` commands): plain JSON values."""
        return {"threads": self.threads, "warmup": dataclasses.asdict(self.warmup),
                "timing": dataclasses.asdict(self.timing),
                "input_shapes": {name: list(shape) for name, shape in self.input_shapes.items()},
                "seed": self.seed, "batch_sizes": list(self.batch_sizes),
                "compare": {key: value for key, value in dataclasses.asdict(self.compare).items()
                            if value is not None}}


BUILT_IN = RuntimeSettings()
_MERGED = ("warmup", "timing", "compare")


def resolve_runtime(*, command_line: Layer | None = None, variant: Table | None = None,
                    defaults: Table | None = None,
                    ini: Layer | None = None) -> RuntimeSettings:
    """command line > the variant's ``[runtime]`` > ``[defaults.runtime]`` > ini > built-in."""
    merged: dict[str, Any] = {}
    for layer in (ini, table_layer(defaults), table_layer(variant), command_line):
        for key, value in (layer or {}).items():
            if key not in _FIELDS:
                raise TypeError(f"unknown runtime setting {key!r}")
            if value is None:
                continue
            if key in _MERGED:
                given = value if isinstance(value, Mapping) else dataclasses.asdict(value)
                merged[key] = {**merged.get(key, {}),
                               **{k: v for k, v in given.items() if v is not None}}
            else:
                merged[key] = value
    return _built(merged)


def table_layer(table: Table | None) -> Layer:
    """A budget file's ``[runtime]`` table as a layer: its timeout from milliseconds to seconds."""
    if table is None:
        return {}
    layer: dict[str, Any] = table.model_dump(exclude_none=True)
    if "timeout" in layer:
        layer["timeout"] = float(layer["timeout"]) / 1000
    return layer


def _built(merged: Mapping[str, Any]) -> RuntimeSettings:
    base = BUILT_IN  # read at call time: a test may swap in faster defaults
    changed: dict[str, Any] = {}
    for key, value in merged.items():
        if key in _MERGED:
            changed[key] = type(getattr(base, key))(
                **{**dataclasses.asdict(getattr(base, key)), **value})
        elif key in ("delegates", "batch_sizes"):
            changed[key] = tuple(value)
        elif key == "input_shapes":
            changed[key] = {name: tuple(int(d) for d in shape) for name, shape in value.items()}
        elif key == "timeout":
            changed[key] = float(value)
        else:
            changed[key] = value
    return dataclasses.replace(base, **changed)


_FIELDS = frozenset(f.name for f in dataclasses.fields(RuntimeSettings))
