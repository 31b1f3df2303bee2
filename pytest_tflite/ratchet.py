"""The ratchet (``--tflite-update-budgets``): budget limits follow the model down.

Wherever a model measures better than its limit by more than the headroom, the limit in the
budget file is rewritten to the measurement plus the headroom, so the next change that gives the
gain back fails. The file is rewritten with tomlkit: comments, key order, inline tables, dotted
keys and the unit each value was written in all stay as they were; only values change.

The rules, one per budget key (``RULES``; ``LEFT_ALONE`` says why the others never move):

- **Upper limits** (sizes, memory, latency, ``fidelity.max_abs_error``, ``accuracy.max``,
  ``accuracy.max_drop``) tighten down to ``measured * (1 + headroom)``, rounded *up* as written
  back, so the measured value always stays inside. A limit is never tightened to zero or below
  (a measured error of 0 leaves ``max_abs_error`` alone: a zero limit has no headroom at all).
- **Lower limits** (``accuracy.min``, ``fidelity.min_*``, ``sparsity.min``, a layer's
  ``sparsity.layers.NAME.min``) tighten up to ``measured - headroom * |measured|``, rounded
  *down*, and clamped to 0..1 for fractions. The headroom is relative to the measured value, as
  for upper limits: 10% of an accuracy of 0.97 is 0.097, so lower limits on quality only move
  when they sit far below the model.
- **Delegation figures are structural counts**, the same on every run of one LiteRT: no
  headroom. ``max_partitions`` tightens to the measured count; ``min_fraction`` to the measured
  fraction rounded down to two decimals (as ``tflite-budget init`` writes them).
- **Counted instructions and cycles** (``cost.*.*``) are exact counts under valgrind, so
  they move without ``--tflite-ratchet-timing``, with the headroom (a code change moves them,
  unlike structural counts): ``count * (1 + headroom)``, rounded up to a whole count, or to
  three significant figures in the suffix the file wrote (``"16M"`` -> ``"17.2M"``).
- **Timing limits** (``latency.*.*`` and ``memory.*.peak_rss``) move only with
  ``--tflite-ratchet-timing``: shared runners drift by tens of percent, more than any headroom,
  and the baseline comparison is the latency gate.
- **Never looser**: a limit the model breaks is left as it is unless ``loosen`` is set
  (``--tflite-loosen``); then it is raised to the measurement plus the headroom. A breaking
  measurement also holds its key where it is: a passing test elsewhere never tightens a limit
  another test already breaks.
- Only checks that passed (or failed) with a measured value take part; a skipped or errored
  check changes nothing. Several tests checking one variant of one file: the most demanding
  measurement (the largest under an upper limit, the smallest over a lower one) sets the limit,
  so every test that ran still passes. Tests that did not run (``-k``, deselected) are not seen.
  Checks per delegate (``accuracy.reference.min``, under ``accuracy.delegates``) are one limit
  in the file: the most demanding delegate sets it. ``fidelity.cross.*`` moves like ``fidelity.*``.
- **Written back in the file's style**: a size string keeps its unit (``"48 KiB"`` ->
  ``"43 KiB"``), stepping down to a smaller unit (KiB -> B, MB -> KB) when the whole number
  would be below 10, so rounding to a whole unit never adds more than 10%; a bare number of
  bytes stays a bare number. A time string is written with three significant digits in ``us``
  below 1 ms, ``ms`` below 1 s, else ``s``; a bare time stays a bare number of milliseconds.
  Other numbers keep three significant digits. A percentage (``max_drop = "1%"``) is relative
  to the reference and says what the user meant: it is left alone.
- Only ``[variants.*]`` is read or written: ``[defaults]``, ``[regression]`` and a variant's
  own ``[variants.NAME.regression]`` never change (tolerances, not limits).

Imports neither pytest nor TensorFlow; tomlkit loads inside the functions that parse files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any, Literal

from .files import write_atomic
from .keys import KEYS, Key, RatchetKind
from .results import Entry
from .units import PERCENT_RE, format_bytes, format_ms, parse_count, parse_size, parse_time, unit_bytes

DEFAULT_HEADROOM = 0.10

Direction = Literal["upper", "lower"]
# size: bytes; time: milliseconds; number: any figure; fraction: 0..1; delegated_fraction and
# count: structural delegation figures, written without headroom.
Kind = RatchetKind


@dataclass(frozen=True)
class Rule:
    """How one budget key ratchets: which way it tightens, its kind, whether it is a timing."""

    direction: Direction
    kind: Kind
    timing: bool = False  # moves only with --tflite-ratchet-timing


def _direction(key: Key) -> Direction:
    if key.direction not in ("upper", "lower"):
        raise ValueError(f"{key.path}: a ratchet rule needs an upper or a lower limit")
    return "upper" if key.direction == "upper" else "lower"


# From the registry (keys.py), keyed as ``KEY_KINDS`` names budget keys: every budget key has a
# rule or a reason to stay.
RULES: dict[str, Rule] = {key.path: Rule(_direction(key), key.ratchet, key.timing)
                          for key in KEYS if key.kind == "budget" and key.ratchet is not None}
LEFT_ALONE: dict[str, str] = {key.path: key.left_alone
                              for key in KEYS if key.kind == "budget" and key.ratchet is None}

_SIZE_STRING = re.compile(r"^\s*\d+(?:\.\d+)?\s*(B|KB|KiB|MB|MiB)\s*$")
_SMALLER_UNIT = {"MiB": "KiB", "KiB": "B", "MB": "KB", "KB": "B"}
_TIME_STEPS = (("us", Decimal("0.001")), ("ms", Decimal(1)), ("s", Decimal(1000)))
_SIGNIFICANT = 3
_SAME = 1e-9  # relative: two limits this close are one (float noise between "0.5 ms" and "500 us")


@dataclass(frozen=True)
class RatchetOptions:
    headroom: float = DEFAULT_HEADROOM  # a fraction: 0.1 for --tflite-headroom=10%
    timing: bool = False  # --tflite-ratchet-timing
    loosen: bool = False  # --tflite-loosen


@dataclass(frozen=True)
class Demand:
    """The most demanding measurement of one budget key, over every test that checked it."""

    budget_path: str
    variant: str
    metric: str
    measured: float
    rule: Rule


@dataclass(frozen=True)
class Change:
    """One limit rewritten: ``old`` and ``new`` as the file holds them ("48 KiB", 50000, 0.95)."""

    budget_path: str
    variant: str
    metric: str
    old: Any
    new: Any
    measured: float
    loosened: bool = False

    def describe(self) -> str:
        how = " (loosened)" if self.loosened else ""
        return (f"[variants.{self.variant}] {self.metric}: {_shown(self.old)} -> "
                f"{_shown(self.new)}{how}, measured {_measured(self.metric, self.measured)}")


@dataclass
class Outcome:
    """What a ratchet run did: the changes written, and what it could not do."""

    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # files it could not read or write
    timing_left_alone: int = 0  # timing limits that took part without --tflite-ratchet-timing


def rule_for(metric: str) -> tuple[Rule | None, tuple[str, ...]]:
    """The rule of a check's key path (``latency.xnnpack.median``) and that path as TOML keys
    under its ``[variants.NAME]``; no rule for keys that never move."""
    parts = metric.split(".")
    if parts[0] == "latency" and parts[-2:] == ["per_sample", "median"] and len(parts) >= 4:
        keys: tuple[str, ...] = ("latency", ".".join(parts[1:-2]), "per_sample", "median")
        pattern = "latency.<delegate>.per_sample.median"
    elif parts[0] in ("latency", "memory", "delegation", "cost") and len(parts) >= 3:
        # A delegate may be "external:/path/lib.so": every part between table and key is its name.
        keys = (parts[0], ".".join(parts[1:-1]), parts[-1])
        pattern = f"{parts[0]}.<delegate>.{parts[-1]}"
    elif parts[0] in ("accuracy", "fidelity") and len(parts) >= 3 and parts[1] != "cross":
        # accuracy.reference.min is the file's one accuracy.min, judged under each of
        # accuracy.delegates (a delegate may be "external:/path/lib.so", dots and all).
        keys = (parts[0], parts[-1])
        pattern = ".".join(keys)
    elif parts[:2] == ["sparsity", "layers"] and len(parts) >= 4:
        keys = ("sparsity", "layers", ".".join(parts[2:-1]), parts[-1])
        pattern = f"sparsity.layers.<layer>.{parts[-1]}"
    else:
        keys, pattern = tuple(parts), metric
    return RULES.get(pattern), keys


def demands(entries: Iterable[Entry], options: RatchetOptions) -> list[Demand]:
    """Per (budget file, variant, key): the measurement every test that ran must still pass."""
    found: dict[tuple[str, str, str], Demand] = {}
    for entry in entries:
        if not entry.budget_path:
            continue  # an old report's entry: the file it was judged against is unknown
        for check in entry.checks:
            rule, _ = rule_for(check.metric)
            measured = check.measured
            if (rule is None or check.verdict not in ("pass", "fail") or measured is None
                    or not math.isfinite(measured) or (rule.timing and not options.timing)):
                continue
            # Keyed by the file's key: several delegates' checks of one limit make one demand.
            metric = ".".join(rule_for(check.metric)[1])
            key = (entry.budget_path, entry.variant, metric)
            seen = found.get(key)
            if seen is not None:
                worse = max if rule.direction == "upper" else min
                measured = worse(seen.measured, measured)
            found[key] = Demand(entry.budget_path, entry.variant, metric, measured, rule)
    return list(found.values())


def plan(entries: Iterable[Entry], texts: Mapping[str, str],
         options: RatchetOptions = RatchetOptions()) -> list[Change]:
    """Pure: the limits to rewrite in the budget files whose current text ``texts`` holds (budget
    path -> TOML). Entries judged against a file not in ``texts`` change nothing."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    documents: dict[str, Any] = {}
    changes: list[Change] = []
    for demand in demands(entries, options):
        text = texts.get(demand.budget_path)
        if text is None:
            continue
        if demand.budget_path not in documents:
            try:
                documents[demand.budget_path] = tomlkit.parse(text)
            except TOMLKitError:
                documents[demand.budget_path] = None  # edited into invalid TOML since it loaded
        document = documents[demand.budget_path]
        old = _value_at(document, demand.variant, rule_for(demand.metric)[1])
        change = _decide(demand, old, options)
        if change is not None:
            changes.append(change)
    return changes


def rewrite(text: str, changes: Iterable[Change]) -> str:
    """``text`` with each change's value replaced; everything else stays byte for byte."""
    import tomlkit
    from tomlkit.items import String, StringType

    document = tomlkit.parse(text)
    for change in changes:
        *tables, key = rule_for(change.metric)[1]
        table: Any = document["variants"][change.variant]
        for name in tables:
            table = table[name]
        old = table[key]
        new = change.new
        if isinstance(new, str):
            # A literal string ('48 KiB') stays literal: only the value is the ratchet's business.
            literal = isinstance(old, String) and old.type in (StringType.SLL, StringType.MLL)
            new = tomlkit.string(new, literal=literal)
        table[key] = new
    return tomlkit.dumps(document)


def update_budget_files(entries: Sequence[Entry], options: RatchetOptions) -> Outcome:
    """Read every budget file the entries were judged against, plan, and rewrite each file that
    changes, atomically (a reader sees the old file or the new one, never half of one)."""
    outcome = Outcome()
    texts: dict[str, str] = {}
    for path in dict.fromkeys(e.budget_path for e in entries if e.budget_path):
        try:
            texts[path] = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            outcome.problems.append(f"{path}: not rewritten, cannot read it ({exc})")
    changes = plan(entries, texts, options)
    for path in dict.fromkeys(c.budget_path for c in changes):
        mine = [c for c in changes if c.budget_path == path]
        try:
            write_atomic(Path(path), rewrite(texts[path], mine).encode("utf-8"))
        except OSError as exc:
            outcome.problems.append(f"{path}: not rewritten, cannot write it ({exc})")
            continue
        outcome.changes += mine
    if not options.timing:
        # Said in the summary, so that a latency limit that did not move is not a surprise.
        timing = RatchetOptions(options.headroom, timing=True, loosen=options.loosen)
        outcome.timing_left_alone = sum(1 for c in plan(entries, texts, timing)
                                        if (rule := rule_for(c.metric)[0]) and rule.timing)
    return outcome


def summary_lines(outcome: Outcome, options: RatchetOptions, root: Path | None = None) -> list[str]:
    """For the terminal summary: every file rewritten, with each limit's old -> new value."""
    headroom = f"{options.headroom * 100:g}% headroom"
    lines: list[str] = []
    if not outcome.changes:
        lines.append(f"tflite budgets: no limit to change ({headroom})")
    for path in dict.fromkeys(c.budget_path for c in outcome.changes):
        lines.append(f"tflite budgets rewritten: {_relative(path, root)} ({headroom})")
        lines += [f"  {c.describe()}" for c in outcome.changes if c.budget_path == path]
    if outcome.timing_left_alone:
        lines.append(f"  {outcome.timing_left_alone} latency/peak_rss limit(s) could tighten: "
                     f"left alone without --tflite-ratchet-timing")
    lines += [f"  {problem}" for problem in outcome.problems]
    return lines


# ---------------------------------------------------------------- deciding one key


def _value_at(document: Any, variant: str, keys: tuple[str, ...]) -> Any:
    """The plain value at ``variants.VARIANT.KEYS`` (None when the file no longer has it)."""
    node = document
    for name in ("variants", variant, *keys):
        if not hasattr(node, "keys") or name not in node:
            return None
        node = node[name]
    return node.unwrap() if hasattr(node, "unwrap") else node


def _decide(demand: Demand, old: Any, options: RatchetOptions) -> Change | None:
    rule, measured = demand.rule, demand.measured
    current = _base_value(rule.kind, old)
    new = _limit(rule, measured, old, options.headroom)
    limit = _base_value(rule.kind, new)
    if current is None or limit is None:
        return None
    upper = rule.direction == "upper"
    if (limit < measured) if upper else (limit > measured):
        return None  # never write a limit the measurement breaks, whatever the rounding did
    if abs(limit - current) <= _SAME * max(abs(limit), abs(current)):
        return None
    tightens = limit < current if upper else limit > current
    breaks = measured > current if upper else measured < current
    if tightens or (breaks and options.loosen):
        return Change(demand.budget_path, demand.variant, demand.metric, old, new, measured,
                      loosened=not tightens)
    return None


def _base_value(kind: Kind, value: Any) -> float | None:
    """A limit as the verdicts read it (bytes, milliseconds, plain numbers); None when it is not
    one the ratchet understands (a percentage, a boolean, a malformed value)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if kind == "size":
            return float(parse_size(value))
        if kind == "time":
            return parse_time(value)
        if kind == "counted":
            return float(parse_count(value))
    except ValueError:
        return None
    if isinstance(value, str) and PERCENT_RE.match(value):
        return None  # relative to the reference: what the user meant, so never rewritten
    return float(value) if isinstance(value, (int, float)) else None


def _limit(rule: Rule, measured: float, old: Any, headroom: float) -> Any:
    """The new limit for ``measured``, written in ``old``'s style, rounded away from it."""
    upper = rule.direction == "upper"
    value = Decimal(repr(measured))  # repr: the shortest decimal, so 0.1 stays 0.1
    if rule.kind == "count":
        count = int(value.to_integral_value(ROUND_CEILING))
        return count if count >= 1 else None  # partitions: at least one, as the schema says
    if rule.kind == "delegated_fraction":
        return _number_like(old, min(max(value, Decimal(0)), Decimal(1)).quantize(
            Decimal("0.01"), rounding=ROUND_FLOOR))
    margin = Decimal(repr(headroom)) * abs(value)
    target = value + margin if upper else value - margin
    if upper and target <= 0:
        return None  # a zero limit leaves no headroom at all
    if rule.kind == "size":
        return _size_like(old, target, upper)
    if rule.kind == "counted":
        return _count_like(old, target, upper)
    if rule.kind == "time":
        return _time_like(old, target, upper)
    if rule.kind == "fraction":
        target = min(max(target, Decimal(0)), Decimal(1))
    return _number_like(old, _significant(target, upper))


def _significant(value: Decimal, up: bool) -> Decimal:
    if value == 0:
        return value
    step = Decimal(1).scaleb(value.adjusted() - (_SIGNIFICANT - 1))
    return value.quantize(step, rounding=ROUND_CEILING if up else ROUND_FLOOR)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _number_like(old: Any, value: Decimal) -> int | float:
    if isinstance(old, int) and value == value.to_integral_value():
        return int(value)  # an integer stays an integer (min_snr_db = 30)
    return float(value)


def _size_like(old: Any, size: Decimal, up: bool) -> int | str:
    rounding = ROUND_CEILING if up else ROUND_FLOOR
    match = _SIZE_STRING.match(old) if isinstance(old, str) else None
    if match is None:
        return int(size.to_integral_value(rounding))  # a bare number of bytes stays one
    unit = match.group(1)
    while True:
        whole = (size / unit_bytes(unit)).to_integral_value(rounding)
        if unit == "B" or whole >= 10:
            return f"{whole} {unit}"
        unit = _SMALLER_UNIT[unit]


def _count_like(old: Any, count: Decimal, up: bool) -> int | str:
    """A bare count stays a whole count; ``"16M"`` keeps its (decimal) suffix."""
    rounding = ROUND_CEILING if up else ROUND_FLOOR
    match = re.match(r"^\s*[0-9.]+\s*([kMG])\s*$", old) if isinstance(old, str) else None
    if match is None:
        return int(count.to_integral_value(rounding))
    suffix = match.group(1)
    scaled = _significant(count / parse_count("1" + suffix), up)
    return f"{_plain(scaled)}{suffix}"


def _time_like(old: Any, ms: Decimal, up: bool) -> float | str:
    if not isinstance(old, str):
        return _number_like(old, _significant(ms, up))  # a bare number of milliseconds
    index = 0 if ms < 1 else 1 if ms < 1000 else 2
    unit, scale = _TIME_STEPS[index]
    value = _significant(ms / scale, up)
    if value >= 1000 and index < 2:  # 999.6 us rounded up is 1 ms, not "1000 us"
        unit, value = _TIME_STEPS[index + 1][0], value / 1000
    return f"{_plain(value)} {unit}"


# ---------------------------------------------------------------- writing and showing


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _measured(metric: str, value: float) -> str:
    rule, _ = rule_for(metric)
    kind = rule.kind if rule else "number"
    if kind == "size":
        return format_bytes(value)
    if kind == "time":
        return format_ms(value)
    if kind == "counted":
        return f"{value:,.0f}"  # instructions: exact
    return f"{value:.4g}"


def _relative(path: str, root: Path | None) -> str:
    if root is not None:
        try:
            return str(Path(path).relative_to(root))
        except ValueError:
            pass
    return path
