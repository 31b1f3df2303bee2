"""Argument types shared by the pytest options and the CLI: a typo fails at start-up, named."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def delegate_list(text: str) -> tuple[str, ...]:
    """"xnnpack,builtin" -> ("xnnpack", "builtin"); unknown names are an error."""
    from .budget import DELEGATES
    from .errors import did_you_mean

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [n for n in names if n not in DELEGATES and not n.startswith(("external:", "runner:"))]
    if unknown or not names:
        hints = "".join(did_you_mean(name, DELEGATES) for name in unknown)
        raise argparse.ArgumentTypeError(
            f"unknown delegate(s) {', '.join(unknown) or '(none given)'}{hints}; expected a comma-"
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


def ini_layer(values: Mapping[str, object]) -> dict[str, Any]:
    """The ``tflite_delegates``, ``tflite_threads``, ``tflite_timeout`` (seconds) and
    ``tflite_max_memory`` ini values, raw as pytest or the CLI read them, as a settings layer
    (``settings.resolve_runtime``). Raises ``argparse.ArgumentTypeError`` naming a bad value."""
    parsers: dict[str, Callable[[str], object]] = {
        "delegates": delegate_list, "threads": positive_int, "timeout": positive_float,
        "max_memory": size}
    return {key: parsers[key](str(values[key]).strip())
            for key in INI_RUNTIME_KEYS if values.get(key)}


def ini_file_layer(start: Path) -> dict[str, Any]:
    """``ini_layer`` of the configuration file pytest would read for a run started on ``start``
    (a directory): the CLI reads the same file, the same way, as the plugin does."""
    from .errors import TFLiteError

    path, values = pytest_ini_values(start)
    try:
        return ini_layer({key: values.get(f"tflite_{key}") for key in INI_RUNTIME_KEYS})
    except argparse.ArgumentTypeError as exc:
        raise TFLiteError(f"{path}: {exc}") from None


def pytest_ini_values(start: Path) -> tuple[Path | None, dict[str, object]]:
    """(configuration file, its pytest values) as ``pytest START`` finds them, by pytest's own
    discovery: the first directory upwards with a pytest section in pytest.ini, pyproject.toml,
    tox.ini or setup.cfg (and the files newer pytest versions add). That code is private to
    pytest, so ``tests/unit/test_cli.py`` pins it on the newest pytest and, in .ci/run, the oldest."""
    import inspect

    import pytest
    from _pytest.config import findpaths

    from .errors import TFLiteError

    try:
        if "invocation_dir" in inspect.signature(findpaths.locate_config).parameters:
            found = findpaths.locate_config(start, [start])  # pytest 8.1 and later
        else:  # pytest 8.0: .ci/run's floor run
            found = findpaths.locate_config([start])  # type: ignore[call-arg,arg-type]
    except (pytest.UsageError, pytest.fail.Exception) as exc:  # a file pytest cannot parse
        raise TFLiteError(f"the pytest configuration above {start}: {exc}") from None
    # pytest 9 wraps each value with where it came from; 8.x gives the value itself.
    return found[1], {key: getattr(value, "value", value) for key, value in found[2].items()}
