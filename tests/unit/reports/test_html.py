"""The HTML report: self-contained, escaped, each plot with the marks its figures call for, and
each plot drawn where the page says when a real browser renders it with the network off."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from pytest_tflite.reports import budget_plot, html, latency_plot, svg
from pytest_tflite.results import Check, DelegateResult, Entry
from tests.helpers.entries import compared_entry, entry, latency, many_entries


class Marks(HTMLParser):
    """Counts SVG elements by plot (the enclosing figure's id) and class."""

    def __init__(self) -> None:
        super().__init__()
        self.plot = ""
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.boxes: dict[str, tuple[float, ...]] = {}
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.add(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action")]
        if tag == "figure":
            self.plot = (found.get("id") or "").removeprefix("plot-")
            self.boxes[self.plot] = tuple(float(v) for v in (found["data-box"] or "").split(","))
        if tag in ("rect", "circle", "line") and "mark" in (found.get("class") or "").split():
            for cls in (found.get("class") or "").split():
                if cls != "mark":
                    self.counts[(self.plot, tag, cls)] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self.plot = ""

    def count(self, plot: str, tag: str, cls: str) -> int:
        return self.counts[(plot, tag, cls)]


def parse(page: str) -> Marks:
    marks = Marks()
    marks.feed(page)
    return marks


def known_entries() -> tuple[list[Entry], dict[tuple[str, str], Entry]]:
    """int8: xnnpack with 50 samples (and 40 in the baseline), builtin without samples; float32:
    xnnpack with 30 samples, no baseline. Four checks with a measured value and a limit, three of
    them with a baseline."""
    head = compared_entry()
    float32 = entry(variant="float32", size=90_000,
                    checks=[Check("size.max", 90_000, 100_000, "pass", "bytes")],
                    delegates={"xnnpack": DelegateResult("ok", latency_ms=latency(1.5, n=30))})
    base = entry(size=20_000, delegates={
        "xnnpack": DelegateResult("ok", latency_ms=latency(0.46, n=40, seed=3))})
    return [head, float32], {("digits_cnn", "int8"): base}


def test_each_plot_has_one_mark_per_figure():
    entries, baselines = known_entries()
    marks = parse(html.render(entries, baselines))
    # Latency: a dot per timed run, head and base; a box for the run kept without samples.
    assert marks.count("latency", "circle", "lat-head") == 50 + 30
    assert marks.count("latency", "circle", "lat-base") == 40
    assert marks.count("latency", "rect", "lat-head-summary") == 1
    # Measured vs budget: a dot per check with both figures, a ring per baseline.
    assert marks.count("budget", "circle", "budget-dot") == 4
    assert marks.count("budget", "circle", "v-fail") == 1
    assert marks.count("budget", "circle", "v-pass") == 3
    assert marks.count("budget", "circle", "budget-base") == 3
    # Size: file and gzip bars per variant, the base's size for the one that has it.
    assert marks.count("size", "rect", "size-bar") == 2
    assert marks.count("size", "rect", "size-gzip") == 2
    assert marks.count("size", "line", "size-base") == 1
    assert set(marks.boxes) == {"latency", "budget", "size"}


def test_without_a_baseline_entry_the_checks_baselines_are_drawn():
    entries, _ = known_entries()
    page = html.render(entries)
    marks = parse(page)
    assert marks.count("latency", "circle", "lat-base") == 0
    assert page.count('class="lat-base-median"') == 1  # latency.xnnpack.median's baseline
    assert marks.count("size", "line", "size-base") == 1  # size.max's baseline
    assert marks.count("budget", "circle", "budget-base") == 3


def test_without_any_baseline_only_the_head_is_drawn():
    plain = entry(checks=[Check("size.max", 1000, 2000, "pass", "bytes")],
                  delegates={"xnnpack": DelegateResult("ok", latency_ms=latency(0.3, n=12))})
    marks = parse(html.render([plain]))
    assert marks.count("latency", "circle", "lat-head") == 12
    assert not [k for k in marks.counts if "base" in k[2]]


def test_long_sample_lists_are_thinned_and_keep_their_extremes():
    values = latency(1.0, n=1000).samples
    assert values is not None
    thinned = svg.thin(values, latency_plot.MAX_DOTS)
    assert len(thinned) == latency_plot.MAX_DOTS
    assert (thinned[0], thinned[-1]) == (min(values), max(values))
    big = entry(delegates={"xnnpack": DelegateResult("ok", latency_ms=latency(1.0, n=1000))})
    assert parse(html.render([big])).count("latency", "circle", "lat-head") == latency_plot.MAX_DOTS


def test_the_page_is_self_contained_and_escapes_every_name():
    hostile = entry(model='m"><script>alert(1)</script>', variant="<img src=https://x.test/a>",
                    checks=[Check("size.max", 2, 1, "fail", "bytes",
                                  reason='<a href="http://evil.test">x</a>')],
                    warnings=["<b>bold</b>"])
    entries, baselines = known_entries()
    own = html.render(entries, baselines)
    # Not even in the text: the page names no URL of its own (inline SVG needs no xmlns).
    assert not re.search(r"https?://", own), re.search(r".{40}https?://.{40}", own)
    assert "url(" not in own and "@import" not in own
    page = html.render([*entries, hostile], baselines)
    marks = parse(page)
    # A name that holds a URL stays text: no element of the page gets it as src or href.
    assert not [u for u in marks.urls if re.match(r"\s*(https?:)?//", u, re.I)], marks.urls
    assert not re.search(r"""<[^>]*\b(src|href)\s*=\s*["']?\s*https?://""", page, re.I)
    assert "script" not in marks.tags and "img" not in marks.tags and "a" not in marks.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<style>" in page  # inline CSS


def test_empty_and_large_runs_render():
    empty = html.render([])
    assert "No model variant was checked." in empty
    marks = parse(empty)
    assert set(marks.boxes) == {"latency", "budget", "size"} and not marks.counts
    large = parse(html.render(many_entries(300)))
    assert large.count("budget", "circle", "budget-dot") == budget_plot.MAX_BUDGET_ROWS
    assert large.count("size", "rect", "size-bar") == 300


# ---------------------------------------------------------------- in a real browser


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def read_png(path: Path) -> np.ndarray:
    """An 8-bit, non-interlaced RGB(A) PNG as an (height, width, channels) array, decoded with
    zlib and numpy (no imaging library in the project's dependencies)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    channels = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), dtype=np.uint8)
    raw = raw.reshape(height, width * channels + 1)
    image = np.zeros((height, width * channels), dtype=np.uint8)
    previous = np.zeros(width * channels, dtype=np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            current = line
        elif kind == 1:  # Sub: a running sum per channel
            current = np.cumsum(line.reshape(width, channels), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            current = (line + previous) % 256
        else:  # Average and Paeth depend on the byte to the left: byte by byte
            out, up = [0] * len(line), previous.tolist()
            for i, value in enumerate(line.tolist()):
                left = out[i - channels] if i >= channels else 0
                upper_left = up[i - channels] if i >= channels else 0
                if kind == 3:
                    predicted = (left + up[i]) // 2
                else:
                    p = left + up[i] - upper_left
                    pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - upper_left)
                    predicted = left if pa <= pb and pa <= pc else up[i] if pb <= pc else upper_left
                out[i] = (value + predicted) % 256
            current = np.array(out, dtype=np.int32)
        image[y] = current
        previous = current
    return image.reshape(height, width, channels)[:, :, :3]


def has_colour(region: np.ndarray, hex_colour: str, tolerance: int = 10) -> bool:
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(region.astype(int) - target).max(axis=2) <= tolerance).any())


@pytest.mark.skipif(browser() is None, reason=f"no headless browser on PATH (looked for "
                                              f"{', '.join(BROWSERS)}); .ci/run installs chromium")
def test_chromium_renders_each_plot_where_the_page_says(tmp_path):
    entries, baselines = known_entries()
    page = tmp_path / "report.html"
    page.write_text(html.render(entries, baselines), encoding="utf-8")
    shot = tmp_path / "out.png"
    command = [
        str(browser()), "--headless", "--disable-gpu",
        # The page is our own local file: the sandbox guards against hostile pages, and it
        # cannot start as root or where unprivileged user namespaces are off (containers).
        "--no-sandbox",
        # Network off: no background or first-run traffic, and any host name fails to resolve.
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-quic", "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--hide-scrollbars", "--force-device-scale-factor=1", "--window-size=1200,1600",
        f"--screenshot={shot}", page.resolve().as_uri()]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert shot.exists(), f"no screenshot (exit {done.returncode}):\n{done.stderr[-3000:]}"
    image = read_png(shot)
    assert image.shape == (1600, 1200, 3)
    boxes = parse(page.read_text()).boxes
    regions = {}
    for name, (x, y, width, height) in boxes.items():
        assert y + height <= image.shape[0], f"plot {name} is below the screenshot"
        region = image[int(y):int(y + height), int(x):int(x + width)]
        colours = len(np.unique(region.reshape(-1, 3), axis=0))
        assert colours > 20 and region.std() > 5, f"plot {name} looks blank: {colours} colours"
        regions[name] = region
    # Each box holds its own plot: the colours only that plot uses are found in it, not next door.
    assert has_colour(regions["size"], "#93c5fd") and has_colour(regions["size"], "#1d4ed8")
    assert not has_colour(regions["latency"], "#93c5fd", 4)
    assert has_colour(regions["budget"], "#dc2626") and has_colour(regions["budget"], "#16a34a")
    assert has_colour(regions["budget"], "#dcfce7")  # the allowed zone
    assert not has_colour(regions["size"], "#dcfce7", 2)
    latency_blue = np.array([37, 99, 235]) * 0.55 + 255 * 0.45  # the head's dots over white
    blended = "#" + "".join(f"{int(v):02x}" for v in latency_blue)
    assert has_colour(regions["latency"], blended, 25)
    # Under the last plot, before the tables, the page is blank: the boxes are where drawn.
    x, y, width, height = boxes["size"]
    gap = image[int(y + height) + 4:int(y + height) + html.PLOT_GAP - 4, int(x):int(x + width)]
    assert gap.size and len(np.unique(gap.reshape(-1, 3), axis=0)) == 1


def test_a_few_slow_runs_do_not_squeeze_the_latency_axis():
    values = [1.0 + 0.001 * i for i in range(200)] + [30.0]  # one run slowed 30x by a neighbour
    slow = entry(delegates={"xnnpack": DelegateResult("ok", latency_ms=latency(1.0, n=10))})
    assert slow.measurement.delegates["xnnpack"].latency_ms is not None
    slow.measurement.delegates["xnnpack"].latency_ms.samples = values
    page = html.render([slow])
    assert "(slower runs at the edge)" in page
    x = [float(v) for v in re.findall(r'class="mark lat-head" cx="([\d.]+)"', page)]
    assert len(x) == len(values)
    # The bulk spreads over most of the axis; the slow run sits at its right end.
    assert max(x) == latency_plot.LAT_RIGHT and sorted(x)[-2] > latency_plot.LAT_LEFT + 0.8 * (
        latency_plot.LAT_RIGHT - latency_plot.LAT_LEFT)


def test_the_base_size_comes_from_a_regression_check_too():
    compared = entry(checks=[Check("regression.size", 24_000, 24_240, "pass", "bytes",
                                   baseline=23_000, delta=1_000)])
    page = html.render([compared])
    assert parse(page).count("size", "line", "size-base") == 1
    assert "base 22.5 KiB (+4.3%)" in page


# ---------------------------------------------------------------- per sample by batch size


def batched_entries() -> list[Entry]:
    """Two variants measured at batch sizes 1, 8 and 32: int8 under xnnpack (every size ran)
    and builtin (32 refused), float32 under xnnpack; a third variant without batches."""
    from pytest_tflite.results import BatchResult

    def batches(median_at_one: float, refused: tuple[int, ...] = ()) -> list[BatchResult]:
        found = []
        for size in (1, 8, 32):
            if size in refused:
                found.append(BatchResult(size, "unsupported", f"cannot run at batch {size}: no"))
                continue
            at = latency(median_at_one * size ** 0.6, n=20, seed=size)
            found.append(BatchResult(size, "ok", latency_ms=at,
                                     per_sample_ms=(at.median or 0) / size,
                                     input_shapes=[[size, 8]]))
        return found

    return [
        entry(delegates={
            "xnnpack": DelegateResult("ok", latency_ms=latency(0.5), batches=batches(0.5)),
            "builtin": DelegateResult("ok", latency_ms=latency(0.8),
                                      batches=batches(0.8, refused=(32,)))}),
        entry(variant="float32", delegates={
            "xnnpack": DelegateResult("ok", latency_ms=latency(1.5), batches=batches(1.5))}),
        entry(variant="float16", delegates={"xnnpack": DelegateResult("ok", latency_ms=latency(1.0))}),
    ]


def test_the_batch_plot_has_a_dot_per_batch_that_ran_and_a_line_per_delegate():
    page = html.render(batched_entries())
    marks = parse(page)
    assert marks.count("batch", "circle", "batch-point") == 3 + 2 + 3  # builtin's 32 refused
    plot = page[page.index('id="plot-batch"'):]
    plot = plot[:plot.index("</figure>")]
    assert plot.count("<polyline") == 3  # one line per (variant, delegate) with batches
    assert "(1 batch size failed)" in plot and "batch 32, " in plot
    assert ">32</text>" in plot and ">1</text>" in plot  # the x axis names the batch sizes
    assert not parse(html.render(known_entries()[0])).boxes.get("batch")  # none without batches


@pytest.mark.skipif(browser() is None, reason="no headless browser on PATH")
def test_chromium_draws_the_batch_plot_in_its_box(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(html.render(batched_entries()), encoding="utf-8")
    shot = tmp_path / "out.png"
    command = [str(browser()), "--headless", "--disable-gpu", "--no-sandbox",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--disable-quic", "--host-resolver-rules=MAP * ~NOTFOUND",
               f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
               "--force-device-scale-factor=1", "--window-size=1200,2000",
               f"--screenshot={shot}", page.resolve().as_uri()]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert shot.exists(), f"no screenshot (exit {done.returncode}):\n{done.stderr[-3000:]}"
    image = read_png(shot)
    x, y, width, height = parse(page.read_text()).boxes["batch"]
    assert y + height <= image.shape[0]
    region = image[int(y):int(y + height), int(x):int(x + width)]
    # The first three series' colours: each line and its dots are drawn inside the box.
    for colour in ("#2563eb", "#ea580c", "#16a34a"):
        assert has_colour(region, colour, 12), colour
