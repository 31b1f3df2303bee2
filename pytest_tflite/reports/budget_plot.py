"""The HTML page's measured-vs-budget plot: the checks that failed and those within 10% of their
limit; the passes with more room fold into the same drawing under a ``<details>``.

Two kinds of row, as the key registry (``keys.py``: direction, unit) says:

- **resources** (an upper limit on bytes, ms or a count): measured ÷ limit on a log axis, 1
  being the limit;
- **quality** (lower bounds such as accuracy, fidelity, sparsity and delegated fraction, and
  any figure that is not a resource: accuracy drops, regression tolerances): measured - limit
  in the figure's unit, points (pt) for fractions, each row on its own scale. As a ratio these
  sit at 1 whether they pass or fail (0.962 / 0.95 = 1.01).

Both put the limit on one vertical line and shade the allowed side; the base's figure, when
known, is a hollow dot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..results import VERDICT_ORDER, Check, Entry
from . import svg
from .figure import (
    PLOT_WIDTH,
    Plot,
    caption_key,
    empty_plot,
    registry_key,
    row_label,
)
from .figure import base_to_head_text as base_to_head
from .figure import figure_text as value_text

MAX_BUDGET_ROWS = 400  # per drawing; the table below has every check
NEAR = 0.10  # "within 10% of the limit"

BUDGET_ROW = 20
SECTION = 24
BUDGET_LEFT = 430
BUDGET_RIGHT = PLOT_WIDTH - 300
BUDGET_RANGE = (1 / 16, 16.0)
LIMIT_X = (BUDGET_LEFT + BUDGET_RIGHT) / 2  # where both kinds of row draw the limit
RESOURCE_UNITS = ("bytes", "ms", "count")
RESOURCE_TICKS = ((1 / 16, "1/16 of the limit"), (1 / 4, "1/4"), (1 / 2, "1/2"), (1.0, "limit"),
                  (2.0, "2x"), (4.0, "4x"), (16.0, "16x the limit"))


@dataclass(frozen=True, eq=False)  # rows are told apart by identity: an Entry is deep
class Row:
    """A check as the plot draws it: ``lower`` when a figure above the limit is good;
    ``resource`` when drawn as measured / limit, else as measured - limit."""

    entry: Entry
    check: Check
    lower: bool
    resource: bool
    fraction: bool  # a 0..1 figure: its difference is in points, its room is up to 1
    figure_unit: str  # the registry's unit (a check carries bytes and ms only)

    @property
    def near(self) -> bool:
        """Within 10% of the limit: for a ``[regression]`` tolerance, a change of 90% of the
        tolerance or more; for an upper limit, at 90% of it or more; for a lower limit
        on a fraction, at 90% or more of the shortfall it allows (1 - limit); for another lower
        limit, at most 10% above it."""
        measured, limit, base = self.check.measured, self.check.budget, self.check.baseline
        assert measured is not None and limit is not None
        if base is not None and self.check.metric.startswith("regression."):
            # A tolerance against the base: near when the change used 90% of what it allows.
            used = base - measured if self.lower else measured - base
            return used >= (1 - NEAR) * abs(limit - base)
        if not self.lower:
            return measured >= limit - NEAR * abs(limit)
        if self.fraction:
            return 1 - measured >= (1 - NEAR) * (1 - limit)
        return measured <= limit + NEAR * abs(limit)

    def difference(self, value: float) -> float:
        assert self.check.budget is not None
        return (value - self.check.budget) * (100 if self.fraction else 1)

    @property
    def unit(self) -> str:
        if self.fraction:
            return " pt"
        return f" {self.figure_unit}" if self.figure_unit in ("ms", "dB") else ""


def signed(value: float, unit: str) -> str:
    """``+1.2 pt``, ``\N{MINUS SIGN}37%``: two significant figures, a true minus sign."""
    text = f"{value:+.2g}" if abs(value) < 10 else f"{value:+.0f}"
    return text.replace("-", "\N{MINUS SIGN}") + unit


def _is_fraction(entry: Entry, unit: str, metric: str) -> bool:
    """A 0..1 figure: the registry's fractions and ratios, and accuracy when its metric is
    top-K (the registry leaves accuracy's unit to the metric)."""
    if unit in ("fraction", "ratio"):
        return True
    accuracy = entry.measurement.accuracy
    return (accuracy is not None and accuracy.metric.startswith("top")
            and (metric.startswith("accuracy.") or metric == "regression.accuracy"))


def _row(entry: Entry, check: Check) -> Row | None:
    """The row of a check with a measured value and a limit; None for one without a direction
    (an N:M pattern's broken groups, op counts) or that cannot be drawn."""
    measured, limit = check.measured, check.budget
    if measured is None or limit is None or not (math.isfinite(measured) and math.isfinite(limit)):
        return None
    key = registry_key(check.metric)
    direction = key.direction if key is not None else (
        "lower" if check.metric.rsplit(".", 1)[-1].startswith("min") else "upper")
    if direction == "none":
        return None
    if direction == "metric":  # regression.accuracy: its limit lies on the worse side of the base
        direction = "lower" if check.baseline is not None and limit < check.baseline else "upper"
    unit = key.unit if key is not None else check.unit
    resource = direction == "upper" and unit in RESOURCE_UNITS and limit > 0
    return Row(entry, check, direction == "lower", resource,
               _is_fraction(entry, unit, check.metric), unit)


def budget_rows(entries: Sequence[Entry]) -> tuple[list[Row], list[Row]]:
    """(shown, folded): the failed and errored checks and those within 10% of their limit,
    worst first, then the rest; checks without both figures are in neither."""
    rows = [row for e in entries for c in e.checks if (row := _row(e, c)) is not None]
    rows.sort(key=lambda r: VERDICT_ORDER.index(r.check.verdict))
    shown: list[Row] = []
    folded: list[Row] = []
    for row in rows:
        (shown if row.check.verdict in ("fail", "error") or row.near else folded).append(row)
    return shown, folded


def _resource(row: Row, mid: float, top: float, title: str) -> list[str]:
    check = row.check
    assert check.measured is not None and check.budget is not None
    scale = svg.LogScale(*BUDGET_RANGE, BUDGET_LEFT, BUDGET_RIGHT)
    at = scale(max(check.measured / check.budget, BUDGET_RANGE[0]))
    body = [svg.rect(BUDGET_LEFT, top + 3, LIMIT_X - BUDGET_LEFT, BUDGET_ROW - 6, "budget-zone")]
    if check.baseline is not None:
        base_x = scale(max(check.baseline / check.budget, BUDGET_RANGE[0]))
        body += [svg.line(base_x, mid, at, mid, "budget-move"),
                 svg.circle(base_x, mid, 4, "mark budget-base",
                            f"base {value_text(check.baseline, check.unit)}")]
    share = check.measured / check.budget - 1
    return [*body, svg.circle(at, mid, 4.5, f"mark budget-dot v-{check.verdict}", title),
            svg.text(BUDGET_RIGHT + 14, mid + 4, f"{base_to_head(check)} of "
                     f"{value_text(check.budget, check.unit)}: {signed(share * 100, '%')}")]


def _quality(row: Row, mid: float, top: float, title: str) -> list[str]:
    check = row.check
    assert check.measured is not None and check.budget is not None
    found = row.difference(check.measured)
    base = row.difference(check.baseline) if check.baseline is not None else None
    extent = max(abs(found), abs(base or 0.0)) * 1.4 or 1.0
    scale = svg.LinearScale(-extent, extent, BUDGET_LEFT, BUDGET_RIGHT)
    zone = (LIMIT_X, BUDGET_RIGHT) if row.lower else (BUDGET_LEFT, LIMIT_X)
    body = [svg.rect(zone[0], top + 3, zone[1] - zone[0], BUDGET_ROW - 6, "budget-zone"),
            svg.text(BUDGET_LEFT + 3, mid + 4, signed(-extent, row.unit), "small axis-label"),
            svg.text(BUDGET_RIGHT - 3, mid + 4, signed(extent, row.unit), "small axis-label",
                     "end")]
    if base is not None:
        body += [svg.line(scale(base), mid, scale(found), mid, "budget-move"),
                 svg.circle(scale(base), mid, 4, "mark budget-base",
                            f"base {value_text(check.baseline, check.unit)}")]
    bound = "min" if row.lower else "max"
    return [*body, svg.circle(scale(found), mid, 4.5, f"mark budget-dot v-{check.verdict}",
                              title),
                   svg.text(BUDGET_RIGHT + 14, mid + 4,
                            f"{base_to_head(check)} vs {bound} "
                            f"{value_text(check.budget, check.unit)}: {signed(found, row.unit)}")]


def _drawing(rows: Sequence[Row], label: str) -> tuple[str, float]:
    body: list[str] = []
    top = 0.0
    sections = (("Resources — x: measured ÷ limit, log axis (1/16 to 16x); shaded: within",
                 [r for r in rows if r.resource]),
                ("Quality — x: measured \N{MINUS SIGN} limit, in points (pt) for fractions, "
                 "each row on its own scale; shaded: within", [r for r in rows if not r.resource]))
    for heading, group in sections:
        if not group:
            continue
        body.append(svg.text(8, top + 16, heading, "group axis-title"))
        top += SECTION
        section_top = top
        for row in group[:MAX_BUDGET_ROWS]:
            mid = top + BUDGET_ROW / 2
            title = (f"{row_label(row.entry)} {row.check.metric}: "
                     f"{value_text(row.check.measured, row.check.unit)} against "
                     f"{value_text(row.check.budget, row.check.unit)} ({row.check.verdict})")
            body += [svg.text(8, mid + 4, f"{row_label(row.entry)} {row.check.metric}"),
                     *(_resource(row, mid, top, title) if row.resource
                       else _quality(row, mid, top, title))]
            top += BUDGET_ROW
        if len(group) > MAX_BUDGET_ROWS:
            body.append(svg.text(8, top + 12, f"{len(group) - MAX_BUDGET_ROWS} more in the Checks "
                                              f"table below", "small"))
            top += 16
        body.append(svg.line(LIMIT_X, section_top - 4, LIMIT_X, top, "budget-one",
                             "the limit"))
        if group[0].resource:  # the log axis's ticks (a quality row labels its own ends)
            scale = svg.LogScale(*BUDGET_RANGE, BUDGET_LEFT, BUDGET_RIGHT)
            for tick, label in RESOURCE_TICKS:
                anchor = "start" if tick == BUDGET_RANGE[0] else "end" if tick == BUDGET_RANGE[
                    1] else "middle"
                body += [svg.line(scale(tick), top, scale(tick), top + 4, "axis"),
                         svg.text(scale(tick), top + 15, label, "small axis-label", anchor)]
            body.append(svg.line(BUDGET_LEFT, top, BUDGET_RIGHT, top, "axis"))
            top += 18
        top += 6
    return svg.svg(PLOT_WIDTH, top, body, label), top


def budget_plot(entries: Sequence[Entry]) -> Plot:
    caption = ("Measured vs budget: failed, and within 10% of the limit "
               + caption_key("v-pass", "pass") + caption_key("v-fail", "fail")
               + caption_key("v-error", "error") + caption_key("v-skip", "skip")
               + caption_key("budget-base", "base"))
    shown, folded = budget_rows(entries)
    folded_html = ""
    if folded:
        drawing, _ = _drawing(folded, "budgets with room to spare")
        folded_html = (f'<details class="folded" id="folded-budget"><summary>Measured vs budget: '
                       f"{len(folded)} more check{'s' if len(folded) != 1 else ''} pass with "
                       f"more than 10% to spare</summary>{drawing}</details>")
    if not shown:
        message = ("No check failed or came within 10% of its limit." if folded
                   else "No check has both a measured value and a limit.")
        body, height = empty_plot(message)
        return Plot("budget", caption, svg.svg(PLOT_WIDTH, height, body, "budgets"), height,
                    folded_html)
    drawing, height = _drawing(shown, "budgets")
    return Plot("budget", caption, drawing, height, folded_html)
