"""Units, the one home: sizes and times parsed from budget files (to bytes and milliseconds)
and written back for people in tables and messages. pydantic's ByteSize loads on first parse."""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any

SIZE_UNITS = "B, KB, KiB, MB, MiB, GB, GiB"
TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
# Sizes travel as JSON integers in reports: past int64 most readers lose them.
MAX_BYTES = 2**63 - 1

# ASCII digits and blanks only: Python's \d and \s also match "٣" and "\x1f", which ByteSize and
# JSON Schema readers refuse. The budget schema shows these same patterns to editors.
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
SIZE_PATTERN = rf"^[ \t]*({_NUMBER})[ \t]*(B|KB|KiB|MB|MiB|GB|GiB)[ \t]*$"
TIME_PATTERN = rf"^[ \t]*({_NUMBER})[ \t]*(us|ms|s)[ \t]*$"
PERCENT_PATTERN = rf"^[ \t]*({_NUMBER})[ \t]*%[ \t]*$"
_SIZE_RE = re.compile(SIZE_PATTERN)
_TIME_RE = re.compile(r"^[ \t]*([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)[ \t]*(us|ms|s)[ \t]*$")


def parse_size(value: object) -> int:
    # ByteSize alone accepts 0, booleans, "0.5 B" and units we do not document: constrain it.
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 24576 or \"24 KiB\" ({SIZE_UNITS}), got {value}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"a size in bytes must be a whole number, got {value}")
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if not match:
            raise ValueError(f"expected a size such as \"24 KiB\" (units {SIZE_UNITS}), got {value!r}")
    elif not isinstance(value, (int, float)):
        raise ValueError(f"expected a size such as 24576 or \"24 KiB\", got {value!r}")
    elif value <= 0:
        raise ValueError(f"a size must be greater than 0, got {value!r}")
    # The matched number and unit only: ByteSize reads blanks and digits its own way.
    text = f"{match.group(1)}{match.group(2)}" if isinstance(value, str) and match else value
    number = int(_byte_size().validate_python(text))
    if isinstance(value, str) and match and number != float(match.group(1)) * unit_bytes(match.group(2)):
        raise ValueError(f"a size must be a whole number of bytes, got {value!r}")
    if number <= 0:
        raise ValueError(f"a size must be greater than 0, got {value!r}")
    if number > MAX_BYTES:
        raise ValueError(f"a size must be at most {MAX_BYTES} bytes (8 EiB)")
    return number


def unit_bytes(unit: str) -> int:
    return {"B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2, "GB": 1000**3,
            "GiB": 1024**3}[unit]


def parse_time(value: object) -> float:
    """A duration in milliseconds: a bare number is milliseconds, a string carries us/ms/s."""
    if isinstance(value, bool):
        raise ValueError(f"expected a time such as \"0.8 ms\" (units us, ms, s), got {value}")
    if isinstance(value, (int, float)):
        # TOML integers are unbounded; one past a float's range reads as infinite, refused below.
        number = float(value) if abs(value) < 2**1023 else math.inf
    elif isinstance(value, str) and (match := _TIME_RE.match(value)):
        number = float(match.group(1)) * TIME_UNITS[match.group(2)]
    else:
        raise ValueError(f"expected a time such as \"0.8 ms\" (units us, ms, s), got {value!r}")
    if not math.isfinite(number):
        raise ValueError("a time must be a finite number greater than 0")
    if number <= 0:
        raise ValueError(f"a time must be greater than 0, got {value!r}")
    return number


def parse_duration(value: object) -> float:
    """A setting's duration: a bare number is refused, since "300" read as ms surprised users."""
    if not isinstance(value, str):
        raise ValueError(f"a duration needs a unit: write \"{value} s\" for seconds (units us, "
                         f"ms, s), got {value!r}")
    return parse_time(value)


PERCENT_RE = re.compile(PERCENT_PATTERN)

# Counts (instructions, cycles): k, M and G are DECIMAL (1k = 1,000), unlike KiB/MiB in sizes.
COUNT_UNITS = {"k": 10**3, "M": 10**6, "G": 10**9}
COUNT_PATTERN = rf"^[ \t]*({_NUMBER})[ \t]*(k|M|G)[ \t]*$"
_COUNT_RE = re.compile(COUNT_PATTERN)
_COUNT_HINT = ('a count such as 15569455 or "15.6M" (k, M, G are decimal: 1k = 1,000, '
               '1M = 1,000,000; not KiB/MiB)')


def parse_count(value: object) -> int:
    """A whole count (instructions, cycles): a TOML integer, or a string with k, M or G, which
    are decimal ("1.5M" is 1,500,000): "1MiB" is refused, since sizes use binary units."""
    if isinstance(value, bool):
        raise ValueError(f"expected {_COUNT_HINT}, got {value}")
    if isinstance(value, str):
        match = _COUNT_RE.match(value)
        if not match:
            raise ValueError(f"expected {_COUNT_HINT}, got {value!r}")
        whole, _, fraction = match.group(1).partition(".")
        scale = COUNT_UNITS[match.group(2)]
        number = int(whole) * scale
        if fraction:  # exact decimal arithmetic: "1.0000005M" is no whole count
            digits = int(fraction) * scale
            if digits % 10 ** len(fraction):
                raise ValueError(f"a count must be a whole number, got {value!r} "
                                 f"({_COUNT_HINT})")
            number += digits // 10 ** len(fraction)
    elif isinstance(value, float) and value.is_integer() and math.isfinite(value):
        number = int(value)
    elif isinstance(value, int):
        number = value
    else:
        raise ValueError(f"expected {_COUNT_HINT}, got {value!r}")
    if number <= 0:
        raise ValueError(f"a count must be greater than 0, got {value!r}")
    if number > MAX_BYTES:
        raise ValueError(f"a count must be at most {MAX_BYTES} (int64)")
    return number


def format_count(value: float, sign: bool = False) -> str:
    """``15.6M``, ``81k``, ``950``: three significant figures with a decimal suffix."""
    size = abs(value)
    text = f"{size:.0f}"
    for suffix, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if size >= scale * 0.9995 or (suffix == "k" and size >= 999.5):
            text = f"{size / scale:.3g}{suffix}"
            break
    if sign:
        return ("\u2212" if value < 0 else "+") + text
    return ("-" if value < 0 else "") + text


def parse_percent(value: object) -> float | None:
    """The number of a "N%" string; None when ``value`` is not one (it may be absolute)."""
    if not isinstance(value, str) or not (match := PERCENT_RE.match(value)):
        return None
    percent = float(match.group(1))
    if not math.isfinite(percent):
        raise ValueError(f"a percentage must be finite, got {value[:40]!r}...")
    return percent


@cache
def _byte_size() -> Any:
    from pydantic import ByteSize, TypeAdapter

    return TypeAdapter(ByteSize)


def format_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if abs(size) < 1024 or unit == "MiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.3g} us"
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def format_percent(fraction: float) -> str:
    return f"{fraction * 100:+.1f}%"
