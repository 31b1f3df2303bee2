"""Loading a budget file: TOML in, a validated ``Budget`` out, or one readable error.

Every problem (a missing file, bad TOML, a key the tables refuse, an undeclared runner) becomes
one ``BudgetFileError`` naming the file and the key path, in the user's words rather than
pydantic's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from ..errors import BudgetFileError
from ..runner_config import PREFIX as RUNNER
from ..runner_config import Runners
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
                f"{self.path}: no [variants.{name}] section (variants in this file: {known}). "
                f"Add one, or convert with variant=... naming an existing section."
            ) from None


def load(path: Path, runners: Runners | None = None) -> Budget:
    """Read and validate one budget file; every problem becomes one readable BudgetFileError.

    ``runners``: the project's declared runners; a ``runner:NAME`` the file names and they lack
    is refused here. None when the pyproject is not known yet: the engine refuses it at check
    time instead.
    """
    if not path.is_file():
        raise BudgetFileError(
            f"budget file {path} does not exist. Create it (`tflite-budget schema` gives the "
            f"JSON Schema), or point --tflite-budget-dir / the tflite_budget_dir ini key at it."
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
    for key, name in runner_keys(budget.spec):
        if runners is not None and name not in runners.declared:
            raise BudgetFileError(f"{path}: {key}: {runners.undeclared(name)} (refused when the "
                                  f"budget file loaded)")
    return budget


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
            message = "unknown key (check the spelling; `tflite-budget schema` lists the keys)"
        # A whole table as "got" is noise: the key path already names it.
        shown = error["type"] == "missing" or isinstance(error["input"], dict)
        text = repr(error["input"])
        # A very long value would bury the message: its start is enough to find it.
        got = "" if shown else f" (got {text if len(text) <= 80 else text[:80] + '...'})"
        if error["type"] in ("value_error", "extra_forbidden"):
            got = "" if text in message else got
        lines.append(f"  {location or '(top level)'}: {message}{got}")
    return "\n".join(dict.fromkeys(lines))


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
