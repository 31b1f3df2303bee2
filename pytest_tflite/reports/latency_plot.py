"""The HTML page's latency plot: a row per measured (model variant, delegate), its timed runs as
dots on the row's own linear axis, the head above and the base below; a box from min to p90
where no samples were kept."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..results import DelegateResult, Entry, Latency
from ..units import format_ms
from . import svg
from .figure import PLOT_WIDTH, Baselines, Plot, caption_key, check_baseline, empty_plot, row_label

MAX_DOTS = 400  # per strip; see svg.thin

LAT_ROW = 46
LAT_LEFT = 300  # labels to the left of the strips
LAT_RIGHT = PLOT_WIDTH - 260  # figures to the right


def _baseline_delegate(entry: Entry, delegate: str, baselines: Baselines) -> DelegateResult | None:
    base = baselines.get((entry.model, entry.variant))
    return base.measurement.delegates.get(delegate) if base is not None else None


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
            base_median = check_baseline(entry, f"latency.{name}.median")
            rows.append((entry, name, found, base if base and base.latency_ms else None,
                         base_median))
    caption = ("Latency per delegate, each row on its own axis: "
               + caption_key("lat-head", "head") + caption_key("lat-base", "base"))
    if not rows:
        body, height = empty_plot("No latency was measured (runtime off, or no delegate ran).")
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
                 svg.text(8, top + 18, row_label(entry)),
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
