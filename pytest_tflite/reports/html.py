"""The HTML report: one self-contained page (inline CSS and SVG, no script, no URL), so it opens
from a CI artifact on any machine, offline.

Three plots, each drawn with ``svg``'s primitives, then the tables:

- **latency per delegate**: each measured (model variant, delegate) is a row; its timed runs
  (``latency_ms.samples``) are dots on the row's own linear axis, the head above, the base
  below. Base samples come from the baseline's typed entry (``baselines``, keyed by
  ``(model, variant)``); without it, the base median of the ``latency.<delegate>.median`` check's
  ``baseline`` is a tick; without either, the head alone. A result without samples (an older
  report) is a box from its min to its p90 with the median marked.
- **measured vs budget**: every check with a measured value and a limit above zero, as
  measured / limit on a log axis, 1 being the limit, the allowed side shaded (limits named
  ``min*`` are lower bounds). The base's figure, when known, is a hollow dot.
- **size by variant**: the file size and the gzip size of each variant, grouped by model on the
  model's own scale, with the base's size as a tick when known.
- **latency per sample by batch size** (only when some entry measured ``runtime.batch_sizes``):
  per-sample median against batch size on log2 x and log y axes, one line per (model variant,
  delegate), a dot per batch that ran.

The plots sit at fixed positions (absolute, in pixels: each plot's height follows from its row
count, not from fonts), and each figure's ``data-box`` gives its SVG's box on the page, so a
screenshot can be checked region by region.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from string import Template

from ..results import VERDICT_ORDER, Check, DelegateResult, Entry, Latency
from ..units import format_bytes, format_ms
from . import svg
from .markdown import base_to_head, counts_line, delta_text, value_text
from .tables import comparisons, entry_warnings, format_comparison, over_by

Baselines = Mapping[tuple[str, str], Entry]  # (model, variant) -> the baseline's typed entry

PAGE_WIDTH = 1200  # CSS px; the body is laid out for this width
MARGIN = 20
PLOT_WIDTH = PAGE_WIDTH - 2 * MARGIN
HEADER_HEIGHT = 104  # title and counts, fixed so the plots' positions do not depend on fonts
CAPTION_HEIGHT = 30
PLOT_GAP = 24
MAX_DOTS = 400  # per strip; see svg.thin
MAX_BUDGET_ROWS = 400  # the table below has every check

# string.Template: CSS is full of braces, and "%" reads as a format directive.
CSS = Template("""
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: #111827;
       font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { width: ${page}px; padding: 0 ${margin}px 40px; }
header { height: ${header}px; overflow: hidden; padding-top: 16px; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.counts { margin: 0; white-space: nowrap; overflow: hidden; }
.plots { position: relative; }
figure.plot { position: absolute; left: 0; margin: 0; width: ${plot}px; overflow: hidden; }
figcaption { height: ${caption}px; font-weight: 600; white-space: nowrap; overflow: hidden; }
.key { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
svg { display: block; background: #fff; }
svg text { font-size: 11px; fill: #374151; }
svg text.small { font-size: 9px; fill: #6b7280; }
svg text.group { font-size: 12px; font-weight: 600; fill: #111827; }
.row-rule { stroke: #e5e7eb; stroke-width: 1; }
.axis { stroke: #9ca3af; stroke-width: 1; }
.lat-head, .key.lat-head { fill: #2563eb; fill-opacity: .55; background: #2563eb; }
.lat-base, .key.lat-base { fill: #ea580c; fill-opacity: .55; background: #ea580c; }
.lat-head-summary { fill: #2563eb; fill-opacity: .35; stroke: #2563eb; }
.lat-base-summary { fill: #ea580c; fill-opacity: .35; stroke: #ea580c; }
.lat-median { stroke: #111827; stroke-width: 2; }
.lat-base-median { stroke: #ea580c; stroke-width: 3; }
.budget-zone { fill: #dcfce7; }
.budget-one { stroke: #111827; stroke-width: 1.5; stroke-dasharray: 4 3; }
.budget-move { stroke: #9ca3af; stroke-width: 1.5; }
.budget-base, .key.budget-base { fill: #fff; stroke: #374151; stroke-width: 1.5;
                                 background: #fff; border: 1.5px solid #374151; }
.v-pass, .key.v-pass { fill: #16a34a; background: #16a34a; }
.v-fail, .key.v-fail { fill: #dc2626; background: #dc2626; }
.v-error, .key.v-error { fill: #9333ea; background: #9333ea; }
.v-skip, .key.v-skip { fill: #9ca3af; background: #9ca3af; }
.size-bar, .key.size-bar { fill: #93c5fd; background: #93c5fd; }
.size-gzip, .key.size-gzip { fill: #1d4ed8; background: #1d4ed8; }
.size-base, .key.size-base { stroke: #ea580c; stroke-width: 3; background: #ea580c; }
.empty { fill: #6b7280; font-size: 13px; }
.batch-line { fill: none; stroke-width: 2; }
.batch-s0 { stroke: #2563eb; fill: #2563eb; } .batch-s1 { stroke: #ea580c; fill: #ea580c; }
.batch-s2 { stroke: #16a34a; fill: #16a34a; } .batch-s3 { stroke: #9333ea; fill: #9333ea; }
.batch-s4 { stroke: #0891b2; fill: #0891b2; } .batch-s5 { stroke: #be123c; fill: #be123c; }
polyline.batch-line { fill: none; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 3px 6px; text-align: left;
         vertical-align: top; }
th { background: #f3f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.verdict-fail td, tr.verdict-error td { background: #fef2f2; }
.warnings { background: #fffbeb; border: 1px solid #f59e0b; padding: 8px 12px; }
.warnings li { margin: 2px 0; }
details summary { cursor: pointer; font-weight: 600; margin: 8px 0; }
""").substitute(page=PAGE_WIDTH, margin=MARGIN, header=HEADER_HEIGHT, plot=PLOT_WIDTH,
                caption=CAPTION_HEIGHT)


@dataclass(frozen=True)
class Plot:
    """One figure: its id, its caption (HTML, already escaped) and its SVG of fixed size."""

    name: str
    caption: str
    svg: str
    height: float


def _key(css_class: str, label: str) -> str:
    return f'<span class="key {css_class}"></span>{escape(label)}'


def _label(entry: Entry) -> str:
    return f"{entry.model} [{entry.variant}]"


def _empty(message: str) -> tuple[list[str], float]:
    return [svg.text(12, 26, message, "empty")], 44.0


# ---------------------------------------------------------------- latency


LAT_ROW = 46
LAT_LEFT = 300  # labels to the left of the strips
LAT_RIGHT = PLOT_WIDTH - 260  # figures to the right


def _baseline_delegate(entry: Entry, delegate: str, baselines: Baselines) -> DelegateResult | None:
    base = baselines.get((entry.model, entry.variant))
    return base.measurement.delegates.get(delegate) if base is not None else None


def _check_baseline(entry: Entry, metric: str) -> float | None:
    return next((c.baseline for c in entry.checks if c.metric == metric and c.baseline is not None),
                None)


def _summary_box(latency: Latency, scale: svg.LinearScale, y: float, css_class: str,
                 who: str) -> list[str]:
    title = (f"{who}: min {format_ms(latency.min)}, median {format_ms(latency.median)}, "
             f"p90 {format_ms(latency.p90)} ({latency.n} runs, no samples kept)")
    # A runner's format may give the mean only (benchmark_model's text): draw what there is.
    middle = latency.median if latency.median is not None else latency.mean
    low = latency.min if latency.min is not None else middle
    high = latency.p90 if latency.p90 is not None else middle
    return [svg.rect(scale(low), y - 5, scale(high) - scale(low), 10,
                     f"mark {css_class}", title),
            svg.line(scale(middle), y - 7, scale(middle), y + 7, "lat-median")]


def _strip(samples: Sequence[float], scale: svg.LinearScale, y: float, css_class: str,
           who: str) -> list[str]:
    shown = svg.thin(samples, MAX_DOTS)
    ordered = sorted(samples)
    median = svg.quantile(ordered, 0.5)
    body = [svg.circle(scale(v), y + svg.jitter(i, 8), 2.2, f"mark {css_class}")
            for i, v in enumerate(shown)]
    title = (f"{who}: median {format_ms(median)}, p90 {format_ms(svg.quantile(ordered, 0.9))}, "
             f"{len(samples)} runs" + (f" ({len(shown)} drawn)" if len(shown) < len(samples) else ""))
    body.append(svg.line(scale(median), y - 7, scale(median), y + 7, "lat-median", title))
    return body


def latency_plot(entries: Sequence[Entry], baselines: Baselines) -> Plot:
    rows: list[tuple[Entry, str, DelegateResult, DelegateResult | None, float | None]] = []
    for entry in entries:
        for name, found in entry.measurement.delegates.items():
            if found.latency_ms is None:
                continue
            base = _baseline_delegate(entry, name, baselines)
            base_median = _check_baseline(entry, f"latency.{name}.median")
            rows.append((entry, name, found, base if base and base.latency_ms else None,
                         base_median))
    caption = ("Latency per delegate, each row on its own axis: "
               + _key("lat-head", "head") + _key("lat-base", "base"))
    if not rows:
        body, height = _empty("No latency was measured (runtime off, or no delegate ran).")
        return Plot("latency", caption, svg.svg(PLOT_WIDTH, height, body, "latency"), height)
    body = []
    for index, (entry, name, found, base, base_median) in enumerate(rows):
        top = index * LAT_ROW
        head_latency = found.latency_ms
        assert head_latency is not None
        base_latency = base.latency_ms if base is not None else None
        values = _latency_values(head_latency) + (
            _latency_values(base_latency) if base_latency is not None else [])
        if base_median is not None:
            values.append(base_median)
        low, high = _axis(values)
        scale = svg.LinearScale(low, high, LAT_LEFT, LAT_RIGHT)
        head_y, base_y = top + 14, top + 30
        body += [svg.line(0, top + LAT_ROW - 0.5, PLOT_WIDTH, top + LAT_ROW - 0.5, "row-rule"),
                 svg.line(LAT_LEFT, head_y, LAT_RIGHT, head_y, "axis"),
                 svg.text(8, top + 18, _label(entry)),
                 svg.text(8, top + 34, name, "small"),
                 svg.text(LAT_LEFT, top + LAT_ROW - 3, format_ms(low), "small"),
                 svg.text(LAT_RIGHT, top + LAT_ROW - 3,
                          format_ms(high) + (" (slower runs at the edge)"
                                             if max(values) > high else ""), "small", "end")]
        if _samples(head_latency):
            body += _strip(_samples(head_latency), scale, head_y, "lat-head", "head")
        else:
            body += _summary_box(head_latency, scale, head_y, "lat-head-summary", "head")
        if base_latency is not None:
            body.append(svg.line(LAT_LEFT, base_y, LAT_RIGHT, base_y, "axis"))
            body += (_strip(_samples(base_latency), scale, base_y, "lat-base", "base")
                     if _samples(base_latency) else
                     _summary_box(base_latency, scale, base_y, "lat-base-summary", "base"))
        elif base_median is not None:
            body.append(svg.line(scale(base_median), base_y - 8, scale(base_median), base_y + 8,
                                 "lat-base-median", f"base median {format_ms(base_median)}"))
        right = f"head median {format_ms(head_latency.median)}"
        body.append(svg.text(LAT_RIGHT + 12, top + 18, right))
        if found.comparison is not None:
            c = found.comparison
            body.append(svg.text(LAT_RIGHT + 12, top + 34,
                                 f"{c.ratio - 1:+.1%} [{c.low - 1:+.1%}, {c.high - 1:+.1%}] "
                                 f"{c.verdict}", "small"))
        elif base_latency is None and base_median is None:
            body.append(svg.text(LAT_RIGHT + 12, top + 34, "no baseline", "small"))
    height = len(rows) * LAT_ROW
    return Plot("latency", caption, svg.svg(PLOT_WIDTH, height, body, "latency"), height)


def _axis(values: list[float]) -> tuple[float, float]:
    """A row's axis: from the fastest run to the 99th percentile, padded, never below zero. A
    few runs slowed by a neighbour (tens of times the median, on shared machines) would
    otherwise squeeze the distribution into a few pixels; they are drawn at the right edge."""
    ordered = sorted(values)
    low, high = ordered[0], svg.quantile(ordered, 0.99)
    pad = (high - low) * 0.05 or max(abs(high) * 0.05, 1e-6)
    return max(low - pad, 0.0), high + pad


def _samples(latency: Latency) -> list[float]:
    # A NaN or infinite timing would put NaN coordinates in the page.
    return [v for v in latency.samples or [] if math.isfinite(v)]


def _latency_values(latency: Latency) -> list[float]:
    return _samples(latency) or [v for v in (latency.min, latency.median, latency.p90, latency.mean)
                                 if v is not None]


# ---------------------------------------------------------------- measured vs budget


BUDGET_ROW = 20
BUDGET_TOP = 26  # the axis labels
BUDGET_LEFT = 430
BUDGET_RIGHT = PLOT_WIDTH - 250
BUDGET_RANGE = (1 / 16, 16.0)


def is_lower_bound(metric: str) -> bool:
    """``accuracy.min``, ``fidelity.min_cosine``, ``delegation.x.min_fraction``: being above
    the limit is good. Every other budget key is an upper bound."""
    return metric.rsplit(".", 1)[-1].startswith("min")


def plotted_checks(entries: Sequence[Entry]) -> list[tuple[Entry, Check]]:
    """Checks with a measured value and a limit above zero (a ratio to draw), worst first."""
    found = [(e, c) for e in entries for c in e.checks
             if c.measured is not None and c.budget is not None and c.budget > 0
             and math.isfinite(c.measured) and math.isfinite(c.budget)]
    return sorted(found, key=lambda p: VERDICT_ORDER.index(p[1].verdict))


def budget_plot(entries: Sequence[Entry]) -> Plot:
    caption = ("Measured vs budget (measured / limit, log axis; shaded: within the limit): "
               + _key("v-pass", "pass") + _key("v-fail", "fail") + _key("v-error", "error")
               + _key("v-skip", "skip") + _key("budget-base", "base"))
    checks = plotted_checks(entries)
    if not checks:
        body, height = _empty("No check has both a measured value and a limit.")
        return Plot("budget", caption, svg.svg(PLOT_WIDTH, height, body, "budgets"), height)
    shown = checks[:MAX_BUDGET_ROWS]
    scale = svg.LogScale(*BUDGET_RANGE, BUDGET_LEFT, BUDGET_RIGHT)
    body = []
    for tick, label in ((1 / 16, "1/16"), (1 / 4, "1/4"), (1.0, "limit"), (4.0, "4x"),
                        (16.0, "16x")):
        body.append(svg.text(scale(tick), 14, label, "small", "middle"))
    for index, (entry, check) in enumerate(shown):
        top = BUDGET_TOP + index * BUDGET_ROW
        mid = top + BUDGET_ROW / 2
        assert check.measured is not None and check.budget is not None
        zone = ((scale(1.0), scale(BUDGET_RANGE[1])) if is_lower_bound(check.metric)
                else (scale(BUDGET_RANGE[0]), scale(1.0)))
        ratio = check.measured / check.budget
        title = (f"{_label(entry)} {check.metric}: {value_text(check.measured, check.unit)} "
                 f"of {value_text(check.budget, check.unit)} ({check.verdict})")
        body += [svg.rect(zone[0], top + 3, zone[1] - zone[0], BUDGET_ROW - 6, "budget-zone"),
                 svg.text(8, mid + 4, f"{_label(entry)} {check.metric}")]
        if check.baseline is not None:
            base_x = scale(max(check.baseline / check.budget, BUDGET_RANGE[0]))
            body += [svg.line(base_x, mid, scale(max(ratio, BUDGET_RANGE[0])), mid, "budget-move"),
                     svg.circle(base_x, mid, 4, "mark budget-base",
                                f"base {value_text(check.baseline, check.unit)}")]
        body += [svg.circle(scale(max(ratio, BUDGET_RANGE[0])), mid, 4.5,
                            f"mark budget-dot v-{check.verdict}", title),
                 svg.text(BUDGET_RIGHT + 14, mid + 4,
                          f"{base_to_head(check)} / {value_text(check.budget, check.unit)}")]
    bottom = BUDGET_TOP + len(shown) * BUDGET_ROW
    body.insert(0, svg.line(scale(1.0), BUDGET_TOP - 4, scale(1.0), bottom, "budget-one"))
    height = bottom + 6
    if len(checks) > len(shown):
        body.append(svg.text(8, bottom + 14, f"{len(checks) - len(shown)} more checks in the "
                                             f"table below", "small"))
        height += 16
    return Plot("budget", caption, svg.svg(PLOT_WIDTH, height, body, "budgets"), height)


# ---------------------------------------------------------------- size


SIZE_ROW = 22
SIZE_LEFT = 220
SIZE_RIGHT = PLOT_WIDTH - 300


def baseline_size(entry: Entry, baselines: Baselines) -> float | None:
    """The base's file size: from the baseline entry, else from a check on the file size that
    was compared with it (``regression.size``, or ``size.max`` when it carries a baseline)."""
    base = baselines.get((entry.model, entry.variant))
    if base is not None:
        return float(base.measurement.size_bytes)
    found = _check_baseline(entry, "regression.size")
    return found if found is not None else _check_baseline(entry, "size.max")


def size_plot(entries: Sequence[Entry], baselines: Baselines) -> Plot:
    caption = ("Size by variant, each model on its own scale: " + _key("size-bar", "file")
               + _key("size-gzip", "gzip") + _key("size-base", "base file size"))
    if not entries:
        empty, height = _empty("No model variant was checked.")
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


# ---------------------------------------------------------------- per sample by batch size


BATCH_HEIGHT = 240  # the axes' box; the legend adds a row per line below 12 lines
BATCH_LEFT = 80
BATCH_RIGHT = PLOT_WIDTH - 380  # the legend to the right
BATCH_TOP = 16
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
            found.append((f"{_label(entry)} {name}", sorted(points),
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
        body, height = _empty("no batch size ran (see each delegate's batches in the JSON)")
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
            svg.text((BATCH_LEFT + BATCH_RIGHT) / 2, bottom + 32, "batch size", "small", "middle")]
    for batch in sorted(set(batches)):
        body += [svg.line(x(batch), bottom, x(batch), bottom + 4, "axis"),
                 svg.text(x(batch), bottom + 16, str(batch), "small", "middle")]
    for tick in (min(values), math.sqrt(min(values) * max(values)), max(values)):
        body += [svg.line(BATCH_LEFT - 4, y(tick), BATCH_LEFT, y(tick), "axis"),
                 svg.text(BATCH_LEFT - 6, y(tick) + 3, format_ms(tick), "small", "end")]
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


# ---------------------------------------------------------------- the page


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int],
           row_classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for index, cells in enumerate(rows):
        cls = f' class="{escape(row_classes[index])}"' if row_classes else ""
        tds = "".join(f'<td class="num">{escape(c)}</td>' if i in numeric else
                      f"<td>{escape(c)}</td>" for i, c in enumerate(cells))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _checks_section(entries: Sequence[Entry]) -> str:
    pairs = sorted([(e, c) for e in entries for c in e.checks],
                   key=lambda p: VERDICT_ORDER.index(p[1].verdict))
    if not pairs:
        return "<h2>Checks</h2><p>No check was made.</p>"
    columns = ["model", "variant", "check", "base → head", "delta", "budget", "verdict", "note"]

    def cells(entry: Entry, check: Check) -> list[str]:
        return [entry.model, entry.variant, check.metric, base_to_head(check), delta_text(check),
                value_text(check.budget, check.unit), check.verdict, over_by(check)]

    bad = [p for p in pairs if p[1].verdict in ("fail", "error")]
    rest = [p for p in pairs if p[1].verdict not in ("fail", "error")]
    html = "<h2>Checks</h2>"
    if bad:
        html += _table(columns, [cells(*p) for p in bad], {3, 4, 5},
                       [f"verdict-{c.verdict}" for _, c in bad])
    else:
        html += "<p>No check failed.</p>"
    if rest:
        passed = sum(c.verdict == "pass" for _, c in rest)
        html += (f"<details><summary>{len(rest)} other checks: {passed} passed, "
                 f"{len(rest) - passed} skipped</summary>"
                 + _table(columns, [cells(*p) for p in rest], {3, 4, 5}) + "</details>")
    return html


def _variants_section(entries: Sequence[Entry]) -> str:
    rows = []
    for e in entries:
        latency = ", ".join(
            f"{name} {format_ms(found.latency_ms.median)}" if found.latency_ms
            else f"{name} {found.status}" for name, found in e.measurement.delegates.items())
        accuracy = e.measurement.accuracy
        rows.append([e.model, e.variant, e.recipe, format_bytes(e.measurement.size_bytes),
                     format_bytes(e.measurement.gzip_bytes),
                     f"{accuracy.metric} {accuracy.candidate:.4g}" if accuracy else "-",
                     latency or "-", e.verdict, e.test])
    return "<h2>Model variants</h2>" + _table(
        ["model", "variant", "recipe", "size", "gzip", "accuracy", "median latency", "verdict",
         "test"], rows, {3, 4})


def _comparisons_section(entries: Sequence[Entry]) -> str:
    compared = comparisons(entries)
    if not compared:
        return ""
    return "<h2>Latency against the base</h2>" + _table(
        ["model", "variant", "delegate", "head / base (paired)"],
        [[e.model, e.variant, name, format_comparison(c)] for e, name, c in compared], set())


def plots(entries: Sequence[Entry], baselines: Baselines) -> list[Plot]:
    batch = batch_plot(entries)
    return [latency_plot(entries, baselines), budget_plot(entries), size_plot(entries, baselines),
            *([batch] if batch is not None else [])]


def render(entries: Sequence[Entry], baselines: Baselines | None = None,
           title: str = "pytest-tflite: model budgets") -> str:
    """The whole page. ``baselines`` maps ``(model, variant)`` to the baseline's typed entry,
    for the base's latency samples and size; without it the checks' ``baseline`` figures are
    used where they exist."""
    baselines = baselines or {}
    figures, top = [], 0.0
    for plot in plots(entries, baselines):
        # data-box: the SVG's box in page pixels (left, top, width, height).
        box = (MARGIN, HEADER_HEIGHT + top + CAPTION_HEIGHT, PLOT_WIDTH, plot.height)
        figures.append(
            f'<figure class="plot" id="plot-{plot.name}" data-box="'
            f'{",".join(svg.number(v) for v in box)}" style="top: {svg.number(top)}px; '
            f'height: {svg.number(CAPTION_HEIGHT + plot.height)}px">'
            f"<figcaption>{plot.caption}</figcaption>{plot.svg}</figure>")
        top += CAPTION_HEIGHT + plot.height + PLOT_GAP
    warnings = entry_warnings(entries)
    warning_html = ("<h2>Warnings</h2><ul class=\"warnings\">"
                    + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul>"
                    if warnings else "")
    counts = counts_line(entries, icons=False) if entries else "No model variant was checked."
    if warnings:
        counts += f" · {len(warnings)} warning{'s' if len(warnings) != 1 else ''} (below)"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f'<header><h1>{escape(title)}</h1><p class="counts">{escape(counts)}</p></header>',
        f'<div class="plots" style="height: {svg.number(top)}px">{"".join(figures)}</div>',
        warning_html,
        _checks_section(entries),
        _comparisons_section(entries),
        _variants_section(entries) if entries else "",
        "</main></body></html>",
    ]) + "\n"
