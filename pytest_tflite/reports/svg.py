"""A few SVG primitives and scales for the HTML report's plots: enough to draw dots, bars and
axes by hand, so the page needs no JavaScript and no library.

Every element takes a CSS class (the page's stylesheet colours it, and tests count marks by it)
and an optional ``<title>``, which browsers show as a tooltip with the exact figures. All text
goes through ``html.escape``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


def number(value: float) -> str:
    """Coordinates to 0.1 px: enough for a screen, and it keeps large plots small."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _title(title: str | None) -> str:
    return f"<title>{escape(title)}</title>" if title else ""


def svg(width: float, height: float, body: Sequence[str], label: str, css_class: str = "") -> str:
    """An inline SVG of fixed pixel size (the page's layout relies on it)."""
    cls = f' class="{escape(css_class)}"' if css_class else ""
    # No xmlns: inline SVG in HTML needs none, and the page then names no URL at all.
    return (f'<svg{cls} width="{number(width)}" '
            f'height="{number(height)}" viewBox="0 0 {number(width)} {number(height)}" '
            f'role="img" aria-label="{escape(label)}">' + "".join(body) + "</svg>")


def _element(tag: str, css_class: str, attrs: str, title: str | None) -> str:
    """One shape; a title, when given, becomes its hover text."""
    body = _title(title)
    opening = f'{tag} class="{escape(css_class)}" {attrs}'
    return f"<{opening}>{body}</{tag}>" if body else f"<{opening}/>"


def rect(x: float, y: float, width: float, height: float, css_class: str,
         title: str | None = None) -> str:
    return _element("rect", css_class, f'x="{number(x)}" y="{number(y)}" '
                    f'width="{number(max(width, 0.0))}" height="{number(max(height, 0.0))}"',
                    title)


def circle(cx: float, cy: float, r: float, css_class: str, title: str | None = None) -> str:
    return _element("circle", css_class, f'cx="{number(cx)}" cy="{number(cy)}" r="{number(r)}"',
                    title)


def line(x1: float, y1: float, x2: float, y2: float, css_class: str,
         title: str | None = None) -> str:
    return _element("line", css_class, f'x1="{number(x1)}" y1="{number(y1)}" '
                    f'x2="{number(x2)}" y2="{number(y2)}"', title)


def polyline(points: Sequence[tuple[float, float]], css_class: str,
             title: str | None = None) -> str:
    """An open line through ``points`` (no fill: the stylesheet gives it a stroke)."""
    coordinates = " ".join(f"{number(x)},{number(y)}" for x, y in points)
    return _element("polyline", css_class, f'points="{coordinates}"', title)


def text(x: float, y: float, content: str, css_class: str = "", anchor: str = "start") -> str:
    cls = f' class="{escape(css_class)}"' if css_class else ""
    return (f'<text{cls} x="{number(x)}" y="{number(y)}" text-anchor="{anchor}">'
            f"{escape(content)}</text>")


@dataclass(frozen=True)
class LinearScale:
    """Maps [low, high] onto [start, end] pixels; a zero-width domain maps to the middle."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        if self.high <= self.low:
            return (self.start + self.end) / 2
        fraction = (value - self.low) / (self.high - self.low)
        return self.start + min(max(fraction, 0.0), 1.0) * (self.end - self.start)


@dataclass(frozen=True)
class LogScale:
    """Maps [low, high] (both > 0) onto pixels on a log axis; values outside are clamped to the
    edge, so a point never leaves its plot (its tooltip keeps the exact figure)."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        value = min(max(value, self.low), self.high)
        fraction = math.log(value / self.low) / math.log(self.high / self.low)
        return self.start + fraction * (self.end - self.start)

    def clamped(self, value: float) -> bool:
        return not self.low <= value <= self.high


def thin(values: Sequence[float], limit: int) -> list[float]:
    """At most ``limit`` values that keep the distribution's shape: evenly spaced order
    statistics (the minimum and maximum included). A page with a thousand dots per row for
    dozens of rows gets heavy, and the eye cannot tell 400 dots from 1,000."""
    ordered = sorted(values)
    if len(ordered) <= limit:
        return ordered
    if limit < 2:
        return ordered[len(ordered) // 2:len(ordered) // 2 + limit]
    step = (len(ordered) - 1) / (limit - 1)
    return [ordered[round(i * step)] for i in range(limit)]


def jitter(index: int, spread: float) -> float:
    """A fixed vertical offset per dot (golden-ratio sequence): dots of equal value spread out,
    and the same report draws the same picture every time."""
    return ((index * 0.6180339887) % 1.0 - 0.5) * spread


def quantile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values."""
    if not ordered:
        raise ValueError("no values")
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
