"""Markdown for GitHub: the pull-request comment body and the job summary, from typed entries.

Both put what needs a person first (failed and errored checks, then the latency comparisons
against the base) and fold the rest into a ``<details>`` block. Both have a hard size limit on
GitHub's side, so rows are added in that order until the next one would not fit, and a note says
how many were left out: a comment that GitHub refuses shows nothing at all, while a truncated one
still shows every failure.

The comment starts with a hidden marker, ``<!-- pytest-tflite:ID -->`` (``comment_marker``), by
which ``tflite-budget comment`` finds and updates its own comment instead of adding one per push.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..comment_marker import COMMENT_LIMIT, DEFAULT_COMMENT_ID, marker, utf16_length
from ..results import VERDICT_ORDER, Check, Comparison, Entry, Verdict
from ..units import format_bytes, format_ms
from .tables import comparisons, entry_warnings, format_delta, over_by

# Room under the limit for a workflow that appends a line (a link to the run, say) before posting.
COMMENT_MARGIN = 1_024
SUMMARY_LIMIT = 1024 * 1024  # bytes per step; GitHub drops a larger job summary with an error
MAX_WARNINGS = 20
MAX_NOTE = 160  # a reason is cut here in a table cell; the JSON report has it whole

ICONS: dict[str, str] = {"pass": "✅", "fail": "❌", "error": "💥", "skip": "⏭️",
                         "regressed": "❌", "improved": "🚀", "unchanged": "✅",
                         "inconclusive": "❔"}
# Worst first: what a reviewer must look at leads the latency table.
COMPARISON_ORDER = ("regressed", "inconclusive", "improved", "unchanged")


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


# ---------------------------------------------------------------- cells


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell: HTML escaped (names come from test ids and
    budget files, so a ``<details>`` in one cannot break the page), pipes and Markdown
    emphasis escaped, one line."""
    value = html.escape(str(text), quote=False)
    value = re.sub(r"([\\|*_`\[\]])", r"\\\1", value)
    return " ".join(value.split())


def _short(text: str, limit: int = MAX_NOTE) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def value_text(value: float | None, unit: str) -> str:
    """A figure in a few characters: tables on GitHub wrap long cells."""
    if value is None:
        return "-"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "ms":
        return format_ms(value)
    if unit == "ratio":  # head / base, e.g. a paired latency comparison
        return f"x{value:.3f}"
    return f"{value:.4g}"


def base_to_head(check: Check) -> str:
    head = value_text(check.measured, check.unit)
    if check.baseline is None:
        return head
    return f"{value_text(check.baseline, check.unit)} → {head}"


def delta_text(check: Check) -> str:
    return format_delta(check, empty="")


def percent_change(ratio: float) -> str:
    return f"{ratio - 1:+.1%}"


def comparison_cells(comparison: Comparison) -> list[str]:
    verdict = comparison.verdict + (" (re-measured)" if comparison.remeasured else "")
    return [percent_change(comparison.ratio),
            f"{percent_change(comparison.low)} to {percent_change(comparison.high)}",
            str(comparison.pairs), f"±{comparison.tolerance:.1%}",
            f"{ICONS.get(comparison.verdict, '')} {verdict}"]


def row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


CHECK_COLUMNS = ["model", "variant", "check", "base → head", "delta", "budget", "verdict", "note"]
COMPARISON_COLUMNS = ["model", "variant", "delegate", "head vs base", "95% interval", "pairs",
                      "tolerance", "verdict"]


def check_row(entry: Entry, check: Check) -> str:
    # No code span for the metric: escapes inside one show literally (``max\_drop``).
    return row([cell(entry.model), cell(entry.variant), cell(check.metric),
                cell(base_to_head(check)), cell(delta_text(check)),
                cell(value_text(check.budget, check.unit)),
                f"{ICONS.get(check.verdict, '')} {check.verdict}",
                cell(_short(over_by(check)))])


def header(columns: Sequence[str]) -> list[str]:
    return [row(columns), row("---" for _ in columns)]


# ---------------------------------------------------------------- fitting under a limit


@dataclass(frozen=True, eq=False)
class Fold:
    """A ``<details>`` around consecutive blocks: opened before the first of them that shows a
    row, closed after the last."""

    open: list[str]
    close: list[str]


@dataclass
class Block:
    """Lines shown only when at least one of ``rows`` fits: a heading and a table header, the
    rows, then closing lines; inside ``fold`` when given."""

    head: list[str]
    rows: list[str]
    tail: list[str] = field(default_factory=list)
    fold: Fold | None = None


def fit(top: list[str], blocks: list[Block], limit: int, size: Callable[[str], int],
        limit_name: str) -> str:
    """``top``, then as many rows of each block, in order, as fit under ``limit`` with a note
    saying how many were left out."""
    def cost(lines: Iterable[str]) -> int:
        return sum(size(line) + 1 for line in lines)

    total = sum(len(b.rows) for b in blocks)
    # Worst-case note: the counts at their longest.
    note_room = size(_left_out_note(total, total, limit_name)) + 2
    lines = list(top)
    used = cost(lines)
    shown = 0
    opened: Fold | None = None  # the fold whose opening lines are out (its close is paid for)
    for block in blocks:
        if opened is not None and block.fold is not opened:
            lines += opened.close
            opened = None
        new_fold = block.fold is not None and block.fold is not opened
        fixed = cost([*block.head, *block.tail])
        if new_fold and block.fold is not None:
            fixed += cost([*block.fold.open, *block.fold.close])
        kept: list[str] = []
        for text in block.rows:
            extra = size(text) + 1 + (0 if kept else fixed)
            if used + extra + note_room > limit:
                break
            kept.append(text)
            used += extra
        if kept:
            if new_fold and block.fold is not None:
                lines += block.fold.open
                opened = block.fold
            lines += [*block.head, *kept, *block.tail]
            shown += len(kept)
    if opened is not None:
        lines += opened.close
    if shown < total:
        lines += ["", _left_out_note(total - shown, total, limit_name)]
    return "\n".join(lines) + "\n"


def _left_out_note(left_out: int, total: int, limit_name: str) -> str:
    return (f"_{left_out:,} of {total:,} rows left out to stay under {limit_name}; "
            f"the JSON report (`--tflite-report`) has every check._")


# ---------------------------------------------------------------- the documents


def _rank(verdict: Verdict) -> int:
    return VERDICT_ORDER.index(verdict)


def counts_line(entries: Sequence[Entry], icons: bool = True) -> str:
    """``2 model variants, 6 checks: 1 failed · 4 passed · 1 skipped``; the icons are for
    GitHub, whose pages have an emoji font (a bare headless browser may not)."""
    checks = [c for e in entries for c in e.checks]
    counted = {v: sum(c.verdict == v for c in checks) for v in VERDICT_ORDER}
    words = {"error": "errors", "fail": "failed", "pass": "passed", "skip": "skipped"}
    parts = [(f"{ICONS[v]} " if icons else "") + f"{n:,} {words[v]}"
             for v, n in counted.items() if n]
    variants = f"{len(entries):,} model variant{'s' if len(entries) != 1 else ''}"
    return f"{variants}, {len(checks):,} checks: " + (" · ".join(parts) or "none")


def _overall(entries: Sequence[Entry]) -> str:
    verdicts = {e.verdict for e in entries}
    worst = next((v for v in VERDICT_ORDER if v in verdicts), "skip")
    return ICONS[worst]


def blocks(entries: Sequence[Entry]) -> tuple[list[str], list[Block]]:
    """The warnings (always shown) and the blocks in the order a reviewer reads them."""
    pairs = [(entry, check) for entry in entries for check in entry.checks]
    pairs.sort(key=lambda p: _rank(p[1].verdict))  # stable: the run's order within a verdict
    bad = [p for p in pairs if p[1].verdict in ("error", "fail")]
    rest = [p for p in pairs if p[1].verdict not in ("error", "fail")]
    compared = sorted(comparisons(entries),
                      key=lambda t: COMPARISON_ORDER.index(t[2].verdict)
                      if t[2].verdict in COMPARISON_ORDER else len(COMPARISON_ORDER))
    warnings = entry_warnings(entries)
    top: list[str] = []
    if warnings:
        top += ["", *(f"> ⚠️ {cell(_short(w, 300))}  " for w in warnings[:MAX_WARNINGS])]
        if len(warnings) > MAX_WARNINGS:
            top.append(f"> … and {len(warnings) - MAX_WARNINGS} more warnings")
    passed = sum(c.verdict == "pass" for _, c in rest)
    skipped = len(rest) - passed
    # An unchanged latency is as uninteresting as a passed check: it goes in the fold, so that
    # on a large run the regressions and improvements stay in view.
    notable = [t for t in compared if t[2].verdict != "unchanged"]
    unchanged = [t for t in compared if t[2].verdict == "unchanged"]
    folded = [f"{len(rest):,} other checks ({passed:,} passed, {skipped:,} skipped)"] if rest else []
    if unchanged:
        folded.append(f"{len(unchanged):,} unchanged "
                      f"{'latency' if len(unchanged) == 1 else 'latencies'}")
    fold = Fold(["", f"<details><summary>{' and '.join(folded)}</summary>"], ["", "</details>"])
    latency_head = ["", "**Latency, head vs base** (timed pair by pair in one worker: the ratio "
                        "over the pairs, with its bootstrap interval)", "",
                    *header(COMPARISON_COLUMNS)]
    return top, [
        Block(["", "**Failed checks**", "", *header(CHECK_COLUMNS)],
              [check_row(e, c) for e, c in bad]),
        Block(latency_head, [comparison_row(*t) for t in notable]),
        Block(["", *header(CHECK_COLUMNS)], [check_row(e, c) for e, c in rest], fold=fold),
        Block(latency_head, [comparison_row(*t) for t in unchanged], fold=fold),
    ]


def comparison_row(entry: Entry, delegate: str, comparison: Comparison) -> str:
    return row([cell(entry.model), cell(entry.variant), cell(delegate),
                *comparison_cells(comparison)])


def comment_body(entries: Sequence[Entry], identifier: str = DEFAULT_COMMENT_ID,
                 limit: int = COMMENT_LIMIT - COMMENT_MARGIN) -> str:
    """The pull-request comment: the marker, a verdict line, failures, the latency comparison
    against the base, the rest folded; under ``limit`` UTF-16 code units."""
    warnings, parts = blocks(entries)
    top = [marker(identifier),
           f"### {_overall(entries)} TFLite model budgets" if entries
           else "### TFLite model budgets", "",
           counts_line(entries) if entries else "No model variant was checked.", *warnings]
    return fit(top, parts, limit, utf16_length, "GitHub's 65,536-character comment limit")


def job_summary(entries: Sequence[Entry], limit: int = SUMMARY_LIMIT) -> str:
    """The job summary section: the comment's content without the marker, under ``limit``
    bytes of UTF-8 (the file GitHub reads is bytes)."""
    warnings, parts = blocks(entries)
    top = [f"## {_overall(entries)} pytest-tflite: model budgets", "", counts_line(entries),
           *warnings]
    return fit(top, parts, limit, utf8_length, "the job summary's 1 MiB limit")
