"""Names are data: a budget file whose keys or text hold a control character is refused.

Model, variant and layer names reach terminal tables, CI job logs and PR comments. A control
character (C0, ESC, DEL, C1) in one can rewrite a terminal or start a line GitHub Actions' runner
executes as a workflow command, so it is refused when the file loads, naming the key; the
reports escape what they print besides (``printable.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..printable import is_control, printable


def control_character(data: Any, path: Path) -> tuple[list[str], str] | None:
    """(key path, what holds it) of the first control character in the budget file ``path``:
    its name (the model's name by default), a key, or a string value; None when there is none."""
    if any(is_control(char) for char in path.stem):
        return [], f"the file name \"{printable(path.name)}\" (the model's name unless model = ...)"
    return _walk(data, [])


def _walk(node: Any, where: list[str]) -> tuple[list[str], str] | None:
    if isinstance(node, dict):
        for key, value in node.items():
            if any(is_control(char) for char in str(key)):
                return [*where, str(key)], "the key"
            found = _walk(value, [*where, str(key)])
            if found is not None:
                return found
    elif isinstance(node, list):
        for item in node:
            found = _walk(item, where)
            if found is not None:
                return found
    elif isinstance(node, str) and any(is_control(char) for char in node):
        return where, f"the value \"{printable(node)}\""
    return None
