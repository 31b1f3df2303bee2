"""Counted cost in the reports: instructions per invoke under valgrind, and what caused a change.

A change in a count is exact, so the reports name the functions whose own (exclusive) counts
moved most, from the head's and the base's ``Cost.top_functions``: ``instructions +0.52%
(+81k per invoke): xnn_f32_gemm_… +80k``. The HTML shows both sides' top functions next to
each other, one small table per variant and delegate.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ..results import Cost, DelegateResult, Entry, function_changes
from ..units import format_count

MINUS = "\u2212"
SHOWN = 3  # functions named in one line of text
ROWS = 10  # functions per side in the HTML table
_NAME = 60  # characters of a function's name shown in the HTML and the terminal


def compared(found: DelegateResult) -> Cost | None:
    """The base's count this run compared against, when it was counted alike (the same
    fingerprint); None otherwise (no baseline, no count, or counted some other way)."""
    head, base = found.cost, found.baseline_cost
    if head is None or base is None or head.fingerprint != base.fingerprint:
        return None
    return base


def _percent(delta: float, base: float) -> str:
    change = delta / base if base else 0.0
    return f"{MINUS if change < 0 else '+'}{abs(change):.2%}"


def functions_text(base: Cost, head: Cost, shown: int = SHOWN) -> str:
    """``xnn_f32_gemm_… +80k, xnn_pack_… +1k``: the largest changes in a function's own count."""
    return ", ".join(f"{name} {format_count(delta, sign=True)}"
                     for name, delta in function_changes(base, head)[:shown])


def change_text(found: DelegateResult, leaf: str, head: float | None,
                base: float | None) -> str:
    """One count, base -> head with its change and the functions that caused it:
    ``15.6M → 15.7M (+0.52%, +81k per invoke): xnn_f32_gemm_… +80k``."""
    if head is None:
        return found.cost_error or "not counted"
    before = compared(found)
    if before is not None:
        base = float(getattr(before, leaf))
    if base is None:
        return f"{format_count(head)} per invoke"
    delta = head - base
    text = (f"{format_count(base)} → {format_count(head)} ({_percent(delta, base)}, "
            f"{format_count(delta, sign=True)} per invoke)")
    causes = functions_text(before, found.cost) if (
        before is not None and found.cost is not None and leaf == "instructions") else ""
    return f"{text}: {causes}" if causes else text


def headline_parts(entry: Entry) -> tuple[list[str], bool]:
    """``xnnpack instructions +0.52%`` for each delegate whose count was compared with the
    base's, and whether any count moved (counts are exact: any change is one)."""
    parts, moved = [], False
    for name, found in entry.measurement.delegates.items():
        base = compared(found)
        if base is not None and found.cost is not None:
            delta = found.cost.instructions - base.instructions
            parts.append(f"{name} instructions {_percent(delta, base.instructions)}")
            moved |= delta != 0
    return parts, moved


def _side(cost: Cost | None, index: int) -> list[str]:
    if cost is None or index >= len(cost.top_functions):
        return ["", "", ""]
    function = cost.top_functions[index]
    name = function["name"]
    return [name if len(name) <= _NAME else name[:_NAME - 1] + "…",
            format_count(function["instructions"]), f"{function['share']:.1%}"]


def html_section(entries: Sequence[Entry]) -> str:
    """Per variant and delegate with a count: the top functions by their own instructions per
    invoke, the base's beside the head's, with both totals in the caption."""
    tables = []
    for entry in entries:
        for name, found in entry.measurement.delegates.items():
            head, base = found.cost, found.baseline_cost
            if head is None:
                continue
            title = f"{entry.model} [{entry.variant}] {name}, instructions per invoke: "
            before = compared(found)
            if before is not None:
                delta = head.instructions - before.instructions
                title += (f"{format_count(before.instructions)} → "
                          f"{format_count(head.instructions)} "
                          f"({_percent(delta, before.instructions)}, "
                          f"{format_count(delta, sign=True)})")
            else:
                title += format_count(head.instructions) + (
                    " (the base counted another way: not compared)" if base is not None else "")
            rows = max(len(head.top_functions), len(base.top_functions) if base else 0)
            cells = "".join(
                "<tr>" + "".join(f'<td class="{"num" if i % 3 else "text"}">{escape(c)}</td>'
                                 for i, c in enumerate([*_side(base, i), *_side(head, i)]))
                + "</tr>" for i in range(min(rows, ROWS)))
            head_row = "".join(f"<th>{escape(c)}</th>" for c in (
                "base function", "instr.", "share", "head function", "instr.", "share"))
            tables.append(f'<table class="cost"><caption>{escape(title)}</caption><thead><tr>'
                          f"{head_row}</tr></thead>"
                          f"<tbody>{cells}</tbody></table>")
    if not tables:
        return ""
    return ("<h2>Instructions per invoke: what did the work</h2><p>Counted under valgrind "
            "(x86 kernels without AVX-512, not phone time); each function's own instructions."
            "</p>" + "".join(tables))

