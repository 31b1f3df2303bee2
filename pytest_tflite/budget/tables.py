"""The budget file's tables: one pydantic model per TOML table, and the rules that span keys.

Every table rejects unknown keys, so a typo such as ``latency.xnnpak`` is an error, not a budget
that silently never runs; a table of budgets that gives none is refused, and so is a key no
delegate can measure (``refusals.py``). Each table carries the JSON Schema hints that let an
editor say what the loader says (``schema.py`` finishes the document).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ..keys import ERROR_METRICS, FIDELITY_BOUNDS
from .refusals import refusal
from .types import (
    ACCELERATORS,
    Count,
    CountTolerance,
    Delegate,
    Duration,
    EvaluationDelegate,
    EvaluationDelegates,
    Fraction,
    NonNegative,
    Number,
    NumberTolerance,
    OpNames,
    Percentage,
    PositiveInt,
    Size,
    SizeTolerance,
    Time,
    delegates_except,
    no_bool,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _given(value: object) -> bool:
    return value is not None and value != [] and value != {}


def _one_given(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """JSON Schema for "at least one key, and not an empty list or table": ``_given`` for editors."""
    branches = []
    for name, field in schema["properties"].items():
        branch: dict[str, Any] = {"required": [name]}
        if field.get("type") in ("array", "object"):
            branch["properties"] = {name: {"minItems" if field["type"] == "array"
                                           else "minProperties": 1}}
        branches.append(branch)
    return branches


def _budget_table_schema(schema: dict[str, Any]) -> None:
    # Under allOf: a bare anyOf on a table reads as Optional[...] to simple schema walkers.
    schema["allOf"] = [{"anyOf": _one_given(schema)}]


class BudgetTable(Strict):
    """A table of budgets: an empty one would check nothing, so it is refused."""

    model_config = ConfigDict(json_schema_extra=_budget_table_schema)

    @model_validator(mode="after")
    def _not_empty(self) -> BudgetTable:
        if not any(_given(getattr(self, name)) for name in type(self).model_fields):
            keys = ", ".join(type(self).model_fields)
            raise ValueError(f"empty budget table: give at least one of {keys}, or remove it")
        return self


class SizeBudget(BudgetTable):
    max: Size | None = None
    max_gzip: Size | None = None


def _accuracy_schema(schema: dict[str, Any]) -> None:
    """The loader's rules for editors: top0 is no metric, the direction decides min or max, a
    custom metric names its direction, and some bound is given. One branch per way to be valid."""
    error = "|".join(ERROR_METRICS)
    schema["properties"]["metric"]["pattern"] = rf"^(top[1-9]\d*|{error}|custom)$"
    kinds = [  # (metric, whether "metric" must be written, direction, higher is better)
        ({"pattern": r"^top[1-9]\d*$"}, False, None, True),
        ({"pattern": f"^({error})$"}, True, None, False),
        ({"const": "custom"}, True, "higher", True),
        ({"const": "custom"}, True, "lower", False),
    ]
    branches = []
    for metric, metric_required, direction, higher in kinds:
        for bound in ("min" if higher else "max", "max_drop"):
            branch: dict[str, Any] = {
                "properties": {"metric": metric, "max" if higher else "min": False,
                               "direction": {"const": direction} if direction else False},
                "required": [bound, *(["metric"] if metric_required else []),
                             *(["direction"] if direction else [])],
            }
            branches.append(branch)
    schema["allOf"] = [{"anyOf": branches}]


class AccuracyBudget(Strict):
    model_config = ConfigDict(json_schema_extra=_accuracy_schema)

    metric: Annotated[str, Field(pattern=r"^(top\d+|mae|mse|rmse|custom)$")] = "top1"
    # Only a custom metric needs it: the built-in metrics know their direction.
    direction: Literal["higher", "lower"] | None = None
    min: Number | None = None
    max: Number | None = None
    max_drop: NumberTolerance | None = None
    # Evaluate under each (checks accuracy.<delegate>.min ...); None: the default run only.
    delegates: EvaluationDelegates | None = None

    @property
    def higher_is_better(self) -> bool:
        if self.metric == "custom":
            return self.direction == "higher"
        return self.metric not in ERROR_METRICS

    @model_validator(mode="after")
    def _bound_matches_direction(self) -> AccuracyBudget:
        if self.metric.startswith("top") and int(self.metric[3:]) < 1:
            raise ValueError(f"'{self.metric}' must be top1 or higher")
        if self.metric == "custom" and self.direction is None:
            raise ValueError('a custom metric needs direction = "higher" (higher is better, '
                             'like accuracy) or direction = "lower" (like an error)')
        if self.metric != "custom" and self.direction is not None:
            raise ValueError(f"direction applies only to metric = \"custom\"; '{self.metric}' "
                             f"is {'higher' if self.higher_is_better else 'lower'}-is-better already")
        if not self.higher_is_better and self.min is not None:
            raise ValueError(f"'{self.metric}' is lower-is-better: use max, not min")
        if self.higher_is_better and self.max is not None:
            raise ValueError(f"'{self.metric}' is higher-is-better: use min, not max")
        if self.min is None and self.max is None and self.max_drop is None:
            raise ValueError("an accuracy budget needs a bound: min, max or max_drop")
        return self



class FidelityBounds(Strict):
    min_top1_agreement: Fraction | None = None
    min_cosine: Fraction | None = None
    max_abs_error: NonNegative | None = None
    min_snr_db: Number | None = None

    @property
    def has_bounds(self) -> bool:
        return any(getattr(self, name) is not None for name in FIDELITY_BOUNDS)


def _cross_schema(schema: dict[str, Any]) -> None:
    schema["allOf"] = [{"anyOf": [{"required": [name]} for name in FIDELITY_BOUNDS]}]


class CrossFidelityBudget(FidelityBounds):
    """``fidelity.cross``: the candidate under ``delegate`` against itself under ``against``,
    on the evaluation inputs alone (no labels, no reference model)."""

    model_config = ConfigDict(json_schema_extra=_cross_schema)
    delegate: EvaluationDelegate = "xnnpack"
    against: EvaluationDelegate = "reference"

    @model_validator(mode="after")
    def _bounded_and_two_delegates(self) -> CrossFidelityBudget:
        if not self.has_bounds:
            raise ValueError(f"fidelity.cross needs a bound: give at least one of "
                             f"{', '.join(FIDELITY_BOUNDS)}")
        if self.delegate == self.against:
            raise ValueError(f"fidelity.cross compares two delegates: against = "
                             f"{self.against!r} is the delegate itself (delegate defaults to "
                             f"\"xnnpack\", against to \"reference\")")
        return self


def _fidelity_schema(schema: dict[str, Any]) -> None:
    """Some bound, or a cross table; ``delegates`` applies to the plain bounds only."""
    branches: list[dict[str, Any]] = [{"required": [name]} for name in FIDELITY_BOUNDS]
    branches.append({"required": ["cross"], "properties": {"delegates": False}})
    schema["allOf"] = [{"anyOf": branches}]


class FidelityBudget(FidelityBounds):
    model_config = ConfigDict(json_schema_extra=_fidelity_schema)
    # Evaluate under each (checks fidelity.<delegate>.min_cosine ...); None: the default run only.
    delegates: EvaluationDelegates | None = None
    cross: CrossFidelityBudget | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> FidelityBudget:
        if not self.has_bounds and self.cross is None:
            raise ValueError(f"empty budget table: give at least one of "
                             f"{', '.join(FIDELITY_BOUNDS)}, cross, or remove it")
        if self.delegates is not None and not self.has_bounds:
            raise ValueError(f"fidelity.delegates applies to {', '.join(FIDELITY_BOUNDS)}: give "
                             f"one of them (fidelity.cross names its own two delegates)")
        return self


class LayerSparsity(Strict):
    min: Fraction


class SparsityBudget(BudgetTable):
    min: Fraction | None = None
    pattern: Annotated[str, Field(pattern=r"^\d+:\d+$")] | None = None
    layers: dict[str, LayerSparsity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _pattern_is_n_of_m(self) -> SparsityBudget:
        if self.pattern is not None:
            n, m = (int(part) for part in self.pattern.split(":"))
            if not 0 < n < m:
                raise ValueError(f"pattern {self.pattern!r} must be N:M with 0 < N < M, e.g. \"2:4\"")
        return self


class Runs(Strict):
    min_runs: Annotated[int, Field(ge=0), BeforeValidator(no_bool)] | None = None
    min_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False), BeforeValidator(no_bool)] | None = None


class RuntimeTable(Strict):
    """How to measure (not a budget). Unset fields fall through to the next level of settings."""

    threads: PositiveInt | None = None
    delegates: list[Delegate] | None = None
    warmup: Runs | None = None
    timing: Runs | None = None
    input_shapes: dict[str, list[PositiveInt]] | None = None
    seed: Annotated[int, Field(ge=0, le=2**63 - 1), BeforeValidator(no_bool)] | None = None  # numpy's range
    timeout: Duration | None = None
    # The worker's memory cap (address space): a model that needs more is refused, not run.
    max_memory: Size | None = None
    # Batch sizes to time besides the model's own: dimension 0 of every input resized to each.
    batch_sizes: Annotated[list[PositiveInt], Field(min_length=1)] | None = None


class PerSampleBudget(Strict):
    """The median at ``batch`` (one of ``runtime.batch_sizes``) divided by ``batch``."""

    batch: PositiveInt
    median: Time


class LatencyBudget(BudgetTable):
    median: Time | None = None
    mean: Time | None = None  # what a runner's benchmark_model text gives (averages only)
    p90: Time | None = None
    p99: Time | None = None
    cpu: Time | None = None
    init: Time | None = None
    first_invoke: Time | None = None
    per_sample: PerSampleBudget | None = None


class DelegateMemory(BudgetTable):
    arena: Size | None = None
    peak_rss: Size | None = None


def _memory_schema(schema: dict[str, Any]) -> None:
    # gpu and npu show no memory (``refusal``); any key at all is a budget.
    static = "|".join(schema["properties"])
    schema["minProperties"] = 1
    schema["propertyNames"] = {"pattern": f"^({static}|{delegates_except(ACCELERATORS)})$"}


class MemoryBudget(BaseModel):
    """The fields are static figures of the file (``planned_total``: the arena plus the
    resource variables' state); every other key is a delegate with its measured memory."""

    model_config = ConfigDict(extra="allow", frozen=True, json_schema_extra=_memory_schema)
    __pydantic_extra__: dict[Delegate, DelegateMemory] = Field(init=False)
    planned_arena: Size | None = None
    planned_total: Size | None = None
    planned_state: Size | None = None

    @property
    def delegates(self) -> dict[str, DelegateMemory]:
        return dict(self.__pydantic_extra__ or {})

    @model_validator(mode="after")
    def _measurable(self) -> MemoryBudget:
        static = type(self).model_fields
        if all(getattr(self, key) is None for key in static) and not self.delegates:
            raise ValueError(f"empty budget table: give {', '.join(static)} or a delegate's "
                             f"{{ {', '.join(DelegateMemory.model_fields)} }}, or remove it")
        for name, memory in self.delegates.items():
            for key in type(memory).model_fields:
                why = refusal(f"memory.{name}.{key}") if getattr(memory, key) is not None else None
                if why is not None:
                    raise ValueError(f"memory.{name}.{key}: {why}")
        return self


class DelegateCost(BudgetTable):
    """``cost.<delegate>``: per invoke, counted under valgrind's callgrind (k, M, G decimal)."""

    instructions: Count | None = None
    estimated_cycles: Count | None = None


class DelegationBudget(BudgetTable):
    min_fraction: Fraction | None = None
    max_partitions: PositiveInt | None = None
    forbid_fallback: OpNames = Field(default_factory=list)


class Regression(BudgetTable):
    """Tolerances against a baseline (``--tflite-baseline``): how much worse than the base
    branch a figure may get. Absolute in the figure's unit, or "N%" of the baseline's value."""

    size: SizeTolerance | None = None
    gzip: SizeTolerance | None = None
    planned_arena: SizeTolerance | None = None
    planned_total: SizeTolerance | None = None  # the arena plus the resource variables' state
    sparsity: NumberTolerance | None = None  # how far sparsity may fall
    accuracy: NumberTolerance | None = None  # how much the metric may worsen
    fidelity: NumberTolerance | None = None  # how far cosine and top-1 agreement may fall
    ops: Literal["exact", "report"] | None = None  # any change in op counts fails, or is shown
    latency: Percentage | None = None  # paired timing: a ratio, so "N%" only
    # Counted instructions and estimated cycles per invoke: exact, so "0.5%" means something.
    instructions: CountTolerance | None = None
    estimated_cycles: CountTolerance | None = None


class Variant(Strict):
    size: SizeBudget | None = None
    accuracy: AccuracyBudget | None = None
    fidelity: FidelityBudget | None = None
    sparsity: SparsityBudget | None = None
    runtime: RuntimeTable | None = None
    latency: dict[Delegate, LatencyBudget] = Field(default_factory=dict)
    memory: MemoryBudget | None = None
    delegation: dict[Delegate, DelegationBudget] = Field(default_factory=dict)
    cost: dict[Delegate, DelegateCost] = Field(default_factory=dict)
    # This variant's own tolerances: each key given here replaces the file-wide [regression]
    # key of that name (key by key); a key it cannot measure is an error, not a skip.
    regression: Regression | None = None

    @property
    def has_budgets(self) -> bool:
        return any(_given(getattr(self, name)) for name in BUDGET_SECTIONS)

    @model_validator(mode="after")
    def _measurable(self) -> Variant:
        for name, latency in self.latency.items():
            why = refusal(f"latency.{name}.per_sample.median") if latency.per_sample else None
            if why is not None:
                raise ValueError(f"latency.{name}.per_sample: {why}")
        for name, budget in self.delegation.items():
            for key in type(budget).model_fields:
                value = getattr(budget, key)
                why = refusal(f"delegation.{name}.{key}", value) if _given(value) else None
                if why is not None:
                    raise ValueError(f"delegation.{name}.{key}: {why}")
        for name in self.cost:
            why = refusal(f"cost.{name}.instructions")
            if why is not None:
                raise ValueError(f"cost.{name}: {why}")
        return self


# The tables of a variant that hold budgets (``runtime`` holds settings).
BUDGET_SECTIONS = ("size", "accuracy", "fidelity", "sparsity", "latency", "memory", "delegation",
                   "cost")


class Defaults(Strict):
    runtime: RuntimeTable | None = None



class BudgetFile(Strict):
    model: str | None = None
    source: str | None = None
    # Loading a .keras/.h5 that holds Python code (a Lambda layer's bytecode) runs that code:
    # refused (Keras safe mode) unless the file's reviewer says so here.
    unsafe_source: bool = False
    # ``source`` and ``external:PATH`` delegates must resolve inside the project's root; this
    # opts out, saying why (budget/confined.py).
    allow_outside_rootdir: Annotated[str, WithJsonSchema({"type": "string", "pattern": r"\S"})] \
        | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    variants: dict[str, Variant] = Field(default_factory=dict)
    regression: Regression | None = None

    @field_validator("allow_outside_rootdir")
    @classmethod
    def _opt_outs_say_why(cls, reason: str | None) -> str | None:
        # A field validator, so the error names the key (a model validator says "top level").
        if reason is not None and not reason.strip():
            raise ValueError("say why the paths may be outside the project, e.g. "
                             "\"the shared model store on the lab machines\"")
        return reason

    @model_validator(mode="after")
    def _per_sample_batches_are_measured(self) -> BudgetFile:
        """A per-sample budget judges a batch size ``runtime.batch_sizes`` times (the variant's
        own [runtime], else [defaults.runtime]): a batch never measured is refused here."""
        for name, variant in self.variants.items():
            runtime = variant.runtime.batch_sizes if variant.runtime else None
            sizes = runtime if runtime is not None else (
                self.defaults.runtime.batch_sizes if self.defaults.runtime else None)
            for delegate, latency in variant.latency.items():
                if latency.per_sample is None:
                    continue
                key = f"variants.{name}.latency.{delegate}.per_sample.batch"
                batch = latency.per_sample.batch
                if sizes is None:
                    raise ValueError(f"{key}: batch {batch} is never measured: give runtime."
                                     f"batch_sizes = [1, {batch}] (in [defaults.runtime] or "
                                     f"[variants.{name}.runtime])")
                if batch not in sizes:
                    raise ValueError(f"{key}: batch {batch} is not one of runtime.batch_sizes "
                                     f"{sizes}: add it there, or budget one of those")
        return self

    @model_validator(mode="after")
    def _every_variant_checks_something(self) -> BudgetFile:
        empty = [name for name, variant in self.variants.items()
                 if not variant.has_budgets and variant.regression is None]
        if empty and self.regression is None:
            raise ValueError(
                f"[variants.{empty[0]}] has no budgets, so it would pass without checking "
                f"anything: give it at least one of {', '.join(BUDGET_SECTIONS)} (or a "
                f"[variants.{empty[0]}.regression] table, or a [regression] table for the "
                f"whole file)")
        return self

