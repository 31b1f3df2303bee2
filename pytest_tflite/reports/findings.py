"""One cause, one line: a variant's checks grouped by the figure they read, for people.

``size.max``, ``size.max_gzip``'s neighbour ``regression.size`` and any other key that reads the
same measured figure (``keys.Key.reads``) of one model variant are one ``Finding``: one change
(base -> head, in the figure's own unit), every limit it broke, and where to change each of them
(the budget file's table and key, and the ratchet's command where the ratchet can accept it).
The terminal summary, the job summary and the PR comment all read these; the JSON keeps every
check as it was judged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..keys import KEYS, Key
from ..results import VERDICT_ORDER, Check, Comparison, Entry, Verdict
from ..units import format_bytes
from . import cost
from .explain import grew_most

# Shorter words than the registry's labels, where those explain a budget file's key rather than
# name a figure ("file size (bytes, or "N%" of the baseline's)" -> "file size").
_LABELS = {
    "Measurement.accuracy.candidate": "accuracy",
    "Measurement.accuracy.drop": "accuracy drop vs the float reference",
    "DelegateResult.comparison.ratio": "latency vs base",
    "Measurement.ops": "op counts",
    "DelegateResult.cost.instructions": "instructions per invoke",
    "DelegateResult.cost.estimated_cycles": "estimated cycles per invoke",
}
_RATCHET = "--tflite-update-budgets --tflite-loosen"
MINUS = "\u2212"  # a minus sign (U+2212), not a hyphen: a change reads as one
_TIMING = " --tflite-ratchet-timing"


def _pattern(path: str) -> re.Pattern[str]:
    parts = [r"(?P<name>.+)" if part.startswith("<") else re.escape(part)
             for part in path.split(".")]
    return re.compile(r"\.".join(parts) + "$")


_PATTERNS = [(key, _pattern(key.path)) for key in KEYS if key.kind != "setting"]


@dataclass(frozen=True)
class Figure:
    """What a check measured: ``reads`` as the registry writes it, for one delegate, layer or
    fidelity figure (``name``), with the registry row that says its unit and label."""

    reads: str
    name: str
    key: Key | None


def figure_of(metric: str) -> Figure:
    """The figure a check's key path reads (``latency.xnnpack.median`` ->
    ``DelegateResult.latency_ms.median`` of ``xnnpack``)."""
    parts = metric.split(".")
    if parts[:2] == ["regression", "fidelity"] and len(parts) == 3:
        # One [regression] key, two figures: each groups with the fidelity bound on it.
        return figure_of(f"fidelity.min_{parts[2]}")
    if parts[0] == "regression" and parts[1:2] in (["latency"], ["instructions"],
                                                   ["estimated_cycles"]) and len(parts) >= 3:
        key = _find(f"regression.{parts[1]}")  # per delegate: regression.latency.xnnpack
        return Figure(key.reads, ".".join(parts[2:]), key)
    matches = [(key, match) for key, pattern in _PATTERNS if (match := pattern.match(metric))]
    if not matches and parts[0] in ("accuracy", "fidelity") and len(parts) >= 3:
        # accuracy.<delegate>.min, fidelity.<delegate>.min_cosine: the run under one delegate.
        found = _find(f"{parts[0]}.{parts[-1]}")
        return Figure(found.reads, ".".join(parts[1:-1]), found)
    if not matches:
        return Figure(metric, "", None)
    # The most literal row wins: latency.<delegate>.per_sample.median over .median.
    key, match = max(matches, key=lambda m: len(m[0].path.replace("<", "").split(".")))
    return Figure(key.reads, match.groupdict().get("name") or "", key)


def _find(path: str) -> Key:
    return next(key for key in KEYS if key.path == path)


@dataclass
class Finding:
    """The checks of one model variant on one figure, in the run's order."""

    entry: Entry
    figure: Figure
    checks: list[Check] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        verdicts = {c.verdict for c in self.checks}
        return next((v for v in VERDICT_ORDER if v in verdicts), "skip")

    @property
    def broken(self) -> list[Check]:
        return [c for c in self.checks if c.verdict in ("fail", "error")]

    @property
    def unit(self) -> str:
        return self.figure.key.unit if self.figure.key is not None else ""

    @property
    def label(self) -> str:
        reads, name, key = self.figure.reads, self.figure.name, self.figure.key
        if reads == "Measurement.accuracy.candidate" and self.entry.measurement.accuracy:
            words = f"accuracy ({self.entry.measurement.accuracy.metric})"
        elif reads in _LABELS:
            words = _LABELS[reads]
        elif key is not None:
            words = key.label.split(" (")[0].replace("candidate vs reference outputs: ",
                                                     "fidelity: ")
        else:
            words = self.checks[0].metric
        return f"{name} {words}" if name else words

    def measured(self) -> float | None:
        return next((c.measured for c in self.checks if c.measured is not None), None)

    def baseline(self) -> float | None:
        return next((c.baseline for c in self.checks if c.baseline is not None), None)

    def comparison(self) -> Comparison | None:
        found = self.entry.measurement.delegates.get(self.figure.name)
        return found.comparison if found is not None else None


def findings(entry: Entry) -> list[Finding]:
    """The entry's checks grouped by figure, in the order each figure first appears."""
    grouped: dict[tuple[str, str], Finding] = {}
    for check in entry.checks:
        found = figure_of(check.metric)
        grouped.setdefault((found.reads, found.name), Finding(entry, found)).checks.append(check)
    return list(grouped.values())


def ordered(entries: Sequence[Entry]) -> list[Finding]:
    """Every finding of every entry, worst verdict first (the run's order within one)."""
    every = [f for entry in entries for f in findings(entry)]
    return sorted(every, key=lambda f: VERDICT_ORDER.index(f.verdict))


# ---------------------------------------------------------------- values, in the figure's unit


def time_text(ms: float | None) -> str:
    """``222 µs``, ``1.11 ms``, ``123 ms``: three significant figures, no "us"."""
    if ms is None:
        return "-"
    if abs(ms) < 1:
        return f"{ms * 1000:.3g} µs"
    return f"{ms:.3g} ms" if abs(ms) < 100 else f"{ms:,.0f} ms"


def _size_pair(base: float, head: float) -> str:
    first, second = format_bytes(base), format_bytes(head)
    unit = second.rsplit(" ", 1)[-1]
    if first.endswith(f" {unit}"):
        return f"{first.rsplit(' ', 1)[0]} → {second}"
    return f"{first} → {second}"


def _signed_size(delta: float) -> str:
    return (MINUS if delta < 0 else "+") + format_bytes(abs(delta))


def _digits(*values: float) -> int:
    """Decimals enough to tell the values apart (cosines near 1 differ in the 5th place)."""
    for decimals in range(3, 9):
        if len({f"{v:.{decimals}f}" for v in values}) == len(set(values)):
            return decimals
    return 9


def _points(fraction: float) -> str:
    return f"{MINUS if fraction < 0 else '+'}{abs(fraction) * 100:.1f} pt"


def _percent(delta: float, base: float) -> str:
    change = delta / abs(base)
    return f"{MINUS if change < 0 else '+'}{abs(change):.1%}"


def _in_points(finding: Finding) -> bool:
    """Shares of samples (top-K accuracy, top-1 agreement): a change reads in points."""
    accuracy = finding.entry.measurement.accuracy
    if finding.figure.reads == "Measurement.accuracy.candidate":
        return accuracy is not None and accuracy.metric.startswith("top")
    return finding.figure.reads.endswith("top1_agreement")


def _is_share(finding: Finding) -> bool:
    """Sparsity: a share of weights, read in percent."""
    return finding.figure.reads.endswith("sparsity") or "sparsity_layers" in finding.figure.reads


def value_text(finding: Finding, value: float | None) -> str:
    """One value of the finding's figure, in its unit."""
    if value is None:
        return "-"
    unit = finding.unit
    if unit == "bytes":
        return format_bytes(value)
    if unit == "ms":
        return time_text(value)
    if unit == "dB":
        return f"{value:.1f} dB"
    if unit == "count":
        return f"{value:,.0f}"
    if _is_share(finding):
        return f"{value:.1%}"
    return f"{value:.{_digits(value)}f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def change_text(finding: Finding) -> str:
    """Base -> head and one delta, in the figure's own unit: ``44.6 → 61.8 KiB (+38.5%)``."""
    reads = finding.figure.reads
    if reads == "DelegateResult.comparison.ratio":
        return latency_text(finding.comparison())
    if reads == "Measurement.ops":
        return ops_text(finding.checks)
    head, base = finding.measured(), finding.baseline()
    found = finding.entry.measurement.delegates.get(finding.figure.name)
    if reads.startswith("DelegateResult.cost.") and found is not None:
        return cost.change_text(found, reads.rsplit(".", 1)[-1], head, base)
    if reads.endswith("top1_agreement") and head is not None:
        counted = agreement_text(finding, head, base)
        if counted:
            return counted
    if head is None:
        return "not measured"
    if base is None:
        return value_text(finding, head)
    delta = head - base
    unit = finding.unit
    if unit == "bytes":
        pair = _size_pair(base, head)
        text = pair + (f" ({_signed_size(delta)}, {_percent(delta, base)})" if base else "")
        return text + (grew_most(finding.entry) if delta > 0 and reads.endswith("size_bytes") else "")
    if unit == "ms":
        return f"{time_text(base)} → {time_text(head)}" + (
            f" ({_percent(delta, base)})" if base else "")
    if unit == "dB":
        return f"{base:.1f} → {head:.1f} dB ({delta:+.1f} dB)".replace("-", MINUS)
    if unit == "count":
        return f"{base:,.0f} → {head:,.0f} ({delta:+,.0f})".replace("-", MINUS)
    if _is_share(finding):
        return f"{base:.1%} → {head:.1%} ({_points(delta)})"
    if _in_points(finding):
        decimals = _digits(base, head)
        return f"{base:.{decimals}f} → {head:.{decimals}f} ({_points(delta)})"
    decimals = _digits(base, head)
    if delta:  # two significant figures of the change at least: never a bare "-0.0001"
        decimals = max(decimals, 1 - math.floor(math.log10(abs(delta))))
    return f"{base:.{decimals}f} → {head:.{decimals}f} ({delta:+.{decimals}f})".replace("-", MINUS)


def agreement_text(finding: Finding, head: float, base: float | None) -> str:
    """``top-1 agreement 397 → 393 of 397 samples (-1.0 pt)``, when the counts were kept."""
    measurement = finding.entry.measurement
    name = finding.figure.name
    found = (measurement.fidelity_by_delegate.get(name) if name and name != "cross"
             else measurement.fidelity)
    if finding.figure.reads.startswith("Measurement.fidelity_cross"):
        return ""  # CrossFidelity keeps its samples, not the agreeing count
    if found is None or not found.samples or found.top1_agreeing is None:
        return ""
    samples = found.samples
    text = f"{found.top1_agreeing:,}"
    if base is not None:
        text = f"{round(base * samples):,} → {text}"
    text += f" of {samples:,} samples"
    return text + (f" ({_points(head - base)})" if base is not None else "")


def latency_text(comparison: Comparison | None) -> str:
    """``+5.5% [+5.0, +6.0] · 210 µs → 222 µs (CPU time, 1 thread, 120 pairs)``."""
    if comparison is None:
        return "not compared"
    c = comparison
    text = interval_text(c)
    how = ", ".join(x for x in (c.clock, f"{c.pairs} pairs") if x)
    if c.base_median_ms is not None and c.head_median_ms is not None:
        text += f" · {time_text(c.base_median_ms)} → {time_text(c.head_median_ms)}"
    return f"{text} ({how})"


def interval_text(comparison: Comparison) -> str:
    """``+5.5% [+5.0, +6.0]``: the change and its 95% interval, in percent."""
    def signed(ratio: float) -> str:
        change = (ratio - 1) * 100
        return f"{MINUS if change < 0 else '+'}{abs(change):.1f}"
    c = comparison
    return f"{signed(c.ratio)}% [{signed(c.low)}, {signed(c.high)}]"


def ops_text(checks: Sequence[Check]) -> str:
    """The op types whose counts changed (``CONV_2D 3 → 4``), from ``regression.ops``."""
    reason = next((c.reason for c in checks if c.reason), "")
    changed = re.search(r"op counts changed: (.*?)(?: \(|$)", reason)
    if changed:
        return changed.group(1).replace(" -> ", " → ")
    return "unchanged" if "unchanged" in reason else reason


# ---------------------------------------------------------------- limits and where they live


def limit_text(finding: Finding, check: Check) -> str:
    """A limit as a person reads it: ``size.max 48.0 KiB``, ``regression.size ≤ 46.8 KiB``."""
    if check.verdict in ("error", "skip") or check.budget is None:
        return f"{check.metric}: {check.reason}" if check.reason else check.metric
    if check.metric.startswith("regression.latency"):
        comparison = finding.comparison()
        tolerance = comparison.tolerance if comparison else check.budget - 1
        return f"regression.latency ±{tolerance:.1%}"
    if check.metric == "regression.ops":
        return "regression.ops = \"exact\""
    bound = "≥" if (check.baseline is not None and check.budget < check.baseline) else "≤"
    if check.metric.startswith("regression."):
        return f"{check.metric} {bound} {value_text(finding, check.budget)}"
    return f"{check.metric} {value_text(finding, check.budget)}"


def budget_file(entry: Entry) -> str:
    """The entry's budget file as a reviewer finds it in the repository: relative to the
    directory the run started in when it lies below it (a CI runner's absolute checkout path
    says nothing), else as recorded."""
    if not entry.budget_path:
        return ""
    try:
        return Path(entry.budget_path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (OSError, ValueError):
        return entry.budget_path


def place(entry: Entry, check: Check) -> str:
    """The table and key to change for one check: ``[variants.int8] size.max``, or the
    ``[regression]`` tolerance (the variant's own table when it has one)."""
    if check.metric.startswith("regression."):
        leaf = check.metric.split(".")[1]
        own = check.tolerance_from == "variant"  # set by regressions.regression_checks
        table = f"variants.{entry.variant}.regression" if own else "regression"
        return f"[{table}] {leaf}"
    return f"[variants.{entry.variant}] {check.metric}"


def ratchet_flags(checks: Sequence[Check]) -> str:
    """The ratchet's flags that accept these broken limits; "" when it can accept none (every
    ``regression.*`` key, and keys it never moves)."""
    keys = [figure_of(c.metric).key for c in checks if c.verdict == "fail"
            and not c.metric.startswith("regression.") and c.measured is not None]
    movable = [k for k in keys if k is not None and k.kind == "budget" and k.ratchet is not None]
    if not movable:
        return ""
    return _RATCHET + (_TIMING if any(k.timing for k in movable) else "")


def ratcheted(checks: Sequence[Check]) -> list[str]:
    """The broken limits among ``checks`` that the ratchet's command raises: budget keys with a
    rule, never ``regression.*``."""
    return [c.metric for c in checks if c.verdict == "fail" and c.measured is not None
            and ratchet_flags([c])]


def ratchet_command(entry: Entry, flags: str) -> str:
    """``pytest "TEST" FLAGS``: the test that judged the variant, run again with the ratchet."""
    test = f' "{entry.test}"' if entry.test else ""
    return f"pytest{test} {flags}"


@dataclass(frozen=True)
class Fix:
    """Where to change a finding's broken limits, for every report to format its own way."""

    file: str  # the budget file as a reviewer finds it; "" when not recorded
    places: list[str]  # "[variants.int8] size.max", "[regression] size"
    raised: list[str]  # the limits the ratchet's command raises
    command: str  # that command; "" when the ratchet cannot accept the change

    def where(self) -> str:
        """``budgets/x.toml [variants.int8] size.max, [regression] size``."""
        return " ".join(x for x in (self.file, ", ".join(self.places)) if x)

    def ratchet(self) -> str:
        """``the ratchet raises size.max: pytest …``; "" when it cannot accept the change."""
        return f"the ratchet raises {', '.join(self.raised)}: {self.command}" if self.command else ""

    def plain(self) -> str:
        return "; ".join(x for x in (self.where(), self.ratchet()) if x)


def fix_for(finding: Finding) -> Fix | None:
    """The finding's ``Fix``; None when it broke no limit."""
    entry = finding.entry
    places = list(dict.fromkeys(place(entry, c) for c in finding.broken))
    if not places:
        return None
    flags = ratchet_flags(finding.broken)
    return Fix(budget_file(entry), places, ratcheted(finding.broken) if flags else [],
               ratchet_command(entry, flags) if flags else "")


# ---------------------------------------------------------------- the headline


def headline(entry: Entry) -> str | None:
    """The figures of a changed model variant (failed, errored, or different from the base):
    ``44.6 → 61.8 KiB (+38.5%) · top-1 0.972 → 0.962 (-1.0 pt) · xnnpack +5.5% [+5.0,
    +6.0] · 3 limits broken``; None for a variant the change left alone."""
    every = findings(entry)
    parts: list[str] = []
    changed = False
    for finding in every:
        reads = finding.figure.reads
        head, base = finding.measured(), finding.baseline()
        if reads == "Measurement.size_bytes" and head is not None:
            parts.append(change_text(finding).split(" (")[0] + (
                f" ({_percent(head - base, base)})" if base else ""))
            changed |= base is not None and head != base
        elif reads == "Measurement.accuracy.candidate" and head is not None and base is not None \
                and not finding.figure.name:
            metric = entry.measurement.accuracy.metric if entry.measurement.accuracy else "accuracy"
            words = metric.replace("top", "top-") if metric.startswith("top") else metric
            parts.append(f"{words} {change_text(finding)}")
            changed |= head != base
        elif reads == "Measurement.ops" and (head or 0) > 0:
            parts.append(f"ops {ops_text(finding.checks)}")
            changed = True
    for name, found in entry.measurement.delegates.items():
        c = found.comparison
        if c is not None and c.verdict != "unchanged":
            parts.append(f"{name} {interval_text(c)}")
            changed = True
    counted, moved = cost.headline_parts(entry)
    parts += counted
    changed |= moved
    failed = sum(c.verdict == "fail" for c in entry.checks)
    errors = sum(c.verdict == "error" for c in entry.checks)
    if failed:
        parts.append(f"{failed} limit{'s' if failed != 1 else ''} broken")
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if not (changed or failed or errors):
        return None
    return " · ".join(parts or ["changed"])
