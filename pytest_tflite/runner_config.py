"""Runners as a project declares them: ``[tool.pytest-tflite.runners.NAME]`` in pyproject.toml.

A runner measures latency somewhere else (a phone over adb, a device farm's job) and budgets
name it like a delegate, ``latency."runner:NAME".median``. This module only reads and checks the
declarations; ``measure/runners.py`` runs them. Light: the standard library and ``units``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TFLiteError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

PREFIX = "runner:"
NAME_PATTERN = r"[A-Za-z0-9_-]+"
# The output formats a runner may print or write (measure/runners.py reads them). Each gives
# some statistics: a budget on one it lacks is an error naming the statistic and the format.
FORMATS = ("litert-json", "benchmark-model-text", "pytest-tflite-json")
# Placeholders of ``command`` (and ``probe``): substituted shell-quoted in one pass, then split
# with shlex. ``{model}`` is a scratch copy with a fixed name, never the repository's file name.
PLACEHOLDERS = ("{model}", "{result}", "{threads}", "{python}")
SECTION = "tool.pytest-tflite.runners"


class RunnerConfigError(TFLiteError):
    """A ``[tool.pytest-tflite.runners.NAME]`` table that cannot be used, with its key path."""


@dataclass(frozen=True)
class Runner:
    name: str
    command: str
    format: str
    timeout_s: float | None = None  # None: the run's worker timeout
    probe: str | None = None  # a command that exits 0 when the device is there

    @property
    def delegate(self) -> str:
        return PREFIX + self.name


@dataclass(frozen=True)
class Runners:
    """The runners of one project; ``pyproject`` is where they are (or would be) declared."""

    pyproject: Path | None
    declared: Mapping[str, Runner] = field(default_factory=dict)

    def undeclared(self, name: str) -> str:
        """Why ``runner:NAME`` cannot be used: where to declare it."""
        where = str(self.pyproject) if self.pyproject is not None else "the project's pyproject.toml"
        known = ", ".join(sorted(self.declared)) or "none"
        return (f"runner {name!r} is not declared: add [{SECTION}.{name}] with command and format "
                f"to {where} (declared runners: {known})")


def runner_name(delegate: str) -> str | None:
    """NAME of a ``runner:NAME`` delegate key; None for any other delegate."""
    return delegate[len(PREFIX):] if delegate.startswith(PREFIX) else None


def find_pyproject(start: Path) -> Path | None:
    """The first pyproject.toml in ``start`` or above it, as the CLI finds ini settings."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder / "pyproject.toml"
    return None


def load(pyproject: Path | None) -> Runners:
    """The runners declared in ``pyproject`` (none when it is None or declares none)."""
    if pyproject is None or not pyproject.is_file():
        return Runners(pyproject)
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RunnerConfigError(f"{pyproject}: {exc}") from None
    tables = data.get("tool", {}).get("pytest-tflite", {}).get("runners", {})
    if not isinstance(tables, dict):
        raise RunnerConfigError(f"{pyproject}: [{SECTION}] must be a table of runners")
    return Runners(pyproject, {name: _runner(pyproject, name, table)
                               for name, table in tables.items()})


def _runner(pyproject: Path, name: str, table: object) -> Runner:
    where = f"{pyproject}: [{SECTION}.{name}]"
    if not re.fullmatch(NAME_PATTERN, name):
        raise RunnerConfigError(f"{where}: a runner's name takes letters, digits, - and _ only")
    if not isinstance(table, dict):
        raise RunnerConfigError(f"{where}: expected a table with command and format")
    unknown = sorted(set(table) - {"command", "format", "timeout", "probe"})
    if unknown:
        raise RunnerConfigError(f"{where}: unknown key {unknown[0]!r} (keys: command, format, "
                                f"timeout, probe)")
    command, output, probe = table.get("command"), table.get("format"), table.get("probe")
    if not isinstance(command, str) or not command.strip():
        raise RunnerConfigError(f"{where}: command must be a non-empty string, e.g. "
                                f"\"benchmark_model --graph={{model}} --num_threads={{threads}}\"")
    if output not in FORMATS:
        raise RunnerConfigError(f"{where}: format must be one of {', '.join(FORMATS)}, "
                                f"got {output!r}")
    if output == "litert-json" and "{result}" not in command:
        raise RunnerConfigError(f"{where}: litert-json is read from the file the command writes: "
                                f"put {{result}} in the command (--result_json={{result}})")
    if probe is not None and (not isinstance(probe, str) or not probe.strip()):
        raise RunnerConfigError(f"{where}: probe must be a command, e.g. \"adb get-state\"")
    timeout_s = None
    if "timeout" in table:
        from .units import parse_duration

        try:
            timeout_s = parse_duration(table["timeout"]) / 1000
        except ValueError as exc:
            raise RunnerConfigError(f"{where}: timeout: {exc}") from None
        if timeout_s <= 0:
            raise RunnerConfigError(f"{where}: timeout must be more than 0 s")
    return Runner(name, command, str(output), timeout_s, probe)
