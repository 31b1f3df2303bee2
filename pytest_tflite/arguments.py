"""Argument types shared by the pytest options and the CLI: a typo fails at start-up, named."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any


def delegate_list(text: str) -> tuple[str, ...]:
    """"xnnpack,builtin" -> ("xnnpack", "builtin"); unknown names are an error."""
    from .budget import DELEGATES

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [n for n in names if n not in DELEGATES and not n.startswith(("external:", "runner:"))]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown delegate(s) {', '.join(unknown) or '(none given)'}; expected a comma-"
            f"separated list of {', '.join(DELEGATES)}, external:PATH or runner:NAME")
    return names


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def size(text: str) -> int:
    """"2 GiB" -> bytes, with the budget files' units."""
    from .units import parse_size

    try:
        return parse_size(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def percentage(text: str) -> float:
    """"20%" -> 0.2."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        value = -1.0
    if not text.strip().endswith("%") or value < 0:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 20%, got {text!r}")
    return value / 100


# The ini keys (``tflite_NAME``) that are runtime settings, read by pytest and by the CLI.
INI_RUNTIME_KEYS = ("delegates", "threads", "timeout", "max_memory")


def ini_runtime_settings(values: Mapping[str, object]) -> dict[str, Any]:
    """The ``tflite_delegates``, ``tflite_threads``, ``tflite_timeout`` and ``tflite_max_memory``
    ini values (raw strings, as pytest or the CLI read them) as runtime settings; timeouts in
    ms and sizes in bytes, like budgets."""
    settings: dict[str, Any] = {}
    if values.get("delegates"):
        settings["delegates"] = list(delegate_list(str(values["delegates"])))
    if values.get("threads"):
        settings["threads"] = positive_int(str(values["threads"]).strip())
    if values.get("timeout"):
        settings["timeout"] = positive_float(str(values["timeout"])) * 1000
    if values.get("max_memory"):
        settings["max_memory"] = size(str(values["max_memory"]))
    return settings
