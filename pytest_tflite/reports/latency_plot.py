"""The HTML page's latency plot, in two parts, each row on its own axis.

- **Against the base** (a delegate with a paired comparison): what the verdict used, and only
  that. The x axis is head / base - 1 in %, the base being 0; a dot per pair of blocks timed
  alternately in one worker (``Comparison.ratios``), the tolerance band shaded, the 95% interval
  as a bar coloured by the verdict, the ratio as a tick; both medians from the same paired run,
  on the clock the ratio used, beside it. The base's samples from the base's own run (another
  time, another load) are never drawn: against them a +5% change looked like +50%. A report
  written before the ratios were kept draws the interval, the ratio and the band.
- **This run alone** (a delegate without a comparison): its timed invokes as dots on a time
  axis (µs, ms); a box from min to p90 where no samples were kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..results import Comparison, DelegateResult, Entry, Latency
from . import svg
from .figure import (
    PLOT_WIDTH,
    Plot,
    caption_key,
    empty_plot,
    format_time,
    nice_ticks,
    row_label,
)
from .markdown import COMPARISON_ORDER

MAX_DOTS = 400  # per strip; see svg.thin

PAIR_ROW = 64
HEAD_ROW = 56
SECTION = 26
LAT_LEFT = 250  # labels to the left of the strips
LAT_RIGHT = PLOT_WIDTH - 340  # figures to the right
TEXT_X = LAT_RIGHT + 16


def _summary_box(latency: Latency, scale: svg.LinearScale, y: float, css_class: str,
                 who: str) -> list[str]:
    title = (f"{who}: min {format_time(latency.min)}, median {format_time(latency.median)}, "
             f"p90 {format_time(latency.p90)} ({latency.n} runs, no samples kept)")
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
    body = [svg.circle(scale(v), y + svg.jitter(i, 10), 2.2, f"mark {css_class}")
            for i, v in enumerate(shown)]
    title = (f"{who}: median {format_time(median)}, p90 "
             f"{format_time(svg.quantile(ordered, 0.9))}, {len(samples)} runs"
             + (f" ({len(shown)} drawn)" if len(shown) < len(samples) else ""))
    body.append(svg.line(scale(median), y - 8, scale(median), y + 8, "lat-median", title))
    return body


def _axis(scale: svg.LinearScale, y: float, ticks: Sequence[tuple[float, str]]) -> list[str]:
    """An x axis under a strip: its line, and a tick and label (with its unit) per value."""
    body = [svg.line(LAT_LEFT, y, LAT_RIGHT, y, "axis")]
    for value, label in ticks:
        x = scale(value)
        anchor = "start" if x < LAT_LEFT + 20 else "end" if x > LAT_RIGHT - 20 else "middle"
        body += [svg.line(x, y, x, y + 4, "axis"),
                 svg.text(x, y + 14, label, "small axis-label", anchor)]
    return body


def _percent(value: float) -> str:
    return "0% (base)" if value == 0 else f"{value:+.3g}%".replace("-", "\N{MINUS SIGN}")


def _pair_row(entry: Entry, name: str, comparison: Comparison, top: float) -> list[str]:
    c = comparison
    if not all(math.isfinite(v) for v in (c.ratio, c.low, c.high, c.tolerance)):
        # A report edited by hand or written by a broken run: say so, draw nothing false.
        return [svg.text(8, top + 18, row_label(entry)), svg.text(8, top + 33, name, "small"),
                svg.text(TEXT_X, top + 18, f"ratio {c.ratio} [{c.low}, {c.high}]: not a number",
                         "small")]
    ratios = [r for r in c.ratios or [] if math.isfinite(r) and r > 0]
    changes = [(r - 1) * 100 for r in ratios]
    tolerance = c.tolerance * 100
    values = [0.0, -tolerance, tolerance, (c.low - 1) * 100, (c.high - 1) * 100,
              (c.ratio - 1) * 100]
    if changes:
        # The pairs' spread, not a stray pair or two: those are drawn at the edge.
        ordered = sorted(changes)
        values += [svg.quantile(ordered, 0.02), svg.quantile(ordered, 0.98)]
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or 1.0
    scale = svg.LinearScale(low - pad, high + pad, LAT_LEFT, LAT_RIGHT)
    y = top + 20
    body = [svg.text(8, top + 18, row_label(entry)),
            svg.text(8, top + 33, f"{name}, paired", "small"),
            svg.text(8, top + 47, c.clock or "clock not recorded", "small"),
            svg.rect(scale(-tolerance), top + 6, scale(tolerance) - scale(-tolerance), 28,
                     "lat-band", f"tolerance ±{tolerance:.3g}%: within it is unchanged"),
            svg.line(scale(0), top + 4, scale(0), top + 46, "lat-zero")]
    shown = svg.thin(changes, MAX_DOTS)
    body += [svg.circle(scale(v), y + svg.jitter(i, 12), 2, "mark lat-pair")
             for i, v in enumerate(shown)]
    verdict = f"{c.ratio - 1:+.1%} [{c.low - 1:+.1%}, {c.high - 1:+.1%}] {c.verdict}"
    body += [svg.rect(scale((c.low - 1) * 100), top + 35, max(
                 scale((c.high - 1) * 100) - scale((c.low - 1) * 100), 2), 7,
                 f"mark lat-interval c-{c.verdict}", f"95% interval: {verdict}"),
             svg.line(scale((c.ratio - 1) * 100), top + 32, scale((c.ratio - 1) * 100), top + 45,
                      "lat-ratio", f"head ÷ base: {c.ratio:.4f}")]
    ticks = [(v, _percent(v)) for v in nice_ticks(low - pad, high + pad, 7)]
    if not any(v == 0 for v, _ in ticks):
        ticks.append((0.0, _percent(0)))
    body += _axis(scale, top + 46, ticks)
    if changes and (min(changes) < low - pad or max(changes) > high + pad):
        body.append(svg.text(LAT_RIGHT, top + 4, "a few pairs off the axis are at its edges",
                             "small", "end"))
    body.append(svg.text(TEXT_X, top + 18, verdict, f"verdict-text c-{c.verdict}"))
    if c.base_median_ms is not None and c.head_median_ms is not None:
        body.append(svg.text(TEXT_X, top + 33, f"base {format_time(c.base_median_ms)} → head "
                                               f"{format_time(c.head_median_ms)} (same run)",
                             "small"))
    body.append(svg.text(TEXT_X, top + 47, f"{c.pairs} pairs, tolerance ±{tolerance:.3g}%"
                                           + (", measured twice" if c.remeasured else ""),
                         "small"))
    return body


def _head_row(entry: Entry, name: str, found: DelegateResult, top: float) -> list[str]:
    latency = found.latency_ms
    assert latency is not None
    values = _latency_values(latency)
    low, high = _head_axis(values)
    scale = svg.LinearScale(low, high, LAT_LEFT, LAT_RIGHT)
    y = top + 18
    body = [svg.text(8, top + 18, row_label(entry)), svg.text(8, top + 33, name, "small")]
    samples = _samples(latency)
    body += (_strip(samples, scale, y, "lat-head", "this run") if samples else
             _summary_box(latency, scale, y, "lat-head-summary", "this run"))
    body += _axis(scale, top + 34, [(v, format_time(v)) for v in nice_ticks(low, high)
                                    if v >= 0])
    if max(values) > high:
        body.append(svg.text(LAT_RIGHT, top + 4, "slower runs at the edge", "small", "end"))
    middle = latency.median if latency.median is not None else latency.mean
    body.append(svg.text(TEXT_X, top + 18, f"median {format_time(middle)}"
                         + (f", p90 {format_time(latency.p90)}" if latency.p90 else "")))
    why = (f"not compared: {found.comparison_error}" if found.comparison_error
           else "no paired comparison with a base")
    if len(why) > 56:  # the rest of the reason is in the Checks table and the JSON
        why = why[:55] + "…"
    body += [svg.text(TEXT_X, top + 33, f"{latency.n or len(samples)} runs", "small"),
             svg.text(TEXT_X, top + 47, why, "small")]
    return body


def latency_plot(entries: Sequence[Entry]) -> Plot:
    paired = [(e, name, found.comparison) for e in entries
              for name, found in e.measurement.delegates.items() if found.comparison is not None]
    # Worst first, as the comment and the summary put them: what a reviewer must see leads.
    paired.sort(key=lambda p: COMPARISON_ORDER.index(p[2].verdict) if p[2] else 0)
    alone = [(e, name, found) for e in entries
             for name, found in e.measurement.delegates.items()
             if found.comparison is None and found.latency_ms is not None]
    caption = ("Latency, each row on its own axis: "
               + caption_key("lat-pair", "a pair's head ÷ base") + caption_key("lat-band", "tolerance")
               + caption_key("c-regressed", "95% interval")
               + caption_key("lat-head", "this run's invokes"))
    if not paired and not alone:
        empty, height = empty_plot("No latency was measured (runtime off, or no delegate ran).")
        return Plot("latency", caption, svg.svg(PLOT_WIDTH, height, empty, "latency"), height)
    body: list[str] = []
    top = 0.0
    if paired:
        body.append(svg.text(8, top + 18, "Against the base, paired in one worker — x: head ÷ "
                                          "base \N{MINUS SIGN} 1 per pair of blocks, in %; 0 is the base",
                             "group axis-title"))
        top += SECTION
        for entry, name, comparison in paired:
            assert comparison is not None
            body += _pair_row(entry, name, comparison, top)
            top += PAIR_ROW
            body.append(svg.line(0, top - 0.5, PLOT_WIDTH, top - 0.5, "row-rule"))
    if alone:
        body.append(svg.text(8, top + 18, "This run alone — x: time per invoke (µs, ms)",
                             "group axis-title"))
        top += SECTION
        for entry, name, found in alone:
            body += _head_row(entry, name, found, top)
            top += HEAD_ROW
            body.append(svg.line(0, top - 0.5, PLOT_WIDTH, top - 0.5, "row-rule"))
    return Plot("latency", caption, svg.svg(PLOT_WIDTH, top, body, "latency"), top)


def _head_axis(values: list[float]) -> tuple[float, float]:
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
