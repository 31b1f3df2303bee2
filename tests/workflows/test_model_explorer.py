"""Viewing node data in the real Model Explorer: its server started on 127.0.0.1, the page drawn
by headless Chromium with the network off, the overlay's colours counted in the screenshot; and
``tflite-budget explore`` end to end (measured placement, the moves against a baseline, Ctrl-C),
and without the extra. Skips without Model Explorer (``pip install "pytest-tflite[explorer]"``)
or Chromium, unless PYTEST_TFLITE_REQUIRE_EXPLORER=1 / PYTEST_TFLITE_REQUIRE_CHROMIUM=1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from pytest_tflite import baseline, explorer
from pytest_tflite.errors import TFLiteError
from pytest_tflite.reports.node_data import PLACED_COLOURS, write_node_data
from tests.helpers.cli import run_cli
from tests.helpers.devtools import Chromium
from tests.helpers.models import chain_model
from tests.helpers.node_entries import need_explorer, node_entry
from tests.unit.reports.test_html_browser import BROWSERS
from tests.unit.reports.test_html_browser import REQUIRE as REQUIRE_CHROMIUM
from tests.unit.reports.test_node_data import while_model

WIDTH, HEIGHT = 1200, 900
GRAPH_PANE = slice(100, HEIGHT), slice(0, 800)  # left of the side panel, below the toolbar
NODE_PIXELS = 2000  # a node box is about 100 x 32 px at this size


def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        message = f"no headless browser on PATH (looked for {', '.join(BROWSERS)})"
        if os.environ.get(REQUIRE_CHROMIUM) == "1":
            pytest.fail(f"{message}; {REQUIRE_CHROMIUM}=1 asks for it", pytrace=False)
        pytest.skip(message)
    return found


def pixels(image: np.ndarray, colour: str, tolerance: int = 6) -> int:
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image.astype(int) - target).max(axis=2) <= tolerance).sum())


def decode(png: bytes, folder: Path) -> np.ndarray:
    from tests.unit.reports.test_html_browser import read_png

    (folder / "shot.png").write_bytes(png)
    return read_png(folder / "shot.png")


def test_the_placement_overlay_colours_the_nodes_in_model_explorer(tmp_path):
    """The body of a WHILE loop is the largest graph, so the viewer opens it; it shares its
    name with the cond, so the viewer shows it as "loop (2)", the id its overlay is under. Its
    five operators are coloured delegate, fallback, delegate, fallback, custom; the cond's one
    operator is custom: a viewer that looked the body up as "loop" would colour one node."""
    need_explorer()
    chromium = browser()
    path = tmp_path / "loop.tflite"
    path.write_bytes(while_model(("net", "loop", "loop"), body_ops=5))
    body = ["delegate", "fallback", "delegate", "fallback", "custom"]
    entry = node_entry(path, placed=lambda subgraph, index: (
        "delegate" if subgraph == 0 else "custom" if subgraph == 1 else body[index]))
    write_node_data(tmp_path / "nd", [entry])
    folder = tmp_path / "nd" / "m" / "v"
    assert "loop (2)" in json.loads((folder / "placement.xnnpack.json").read_text())
    server, url = explorer.start(folder / "model.tflite", [folder / "placement.xnnpack.json"])
    page = Chromium(chromium, tmp_path / "profile", WIDTH, HEIGHT)
    try:
        page.open(url)
        deadline, counts, image = time.monotonic() + 45, {}, None
        while time.monotonic() < deadline:
            time.sleep(0.5)
            image = decode(page.screenshot(), tmp_path)[GRAPH_PANE]
            counts = {p: pixels(image, c) for p, c in PLACED_COLOURS.items()}
            if min(counts.values()) >= NODE_PIXELS:
                break
        text = page.text()
    finally:
        page.close()
        server.terminate()
        server.wait(10)
    shutil.copyfile(tmp_path / "shot.png", tmp_path / "explorer.png")
    # The viewer names an overlay by its document's "name" (the file name without one).
    assert "[2] loop (2)" in text and "placement under xnnpack" in text, text[:500]
    # Two nodes each of delegate and fallback, one custom (the full-size shot is explorer.png).
    assert counts["delegate"] >= 2 * NODE_PIXELS and counts["fallback"] >= 2 * NODE_PIXELS, counts
    assert counts["custom"] >= NODE_PIXELS, counts


def _no_proxy_get(url: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as reply:
        return bytes(reply.read())


def test_explore_serves_the_measured_placement_and_the_moves_against_a_baseline(tmp_path):
    """XNNPACK takes every RELU of the chain; the baseline says CPU kernels ran them: every
    node moved onto the delegate. Ctrl-C stops the server with exit 0, keeping --node-data."""
    need_explorer()
    model = tmp_path / "chain.tflite"
    model.write_bytes(chain_model([8, 8, 8, 8]))
    base = node_entry(model, placed=lambda subgraph, index: "fallback", model="chain",
                      variant="default")
    baseline.save(tmp_path / "base", [base], environment={})
    port = explorer.free_port()
    command = [sys.executable, "-c", "import sys; from pytest_tflite.cli import main; "
               "sys.exit(main())", "explore", str(model), "--base", str(tmp_path / "base"),
               "--node-data", str(tmp_path / "nd"), "--port", str(port)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not explorer.healthy(port):
            assert child.poll() is None and time.monotonic() < deadline, child.poll()
            time.sleep(0.2)
        # Offline, the version check must answer at once, and say nothing newer.
        assert json.loads(_no_proxy_get(f"http://127.0.0.1:{port}/api/v1/check_new_version")) \
            == explorer.NO_NEW_VERSION
    finally:
        child.send_signal(signal.SIGINT)
        code = child.wait(20)
    output = child.stdout.read().decode() if child.stdout else ""
    assert code == 0, output
    assert f"Model Explorer: http://127.0.0.1:{port}/" in output
    folder = tmp_path / "nd" / "chain" / "default"
    placement = json.loads((folder / "placement.xnnpack.json").read_text())
    assert {k: v["value"] for k, v in placement["main"]["results"].items()} == \
        {"0": 0, "1": 0, "2": 0}
    moved = json.loads((folder / "placement-diff.xnnpack.json").read_text())
    assert {k: v["value"] for k, v in moved["main"]["results"].items()} == {"0": 0, "1": 0, "2": 0}
    assert (folder / "model.tflite").read_bytes() == model.read_bytes()


def test_explore_without_the_extra_exits_2_with_the_install_command(tmp_path):
    """A model_explorer that fails to import, first on the path: the command says how to
    install the extra before it measures anything (the model does not even exist)."""
    shadow = tmp_path / "shadow" / "model_explorer"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'model_explorer'\", name='model_explorer')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", "import sys; from pytest_tflite.cli import main; "
                           "sys.exit(main())", "explore", str(tmp_path / "missing.tflite")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert 'pip install "pytest-tflite[explorer]"' in done.stderr
    assert "missing.tflite" not in done.stderr and "Traceback" not in done.stderr


def test_a_port_in_use_is_refused_before_the_server_starts():
    need_explorer()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TFLiteError, match=f"port {port} is in use on 127.0.0.1"):
            explorer.serve(Path("unused.tflite"), port=port)


def test_explore_names_what_the_baseline_holds_when_the_variant_is_not_there(tmp_path):
    """Looked up before measuring: the model file is not even read."""
    need_explorer()
    model = tmp_path / "chain.tflite"
    model.write_bytes(chain_model([4, 4]))
    baseline.save(tmp_path / "base", [node_entry(model, model="chain", variant="int8")], {})
    code, _, err = run_cli("explore", tmp_path / "absent.tflite", "--base", tmp_path / "base",
                           "--model", "chain")
    assert code == 2
    assert f"{tmp_path / 'base'} has no chain [default]: give --model and --variant as the " \
           f"baseline saved them (it holds: chain/int8)" in err
