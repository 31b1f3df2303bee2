"""The HTML report in a real browser (headless Chromium, network off): each plot is drawn in
the box its figure's ``data-box`` names, holds at least 8 colours, and the latency plot's axis
text carries its unit. Skips without a browser, unless PYTEST_TFLITE_REQUIRE_CHROMIUM=1 (set by
``.ci/run``, which installs one): then a missing browser fails."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from pytest_tflite.reports import html
from tests.unit.reports.failing_paired import failing_paired_report
from tests.unit.reports.page import parse
from tests.unit.reports.test_html import batched_entries

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
REQUIRE = "PYTEST_TFLITE_REQUIRE_CHROMIUM"
MIN_COLOURS = 8


@pytest.fixture
def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        message = (f"no headless browser on PATH (looked for {', '.join(BROWSERS)}); "
                   f"Debian: apt-get install chromium")
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{message}; {REQUIRE}=1 asks for it", pytrace=False)
        pytest.skip(message)
    return found


def screenshot(browser: str, page: Path, height: int) -> np.ndarray:
    """The page rendered 1200 px wide and ``height`` tall, as an RGB array."""
    shot = page.with_suffix(".png")
    command = [
        browser, "--headless", "--disable-gpu",
        # The page is our own local file: the sandbox guards against hostile pages, and it
        # cannot start as root or where unprivileged user namespaces are off (containers).
        "--no-sandbox",
        # Network off: no background or first-run traffic, and any host name fails to resolve.
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-quic", "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={page.parent / 'profile'}",
        "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size=1200,{height}",
        f"--screenshot={shot}", page.resolve().as_uri()]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert shot.exists(), f"no screenshot (exit {done.returncode}):\n{done.stderr[-3000:]}"
    image = read_png(shot)
    assert image.shape == (height, 1200, 3)
    return image


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


def over_white(hex_colour: str, opacity: float) -> str:
    """A colour drawn at ``opacity`` over the white page."""
    rgb = [int(hex_colour[i:i + 2], 16) * opacity + 255 * (1 - opacity) for i in (1, 3, 5)]
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def colours(region: np.ndarray, least: int = 4) -> int:
    """Distinct colours that cover at least ``least`` pixels (a glyph's edge alone does not)."""
    _, counts = np.unique(region.reshape(-1, 3), axis=0, return_counts=True)
    return int((counts >= least).sum())


def test_chromium_renders_each_plot_where_the_page_says(tmp_path, browser):
    entries, baselines = failing_paired_report()
    page = tmp_path / "report.html"
    text = html.render(entries, baselines)
    page.write_text(text, encoding="utf-8")
    marks = parse(text)
    boxes = marks.boxes
    assert set(boxes) == {"latency", "size", "budget"}
    height = int(max(y + h for _, y, _, h in boxes.values())) + 60
    image = screenshot(browser, page, height)
    regions = {}
    for name, (x, y, width, h) in boxes.items():
        region = image[int(y):int(y + h), int(x):int(x + width)]
        found = colours(region)
        assert found >= MIN_COLOURS, f"plot {name} looks blank: {found} colours"
        regions[name] = region
    latency, budget, size = regions["latency"], regions["budget"], regions["size"]
    # Each box holds its own plot: the colours only that plot uses are found in it.
    assert has_colour(latency, "#dc2626")  # the regressed rows' intervals
    assert has_colour(latency, "#2563eb")  # the unchanged row's interval
    assert has_colour(latency, "#dcfce7", 2)  # the tolerance band
    assert has_colour(latency, over_white("#4f46e5", 0.45), 25)  # a pair's dot
    assert not has_colour(latency, "#93c5fd", 4)  # no size bar
    assert has_colour(size, "#93c5fd") and has_colour(size, "#1d4ed8")
    assert not has_colour(size, "#dcfce7", 2)
    assert has_colour(budget, "#dc2626") and has_colour(budget, "#16a34a")
    assert has_colour(budget, "#dcfce7", 2)  # the allowed zone
    # The latency plot's axes say what they measure and in which unit.
    labels = marks.texts("latency", "axis-label")
    assert labels and all(re.search(r"(µs|ms|\ds|%|\(base\))$", t) for t in labels), labels
    assert any("%" in t for t in marks.texts("latency", "axis-title"))
    assert any("µs" in t for t in marks.texts("latency", "axis-title"))
    # Under the last plot the page is blank until the folded passes: the boxes are where drawn.
    x, y, width, h = boxes["budget"]
    gap = image[int(y + h) + 4:int(y + h) + html.PLOT_GAP - 4, int(x):int(x + width)]
    assert gap.size and len(np.unique(gap.reshape(-1, 3), axis=0)) == 1


def test_chromium_draws_the_batch_plot_in_its_box(tmp_path, browser):
    page = tmp_path / "report.html"
    text = html.render(batched_entries())
    page.write_text(text, encoding="utf-8")
    x, y, width, height = parse(text).boxes["batch"]
    image = screenshot(browser, page, int(y + height) + 40)
    region = image[int(y):int(y + height), int(x):int(x + width)]
    assert colours(region) >= MIN_COLOURS
    # The first three series' colours: each line and its dots are drawn inside the box.
    for colour in ("#2563eb", "#ea580c", "#16a34a"):
        assert has_colour(region, colour, 12), colour
