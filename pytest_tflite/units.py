"""Human-readable sizes and times for tables and messages (parsing lives in budget.py)."""

from __future__ import annotations


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
