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
from .explain import changed_summary, graph_changes, node_error_text, worst_nodes
from .findings import (
    Finding,
    change_text,
    fix_for,
    headline,
    interval_text,
    limit_text,
    ordered,
    time_text,
)
from .graph_text import short_name
from .tables import comparisons, entry_warnings, format_delta

# Room under the limit for a workflow that appends a line (a link to the run, say) before posting.
COMMENT_MARGIN = 1_024
SUMMARY_LIMIT = 1024 * 1024  # bytes per step; GitHub drops a larger job summary with an error
MAX_WARNINGS = 20
MAX_HEADLINES = 30  # one line per changed model variant, failed ones first, up to this many
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
    if abs(value) >= 1e4 and float(value).is_integer():  # counts (instructions): exact
        return f"{value:,.0f}"
    return f"{value:.4g}"


def base_to_head(check: Check) -> str:
    head = value_text(check.measured, check.unit)
    if check.baseline is None:
        return head
    return f"{value_text(check.baseline, check.unit)} → {head}"


def delta_text(check: Check) -> str:
    return format_delta(check, empty="")


def row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


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
    counted_checks = f"{len(checks):,} check{'s' if len(checks) != 1 else ''}"
    return f"{variants}, {counted_checks}: " + (" · ".join(parts) or "none")


def _overall(entries: Sequence[Entry]) -> str:
    verdicts = {e.verdict for e in entries}
    worst = next((v for v in VERDICT_ORDER if v in verdicts), "skip")
    return ICONS[worst]


def _who(entry: Entry, entries: Sequence[Entry]) -> str:
    """``int8`` when the run checked one model, ``digits_cnn [int8]`` when several."""
    one_model = len({e.model for e in entries}) == 1
    return entry.variant if one_model else f"{entry.model} [{entry.variant}]"


def _code(text: str) -> str:
    """A code span safe in a table cell: no backtick inside, pipes escaped for the table. Text
    with HTML's characters (a hostile test id) is escaped plain text instead: a code span shows
    an escape such as ``&lt;`` literally."""
    if re.search(r"[<>&]", text):
        return cell(text)
    return "`" + " ".join(text.replace("`", "'").split()).replace("|", "\\|") + "`"


def fix_cell(finding: Finding) -> str:
    """Where to change each broken limit: the file, its table and key; then the ratchet's
    command where it can accept the change (never for ``regression.*``)."""
    fix = fix_for(finding)
    if fix is None:
        return ""
    first = " ".join(x for x in (fix.file, fix.places[0]) if x)
    text = ", ".join([_code(first), *(_code(p) for p in fix.places[1:])])
    if fix.command:
        text += f"; the ratchet raises {cell(', '.join(fix.raised))}: {_code(fix.command)}"
    return text


def finding_row(finding: Finding, entries: Sequence[Entry], fix: bool = True) -> str:
    """One row per model variant and figure: its change, the limits it broke (or holds), and
    where to change them."""
    checks = finding.broken if finding.verdict in ("fail", "error") else finding.checks
    limits = " · ".join(dict.fromkeys(_short(limit_text(finding, c)) for c in checks))
    cells = [cell(_who(finding.entry, entries)), cell(finding.label),
             cell(change_text(finding)), cell(limits)]
    verdict = f"{ICONS.get(finding.verdict, '')} {finding.verdict}"
    return row([*cells, verdict, fix_cell(finding)] if fix else [*cells, verdict])


def headline_rows(entries: Sequence[Entry]) -> list[str]:
    """``- **int8**: 44.6 → 61.8 KiB (+38.5%) · … · 3 limits broken`` per changed variant,
    failed ones first; past MAX_HEADLINES a count, so that a run of thousands of variants
    still shows its failed rows below."""
    changed = [(entry, text) for entry in entries if (text := headline(entry)) is not None]
    changed.sort(key=lambda pair: VERDICT_ORDER.index(pair[0].verdict))
    lines = [f"- {ICONS[entry.verdict]} **{cell(_who(entry, entries))}**: {cell(text)}"
             for entry, text in changed[:MAX_HEADLINES]]
    if len(changed) > MAX_HEADLINES:
        lines.append(f"- … and {len(changed) - MAX_HEADLINES:,} more changed model variants "
                     f"(the tables below, and the JSON report, have them all)")
    return lines


FINDING_COLUMNS = ["variant", "figure", "base → head", "limits broken", "verdict",
                   "where to change"]
FOLDED_COLUMNS = ["variant", "figure", "base → head", "limits", "verdict"]
COMPARISON_COLUMNS = ["variant", "delegate", "head vs base [95%]", "median, base → head",
                      "clock, pairs", "tolerance", "verdict"]


def comparison_row(entry: Entry, delegate: str, comparison: Comparison,
                   entries: Sequence[Entry] = ()) -> str:
    c = comparison
    medians = (f"{time_text(c.base_median_ms)} → {time_text(c.head_median_ms)}"
               if c.base_median_ms is not None and c.head_median_ms is not None else "-")
    verdict = c.verdict + (" (re-measured)" if c.remeasured else "")
    how = ", ".join(x for x in (c.clock, f"{c.pairs} pairs") if x)
    return row([cell(_who(entry, entries or [entry])), cell(delegate), cell(interval_text(c)),
                cell(medians), cell(how), f"±{c.tolerance:.1%}",
                f"{ICONS.get(c.verdict, '')} {verdict}"])


def blocks(entries: Sequence[Entry]) -> tuple[list[str], list[Block]]:
    """The warnings (always shown) and the blocks in the order a reviewer reads them: one
    headline per changed variant, the failed figures, latency comparisons not already among
    them, then the rest folded."""
    every = ordered(entries)
    bad = [f for f in every if f.verdict in ("error", "fail")]
    rest = [f for f in every if f.verdict not in ("error", "fail")]
    failed_latency = {(id(f.entry), f.figure.name) for f in bad
                      if f.figure.reads == "DelegateResult.comparison.ratio"}
    compared = sorted(((e, name, c) for e, name, c in comparisons(entries)
                       if (id(e), name) not in failed_latency),
                      key=lambda t: COMPARISON_ORDER.index(t[2].verdict)
                      if t[2].verdict in COMPARISON_ORDER else len(COMPARISON_ORDER))
    warnings = entry_warnings(entries)
    top: list[str] = []
    if warnings:
        top += ["", *(f"> ⚠️ {cell(_short(w, 300))}  " for w in warnings[:MAX_WARNINGS])]
        if len(warnings) > MAX_WARNINGS:
            top.append(f"> … and {len(warnings) - MAX_WARNINGS} more warnings")
    passed = sum(f.verdict == "pass" for f in rest)
    skipped = len(rest) - passed
    # An unchanged latency is as uninteresting as a passed check: it goes in the fold, so that
    # on a large run the regressions and improvements stay in view.
    notable = [t for t in compared if t[2].verdict != "unchanged"]
    unchanged = [t for t in compared if t[2].verdict == "unchanged"]
    folded = ([f"{len(rest):,} other figures ({passed:,} passed, {skipped:,} skipped)"]
              if rest else [])
    if unchanged:
        folded.append(f"{len(unchanged):,} unchanged "
                      f"{'latency' if len(unchanged) == 1 else 'latencies'}")
    fold = Fold(["", f"<details><summary>{' and '.join(folded)}</summary>"], ["", "</details>"])
    latency_head = ["", "**Latency, head vs base** (timed pair by pair in one worker: the ratio "
                        "over the pairs, with its bootstrap interval; medians from the same "
                        "pairs)", "", *header(COMPARISON_COLUMNS)]
    return top, [
        Block(["", "**What changed**", ""], headline_rows(entries)),
        Block(["", "**Failed checks**: one row per variant and figure, with every limit it "
                   "broke", "", *header(FINDING_COLUMNS)],
              [finding_row(f, entries) for f in bad]),
        Block(latency_head, [comparison_row(*t, entries) for t in notable]),
        *explanation_blocks(entries),
        Block(["", *header(FOLDED_COLUMNS)], [finding_row(f, entries, fix=False) for f in rest],
              fold=fold),
        Block(latency_head, [comparison_row(*t, entries) for t in unchanged], fold=fold),
    ]


NODE_COLUMNS = ["variant", "node", "op", "Model Explorer id", "error the op adds"]


def explanation_blocks(entries: Sequence[Entry]) -> list[Block]:
    """The graph diff against the base and the nodes adding the most quantization error, in
    one folded section whose summary names the first changes."""
    who = {id(entry): _who(entry, entries) for entry in entries}
    changes = [f"- **{cell(who[id(e)])}**: {cell(line)}"
               for e in entries for line in graph_changes(e)]
    nodes = [row([cell(who[id(e)]), _code(short_name(n.tensor)), cell(n.op), _code(n.node),
                  cell(node_error_text(n))]) for e in entries for n in worst_nodes(e)]
    if not changes and not nodes:
        return []
    summary = changed_summary(entries, who)
    title = (f"Graph changes: {summary}" if summary
             else "Graph: the nodes that add the most quantization error")
    fold = Fold(["", f"<details><summary>{cell(_short(title, 300))}</summary>"],
                ["", "</details>"])
    return [
        Block(["", "**Graph, base → head** (from both .tflite files; nodes matched by output "
                   "tensor name)", ""], changes, fold=fold),
        Block(["", "**Nodes that add the most quantization error** (relative RMSE of the op's "
                   "output against the float reference, beyond its inputs'; "
                   "`--tflite-node-data` writes them as Model Explorer overlays)", "",
               *header(NODE_COLUMNS)], nodes, fold=fold),
    ]


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
