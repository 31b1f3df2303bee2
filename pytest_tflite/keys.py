"""The key registry: one row per key a budget file can hold (budget, setting or regression).

A row says what the key reads from the typed results, which way its limit points, its unit,
how the ratchet moves it (or why it never does) and the words people read. Everything that
used to list keys by hand derives from here: ``KEY_KINDS`` (the JSON Schema's leaves, checked by
``tests/unit/budget/test_budget_keys.py``), the verdicts' loops over simple keys, ``[regression]``'s loop
over simple figures, the ratchet's ``RULES`` and ``LEFT_ALONE``, the hypothesis tests' key
names and the key table of ``docs/budget-file.md`` (``tools/regenerate.py`` writes it).

Ground floor: imports nothing of the package and no third-party module, so every room may read
it. Paths are relative to a variant, as a budget file writes them under ``[variants.NAME]``
(``[defaults.runtime]`` shares the variant's runtime keys); ``<delegate>``, ``<layer>`` and
``<input>`` stand for any name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["budget", "setting", "regression"]
# upper: fails above the limit (or when the figure grew); lower: fails below it (or when it
# fell); metric: the accuracy metric's own direction; none: not a number that has one.
Direction = Literal["upper", "lower", "metric", "none"]
# How the ratchet writes a tightened limit back: see ratchet.py.
RatchetKind = Literal["size", "time", "number", "fraction", "delegated_fraction", "count",
                      "counted"]
# static: read from the .tflite file; worker: a worker process runs the model; baseline:
# compared with the base branch's measurement (--tflite-baseline).
Stage = Literal["static", "worker", "baseline", ""]

KINDS: tuple[Kind, ...] = ("budget", "setting", "regression")
# The placeholder a key path writes for a name its table is keyed by.
NAMES_UNDER = {"variants": "<variant>", "memory": "<delegate>", "layers": "<layer>",
               "input_shapes": "<input>"}
ERROR_METRICS = ("mae", "mse", "rmse")  # accuracy metrics where lower is better; top-K is higher

_SETTING = "a setting (how to measure), not a limit"
_TOLERANCE = "a tolerance against the baseline: the ratchet rewrites only [variants.*]"


@dataclass(frozen=True)
class Key:
    """One key of a budget file."""

    path: str  # e.g. "latency.<delegate>.p90", as KEY_KINDS writes it
    kind: Kind
    label: str  # what people read in the docs and the reports
    # The measured figure, as TYPE.field.field on the typed results (Measurement,
    # DelegateResult, BatchResult); " + " sums figures, anything else is judged by hand.
    reads: str = ""
    direction: Direction = "none"
    unit: str = ""  # bytes, ms, fraction, dB, count, ratio; "" for a plain number
    stage: Stage = ""
    ratchet: RatchetKind | None = None  # None: the ratchet leaves it alone, for ``left_alone``
    timing: bool = False  # a timing figure: moves only with --tflite-ratchet-timing
    left_alone: str = ""

    @property
    def leaf(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def terms(self) -> list[str]:
        """The figures a simple key sums, as TYPE.field.field; [] when judged by hand."""
        terms = self.reads.split(" + ") if self.reads else []
        owners = {term.split(".", 1)[0] for term in terms}
        simple = all(part.isidentifier() for term in terms for part in term.split("."))
        return terms if simple and len(owners) == 1 and "." in self.reads else []

    @property
    def check_unit(self) -> str:
        """The unit a ``Check`` carries: "bytes", "ms", or "" (fractions, counts, numbers)."""
        return self.unit if self.unit in ("bytes", "ms") else ""


def figure(key: Key, found: Any) -> Any:
    """The measured figure of a simple key (``Key.terms``) read from ``found`` (the results
    object its terms name); None when any part of it was not measured."""
    values = []
    for term in key.terms:
        value = found
        for name in term.split(".")[1:]:
            value = getattr(value, name, None) if value is not None else None
        if value is None:
            return None
        values.append(value)
    if not values:
        raise ValueError(f"{key.path} is judged by hand: it reads {key.reads!r}")
    return values[0] if len(values) == 1 else sum(values)  # ints stay ints in the JSON


def _budget(path: str, label: str, reads: str, direction: Direction, unit: str, stage: Stage,
            ratchet: RatchetKind | None, *, timing: bool = False, left_alone: str = "") -> Key:
    return Key(path, "budget", label, reads, direction, unit, stage, ratchet, timing, left_alone)


def _setting(path: str, label: str, unit: str = "") -> Key:
    return Key(path, "setting", label, unit=unit, left_alone=_SETTING)


def _regression(path: str, label: str, reads: str, direction: Direction, unit: str = "") -> Key:
    return Key(path, "regression", label, reads, direction, unit, "baseline", left_alone=_TOLERANCE)


def _latency(leaf: str, label: str, reads: str) -> Key:
    return _budget(f"latency.<delegate>.{leaf}", label, f"DelegateResult.{reads}", "upper", "ms",
                   "worker", "time", timing=True)


def _fidelity(prefix: str, what: str, reads: str) -> list[Key]:
    """The four fidelity bounds of ``fidelity`` or ``fidelity.cross``."""
    return [
        _budget(f"{prefix}.min_top1_agreement", f"{what}: top-1 agreement",
                f"Measurement.{reads}.top1_agreement", "lower", "fraction", "worker", "fraction"),
        _budget(f"{prefix}.min_cosine", f"{what}: cosine similarity",
                f"Measurement.{reads}.cosine", "lower", "fraction", "worker", "fraction"),
        _budget(f"{prefix}.max_abs_error", f"{what}: largest absolute difference",
                f"Measurement.{reads}.max_abs_error", "upper", "", "worker", "number"),
        _budget(f"{prefix}.min_snr_db", f"{what}: signal-to-noise ratio",
                f"Measurement.{reads}.snr_db", "lower", "dB", "worker", "number"),
    ]


KEYS: tuple[Key, ...] = (
    # --- budgets: each judged against a measured figure, or refused when the file loads
    _budget("size.max", "file size", "Measurement.size_bytes", "upper", "bytes", "static", "size"),
    _budget("size.max_gzip", "gzip size (dense zeros shrink only under compression)",
            "Measurement.gzip_bytes", "upper", "bytes", "static", "size"),
    _budget("accuracy.min", "the metric on your data (top-K, custom higher-is-better)",
            "Measurement.accuracy.candidate", "lower", "", "worker", "number"),
    _budget("accuracy.max", "the metric on your data (mae, mse, rmse, custom lower-is-better)",
            "Measurement.accuracy.candidate", "upper", "", "worker", "number"),
    _budget("accuracy.max_drop", "how much worse than the float reference (or \"N%\" of it)",
            "Measurement.accuracy.drop", "upper", "", "worker", "number"),
    *_fidelity("fidelity", "candidate vs reference outputs", "fidelity"),
    *_fidelity("fidelity.cross", "the candidate under one delegate vs another", "fidelity_cross"),
    _budget("sparsity.min", "weight sparsity: zeros over all weights", "Measurement.sparsity",
            "lower", "fraction", "static", "fraction"),
    _budget("sparsity.pattern", "N:M pattern: groups breaking it (must be none)",
            "Measurement.sparsity_pattern", "none", "count", "static", None,
            left_alone='an N:M pattern such as "2:4", not a number'),
    _budget("sparsity.layers.<layer>.min", "one layer's weight sparsity (its weights by name)",
            "Measurement.sparsity_layers", "lower", "fraction", "static", "fraction"),
    _latency("median", "median latency", "latency_ms.median"),
    _latency("mean", "mean latency (what benchmark_model's text gives)", "latency_ms.mean"),
    _latency("p90", "90th percentile latency", "latency_ms.p90"),
    _latency("p99", "99th percentile latency", "latency_ms.p99"),
    _latency("cpu", "CPU time per invoke", "cpu_ms"),
    _latency("init", "interpreter creation and allocation", "init_ms"),
    _latency("first_invoke", "the first invoke (caches cold)", "first_invoke_ms"),
    _budget("latency.<delegate>.per_sample.median", "median per sample at per_sample.batch",
            "BatchResult.per_sample_ms", "upper", "ms", "worker", "time", timing=True),
    _budget("memory.planned_arena", "activation memory planned from tensor lifetimes",
            "Measurement.planned_arena_bytes", "upper", "bytes", "static", "size"),
    _budget("memory.planned_total", "planned arena plus state (resource variables, VAR_HANDLE)",
            "Measurement.planned_arena_bytes + Measurement.planned_state_bytes", "upper", "bytes",
            "static", "size"),
    _budget("memory.planned_state", "state: the resource variables (VAR_HANDLE) a streaming "
            "model keeps between invokes, each sized from its largest assigned value",
            "Measurement.planned_state_bytes", "upper", "bytes", "static", "size"),
    _budget("memory.<delegate>.arena", "tensor memory the interpreter really placed",
            "DelegateResult.arena_bytes", "upper", "bytes", "worker", "size"),
    _budget("memory.<delegate>.peak_rss", "peak resident memory of the worker (Linux)",
            "DelegateResult.peak_rss_bytes", "upper", "bytes", "worker", "size", timing=True),
    _budget("delegation.<delegate>.min_fraction", "fraction of nodes the delegate took",
            "DelegateResult.delegated_nodes / DelegateResult.total_nodes", "lower", "fraction",
            "worker", "delegated_fraction"),
    _budget("delegation.<delegate>.max_partitions", "delegate partitions",
            "DelegateResult.partitions", "upper", "count", "worker", "count"),
    _budget("delegation.<delegate>.forbid_fallback", "these ops left to CPU kernels (none allowed)",
            "DelegateResult.fallback_ops", "none", "count", "worker", None,
            left_alone="a list of op names, not a number"),
    _budget("cost.<delegate>.instructions", "instructions per invoke, counted under valgrind "
            "(a count, or k/M/G: decimal, 1M = 1,000,000)", "DelegateResult.cost.instructions",
            "upper", "count", "worker", "counted"),
    _budget("cost.<delegate>.estimated_cycles", "cycles per invoke estimated from the count and "
            "callgrind's cache misses (k/M/G decimal)", "DelegateResult.cost.estimated_cycles",
            "upper", "count", "worker", "counted"),
    # --- settings: how to measure; each shows its effect on the measurement or the report
    _setting("model", "the model's name in reports (default: the file's stem)"),
    _setting("source", "a .tflite or SavedModel the file itself is checked against"),
    _setting("unsafe_source", "allow loading a .keras/.h5 source that runs Python code "
                              "(a Lambda layer): review it first"),
    _setting("allow_outside_rootdir", "why source and external:PATH may resolve outside the "
                                      "project's root"),
    _setting("accuracy.metric", "top1..topK, mae, mse, rmse or custom"),
    _setting("accuracy.direction", "a custom metric's direction: higher or lower"),
    _setting("accuracy.delegates", "evaluate accuracy under each of these delegates"),
    _setting("fidelity.delegates", "evaluate fidelity under each of these delegates"),
    _setting("fidelity.cross.delegate", "the delegate fidelity.cross judges"),
    _setting("fidelity.cross.against", "the delegate fidelity.cross compares it with"),
    _setting("runtime.threads", "interpreter threads", "count"),
    _setting("runtime.delegates", "the delegates to measure"),
    _setting("runtime.warmup.min_runs", "warm-up invokes, at least", "count"),
    _setting("runtime.warmup.min_seconds", "time spent warming up, at least", "s"),
    _setting("runtime.timing.min_runs", "timed invokes, at least", "count"),
    _setting("runtime.timing.min_seconds", "time spent timing, at least", "s"),
    _setting("runtime.input_shapes.<input>", "an input's shape, resized before allocation"),
    _setting("runtime.seed", "the seed of the random inputs"),
    _setting("runtime.timeout", "a worker's time limit", "time"),
    _setting("runtime.max_memory", "the worker's memory cap (address space)", "bytes"),
    _setting("runtime.batch_sizes", "batch sizes to time besides the model's own"),
    _setting("latency.<delegate>.per_sample.batch", "the batch per_sample.median is judged at"),
    # --- regression tolerances: how much worse than the baseline (--tflite-baseline)
    _regression("regression.size", "file size (bytes, or \"N%\" of the baseline's)",
                "Measurement.size_bytes", "upper", "bytes"),
    _regression("regression.gzip", "gzip size (bytes, or \"N%\")",
                "Measurement.gzip_bytes", "upper", "bytes"),
    _regression("regression.planned_arena", "planned arena (bytes, or \"N%\")",
                "Measurement.planned_arena_bytes", "upper", "bytes"),
    _regression("regression.planned_total", "planned arena plus state (bytes, or \"N%\")",
                "Measurement.planned_arena_bytes + Measurement.planned_state_bytes", "upper",
                "bytes"),
    _regression("regression.sparsity", "sparsity (a fraction, or \"N%\")",
                "Measurement.sparsity", "lower", "fraction"),
    _regression("regression.accuracy", "the accuracy metric (a number, or \"N%\")",
                "Measurement.accuracy.candidate", "metric"),
    _regression("regression.fidelity", "cosine and top-1 agreement (a fraction, or \"N%\")",
                "Measurement.fidelity.cosine, Measurement.fidelity.top1_agreement", "lower",
                "fraction"),
    _regression("regression.ops", "op counts: \"exact\" fails on any change, \"report\" shows it",
                "Measurement.ops", "none", "count"),
    _regression("regression.latency", "latency against the baseline's model, timed in pairs (\"N%\" only)",
                "DelegateResult.comparison.ratio", "upper", "ratio"),
    _regression("regression.instructions", "instructions per invoke (a count, k/M/G decimal, "
                "or \"N%\" of the baseline's)", "DelegateResult.cost.instructions", "upper",
                "count"),
    _regression("regression.estimated_cycles", "estimated cycles per invoke (a count, or "
                "\"N%\")", "DelegateResult.cost.estimated_cycles", "upper", "count"),
)

BY_PATH: dict[str, Key] = {key.path: key for key in KEYS}
# Every leaf of the JSON Schema is exactly one of these (tests/unit/budget/test_budget_keys.py walks it).
KEY_KINDS: dict[str, tuple[str, ...]] = {
    kind: tuple(key.path for key in KEYS if key.kind == kind) for kind in KINDS}


def budgets(where: Callable[[Key], bool]) -> tuple[Key, ...]:
    """The budget keys ``where`` picks, in the registry's order (the order checks come in)."""
    return tuple(key for key in KEYS if key.kind == "budget" and where(key))


# Upper limits on a figure of the file itself: judged in one loop (verdicts.judge).
STATIC_LIMITS = budgets(lambda k: k.stage == "static" and k.direction == "upper"
                        and k.terms[:1] != [] and k.terms[0].startswith("Measurement."))
# Per delegate, a DelegateResult figure each: judged in one loop per table.
LATENCY_LIMITS = budgets(lambda k: k.path.startswith("latency.<delegate>.")
                         and k.path.count(".") == 2)
MEMORY_LIMITS = budgets(lambda k: k.path.startswith("memory.<delegate>."))
COST_LIMITS = budgets(lambda k: k.path.startswith("cost.<delegate>."))
# [regression] figures counted under valgrind, per delegate: compared count to count.
COST_REGRESSIONS = tuple(key for key in KEYS if key.kind == "regression"
                         and key.reads.startswith("DelegateResult.cost."))
# fidelity's four bounds, the same under fidelity.cross and per delegate.
FIDELITY_LIMITS = budgets(lambda k: k.path.startswith("fidelity.") and k.path.count(".") == 1)
FIDELITY_BOUNDS = tuple(key.leaf for key in FIDELITY_LIMITS)
# [regression] figures that compare value to value in their direction.
SIMPLE_REGRESSIONS = tuple(key for key in KEYS if key.kind == "regression" and key.terms
                           and key.direction in ("upper", "lower")
                           and key.terms[0].startswith("Measurement."))


# ------------------------------------------------------- the key table of docs/budget-file.md

_STAGE = {"static": "static", "worker": "worker process", "baseline": "baseline", "": ""}
_LIMIT = {"upper": "at most", "lower": "at least", "metric": "its direction", "none": ""}
_TOLERANCE_WAY = {"upper": "may grow by", "lower": "may fall by", "metric": "may worsen by",
                  "none": ""}
_TITLES = {"budget": "Budgets: each judged against its measured figure",
           "setting": "Settings: how to measure, never judged",
           "regression": "Regression tolerances (`[regression]`, with `--tflite-baseline`; never "
                         "rewritten by the ratchet)"}


def _ratchet(key: Key) -> str:
    if key.ratchet is None:
        return key.left_alone
    way = "down" if key.direction == "upper" else "up"
    return f"tightens {way}" + (" with `--tflite-ratchet-timing`" if key.timing else "")


def _row(key: Key) -> list[str]:
    if key.kind == "setting":
        return [f"`{key.path}`", key.label, key.unit]
    if key.kind == "regression":
        return [f"`{key.path}`", key.label, f"`{key.reads}`", _TOLERANCE_WAY[key.direction],
                key.unit]
    return [f"`{key.path}`", key.label, f"`{key.reads}`", _LIMIT[key.direction], key.unit,
            _STAGE[key.stage], _ratchet(key)]


_COLUMNS = {"budget": ["key", "what", "reads", "limit", "unit", "how", "ratchet"],
            "setting": ["key", "what", "unit"],
            "regression": ["key", "what", "reads", "tolerance", "unit"]}


def markdown_table() -> str:
    """The key table of docs/budget-file.md: generated, and checked against that page by a test."""
    lines = []
    for kind in KINDS:
        columns = _COLUMNS[kind]
        lines += ["", f"**{_TITLES[kind]}**", "", f"| {' | '.join(columns)} |",
                  "|" + "---|" * len(columns)]
        lines += [f"| {' | '.join(_row(key))} |" for key in KEYS if key.kind == kind]
    return "\n".join(lines[1:]) + "\n"
