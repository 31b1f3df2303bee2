"""What every plot of the HTML page shares: the page's geometry, the ``Plot`` it returns, the
caption keys, row labels, the empty-plot message, the base's figure from a check, times with
their units, evenly spaced axis ticks, and the key registry's row for a check."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from ..keys import BY_PATH, Key
from ..results import Check, Entry
from . import svg
from .markdown import value_text

Baselines = Mapping[tuple[str, str], Entry]  # (model, variant) -> the baseline's typed entry

PAGE_WIDTH = 1200  # CSS px; the body is laid out for this width
MARGIN = 20
PLOT_WIDTH = PAGE_WIDTH - 2 * MARGIN


@dataclass(frozen=True)
class Plot:
    """One figure: its id, its caption (HTML, already escaped) and its SVG of fixed size;
    ``folded``: HTML the page shows folded under the plots (rows with nothing to see)."""

    name: str
    caption: str
    svg: str
    height: float
    folded: str = ""


def caption_key(css_class: str, label: str) -> str:
    return f'<span class="key {css_class}"></span>{escape(label)}'


def row_label(entry: Entry) -> str:
    return f"{entry.model} [{entry.variant}]"


def empty_plot(message: str) -> tuple[list[str], float]:
    return [svg.text(12, 26, message, "empty")], 44.0


def check_baseline(entry: Entry, metric: str) -> float | None:
    """The base's figure that a check on ``metric`` carries, if any."""
    return next((c.baseline for c in entry.checks if c.metric == metric and c.baseline is not None),
                None)


def format_time(ms: float | None) -> str:
    """A time in ms as people write it on an axis: "480 µs", "1.25 ms", "2.4 s" (never "us":
    the page is UTF-8, and "us" reads as a word)."""
    if ms is None or not math.isfinite(ms):
        return "-"
    if abs(ms) < 1:
        return f"{ms * 1000:.3g} µs"
    if abs(ms) < 1000:
        return f"{ms:.3g} ms" if abs(ms) < 100 else f"{ms:.0f} ms"
    return f"{ms / 1000:.3g} s"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart) inside [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    ticks = []
    for i in range(first, first + count + 2):
        value = i * step
        if value > high + step * 1e-9:
            break
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
    return ticks


def registry_key(metric: str) -> Key | None:
    """The key registry's row for a check's metric: ``latency.xnnpack.median`` is
    ``latency.<delegate>.median``, ``accuracy.xnnpack.min`` (``accuracy.delegates``) is
    ``accuracy.min``, ``regression.latency.xnnpack`` is ``regression.latency``; None for a metric
    the registry does not know (a report from another version)."""
    if metric in BY_PATH:
        return BY_PATH[metric]
    parts = metric.split(".")
    candidates = [parts, parts[:1] + parts[2:]]  # as written; without a delegate's name
    for cut in range(len(parts) - 1, 1, -1):  # a figure named below its key
        candidates.append(parts[:cut])
    for found in candidates:
        for key in BY_PATH.values():
            if key.kind == "setting":
                continue
            path = key.path.split(".")
            if len(path) == len(found) and all(
                    p == f or (p.startswith("<") and p.endswith(">")) for p, f in zip(path, found)):
                return key
    return None


def figure_text(value: float | None, unit: str) -> str:
    """A check's figure as the plots write it: times in µs and ms, the rest as the tables do."""
    return format_time(value) if unit == "ms" and value is not None else value_text(value, unit)


def base_to_head_text(check: Check) -> str:
    head = figure_text(check.measured, check.unit)
    return head if check.baseline is None else f"{figure_text(check.baseline, check.unit)} → {head}"
