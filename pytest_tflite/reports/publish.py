"""Every report file a run asked for, written once, by the xdist controller (or the only
process), from the typed entries."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..files import write_atomic
from ..results import Entry


@dataclass(frozen=True)
class ReportOptions:
    """Where each report goes; None: not asked for. Paths are absolute."""

    json_path: Path | None = None
    markdown_path: Path | None = None  # the pull-request comment body (--tflite-markdown)
    comment_id: str = "budgets"  # its hidden marker: <!-- pytest-tflite:ID -->
    html_path: Path | None = None  # the self-contained page with plots (--tflite-html)
    step_summary: Path | None = None  # $GITHUB_STEP_SUMMARY: appended to, never overwritten
    node_data_dir: Path | None = None  # Model Explorer overlays per variant (--tflite-node-data)


def publish(entries: Sequence[Entry], options: ReportOptions,
            baselines: Mapping[tuple[str, str], Entry] | None = None) -> list[str]:
    """Write the asked-for reports; the lines returned name each file for the terminal.

    ``baselines`` maps ``(model, variant)`` to the baseline's typed entry, when the run compared
    with one: the HTML page draws the base's latency samples and size from it. Without it the
    reports read the checks' ``baseline``/``delta`` and the delegates' ``comparison``.
    """
    written: list[str] = []
    if options.json_path is not None:
        from .document import write_json

        _through_temporary(options.json_path, lambda temporary: write_json(temporary, entries))
        written.append(f"tflite report: {options.json_path}")
    if options.markdown_path is not None:
        from .markdown import comment_body

        _write(options.markdown_path, comment_body(entries, options.comment_id))
        written.append(f"tflite comment body: {options.markdown_path}")
    if options.html_path is not None:
        from .html import render

        _write(options.html_path, render(entries, baselines))
        written.append(f"tflite html report: {options.html_path}")
    if options.node_data_dir is not None:
        from .node_data import write_node_data

        write_node_data(options.node_data_dir, entries)
        written.append(f"tflite node data: {options.node_data_dir} (its README.md says how to "
                       f"view each variant)")
    # Only a run that checked something adds to the job summary: every pytest run of a job
    # sees the variable, and a section saying "nothing checked" per run would be noise.
    if (options.step_summary is not None and entries
            and append_step_summary(options.step_summary, entries)):
        written.append(f"tflite job summary: {options.step_summary}")
    return written


def append_step_summary(path: Path, entries: Sequence[Entry]) -> bool:
    """Append the Markdown section to GitHub's job summary file, within what is left of its
    1 MiB limit (other steps' and runs' sections share the file). False when nothing fits."""
    from .markdown import SUMMARY_LIMIT, job_summary

    try:
        used = path.stat().st_size
    except FileNotFoundError:
        used = 0
    room = SUMMARY_LIMIT - used - 2  # the blank line that separates it from what is there
    if room < 1024:
        return False
    data = (("\n" if used else "") + job_summary(entries, limit=room)).encode("utf-8")
    # Other steps own the file, so no temporary file and rename: one append of the whole
    # section, in a single write, so that a kill leaves all of it or (almost surely) none.
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        while data:
            data = data[os.write(descriptor, data):]
    finally:
        os.close(descriptor)
    return True


def _write(path: Path, text: str) -> None:
    # A reader (the workflow's next step, a browser) never sees half a report, and a failed or
    # killed write leaves the previous one.
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"))


def _through_temporary(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a file whose writer takes a path, as atomically as :func:`_write`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        write_atomic(path, temporary.read_bytes())
    finally:
        temporary.unlink(missing_ok=True)
