"""The pull-request comment's identity, shared by the Markdown that writes it and the GitHub
client that posts it: the hidden marker a body starts with (``<!-- pytest-tflite:ID -->``), and
GitHub's size limit. Standard library only, so the plugin's options and the client stay light."""

from __future__ import annotations

import argparse
import re

COMMENT_LIMIT = 65_536  # GitHub refuses an issue comment body longer than this
DEFAULT_COMMENT_ID = "budgets"

# Letters, digits, '.', '_' and '-', not starting with a dash: nothing that can close the HTML
# comment ("-->") or read as a command-line option.
_COMMENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MARKER_RE = re.compile(r"\A\s*<!-- pytest-tflite:([A-Za-z0-9][A-Za-z0-9._-]*) -->")


def comment_id(value: str) -> str:
    """``--tflite-comment-id``: checked as an argparse type, so a bad one is a usage error."""
    if not _COMMENT_ID_RE.match(value) or "--" in value:
        raise argparse.ArgumentTypeError(
            f"invalid comment id {value!r}: use letters, digits, '.', '_' and '-' "
            f"(not starting with '-', no '--')")
    return value


def marker(identifier: str = DEFAULT_COMMENT_ID) -> str:
    return f"<!-- pytest-tflite:{comment_id(identifier)} -->"


def read_marker(body: str) -> str | None:
    """The marker a comment body starts with, or None: only a body that *starts* with it is
    ours, so a comment that merely quotes or mentions the marker is never taken over."""
    found = _MARKER_RE.match(body)
    return f"<!-- pytest-tflite:{found.group(1)} -->" if found else None


def utf16_length(text: str) -> int:
    """Length as JavaScript counts it (an emoji can be two): never less than the number of
    characters, whichever way GitHub counts its limit."""
    return len(text.encode("utf-16-le")) // 2
