"""Loading a budget file: TOML in, a validated ``Budget`` out, or one readable error.

Every problem (a missing file, bad TOML, a key the tables refuse, an undeclared runner) becomes
one ``BudgetFileError`` naming the file and the key path, in the user's words rather than
pydantic's.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import BudgetFileError, did_you_mean
from ..printable import printable
from ..runner_config import PREFIX as RUNNER
from ..runner_config import Runners
from .confined import confine
from .names import control_character
from .tables import BudgetFile, Variant

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


class Budget:
    """A loaded budget file: the validated schema plus where it came from."""

    def __init__(self, path: Path, spec: BudgetFile) -> None:
        self.path = path
        self.spec = spec

    @property
    def model(self) -> str:
        return self.spec.model or self.path.stem

    @property
    def source(self) -> Path | None:
        return (self.path.parent / self.spec.source).resolve() if self.spec.source else None

    def variant(self, name: str) -> Variant:
        try:
            return self.spec.variants[name]
        except KeyError:
            known = ", ".join(sorted(self.spec.variants)) or "none"
            raise BudgetFileError(
                f"{self.path}: no [variants.{printable(name)}] section (variants in this file: "
                f"{known}). "
                f"Add one, or convert with variant=... naming an existing section."
            ) from None


def load(path: Path, runners: Runners | None = None, *, root: Path | None = None) -> Budget:
    """Read and validate one budget file; every problem becomes one readable BudgetFileError.

    ``runners``: the project's declared runners; a ``runner:NAME`` the file names and they lack
    is refused here. None when the pyproject is not known yet: the engine refuses it at check
    time instead. ``root``: the project's root (pytest's rootdir); ``source`` and
    ``external:PATH`` must resolve inside it (``budget/confined.py``; None: found above the file).
    """
    if not path.is_file():
        raise BudgetFileError(
            f"budget file {path} does not exist{_files_beside(path)}. Create it (`tflite-budget "
            f"schema` gives the JSON Schema), or point --tflite-budget-dir / the "
            f"tflite_budget_dir ini key at it."
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BudgetFileError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise BudgetFileError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except ValueError as exc:  # tomllib's int() past Python's 4300-digit limit
        raise BudgetFileError(f"{path}: invalid TOML: a number too long to read ({exc})") from None
    except RecursionError:  # tomllib reads nested arrays and inline tables recursively
        raise BudgetFileError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    try:
        budget = Budget(path, BudgetFile.model_validate(data))
    except ValidationError as exc:
        raise BudgetFileError(f"{path}: invalid budget file:\n{describe_errors(exc)}") from None
    # After validation: an unknown key is named by the schema's message, escaped (key_path).
    control = control_character(data, path)
    if control is not None:
        where, what = control
        raise BudgetFileError(
            f"{printable(str(path))}: {key_path(where) + ': ' if where else ''}{what} holds a "
            f"control character (a newline, ESC, DEL, ...): names and text from budget files are "
            f"printed in reports and CI logs, so rename it with printable characters only")
    for key, name in runner_keys(budget.spec):
        if runners is not None and name not in runners.declared:
            raise BudgetFileError(f"{path}: {key}: {runners.undeclared(name)} (refused when the "
                                  f"budget file loaded)")
    confine(path, data, budget.spec.allow_outside_rootdir, root)
    return budget


def _files_beside(path: Path) -> str:
    """What the directory of a missing budget file holds; a misspelled name gets the nearest,
    by the name a marker gives (``tflite_budget("digits")`` for ``digits.toml``)."""
    try:
        found = sorted(entry for entry in path.parent.glob("*.toml") if entry.is_file())
    except OSError:
        found = []
    if not found:
        return f" (no budget files in {path.parent})"
    names = [entry.name for entry in found]
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return f"{did_you_mean(path.stem, [entry.stem for entry in found])} (budget files there: " \
           f"{shown})"


def runner_keys(spec: BudgetFile) -> list[tuple[str, str]]:
    """(key path, NAME) of every ``runner:NAME`` the file names: latency tables and
    ``runtime.delegates`` (memory and delegation tables refuse runners on their own)."""
    found = []
    settings = [("defaults.runtime", spec.defaults.runtime)]
    for variant_name, variant in spec.variants.items():
        found += [(f'variants.{variant_name}.latency."{delegate}"', delegate)
                  for delegate in variant.latency]
        settings.append((f"variants.{variant_name}.runtime", variant.runtime))
    for where, runtime in settings:
        found += [(f"{where}.delegates", delegate)
                  for delegate in (runtime.delegates or [] if runtime is not None else [])]
    return [(key, delegate[len(RUNNER):]) for key, delegate in found
            if delegate.startswith(RUNNER)]


def describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        location = key_path(str(part) for part in error["loc"] if not _is_internal_loc(part))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = _unknown_key([str(part) for part in error["loc"]
                                    if not _is_internal_loc(part)])
        # A whole table as "got" is noise: the key path already names it.
        shown = error["type"] == "missing" or isinstance(error["input"], dict)
        text = repr(error["input"])
        # A very long value would bury the message: its start is enough to find it.
        got = "" if shown else f" (got {text if len(text) <= 80 else text[:80] + '...'})"
        if error["type"] in ("value_error", "extra_forbidden"):
            got = "" if text in message else got
        lines.append(f"  {location or '(top level)'}: {message}{got}")
    return "\n".join(dict.fromkeys(lines))


def _unknown_key(parts: list[str]) -> str:
    """A key the tables refuse, with the nearest key its table does take."""
    hint = did_you_mean(parts[-1], known_keys(parts[:-1])) if parts else ""
    return (f"unknown key{hint}" if hint
            else "unknown key (check the spelling; `tflite-budget schema` lists the keys)")


def known_keys(table: list[str]) -> list[str]:
    """The keys the table at key path ``table`` (``["variants", "int8", "size"]``) takes, read
    off the JSON Schema: the tables declare them once, so this never lists keys by hand."""
    schema = _schema()
    nodes = [schema]
    for part in table:
        nodes = [child for node in nodes for found in _branches(schema, node)
                 for child in _children(found, part)]
    return sorted({key for node in nodes for found in _branches(schema, node)
                   for key in found.get("properties", {})})


@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    from .schema import json_schema

    found: dict[str, Any] = json.loads(json_schema())
    return found


def _branches(schema: dict[str, Any], node: Any) -> list[dict[str, Any]]:
    """``node`` with its ``$ref`` followed and every ``anyOf``/``oneOf``/``allOf`` branch."""
    if not isinstance(node, dict):
        return []
    if isinstance(node.get("$ref"), str):
        target: Any = schema
        for step in node["$ref"].removeprefix("#/").split("/"):
            target = target.get(step, {}) if isinstance(target, dict) else {}
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    found = [node]
    for combinator in ("anyOf", "oneOf", "allOf"):
        for branch in node.get(combinator, []):
            found += _branches(schema, branch)
    return found


def _children(node: dict[str, Any], key: str) -> list[Any]:
    """The schema of ``key`` under the table ``node``: a named property, or a name pattern's."""
    if key in node.get("properties", {}):
        return [node["properties"][key]]
    matched = [child for pattern, child in node.get("patternProperties", {}).items()
               if re.search(pattern, key)]
    extra = node.get("additionalProperties")
    return matched or ([extra] if isinstance(extra, dict) else [])


def key_path(parts: Iterable[str]) -> str:
    """A key path as the file reads: ``variants.int8.size.max``. A key holding a character that
    does not print (a newline, a NUL, a direction mark) is quoted with TOML's escapes, so a
    message stays one line per error and shows which key it was."""
    return ".".join(part if part.isprintable() else _quoted(part) for part in parts)


def _quoted(key: str) -> str:
    """A TOML basic string: what prints stays, the rest becomes an escape (\\n, \\uXXXX)."""
    short = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r",
             '"': '\\"', "\\": "\\\\"}
    out = []
    for char in key:
        if char in short:
            out.append(short[char])
        elif char.isprintable():
            out.append(char)
        else:
            out.append(f"\\u{ord(char):04X}" if ord(char) < 0x10000 else f"\\U{ord(char):08X}")
    return '"' + "".join(out) + '"'


def _is_internal_loc(part: object) -> bool:
    # Union members and validator functions show up in pydantic's error locations; users never
    # wrote them, so keep only the key path.
    text = str(part)
    internal = ("int", "float", "Relative", "str", "[key]")
    return text in internal or text.startswith(("function-", "constrained-"))
