"""The HTML page's measured-vs-budget plot: every check with a measured value and a limit above
zero, as measured / limit on a log axis (1 is the limit, the allowed side shaded), the base's
figure as a hollow dot."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..results import VERDICT_ORDER, Check, Entry
from . import svg
from .figure import PLOT_WIDTH, Plot, caption_key, empty_plot, row_label
from .markdown import base_to_head, value_text

MAX_BUDGET_ROWS = 400  # the table below has every check

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
               + caption_key("v-pass", "pass") + caption_key("v-fail", "fail")
               + caption_key("v-error", "error") + caption_key("v-skip", "skip")
               + caption_key("budget-base", "base"))
    checks = plotted_checks(entries)
    if not checks:
        body, height = empty_plot("No check has both a measured value and a limit.")
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
        title = (f"{row_label(entry)} {check.metric}: {value_text(check.measured, check.unit)} "
                 f"of {value_text(check.budget, check.unit)} ({check.verdict})")
        body += [svg.rect(zone[0], top + 3, zone[1] - zone[0], BUDGET_ROW - 6, "budget-zone"),
                 svg.text(8, mid + 4, f"{row_label(entry)} {check.metric}")]
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
