"""Tables for people: the failure table, the terminal summary, the CLI's measurement table.

They read typed results, so the pytest plugin and the CLI print the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..nodes import LayerError
from ..printable import log_line, printable
from ..results import Check, Comparison, Entry, Measurement
from ..units import format_bytes, format_ms, format_percent
from .explain import terminal_lines
from .findings import (
    change_text,
    fix_for,
    headline,
    interval_text,
    limit_text,
    ordered,
    time_text,
)


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return f"{format_bytes(value)} ({int(value)} B)" if value >= 1024 else format_bytes(value)
    if unit == "ms":
        return format_ms(value)
    if unit == "ratio":
        return f"x{value:.3f}"
    if abs(value) >= 1e4 and float(value).is_integer():  # counts (instructions): every digit
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _difference(value: float, unit: str) -> str:
    # Exact bytes: "over by" is what the user has to shave off.
    if unit == "bytes":
        return f"{int(value):+,} B"
    return f"+{format_ms(value)}" if unit == "ms" else f"{value:+.4g}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [[printable(str(c)) for c in r] for r in rows]  # names are data (printable.py)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [log_line("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
              for row in rows]
    return lines


CHECK_HEADER = ["metric", "measured", "budget", "over by / reason", "verdict"]
# With a baseline, the figure it had there and the change, between the limit and the reason.
BASELINE_HEADER = ["metric", "measured", "budget", "baseline", "delta", "over by / reason",
                   "verdict"]
LONG_REASON = 48  # longer reasons go below the table as numbered notes


def signed_value(value: float, unit: str) -> str:
    """A signed change in the check's unit: ``+1,234 B``, ``-0.12 ms``, ``+0.0031``."""
    if unit == "bytes":
        return f"{round(value):+,} B"
    if unit == "ms":
        return ("-" if value < 0 else "+") + format_ms(abs(value))
    return f"{value:+.4g}"


def check_delta(check: Check) -> float | None:
    """``measured - baseline``: the check's own delta, else computed from both figures."""
    if check.delta is not None:
        return check.delta
    if check.measured is not None and check.baseline is not None:
        return check.measured - check.baseline
    return None


def format_delta(check: Check, empty: str = "-") -> str:
    """The change against the baseline, with its percentage when the baseline is not zero."""
    delta = check_delta(check)
    if delta is None:
        return empty
    text = signed_value(delta, check.unit)
    if check.baseline:
        text += f" ({format_percent(delta / abs(check.baseline))})"
    return text


def over_by(check: Check) -> str:
    """What a failed check exceeds its limit by, then its reason; a reason alone otherwise."""
    measured, budget, note = check.measured, check.budget, check.reason
    if check.verdict == "fail" and measured is not None and budget:
        note = f"{_difference(measured - budget, check.unit)} " \
               f"({format_percent((measured - budget) / budget)})" + (f"; {note}" if note else "")
    return note


def check_table(checks: Iterable[Check]) -> list[str]:
    """The checks as a table; long reasons (a loader's error, say) as notes under it. Baseline
    and delta columns appear only when some check was compared with a baseline, so a run
    without one reads as before."""
    checks = list(checks)
    with_baseline = any(c.baseline is not None for c in checks)
    rows, notes = [], []
    for check in checks:
        note = over_by(check)
        if len(note) > LONG_REASON:
            notes.append(note)
            note = f"see [{len(notes)}]"
        row = [check.metric, format_value(check.measured, check.unit),
               format_value(check.budget, check.unit)]
        if with_baseline:
            row += [format_value(check.baseline, check.unit), format_delta(check)]
        rows.append([*row, note, check.verdict])
    lines = table(BASELINE_HEADER if with_baseline else CHECK_HEADER, rows)
    if notes:
        lines += ["", *(f"[{n}] {text}" for n, text in enumerate(notes, 1))]
    return lines


def failure_message(entry: Entry, budget_path: str) -> str:
    """The assertion message of a test whose model broke its budget."""
    bad = [c for c in entry.checks if c.verdict in ("fail", "error")]
    lines = [
        f"{entry.model} [{entry.variant}] broke {len(bad)} of {len(entry.checks)} "
        f"budget(s) in {budget_path}:",
        "",
        *check_table(entry.checks),
    ]
    return "\n".join(log_line(line) for line in lines)  # names are data (printable.py)


def _accuracy_cell(entry: Entry) -> str:
    found = entry.measurement.accuracy
    if found is None:
        return "-"
    text = f"{found.metric} {found.candidate:.4g}"
    return text + (f" (drop {found.drop:+.4f})" if found.drop is not None else "")


def _latency_cell(entry: Entry) -> str:
    cells = []
    for name, found in entry.measurement.delegates.items():
        latency = found.latency_ms
        cells.append(f"{name} {format_ms(latency.median)}" if latency and latency.median is not None
                     else f"{name} mean {format_ms(latency.mean)}" if latency  # a runner's text
                     else f"{name} {found.status}")
    return ", ".join(cells) or "-"


def format_ratio(value: float) -> str:
    return f"x{value:.3f}"


def format_comparison(comparison: Comparison) -> str:
    """A paired latency comparison in one line: ratio, interval, pairs, verdict, tolerance."""
    text = (f"{format_ratio(comparison.ratio)} [{comparison.low:.3f}, {comparison.high:.3f}] "
            f"over {comparison.pairs} pairs: {comparison.verdict} "
            f"(tolerance {comparison.tolerance:.1%})")
    return text + (", re-measured" if comparison.remeasured else "")


def comparisons(entries: Iterable[Entry]) -> list[tuple[Entry, str, Comparison]]:
    """Every delegate compared with its baseline, as (entry, delegate, comparison)."""
    return [(entry, name, found.comparison) for entry in entries
            for name, found in entry.measurement.delegates.items()
            if found.comparison is not None]


def entry_warnings(entries: Iterable[Entry]) -> list[str]:
    """Each entry's warnings once, prefixed by the model variant; a warning every entry shares
    (a baseline from another machine, say) once for the whole run."""
    entries = list(entries)
    per_entry = [(f"{e.model} [{e.variant}]", w) for e in entries for w in e.warnings]
    shared = {w for _, w in per_entry
              if len(entries) > 1 and all(w in e.warnings for e in entries)}
    lines = list(dict.fromkeys(f"{label}: {w}" for label, w in per_entry if w not in shared))
    return [*sorted(shared), *lines]


def summary_lines(entries: Sequence[Entry], hits: int, misses: int) -> list[str]:
    """The terminal summary: the variants, a line per changed one, each failed figure once
    with every limit it broke and where to change it, then the paired latency comparisons."""
    lines: list[str] = []
    if entries:
        rows = [[e.model, e.variant, format_bytes(e.measurement.size_bytes),
                 format_bytes(e.measurement.gzip_bytes), _accuracy_cell(e), _latency_cell(e),
                 e.verdict]
                for e in entries]
        lines += table(["model", "variant", "size", "gzip", "accuracy", "median latency",
                        "verdict"], rows)
    bad = [f for f in ordered(entries) if f.verdict in ("fail", "error")]
    failed_latency = {(id(f.entry), f.figure.name) for f in bad
                      if f.figure.reads == "DelegateResult.comparison.ratio"}
    changed = [(e, text) for e in entries if (text := headline(e)) is not None]
    if changed:
        lines += ["", "changed:", *(f"  {e.model} [{e.variant}]: {text}" for e, text in changed)]
    if bad:
        lines += ["", "failed, one line per variant and figure:"]
    for finding in bad:
        entry = finding.entry
        broke = ", ".join(dict.fromkeys(limit_text(finding, c) for c in finding.broken))
        lines.append(f"  {entry.model} [{entry.variant}] {finding.label}: "
                     f"{change_text(finding)}; {finding.verdict}: {broke}")
        fix = fix_for(finding)
        if fix is not None:
            lines += [f"      change: {fix.where()}", *([f"      {fix.ratchet()}"] if fix.command else [])]
    # Those that failed are on their line above already.
    compared = [t for t in comparisons(entries) if (id(t[0]), t[1]) not in failed_latency]
    if compared:
        lines += ["", *table(["model", "variant", "delegate", "head vs base [95%]",
                              "median, base -> head", "clock, pairs", "verdict"],
                             [[e.model, e.variant, name, interval_text(c),
                               f"{time_text(c.base_median_ms)} -> {time_text(c.head_median_ms)}"
                               if c.base_median_ms is not None else "-",
                               ", ".join(x for x in (c.clock, f"{c.pairs} pairs") if x),
                               c.verdict + (" (re-measured)" if c.remeasured else "")]
                              for e, name, c in compared])]
    graph = terminal_lines(entries)
    if graph:
        lines += ["", *graph]
    lines = [_plain_text(line) for line in lines]
    lines += [f"warning: {text}" for text in entry_warnings(entries)]
    if hits or misses:
        lines.append(f"conversion cache: {hits} hit(s), {misses} miss(es)")
    return lines


# A terminal may not encode every character GitHub shows (a Windows console's code page).
_PLAIN = str.maketrans({"\u2192": "->", "\u2264": "<=", "\u2265": ">=", "\u2212": "-"})


def _plain_text(line: str) -> str:
    return line.translate(_PLAIN)


def measurement_lines(measurement: Measurement) -> list[str]:
    """``tflite-budget measure``: the static figures, then one row per delegate."""
    lines = table(["metric", "value"], [
        ["size", format_value(measurement.size_bytes, "bytes")],
        ["gzip", format_value(measurement.gzip_bytes, "bytes")],
        ["planned arena", format_value(measurement.planned_arena_bytes, "bytes")],
        ["planned state", format_value(measurement.planned_state_bytes, "bytes")],
        ["ops", ", ".join(f"{k} x{v}" for k, v in measurement.ops.items())],
        ["subgraphs", str(len(measurement.subgraphs))],
    ])
    delegates = measurement.delegates
    if delegates:
        rows = []
        for name, found in delegates.items():
            latency = found.latency_ms
            coverage = (f"{found.delegated_nodes}/{found.total_nodes} in {found.partitions}"
                        if found.total_nodes is not None else
                        "all" if found.fully_accelerated else
                        "partial" if found.fully_accelerated is False else "-")
            rows.append([name, found.status, format_ms(latency.median if latency else None),
                         format_ms(latency.p90 if latency else None), format_ms(found.init_ms),
                         format_ms(found.first_invoke_ms), format_ms(found.cpu_ms),
                         format_bytes(found.arena_bytes), format_bytes(found.peak_rss_bytes),
                         coverage])
        lines += ["", *table(["delegate", "status", "median", "p90", "init", "first", "cpu",
                              "arena", "peak rss", "delegated"], rows)]
        lines += [f"{name}: {found.reason}" for name, found in delegates.items()
                  if found.status != "ok" and found.reason]
    return lines


def layer_table(rows: list[LayerError], limit: int = 10) -> list[str]:
    """Quantization error per operator, the most added first: ``added`` is the error the op
    adds to what it reads (measure/layers.py), the other columns its output's own error."""
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    shown = [[f"{row.index} {row.op}", row.tensor[:60], number(row.added),
              number(row.relative_rmse), number(row.rmse), number(row.max_abs_error),
              number(row.scale), number(row.rmse_over_scale)]
             for row in rows[:limit]]
    lines = table(["op", "tensor", "added", "rmse / rms(ref)", "rmse", "max abs error", "scale",
                   "rmse / scale"], shown)
    if len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more")
    return lines
