"""``tflite-budget init``'s budget file: a model measured in separate workers, written as TOML
that the untouched model keeps passing.

Static figures of the file (size, gzip, planned arena and state, delegation, sparsity) do not
move between runs: they get a small headroom. Runtime figures do move, with the machine's load:
they are measured ``runs`` times, each run in fresh workers, and bounded by the worst p90 seen
times (1 + a margin). The margin's default comes from ``bench/init_stability.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import TFLiteError
from .units import format_ms

if TYPE_CHECKING:
    from .results import DelegateResult, Measurement
    from .settings import RuntimeSettings

DEFAULT_HEADROOM = 0.05
# bench/init_stability.py on a shared 2-core machine: over 210 `pytest budgets/` runs after init
# (three models; xnnpack, and builtin in 90 of them; 60 beside two busy loops), the highest
# latency was 1.19 x the worst p90 of init's five runs. The margin is twice that excess.
DEFAULT_MARGIN = 0.4
MIN_RUNS = 5
DEFAULT_RUNS = 5
# Rounding up to a readable size adds at most this share of the limit on top of the headroom.
_SIZE_ROUNDING = 0.02
# Readable steps, largest first: (unit, the step in that unit, bytes per unit). Whole bytes
# only: a budget file refuses "1.23 MiB" (1289748.48 B).
_SIZE_STEPS = [("GiB", 10, 1024**3), ("GiB", 1, 1024**3), ("GiB", 0.25, 1024**3),
               ("MiB", 100, 1024**2), ("MiB", 10, 1024**2), ("MiB", 1, 1024**2), ("MiB", 0.5, 1024**2),
               ("MiB", 0.25, 1024**2), ("KiB", 100, 1024), ("KiB", 10, 1024), ("KiB", 5, 1024),
               ("KiB", 1, 1024), ("KiB", 0.5, 1024), ("KiB", 0.25, 1024), ("B", 100, 1),
               ("B", 10, 1), ("B", 1, 1)]
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Runs:
    """The model measured: its static figures, and each run's delegates (fresh workers)."""

    measurement: Measurement
    runs: list[dict[str, DelegateResult]]


def measure_rounds(path: Path, delegates: list[str], settings: RuntimeSettings,
                   rounds: int) -> tuple[Measurement, list[dict[str, DelegateResult]]]:
    """Static figures once, then ``rounds`` rounds of one fresh worker per delegate, under the
    memory cap (what ``tflite-budget measure`` does with one round)."""
    from .measure.memory_cap import limit, refuse_over_cap
    from .measure.runtime import measure_delegates
    from .measure.static import measure_static
    from .model import TFLiteModel

    model = TFLiteModel.from_path(path)
    measurement = measure_static(model)
    found: list[dict[str, DelegateResult]] = []
    if delegates:
        with limit(settings.max_memory) as cap:
            refuse_over_cap(str(path), measurement.planned_arena_bytes, cap)
            found = [measure_delegates(model.path, delegates, settings) for _ in range(rounds)]
    return measurement, found


def measure_runs(path: Path, delegates: list[str], settings: RuntimeSettings,
                 runs: int) -> Runs:
    """``measure_rounds``, refusing to write budgets from a round where a delegate failed."""
    measurement, rounds = measure_rounds(path, delegates, settings, runs)
    for found in rounds:
        failed = [f"{name}: {result.reason}" for name, result in found.items()
                  if result.status == "error"]
        if failed:
            raise TFLiteError(f"{path}: cannot write budgets from a failed measurement: "
                              + "; ".join(failed))
    return Runs(measurement, rounds)


def readable_size(limit: float) -> str:
    """``limit`` bytes rounded UP to a readable size ("270 KiB"), at most 2% above it."""
    value = max(1, math.ceil(limit))
    for unit, step, per_unit in _SIZE_STEPS:
        step_bytes = round(step * per_unit)
        if value < per_unit or (step_bytes > value * _SIZE_ROUNDING and step_bytes > 1):
            continue
        rounded = math.ceil(value / step_bytes) * step_bytes
        return f"{rounded / per_unit:.2f}".rstrip("0").rstrip(".") + f" {unit}"
    raise AssertionError("unreachable: the 1 B step always fits")


def readable_time(limit_ms: float) -> str:
    """Three significant digits in us below 1 ms, else in ms, rounded UP, so the measured
    value stays inside."""
    value, unit = (limit_ms * 1000, "us") if limit_ms < 1 else (limit_ms, "ms")
    digits = max(0, 2 - math.floor(math.log10(value))) if value > 0 else 3
    step = 10.0 ** -digits
    return f"{math.ceil(round(value / step, 9)) * step:.{digits}f} {unit}"


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, plus DEL, which TOML also refuses raw.
    A file name with a quote or a newline stays one string, never a new key."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise TFLiteError(f"{text!r} is not valid UTF-8, which TOML needs: rename the "
                          f"file") from None
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(name: str) -> str:
    return name if _BARE_KEY.match(name) else toml_string(name)


def source_path(model: Path, output: Path | None) -> str:
    """The model's path as ``source =`` writes it: relative to the budget file's folder with
    ``-o``, else to the current directory (the file goes to stdout, its home unknown)."""
    base = output.resolve().parent if output is not None else Path.cwd()
    try:
        return Path(os.path.relpath(model.resolve(), base)).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return model.resolve().as_posix()


def starter_budget(model: Path, found: Runs, *, output: Path | None, variant: str = "default",
                   headroom: float = DEFAULT_HEADROOM, margin: float = DEFAULT_MARGIN) -> str:
    """A budget file that the measured model passes: static figures with ``headroom``, runtime
    figures from the worst p90 of the runs with ``margin``, latency also against a baseline."""
    measurement = found.measurement
    up, down = 1 + headroom, 1 - headroom
    table = f"variants.{toml_key(variant)}"
    where = ("this file's folder" if output is not None else
             "the directory `tflite-budget init` ran in (it printed this file): if this file "
             "lives elsewhere, make the path relative to this file's folder")
    delegates = list(found.runs[0]) if found.runs else []
    lines = [
        f"# Starter budgets for {toml_string(model.name)}, written by `tflite-budget init`.",
        f"# source is relative to {where}.",
        f"model = {toml_string(model.stem)}",
        f"source = {toml_string(source_path(model, output))}",
    ]
    if delegates:
        # One that could not run here (no GPU, say) gets a note below, not a measurement.
        ran = [d for d in delegates if all(run[d].status == "ok" for run in found.runs)]
        lines += ["", "[defaults.runtime]",
                  "# `pytest` measures these delegates (and any a budget below names).",
                  f"delegates = [{', '.join(toml_string(d) for d in ran)}]"]
    lines += [
        "",
        f"# Static figures of the file, the same on every run: {headroom:.0%} headroom,",
        "# sizes rounded up to a readable figure.",
        f"[{table}]",
        f"size = {{ max = {toml_string(readable_size(measurement.size_bytes * up))}, "
        f"max_gzip = {toml_string(readable_size(measurement.gzip_bytes * up))} }}"
        f"  # measured {measurement.size_bytes:,} B, {measurement.gzip_bytes:,} B gzipped",
    ]
    sparsity = math.floor(measurement.sparsity * down * 100) / 100
    if sparsity > 0:
        lines.append(f"sparsity = {{ min = {sparsity} }}  # measured {measurement.sparsity:.4f}; "
                     f"a floor, so the headroom is below it")
    lines += ["", f"[{table}.memory]",
              f"planned_arena = {toml_string(readable_size(measurement.planned_arena_bytes * up))}"
              f"  # measured {measurement.planned_arena_bytes:,} B"]
    if measurement.planned_state_bytes:
        lines.append(f"planned_state = "
                     f"{toml_string(readable_size(measurement.planned_state_bytes * up))}"
                     f"  # measured {measurement.planned_state_bytes:,} B")
    for name in delegates:
        lines += _delegate_lines(table, name, [run[name] for run in found.runs], down, margin)
    lines += ["", "# Against a baseline (--tflite-baseline): the candidate and the baseline "
                  "timed in turn,", "# so the machine's load cancels out.",
              "[regression]", 'latency = "5%"']
    return "\n".join(lines) + "\n"


def _delegate_lines(table: str, name: str, results: list[DelegateResult], down: float,
                    margin: float) -> list[str]:
    first = results[0]
    key = toml_key(name)
    if first.status != "ok" or any(r.status != "ok" for r in results):
        reason = next(r.reason for r in results if r.status != "ok")
        return ["", f"# {name}: {first.status} here: {json.dumps(reason[:120])}"]
    factor = 1 + margin
    runs = len(results)
    lines: list[str] = []
    p90s = [r.latency_ms.p90 for r in results if r.latency_ms and r.latency_ms.p90 is not None]
    medians = [r.latency_ms.median for r in results
               if r.latency_ms and r.latency_ms.median is not None]
    if len(p90s) == runs and medians:
        worst = max(p90s)
        lines += ["", f"# {name}: {runs} runs, each in a fresh worker: median "
                      f"{format_ms(min(medians))} to {format_ms(max(medians))}, p90 "
                      f"{format_ms(min(p90s))} to {format_ms(worst)}.",
                  f"# Both limits: the worst p90 seen x (1 + a {margin:.0%} margin), for the "
                  f"load of a shared machine.",
                  f"[{table}.latency.{key}]",
                  f"median = {toml_string(readable_time(worst * factor))}",
                  f"p90 = {toml_string(readable_time(worst * factor))}"]
    arenas = [r.arena_bytes for r in results]
    if all(arenas):
        worst_arena = max(a for a in arenas if a)
        lines += ["", f"# {name}: the worst arena of {runs} runs x (1 + {margin:.0%}). No "
                      f"peak_rss: see `tflite-budget init --help`.",
                  f"[{table}.memory.{key}]",
                  f"arena = {toml_string(readable_size(worst_arena * factor))}"
                  f"  # measured {_range(arenas)}"]
    fractions = [r.delegated_nodes / r.total_nodes for r in results
                 if r.total_nodes and r.delegated_nodes is not None]
    partitions = [r.partitions for r in results if r.partitions]
    if len(fractions) == runs and len(partitions) == runs:
        fraction = math.floor(100 * min(fractions) * down) / 100
        # An integer figure: the headroom's whole part, which is none below 20 partitions.
        most = math.floor(max(partitions) * (2 - down))
        lines += ["", f"# {name}: static, the same on every run: headroom as above.",
                  f"[{table}.delegation.{key}]"]
        if fraction > 0:
            lines.append(f"min_fraction = {fraction}  # measured {min(fractions):.4f}")
        lines.append(f"max_partitions = {most}  # measured {max(partitions)}")
    return lines


def _range(values: Iterable[int | None]) -> str:
    known = [v for v in values if v]
    low, high = min(known), max(known)
    return f"{low:,} B" if low == high else f"{low:,} to {high:,} B"


def write_budget(path: Path, text: str, *, force: bool) -> None:
    """``-o``: never overwrites silently; the folder is made, the write is atomic."""
    from .files import write_atomic

    check_output(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"))


def check_output(path: Path | None, force: bool) -> None:
    """``-o``'s refusals, checked again before measuring, so that a refusal costs nothing."""
    if path is None:
        return
    if path.suffix != ".toml":
        raise TFLiteError(f"-o {path}: a budget file must end in .toml, or pytest will not "
                          f"collect it")
    if path.is_dir():
        raise TFLiteError(f"-o {path}: is a folder; name the file, e.g. {path / 'model.toml'}")
    if path.exists() and not force:
        raise TFLiteError(f"-o {path}: the file exists; pass --force to overwrite it, or "
                          f"choose another name")
