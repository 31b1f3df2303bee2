"""The HTML report: one self-contained page (inline CSS and SVG, no script, no URL), so it opens
from a CI artifact on any machine, offline.

First the model variants (worst first, in a box of fixed height that scrolls past ten), then
the plots, each in its own module drawn with ``svg``'s primitives (``figure`` holds what they
share), then the checks and the comparisons:

- **latency** (``latency_plot``): per delegate compared with the base, what the paired verdict
  used (each pair's head ÷ base, the tolerance band, the interval, both medians from the same
  run); per delegate without a comparison, this run's timed invokes on a time axis.
- **measured vs budget** (``budget_plot``): the checks that failed or came within 10% of their
  limit; resources as measured ÷ limit, quality figures as measured - limit; the passes with
  room to spare fold below the plots.
- **size by variant** (``size_plot``): file and gzip size per variant, the base's as a tick.
- **latency per sample by batch size** (``batch_plot``, only when some entry measured
  ``runtime.batch_sizes``).

Every axis says what it measures and in which unit (µs and ms, never "us").

The plots sit at fixed positions (absolute, in pixels: each plot's height follows from its row
count and the variants box's from its row count, not from fonts), and each figure's
``data-box`` gives its SVG's box on the page, so a screenshot can be checked region by region.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape
from string import Template

from ..results import VERDICT_ORDER, Entry
from ..units import format_bytes
from . import svg
from .batch_plot import batch_plot
from .budget_plot import budget_plot
from .cost import html_section as cost_section
from .explain import graph_changes, node_error_text, worst_nodes
from .figure import MARGIN, PAGE_WIDTH, PLOT_WIDTH, Baselines, Plot, format_time
from .findings import (
    Finding,
    change_text,
    fix_for,
    limit_text,
    ordered,
)
from .graph_text import short_name
from .latency_plot import latency_plot
from .markdown import counts_line
from .size_plot import size_plot
from .tables import comparisons, entry_warnings, format_comparison

MICRO = re.compile(r"(\d) us\b")
HEADER_HEIGHT = 104  # title and counts, fixed so the plots' positions do not depend on fonts
CAPTION_HEIGHT = 30
PLOT_GAP = 24
VARIANT_ROW = 25  # a row of the variants table: 24 px and its rule
VARIANT_LINE = 18  # each further line of a row (a delegate per line)
VARIANT_TITLE = 40  # its heading, with the space above and below
VARIANT_HEAD = 26
VARIANTS_SHOWN = 10  # rows before the box scrolls
VARIANT_GAP = 20

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
section.variants { overflow: hidden; }
section.variants h2 { height: ${variant_title}px; line-height: ${variant_title}px; margin: 0; }
.variants-box { overflow-y: auto; border-bottom: 1px solid #e5e7eb; }
.variants-box table { table-layout: fixed; }
.variants-box th { position: sticky; top: 0; height: ${variant_head}px; }
.variants-box td, .variants-box th { white-space: nowrap; overflow: hidden;
                                     text-overflow: ellipsis; line-height: 18px; }
td.verdict-cell { font-weight: 600; }
.variants-box div.wrap { white-space: normal; overflow: hidden; }
tr.verdict-pass td.verdict-cell { color: #15803d; }
tr.verdict-fail td.verdict-cell, tr.verdict-error td.verdict-cell { color: #b91c1c; }
svg text.axis-label { fill: #4b5563; }
svg text.axis-title { font-size: 12px; }
.lat-pair, .key.lat-pair { fill: #4f46e5; fill-opacity: .45; background: #4f46e5; }
.lat-band, .key.lat-band { fill: #dcfce7; background: #dcfce7; border: 1px solid #86efac; }
.lat-zero { stroke: #111827; stroke-width: 1.5; stroke-dasharray: 4 3; }
.lat-ratio { stroke: #111827; stroke-width: 2.5; }
.c-regressed, .key.c-regressed { fill: #dc2626; background: #dc2626; }
.c-improved { fill: #16a34a; } .c-unchanged { fill: #2563eb; } .c-inconclusive { fill: #d97706; }
svg text.verdict-text { font-weight: 600; }
details.folded { margin: 0 0 8px; }
""").substitute(page=PAGE_WIDTH, margin=MARGIN, header=HEADER_HEIGHT, plot=PLOT_WIDTH,
                caption=CAPTION_HEIGHT, variant_title=VARIANT_TITLE, variant_head=VARIANT_HEAD)


def _micro(text: str) -> str:
    """The tables' shared figures write microseconds as "us" (terminals); the page writes µs."""
    return MICRO.sub("\\1 µs", text)


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int],
           row_classes: Sequence[str] | None = None) -> str:
    rows = [[_micro(c) for c in cells] for cells in rows]
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for index, cells in enumerate(rows):
        cls = f' class="{escape(row_classes[index])}"' if row_classes else ""
        tds = "".join(f'<td class="num">{escape(c)}</td>' if i in numeric else
                      f"<td>{escape(c)}</td>" for i, c in enumerate(cells))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _checks_section(entries: Sequence[Entry]) -> str:
    """One row per model variant and measured figure, as in the PR comment: its change in its
    own unit, every limit it broke, and where to change them. Passing figures fold; the JSON
    report keeps every check."""
    every = ordered(entries)
    if not every:
        return "<h2>Checks</h2><p>No check was made.</p>"

    def cells(finding: Finding) -> list[str]:
        shown = finding.broken if finding.verdict in ("fail", "error") else finding.checks
        limits = " · ".join(dict.fromkeys(limit_text(finding, c) for c in shown))
        entry = finding.entry
        return [entry.model, entry.variant, finding.label, change_text(finding), limits,
                finding.verdict]

    bad = [f for f in every if f.verdict in ("fail", "error")]
    rest = [f for f in every if f.verdict not in ("fail", "error")]
    columns = ["model", "variant", "figure", "base → head", "limits", "verdict"]
    html = "<h2>Checks: one row per variant and figure</h2>"
    if bad:
        fixes = [fix_for(f) for f in bad]
        html += _table([*columns, "where to change"],
                       [[*cells(f), fix.plain() if fix else ""] for f, fix in zip(bad, fixes)],
                       set(), [f"verdict-{f.verdict}" for f in bad])
    else:
        html += "<p>No check failed.</p>"
    if rest:
        passed = sum(f.verdict == "pass" for f in rest)
        html += (f"<details><summary>{len(rest)} other figures: {passed} passed, "
                 f"{len(rest) - passed} skipped</summary>"
                 + _table(columns, [cells(f) for f in rest], set()) + "</details>")
    return html


def _variant_cells(entry: Entry, lines: int) -> list[list[str]]:
    """The row's cells, each as its lines: a line per delegate in the latency columns (up to
    ``lines``, the last saying how many more), one line elsewhere."""
    measured = entry.measurement
    latency, paired = [], []
    for name, found in measured.delegates.items():
        latency.append(f"{name} {format_time(found.latency_ms.median)}" if found.latency_ms
                       else f"{name} {found.status}")
        c = found.comparison
        paired.append(f"{name} {c.ratio - 1:+.1%} {c.verdict}" if c is not None else "")
    if len(latency) > lines:
        more = f"{len(latency) - lines + 1} more in the JSON"
        latency, paired = [*latency[:lines - 1], more], [*paired[:lines - 1], ""]
    broken = list(dict.fromkeys(c.metric for c in entry.checks
                                if c.verdict in ("fail", "error")))
    failed = f"{len(broken)}: {', '.join(broken)}" if broken else ""
    accuracy = measured.accuracy
    return [[entry.model], [entry.variant], [entry.verdict], [failed or "-"],
            [format_bytes(measured.size_bytes)], [format_bytes(measured.gzip_bytes)],
            [f"{accuracy.metric} {accuracy.candidate:.4g}" if accuracy else "-"],
            latency or ["-"], paired if any(paired) else ["-"], [entry.test]]


VARIANT_COLUMNS = (("model", 10), ("variant", 8), ("verdict", 6), ("failed checks", 18),
                   ("size", 7), ("gzip", 7), ("accuracy", 8), ("median latency", 12),
                   ("vs base (paired)", 17), ("test", 7))  # widths in % of the page
MAX_LINES = 4  # delegates listed per row


def variant_lines(entries: Sequence[Entry]) -> int:
    """Lines per row of the variants table: the most delegates a variant ran, at most 4."""
    return min(max([len(e.measurement.delegates) for e in entries] + [1]), MAX_LINES)


def variants_height(count: int, lines: int = 1) -> int:
    """The variants section's height in px: fixed by its row count and lines per row, so the
    plots below it sit where the page says."""
    if not count:
        return 0
    return (VARIANT_TITLE + VARIANT_HEAD + min(count, VARIANTS_SHOWN) * _row_height(lines) + 2
            + VARIANT_GAP)


def _row_height(lines: int) -> int:
    return VARIANT_ROW + VARIANT_LINE * (lines - 1)


def _variants_section(entries: Sequence[Entry]) -> str:
    """Every model variant, worst first: what ran and how it went, before any plot."""
    ordered = sorted(entries, key=lambda e: VERDICT_ORDER.index(e.verdict))
    lines = variant_lines(entries)
    head = "".join(f"<th>{escape(name)}</th>" for name, _ in VARIANT_COLUMNS)
    widths = "".join(f'<col style="width: {width}%">' for _, width in VARIANT_COLUMNS)
    body = []
    for entry in ordered:
        cells = ["<br>".join(escape(_micro(line)) for line in cell)
                 for cell in _variant_cells(entry, lines)]
        # The failed checks wrap over the row's lines, and what does not fit is cut: the
        # row's height stays fixed (the Checks table below lists every one).
        cells[3] = (f'<div class="wrap" style="max-height: {VARIANT_LINE * lines}px">'
                    f"{cells[3]}</div>")
        tds = "".join(
            f'<td class="{"num" if i in (4, 5) else "verdict-cell" if i == 2 else "text"}">'
            f"{cell}</td>" for i, cell in enumerate(cells))
        body.append(f'<tr class="verdict-{escape(entry.verdict)}" '
                    f'style="height: {_row_height(lines)}px">{tds}</tr>')
    box = VARIANT_HEAD + min(len(entries), VARIANTS_SHOWN) * _row_height(lines) + 2
    return (f'<section class="variants" id="variants" style="height: '
            f'{variants_height(len(entries), lines)}px"><h2>Model variants ({len(entries)})</h2>'
            f'<div class="variants-box" style="height: {box}px"><table><colgroup>{widths}'
            f"</colgroup><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"</div></section>")


def _comparisons_section(entries: Sequence[Entry]) -> str:
    compared = comparisons(entries)
    if not compared:
        return ""
    return "<h2>Latency against the base</h2>" + _table(
        ["model", "variant", "delegate", "head / base (paired)"],
        [[e.model, e.variant, name, format_comparison(c)] for e, name, c in compared], set())


def _explanation_section(entries: Sequence[Entry]) -> str:
    """The graph diff against the base and the nodes adding the most quantization error."""
    changes = [[e.model, e.variant, line] for e in entries for line in graph_changes(e)]
    nodes = [[e.model, e.variant, short_name(n.tensor), n.op, n.node, node_error_text(n)]
             for e in entries for n in worst_nodes(e)]
    html = ""
    if changes:
        html += ("<h2>Graph, base → head</h2><p>From both .tflite files; nodes matched by "
                 "output tensor name.</p>" + _table(["model", "variant", "change"], changes,
                                                    set()))
    if nodes:
        html += ("<h2>Nodes that add the most quantization error</h2><p>Relative RMSE of each "
                 "op's output against the float reference, beyond its inputs'. "
                 "<code>--tflite-node-data</code> writes it as Model Explorer overlays.</p>"
                 + _table(["model", "variant", "node", "op", "Model Explorer id",
                           "error the op adds"], nodes, {5}))
    return html


def plots(entries: Sequence[Entry], baselines: Baselines) -> list[Plot]:
    batch = batch_plot(entries)
    # Measured vs budget last: its passes with room to spare fold right under it.
    return [latency_plot(entries), size_plot(entries, baselines),
            *([batch] if batch is not None else []), budget_plot(entries)]


def render(entries: Sequence[Entry], baselines: Baselines | None = None,
           title: str = "pytest-tflite: model budgets") -> str:
    """The whole page. ``baselines`` maps ``(model, variant)`` to the baseline's typed entry,
    for the base's size; without it the checks' ``baseline`` figures are used where they
    exist. Latency against the base comes from the paired comparisons alone."""
    baselines = baselines or {}
    figures, folded, top = [], [], 0.0
    plots_top = HEADER_HEIGHT + variants_height(len(entries), variant_lines(entries))
    for plot in plots(entries, baselines):
        # data-box: the SVG's box in page pixels (left, top, width, height).
        box = (MARGIN, plots_top + top + CAPTION_HEIGHT, PLOT_WIDTH, plot.height)
        folded.append(plot.folded)
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
        _variants_section(entries) if entries else "",
        f'<div class="plots" style="height: {svg.number(top)}px">{"".join(figures)}</div>',
        "".join(folded),
        warning_html,
        _checks_section(entries),
        _comparisons_section(entries),
        _explanation_section(entries),
        cost_section(entries),
        "</main></body></html>",
    ]) + "\n"
