"""Model Explorer, the viewer: its server started on 127.0.0.1 with one model and its node-data
overlays, in this process (``serve``) or in a child (``start``, ``python -m
pytest_tflite.explorer``); and ``tflite-budget explore``, which measures a model, writes its
overlays and serves them (``explore``).

``ai-edge-model-explorer`` is the optional extra ``explorer`` (its adapter wheel is 128 MB), so
it is imported inside functions only, and never through ``model_explorer.cmdline``, which
parses ``sys.argv`` when imported. Its server asks PyPI and GitHub for a newer version at start
and on every ``/api/v1/check_new_version`` with no timeout; offline that hangs a thread and the
page's request, so this module answers "no newer version" instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from .errors import TFLiteError

if TYPE_CHECKING:
    from .results import Entry
    from .settings import RuntimeSettings

HOST = "127.0.0.1"
INSTALL = 'pip install "pytest-tflite[explorer]"'
# What the server's version check returns when it finds nothing newer.
NO_NEW_VERSION = {"version": "", "runningVersion": "", "releaseUrl": "", "desktopAppUrl": ""}


class ExplorerMissing(TFLiteError):
    """Model Explorer is not installed (or does not import)."""


def _import_server() -> Any:
    try:
        import ai_edge_model_explorer_adapter  # noqa: F401  (the .tflite adapter: a separate wheel)
        from model_explorer import server
    except ImportError as exc:
        raise ExplorerMissing(f"Model Explorer is not installed ({exc}): {INSTALL}") from None
    return server


def require() -> None:
    """Raise ``ExplorerMissing`` with the install command unless Model Explorer imports."""
    _import_server()


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((host, port)) == 0


def address(port: int, host: str = HOST) -> str:
    return f"http://{host}:{port}/"


def url(port: int, model: Path, node_data: Sequence[Path] = (), host: str = HOST) -> str:
    """The page with the model and its overlays loaded, as Model Explorer's own start prints it
    (``?data=`` holds absolute paths that the server reads)."""
    data: dict[str, Any] = {"models": [{"url": str(model.resolve())}]}
    if node_data:
        data["nodeData"] = [str(p.resolve()) for p in node_data]
        data["nodeDataTargets"] = ["" for _ in node_data]  # "": the first model
    return f"{address(port, host)}?data={quote(json.dumps(data))}"


def serve(model: Path, node_data: Sequence[Path] = (), port: int | None = None,
          host: str = HOST) -> None:
    """Serve the model and its overlays until Ctrl-C (Model Explorer's server, in this
    process). Raises ``ExplorerMissing`` without the extra and ``TFLiteError`` when the port is
    taken (Model Explorer itself would exit the process)."""
    server = _import_server()
    from model_explorer.config import ModelExplorerConfig

    port = free_port(host) if port is None else port
    if _in_use(host, port):
        raise TFLiteError(f"port {port} is in use on {host}: give another with --port, or leave "
                          f"it out for a free one")
    # Looked up by name at call time, both by the start-up thread and by the route.
    server._check_new_version = lambda print_msg=True: dict(NO_NEW_VERSION)
    config = ModelExplorerConfig()
    config.add_model_from_path(str(model))
    for path in node_data:
        config.add_node_data_from_path(str(path))
    # Its own health check polls with `requests` (through any proxy, with no timeout), in a
    # loop without a pause: `start` checks with urllib instead.
    server.start(host=host, port=port, config=config, no_open_in_browser=True,
                 skip_health_check=True)


def start(model: Path, node_data: Sequence[Path] = (), port: int | None = None,
          host: str = HOST, wait: float = 60.0) -> tuple[subprocess.Popen[bytes], str]:
    """``serve`` in a child process (``python -m pytest_tflite.explorer``, an argv list); returns
    it and the page's URL once the server answers. The caller stops it (``terminate``)."""
    require()
    port = free_port(host) if port is None else port
    command = [sys.executable, "-m", "pytest_tflite.explorer", str(model), "--port", str(port),
               "--host", host, *(item for path in node_data for item in ("--node-data", str(path)))]
    # Its output goes to a file: a pipe nobody reads fills up and blocks the server.
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                 stderr=subprocess.STDOUT)
        _wait_healthy(child, output, port, host, wait)
    return child, url(port, model, node_data, host)


def _wait_healthy(child: subprocess.Popen[bytes], output: IO[bytes], port: int, host: str,
                  wait: float) -> None:
    deadline = time.monotonic() + wait
    while not healthy(port, host):
        if child.poll() is not None:
            output.seek(0)
            said = output.read().decode("utf-8", "replace")[-2000:]
            raise TFLiteError(f"Model Explorer exited ({child.returncode}): {said}")
        if time.monotonic() > deadline:
            child.kill()
            raise TFLiteError(f"Model Explorer did not answer on {address(port, host)} within "
                              f"{wait:g} s")
        time.sleep(0.1)


def healthy(port: int, host: str = HOST) -> bool:
    """Whether Model Explorer answers its health check (no proxy: the server is local)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{address(port, host)}check_health", timeout=2) as reply:
            return bool(reply.read() == b"model_explorer_ok")
    except OSError:
        return False


def explore(model: Path, delegates: list[str], settings: RuntimeSettings, *, name: str,
            variant: str = "default", base: Path | None = None, port: int | None = None,
            folder: Path | None = None) -> int:
    """``tflite-budget explore``: measure the model's placement under ``delegates``, diff it
    against the baseline directory ``base`` (looked up as ``name`` [``variant``]), write the
    node data into ``folder`` (default: a temporary one, removed at exit) and serve it until
    Ctrl-C. Returns the exit code."""
    from .files import path_part
    from .flatbuffer import FlatbufferView
    from .graph_diff import against_baseline
    from .reports.node_data import MODEL_FILE, overlays, write_node_data
    from .results import Entry
    from .starter import measure_rounds

    require()
    saved = _baseline_entry(base, name, variant) if base is not None else None
    try:
        measurement, rounds = measure_rounds(model, delegates, settings, 1)
    except KeyboardInterrupt:
        return 130
    measurement.delegates = rounds[0] if rounds else {}
    entry = Entry(f"tflite-budget explore {model}", name, variant, "tflite", measurement, [],
                  model_path=str(model.resolve()))
    if saved is not None:
        entry.graph_diff = against_baseline(saved[1], saved[0].measurement,
                                            FlatbufferView(model.read_bytes(), origin=str(model)),
                                            measurement)
    target = folder or Path(tempfile.mkdtemp(prefix="tflite-explore-"))
    try:
        written = write_node_data(target, [entry])
        here = target / path_part(name) / path_part(variant)
        paths = [p for p in written if p.parent == here and p.suffix == ".json"]
        skipped = overlays(entry).skipped
        port = port or free_port()
        print("\n".join([f"node data: {here}", *(f"  {p.name}" for p in paths),
                         *(f"  not written, {k}: {why}" for k, why in skipped.items()),
                         f"Model Explorer: {address(port)} (Ctrl-C to stop)",
                         f"  this model and its overlays: {url(port, here / MODEL_FILE, paths)}"]),
              flush=True)
        serve(here / MODEL_FILE, paths, port)
    except KeyboardInterrupt:
        pass
    finally:
        if folder is None:
            shutil.rmtree(target, ignore_errors=True)
    return 0


def _baseline_entry(directory: Path, model: str, variant: str) -> tuple[Entry, Path | None]:
    """The baseline's entry of this model variant and its saved ``.tflite`` (or None)."""
    from .baseline import Baseline

    baseline = Baseline.open(directory)
    found = baseline.lookup(model, variant)
    if found is None:
        saved = sorted(key[:-5] for key in baseline.files or {} if key.endswith(".json"))
        raise TFLiteError(f"{directory} has no {model} [{variant}]: give --model and --variant "
                          f"as the baseline saved them (it holds: {', '.join(saved) or 'nothing'})")
    return found.entry, found.tflite


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_tflite.explorer",
                                     description="Serve a model and its node data in Model "
                                                 "Explorer until Ctrl-C.")
    parser.add_argument("model", type=Path)
    parser.add_argument("--node-data", type=Path, action="append", default=[])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--host", default=HOST)
    args = parser.parse_args(argv)
    try:
        serve(args.model, args.node_data, args.port, args.host)
    except TFLiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
