"""The JSON report: ``{"version", "environment", "entries"}``, written from typed entries."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..results import Entry

# Adding keys keeps the version; renaming or removing one bumps it (with a migration note).
REPORT_VERSION = 1


def environment() -> dict[str, Any]:
    from ..environment import package_version as version

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": platform.machine(),
        **{key: version(dist) for key, dist in [
            ("tensorflow", "tensorflow"), ("ai_edge_litert", "ai-edge-litert"),
            ("numpy", "numpy"), ("pytest_tflite", "pytest-tflite")]},
    }


def write_json(path: Path, entries: Sequence[Entry]) -> None:
    document = {"version": REPORT_VERSION, "environment": environment(),
                "entries": [entry.to_json() for entry in entries]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
