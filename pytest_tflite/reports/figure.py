"""What every plot of the HTML page shares: the page's geometry, the ``Plot`` it returns, the
caption keys, row labels, the empty-plot message and the base's figure from a check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from ..results import Entry
from . import svg

Baselines = Mapping[tuple[str, str], Entry]  # (model, variant) -> the baseline's typed entry

PAGE_WIDTH = 1200  # CSS px; the body is laid out for this width
MARGIN = 20
PLOT_WIDTH = PAGE_WIDTH - 2 * MARGIN


@dataclass(frozen=True)
class Plot:
    """One figure: its id, its caption (HTML, already escaped) and its SVG of fixed size."""

    name: str
    caption: str
    svg: str
    height: float


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
