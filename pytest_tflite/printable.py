"""Text from budget files and models, made safe to print on a terminal and in a CI job's log.

Names come with pull requests: a model file's layer names, a budget file's keys. A control
character in one could move a terminal's cursor or recolour it (ESC), or end the line, and a line
that starts with ``::`` (after spaces) is a workflow command to GitHub Actions' runner
(``::warning::``, ``::add-mask::``, ``::stop-commands::``). Every line the plugin writes to the
terminal passes through ``log_line``.
"""

from __future__ import annotations

import unicodedata

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def is_control(char: str) -> bool:
    """C0 (NUL..US, ESC among them), DEL and C1: Unicode's ``Cc`` category."""
    return unicodedata.category(char) == "Cc"


def printable(text: str) -> str:
    """``text`` with each control character as an escape (``\\n``, ``\\x1b``), the rest kept."""
    if not any(is_control(char) for char in text):
        return text
    return "".join(_SHORT.get(char, f"\\x{ord(char):02x}") if is_control(char) else char
                   for char in text)


def log_line(line: str) -> str:
    """One line as the terminal and a job log should get it: control characters escaped (so it
    stays one line), and a leading ``::`` written ``\\x3a:`` so that no runner reads it as a
    workflow command."""
    line = printable(line)
    stripped = line.lstrip(" ")
    if stripped.startswith("::"):
        line = line[:len(line) - len(stripped)] + "\\x3a" + stripped[1:]
    return line
