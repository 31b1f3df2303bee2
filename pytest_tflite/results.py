"""Typed results: what a measured and judged model variant is, and its JSON form.

Every report (the failure table, the terminal summary, the JSON file, JUnit properties) reads
these types; the JSON contract of ``docs/reports.md`` is ``Entry.to_json()``. Values are
in base units: bytes, milliseconds, fractions 0..1. Imports neither pytest nor TensorFlow.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from .nodes import GraphDiff, LayerError, NodePlacement, layers_from_json, placements_from_json

Verdict = Literal["pass", "fail", "skip", "error"]
DelegateStatus = Literal["ok", "unsupported", "unavailable", "error"]
VERDICT_ORDER: tuple[Verdict, ...] = ("error", "fail", "pass", "skip")  # worst first


class Subgraph(TypedDict):
    index: int
    name: str
    operators: int
    tensors: int
    planned_arena_bytes: int


class TensorSpec(TypedDict):
    name: str
    shape: list[int]
    shape_signature: list[int]
    dtype: str
    scale: float | None
    zero_point: int | None


class LayerSparsity(TypedDict):
    name: str
    tensor: str
    dtype: str
    elements: int
    zeros: int
    sparsity: float
    format: str


class PatternLayer(TypedDict, total=False):
    name: str
    tensor: str
    axis: int
    groups: int
    violating_groups: int
    reason: str


class SparsityPattern(TypedDict):
    pattern: str
    groups: int
    violating_groups: int
    violating_layers: list[str]
    layers: list[PatternLayer]
    skipped: list[PatternLayer]


def layer_matches(budget_name: str, tensor_name: str) -> bool:
    """Whether a budget's layer name names this weight tensor: it must equal one of the tensor
    name's "/"- or ";"-separated segments, so ``dense`` names ``model/dense/MatMul`` but not
    ``model/dense_1/MatMul``."""
    return budget_name in re.split(r"[/;]", tensor_name)


def named_layer_sparsity(layers: Iterable[Mapping[str, Any]], budget_name: str) -> float | None:
    """The sparsity of the weights a budget's layer name matches (``layer_matches`` on each
    entry's tensor name), weighted by elements; None when it matches none. ``layers``: the
    ``sparsity_layers`` entries of a measurement."""
    zeros = elements = 0
    matched = False
    for layer in layers:
        if layer_matches(budget_name, layer["tensor"]):
            matched = True
            zeros += layer["zeros"]
            elements += layer["elements"]
    if not matched:
        return None
    return zeros / elements if elements else 0.0


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that are fields of the dataclass ``cls``: JSON from a newer or older
    version (a saved baseline) loads, its unknown keys left out."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}

@dataclass
class Latency:
    """Timed runs in ms. The plugin's own delegates give every figure; a runner's format may
    give fewer (benchmark_model's text: the mean only), the others then None."""

    median: float | None
    p90: float | None
    p99: float | None
    min: float | None
    mean: float
    std: float | None
    n: int | None
    samples: list[float] | None = None  # the timed runs in order (capped by the worker), for plots


ComparisonVerdict = Literal["regressed", "improved", "unchanged", "inconclusive"]


@dataclass
class Comparison:
    """Candidate vs baseline latency timed in one worker, in alternating blocks: the ratio
    (candidate / baseline, >1 is slower), its bootstrap interval over the pairs of blocks, and
    what that interval says against the tolerance."""

    ratio: float
    low: float
    high: float
    pairs: int
    verdict: ComparisonVerdict
    tolerance: float  # a fraction: 0.05 for "5%"
    remeasured: bool = False
    # Both models' median block time per invoke from the same paired run, on the clock the
    # ratio was taken on (``clock``, e.g. "CPU time, 1 thread"); None in reports written before.
    base_median_ms: float | None = None
    head_median_ms: float | None = None
    clock: str = ""
    ratios: list[float] | None = None  # the per-pair ratios candidate/baseline, in order (capped)


BatchStatus = Literal["ok", "unsupported", "error"]


@dataclass
class BatchResult:
    """The model timed with dimension 0 of every input resized to ``batch``
    (``runtime.batch_sizes``): ``per_sample_ms`` is the median over ``batch``."""

    batch: int
    status: BatchStatus
    reason: str = ""  # why this batch could not run, in the interpreter's words
    latency_ms: Latency | None = None
    per_sample_ms: float | None = None
    input_shapes: list[list[int]] | None = None  # the shapes the worker really ran, per input

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchResult:
        values = known_fields(cls, data)
        if values.get("latency_ms") is not None:
            values["latency_ms"] = Latency(**values["latency_ms"])
        values["reason"] = values.get("reason") or ""
        return cls(**values)


class CostFunction(TypedDict):
    """One function in a counted invoke, by its own (exclusive) instructions."""

    name: str
    instructions: int  # per invoke
    share: float  # of the invoke's instructions, 0..1


@dataclass
class Cost:
    """Instructions per invoke, counted under valgrind's callgrind with collection toggled on
    the invoke call only (``delegates[d].cost``): exact, so one or two invokes suffice. x86
    kernels as valgrind exposes them (no AVX-512), not phone time."""

    instructions: int  # per counted invoke
    estimated_cycles: int  # per invoke; the formula is in docs and in ``formula``
    l1_misses: int  # per invoke: I1 + D1 misses from callgrind's cache simulation
    ll_misses: int  # per invoke: last-level misses (instruction and data)
    invokes: int  # counted invokes (the warm-up invoke is never counted)
    top_functions: list[CostFunction] = field(default_factory=list)
    cache: dict[str, str] = field(default_factory=dict)  # {"I1": "32768,8,64", "D1": ..., "LL": ...}
    formula: str = ""  # how estimated_cycles is computed
    fingerprint: dict[str, Any] = field(default_factory=dict)  # what makes two counts comparable
    symbol: str = ""  # the function collection was toggled on


def function_changes(base: Cost, head: Cost) -> list[tuple[str, int]]:
    """Per function, head's instructions per invoke minus base's, largest change first;
    unchanged ones left out. The lists hold the top functions only: a function missing from one
    side counts as 0 there when it outgrew that side's smallest listed count (a new kernel), and
    is left out otherwise (it may sit just below that side's cut)."""
    before = {f["name"]: f["instructions"] for f in base.top_functions}
    after = {f["name"]: f["instructions"] for f in head.top_functions}
    base_cut, head_cut = min(before.values(), default=0), min(after.values(), default=0)
    changes = []
    for name in dict.fromkeys([*after, *before]):
        if (name not in before and after[name] <= base_cut) or \
                (name not in after and before[name] <= head_cut):
            continue  # below the other side's cut: its count there is unknown
        changes.append((name, after.get(name, 0) - before.get(name, 0)))
    return sorted([c for c in changes if c[1]], key=lambda c: -abs(c[1]))


@dataclass
class DelegateResult:
    """One delegate's runtime figures; ``None`` where this delegate cannot show a figure."""

    status: DelegateStatus
    reason: str = ""
    threads: int | None = None
    inputs: str | None = None  # what was fed: "random (seed N)" or "sample"
    latency_ms: Latency | None = None
    warmup_runs: int | None = None
    init_ms: float | None = None
    first_invoke_ms: float | None = None
    cpu_ms: float | None = None
    arena_bytes: int | None = None
    peak_rss_bytes: int | None = None
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    partitions: int | None = None
    fallback_ops: dict[str, int] | None = None
    fully_accelerated: bool | None = None  # gpu and npu (LiteRT CompiledModel) only
    comparison: Comparison | None = None  # against the baseline's .tflite, when there is one
    comparison_error: str = ""  # why the comparison could not be made (a crash, a timeout)
    runner_format: str | None = None  # runner:NAME only: the output format its figures came from
    cost: Cost | None = None  # instructions per invoke under callgrind, when a cost key asks
    cost_error: str = ""  # why no count was made (valgrind missing, a crash, a missing symbol)
    # The baseline's count this run compared against: its stored count, or its .tflite counted
    # again in this job when the fingerprints differ; the reports show both sides' functions.
    baseline_cost: Cost | None = None
    # Per operator: the delegate took it, a CPU kernel ran it, or a custom op stayed out; for
    # every subgraph the interpreter exposes. None where it cannot be told (placement_note).
    placement: list[NodePlacement] | None = None
    placement_note: str = ""  # what placement leaves out and why (other subgraphs, accelerators)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
    batches: list[BatchResult] | None = None  # per runtime.batch_sizes; None when not asked

    def batch(self, size: int) -> BatchResult | None:
        """The result at batch ``size``, if it was measured."""
        return next((b for b in self.batches or [] if b.batch == size), None)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DelegateResult:
        values = known_fields(cls, data)
        if values.get("latency_ms") is not None:
            values["latency_ms"] = Latency(**values["latency_ms"])
        if values.get("comparison") is not None:
            values["comparison"] = Comparison(**known_fields(Comparison, values["comparison"]))
        if values.get("batches") is not None:
            values["batches"] = [BatchResult.from_json(b) for b in values["batches"]]
        for name in ("cost", "baseline_cost"):
            if values.get(name) is not None:
                values[name] = Cost(**known_fields(Cost, values[name]))
        values["placement"] = placements_from_json(values.get("placement"))
        values["placement_note"] = values.get("placement_note") or ""
        values["reason"] = values.get("reason") or ""
        return cls(**values)


@dataclass
class Accuracy:
    metric: str
    candidate: float
    reference: float | None
    drop: float | None  # positive = worse than the reference, whatever the metric's direction
    samples: int
    batched: bool


@dataclass
class Fidelity:
    top1_agreement: float | None
    cosine: float
    max_abs_error: float
    snr_db: float
    samples: int | None = None  # the evaluation samples compared; None in reports written before
    top1_agreeing: int | None = None  # of them, those whose top-1 class agrees


@dataclass
class EvaluationRun:
    """The candidate evaluated under one named delegate (``accuracy.delegates``,
    ``fidelity.delegates``, ``fidelity.cross``): how that run went and the kernels it ran with."""

    status: DelegateStatus
    reason: str = ""
    delegated_nodes: int | None = None  # nodes the delegate took (0 under builtin, reference)
    total_nodes: int | None = None
    batched: bool | None = None


@dataclass
class CrossFidelity:
    """``fidelity.cross``: the candidate under ``delegate`` against itself under ``against``,
    on the evaluation inputs (no labels, no reference model)."""

    delegate: str
    against: str
    top1_agreement: float | None
    cosine: float
    max_abs_error: float
    snr_db: float
    samples: int


@dataclass
class Measurement:
    """Everything measured of one model: static figures, then runtime and quality."""

    size_bytes: int
    gzip_bytes: int
    ops: dict[str, int]
    subgraphs: list[Subgraph]
    planned_arena_bytes: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    sparsity: float
    sparsity_layers: list[LayerSparsity]
    # Resource variables (VAR_HANDLE) beside the planned arena; 0 in files written before it.
    planned_state_bytes: int = 0
    sparsity_pattern: SparsityPattern | None = None
    delegates: dict[str, DelegateResult] = field(default_factory=dict)
    accuracy: Accuracy | None = None
    fidelity: Fidelity | None = None
    # Why the model was never run (its planned arena exceeds the memory cap): every runtime and
    # quality check is then an error with this reason.
    refused: str | None = None
    # Per named delegate (accuracy.delegates, fidelity.delegates); ``accuracy``/``fidelity``
    # stay the default run's (XNNPACK, built-in kernels where it refuses the model).
    accuracy_by_delegate: dict[str, Accuracy] = field(default_factory=dict)
    fidelity_by_delegate: dict[str, Fidelity] = field(default_factory=dict)
    fidelity_cross: CrossFidelity | None = None
    evaluation_runs: dict[str, EvaluationRun] = field(default_factory=dict)
    # Per quantized operator, its error against the float reference (--tflite-node-data);
    # None when not computed, with layers_note saying why where it was asked for.
    layers: list[LayerError] | None = None
    layers_note: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def layer_sparsity(self, budget_name: str) -> float | None:
        """``sparsity.layers.NAME.min``'s figure: the weights ``budget_name`` names, together."""
        return named_layer_sparsity(self.sparsity_layers, budget_name)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        values = known_fields(cls, data)
        values["delegates"] = {name: DelegateResult.from_json(found)
                               for name, found in (values.get("delegates") or {}).items()}
        if values.get("accuracy") is not None:
            values["accuracy"] = Accuracy(**values["accuracy"])
        if values.get("fidelity") is not None:
            values["fidelity"] = Fidelity(**known_fields(Fidelity, values["fidelity"]))
        values["accuracy_by_delegate"] = {name: Accuracy(**found) for name, found in
                                          (values.get("accuracy_by_delegate") or {}).items()}
        values["fidelity_by_delegate"] = {name: Fidelity(**known_fields(Fidelity, found))
                                          for name, found in
                                          (values.get("fidelity_by_delegate") or {}).items()}
        if values.get("fidelity_cross") is not None:
            values["fidelity_cross"] = CrossFidelity(**values["fidelity_cross"])
        values["evaluation_runs"] = {name: EvaluationRun(**found) for name, found in
                                     (values.get("evaluation_runs") or {}).items()}
        values["layers"] = layers_from_json(values.get("layers"))
        values["layers_note"] = values.get("layers_note") or ""
        return cls(**values)


@dataclass(frozen=True)
class Check:
    """One budget key judged: ``metric`` is its key path, e.g. ``latency.xnnpack.median``."""

    metric: str
    measured: float | None
    budget: float | None
    verdict: Verdict
    unit: str = ""  # "bytes" | "ms" | "" (fractions, counts)
    reason: str = ""
    baseline: float | None = None  # the same figure in the baseline, when compared with one
    delta: float | None = None  # measured - baseline, in the check's unit
    # regression.* only: where the tolerance was written, "variant" ([variants.NAME.regression])
    # or "file" ([regression]), so a report can name the line to change.
    tolerance_from: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def overall(checks: list[Check]) -> Verdict:
    """The worst verdict; all-skip (or nothing checked) is ``skip``, never ``pass``."""
    verdicts = {c.verdict for c in checks}
    for verdict in VERDICT_ORDER:
        if verdict in verdicts:
            return verdict
    return "skip"


@dataclass
class Entry:
    """One checked model variant: what the report's ``entries`` hold (flattened in JSON)."""

    test: str
    model: str
    variant: str
    recipe: str
    measurement: Measurement
    checks: list[Check]
    warnings: list[str] = field(default_factory=list)  # e.g. the baseline's environment differs
    model_path: str = ""  # the .tflite that was measured: what a saved baseline keeps
    budget_path: str = ""  # the budget file judged against: what the ratchet rewrites
    graph_diff: GraphDiff | None = None  # against the baseline's model, when there is one

    @property
    def verdict(self) -> Verdict:
        return overall(self.checks)

    def skip_reasons(self) -> list[str]:
        return list(dict.fromkeys(f"{c.metric}: {c.reason}" for c in self.checks
                                  if c.verdict == "skip"))

    def to_json(self) -> dict[str, Any]:
        return {"test": self.test, "model": self.model, "variant": self.variant,
                "recipe": self.recipe, **self.measurement.to_json(),
                "checks": [c.to_json() for c in self.checks], "verdict": self.verdict,
                "warnings": list(self.warnings), "model_path": self.model_path,
                "budget_path": self.budget_path,
                "graph_diff": self.graph_diff.to_json() if self.graph_diff else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(data["test"], data["model"], data["variant"], data["recipe"],
                   Measurement.from_json(data),
                   [Check(**check) for check in data.get("checks", [])],
                   list(data.get("warnings", [])), str(data.get("model_path", "")),
                   str(data.get("budget_path", "")),
                   GraphDiff.from_json(data["graph_diff"]) if data.get("graph_diff") else None)
