"""The HTML page's size plot: file and gzip size of each variant, grouped by model on the model's
own scale, the base's size as a tick when known."""

from __future__ import annotations

from collections.abc import Sequence

from ..results import Entry
from ..units import format_bytes
from . import svg
from .figure import PLOT_WIDTH, Baselines, Plot, caption_key, check_baseline, empty_plot

SIZE_ROW = 22
SIZE_LEFT = 220
SIZE_RIGHT = PLOT_WIDTH - 300


def baseline_size(entry: Entry, baselines: Baselines) -> float | None:
    """The base's file size: from the baseline entry, else from a check on the file size that
    was compared with it (``regression.size``, or ``size.max`` when it carries a baseline)."""
    base = baselines.get((entry.model, entry.variant))
    if base is not None:
        return float(base.measurement.size_bytes)
    found = check_baseline(entry, "regression.size")
    return found if found is not None else check_baseline(entry, "size.max")


def size_plot(entries: Sequence[Entry], baselines: Baselines) -> Plot:
    caption = ("Size by variant, each model on its own scale: " + caption_key("size-bar", "file")
               + caption_key("size-gzip", "gzip") + caption_key("size-base", "base file size"))
    if not entries:
        empty, height = empty_plot("No model variant was checked.")
        return Plot("size", caption, svg.svg(PLOT_WIDTH, height, empty, "size"), height)
    models: dict[str, list[Entry]] = {}
    for entry in entries:
        models.setdefault(entry.model, []).append(entry)
    body: list[str] = []
    y = 0.0
    for model, group in models.items():
        bases = [baseline_size(e, baselines) for e in group]
        largest = max([e.measurement.size_bytes for e in group]
                      + [b for b in bases if b is not None])
        scale = svg.LinearScale(0, largest, SIZE_LEFT, SIZE_RIGHT)
        body.append(svg.text(8, y + 16, model, "group"))
        y += SIZE_ROW
        for entry, base in zip(group, bases):
            size, gzip = entry.measurement.size_bytes, entry.measurement.gzip_bytes
            body += [svg.text(24, y + 15, entry.variant),
                     svg.rect(SIZE_LEFT, y + 3, scale(size) - SIZE_LEFT, 16, "mark size-bar",
                              f"{entry.variant}: {format_bytes(size)} ({size} B)"),
                     svg.rect(SIZE_LEFT, y + 8, scale(gzip) - SIZE_LEFT, 6, "mark size-gzip",
                              f"{entry.variant} gzip: {format_bytes(gzip)} ({gzip} B)")]
            right = f"{format_bytes(size)}, gzip {format_bytes(gzip)}"
            if base is not None:
                body.append(svg.line(scale(base), y + 1, scale(base), y + 21, "mark size-base",
                                     f"base: {format_bytes(base)} ({int(base)} B)"))
                right += f"; base {format_bytes(base)}" + (f" ({(size - base) / base:+.1%})"
                                                           if base else "")
            body.append(svg.text(SIZE_RIGHT + 12, y + 15, right))
            y += SIZE_ROW
        y += 6
    return Plot("size", caption, svg.svg(PLOT_WIDTH, y, body, "size"), y)
