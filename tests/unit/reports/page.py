"""Reading the HTML report back for its tests: SVG marks by plot and class, each plot's box, the
texts each plot writes, and every URL an element names."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser


@dataclass
class Mark:
    plot: str
    tag: str
    classes: list[str]
    attrs: dict[str, str]
    text: str = ""

    def number(self, name: str) -> float:
        return float(self.attrs[name])


class Marks(HTMLParser):
    """Counts SVG elements by plot (the enclosing figure's id, or the folded ``details``' id)
    and class; keeps every element and text with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.plot = ""
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.boxes: dict[str, tuple[float, ...]] = {}
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self.elements: list[Mark] = []
        self._text: Mark | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action")]
        if tag == "figure":
            self.plot = found.get("id", "").removeprefix("plot-")
            self.boxes[self.plot] = tuple(float(v) for v in found["data-box"].split(","))
        if tag == "details" and found.get("id"):
            self.plot = found["id"]
        classes = found.get("class", "").split()
        if tag in ("rect", "circle", "line", "text", "polyline"):
            mark = Mark(self.plot, tag, classes, found)
            self.elements.append(mark)
            if tag == "text":
                self._text = mark
        if tag in ("rect", "circle", "line") and "mark" in classes:
            for cls in classes:
                if cls != "mark":
                    self.counts[(self.plot, tag, cls)] += 1

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("figure", "details"):
            self.plot = ""
        if tag == "text":
            self._text = None

    def count(self, plot: str, tag: str, cls: str) -> int:
        return self.counts[(plot, tag, cls)]

    def find(self, plot: str, tag: str, cls: str) -> list[Mark]:
        return [m for m in self.elements if m.plot == plot and m.tag == tag and cls in m.classes]

    def texts(self, plot: str, cls: str = "") -> list[str]:
        return [m.text for m in self.elements
                if m.plot == plot and m.tag == "text" and (not cls or cls in m.classes)]


def parse(page: str) -> Marks:
    marks = Marks()
    marks.feed(page)
    return marks
