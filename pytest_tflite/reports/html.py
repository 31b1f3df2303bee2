"""The HTML report: one self-contained page (inline CSS and SVG, no script, no URL), so it opens
from a CI artifact on any machine, offline.

The plots, each in its own module drawn with ``svg``'s primitives (``latency_plot``,
``budget_plot``, ``size_plot``, ``batch_plot``; ``figure`` holds what they share), then the
tables:

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

from collections.abc import Sequence
from html import escape
from string import Template

from ..results import VERDICT_ORDER, Check, Entry
from ..units import format_bytes, format_ms
from . import svg
from .batch_plot import batch_plot
from .budget_plot import budget_plot
from .figure import MARGIN, PAGE_WIDTH, PLOT_WIDTH, Baselines, Plot
from .latency_plot import latency_plot
from .markdown import base_to_head, counts_line, delta_text, value_text
from .size_plot import size_plot
from .tables import comparisons, entry_warnings, format_comparison, over_by

HEADER_HEIGHT = 104  # title and counts, fixed so the plots' positions do not depend on fonts
CAPTION_HEIGHT = 30
PLOT_GAP = 24

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
