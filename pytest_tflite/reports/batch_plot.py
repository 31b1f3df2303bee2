"""The HTML page's latency-per-sample-by-batch-size plot (only when some entry measured
``runtime.batch_sizes``): per-sample median against batch size on log2 x and log y axes, a line
per (model variant, delegate)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..results import Entry
from . import svg
from .figure import PLOT_WIDTH, Plot, empty_plot, row_label
from .figure import format_time as format_ms

BATCH_HEIGHT = 240  # the axes' box; the legend adds a row per line below 12 lines
BATCH_LEFT = 80
BATCH_RIGHT = PLOT_WIDTH - 380  # the legend to the right
BATCH_TOP = 28
BATCH_COLOURS = 6
MAX_BATCH_LINES = 24


def batch_lines(entries: Sequence[Entry]) -> list[tuple[str, list[tuple[int, float, float]], int]]:
    """(label, [(batch, per-sample ms, median ms)] of the batches that ran, failed count) per
    (entry, delegate) that measured batch sizes."""
    found = []
    for entry in entries:
        for name, result in entry.measurement.delegates.items():
            if not result.batches:
                continue
            points: list[tuple[int, float, float]] = []
            for b in result.batches:
                median = b.latency_ms.median if b.latency_ms is not None else None
                if b.status == "ok" and b.per_sample_ms and median is not None:
                    points.append((b.batch, b.per_sample_ms, median))
            found.append((f"{row_label(entry)} {name}", sorted(points),
                          len(result.batches) - len(points)))
    return found


def batch_plot(entries: Sequence[Entry]) -> Plot | None:
    lines = batch_lines(entries)
    if not lines:
        return None
    caption = ("Latency per sample by batch size (median / batch; log2 x, log y)"
               " — one line per model variant and delegate")
    shown, rest = lines[:MAX_BATCH_LINES], len(lines) - MAX_BATCH_LINES
    batches = [b for _, points, _ in shown for b, _, _ in points]
    values = [v for _, points, _ in shown for _, v, _ in points]
    height: float = BATCH_TOP + BATCH_HEIGHT + 40 + max(0, len(shown) - 12) * 16
    if not values:
        body, height = empty_plot("no batch size ran (see each delegate's batches in the JSON)")
        return Plot("batch", caption, svg.svg(PLOT_WIDTH, height, body, "per sample"), height)
    low_b, high_b = float(min(batches)), float(max(batches))
    if low_b == high_b:
        low_b, high_b = low_b / 2, high_b * 2
    low_v, high_v = min(values) / 1.25, max(values) * 1.25
    bottom = BATCH_TOP + BATCH_HEIGHT
    x = svg.LogScale(low_b, high_b, BATCH_LEFT, BATCH_RIGHT)
    y = svg.LogScale(low_v, high_v, bottom, BATCH_TOP)
    body = [svg.line(BATCH_LEFT, bottom, BATCH_RIGHT, bottom, "axis"),
            svg.line(BATCH_LEFT, BATCH_TOP, BATCH_LEFT, bottom, "axis"),
            svg.text((BATCH_LEFT + BATCH_RIGHT) / 2, bottom + 32, "batch size (log2)",
                     "small axis-title", "middle"),
            svg.text(8, BATCH_TOP - 4, "time per sample (log)", "small axis-title")]
    for batch in sorted(set(batches)):
        body += [svg.line(x(batch), bottom, x(batch), bottom + 4, "axis"),
                 svg.text(x(batch), bottom + 16, str(batch), "small axis-label", "middle")]
    for tick in (min(values), math.sqrt(min(values) * max(values)), max(values)):
        body += [svg.line(BATCH_LEFT - 4, y(tick), BATCH_LEFT, y(tick), "axis"),
                 svg.text(BATCH_LEFT - 6, y(tick) + 3, format_ms(tick), "small axis-label", "end")]
    for index, (label, points, failed) in enumerate(shown):
        colour = f"batch-s{index % BATCH_COLOURS}"
        coordinates = [(x(b), y(v)) for b, v, _ in points]
        if len(coordinates) > 1:
            body.append(svg.polyline(coordinates, f"batch-line {colour}", label))
        body += [svg.circle(cx, cy, 3.5, f"mark batch-point {colour}",
                            f"{label}: batch {b}, {format_ms(v)} per sample "
                            f"(median {format_ms(median)})")
                 for (cx, cy), (b, v, median) in zip(coordinates, points)]
        row = BATCH_TOP + 8 + index * 16
        note = f" ({failed} batch size{'s' if failed != 1 else ''} failed)" if failed else ""
        body += [svg.line(BATCH_RIGHT + 20, row, BATCH_RIGHT + 40, row, f"batch-line {colour}"),
                 svg.text(BATCH_RIGHT + 46, row + 4, f"{label}{note}", "small")]
    if rest > 0:
        body.append(svg.text(BATCH_RIGHT + 20, BATCH_TOP + 8 + len(shown) * 16 + 4,
                             f"{rest} more lines in the JSON report", "small"))
    return Plot("batch", caption, svg.svg(PLOT_WIDTH, height, body, "per sample"), height)
