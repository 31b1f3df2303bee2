"""Every report file a run asked for, written once, by the xdist controller (or the only
process), from the typed entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..results import Entry


@dataclass(frozen=True)
class ReportOptions:
    """Where each report goes; None: not asked for. Paths are absolute."""

    json_path: Path | None = None


def publish(entries: Sequence[Entry], options: ReportOptions) -> list[str]:
    """Write the asked-for reports; the lines returned name each file for the terminal."""
    written: list[str] = []
    if options.json_path is not None:
        from .document import write_json

        write_json(options.json_path, entries)
        written.append(f"tflite report: {options.json_path}")
    return written
