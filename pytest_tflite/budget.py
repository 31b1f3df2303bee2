"""The budget file: a pydantic schema for one model's TOML budgets, its units, and loading.

Every table rejects unknown keys, so a typo such as ``latency.xnnpak`` is an error, not a budget
that silently never runs. Values are normalised to base units on load: bytes, milliseconds,
fractions 0..1. Imports neither pytest nor TensorFlow.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from .errors import BudgetFileError
from .measure.metrics import ERROR_METRICS
from .runner_config import NAME_PATTERN as RUNNER_NAME
from .runner_config import PREFIX as RUNNER
from .runner_config import Runners
from .units import (
    PERCENT_PATTERN,
    SIZE_PATTERN,
    SIZE_UNITS,
    TIME_PATTERN,
    parse_duration,
    parse_percent,
    parse_size,
    parse_time,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# Delegates the runtime measurement knows; "external:PATH" names a delegate shared library.
DELEGATES = ("xnnpack", "builtin", "reference", "gpu", "npu")
ACCELERATORS = ("gpu", "npu")  # LiteRT CompiledModel: whole-model figures only
CPU_KERNELS = ("builtin", "reference")  # no delegate at all: nothing is ever delegated
def _no_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value}")
    return value


def _fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"expected a fraction between 0 and 1, got {value}")
    return value


class Relative(BaseModel):
    """A tolerance written as "N%": relative to the reference or the baseline."""

    model_config = ConfigDict(frozen=True)
    percent: float

    @property
    def fraction(self) -> float:
        return self.percent / 100.0


def _relative_or(parse_absolute: Any) -> Any:
    def parse(value: object) -> object:
        if (percent := parse_percent(value)) is not None:
            return Relative(percent=percent)
        if isinstance(value, Relative):
            return value
        try:
            return parse_absolute(value)
        except ValueError as exc:
            raise ValueError(f"{exc}; or a percentage such as \"5%\"") from None

    return parse


def _non_negative(value: object) -> float:
    value = _no_bool(value)
    # TOML integers are unbounded: one past a float's range is not finite either.
    if isinstance(value, int) and abs(value) >= 2**1023:
        value = math.inf
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a number >= 0 or a percentage such as \"1%\", got {value!r}")
    return float(value)


_SIZE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "exclusiveMinimum": 0},
        {"type": "string", "pattern": SIZE_PATTERN},
    ],
    "description": f"bytes, or a string with a unit ({SIZE_UNITS})",
}
_TIME_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": TIME_PATTERN},
    ],
    "description": "milliseconds, or a string with a unit (us, ms, s)",
}
_PERCENT_PATTERN = PERCENT_PATTERN


def _or_percent(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [*schema.get("anyOf", [schema]), {"type": "string", "pattern": _PERCENT_PATTERN}]}


Size = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_SIZE_SCHEMA)]
Duration = Annotated[float, BeforeValidator(parse_duration),
                     WithJsonSchema({"type": "string", "pattern": TIME_PATTERN,
                                     "description": "a time with its unit (us, ms, s)"})]
Time = Annotated[float, BeforeValidator(parse_time), WithJsonSchema(_TIME_SCHEMA)]
Fraction = Annotated[float, BeforeValidator(_no_bool), AfterValidator(_fraction),
                     WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})]
# nan or inf as a bound would make a budget that never fails (or a timing loop that never ends).
Number = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_no_bool)]
# Threads, input dimensions and partitions are C ints in LiteRT.
# Field before BeforeValidator: the other way round, the schema says "gt"/"le", which no JSON
# Schema reader knows (editors accepted threads = 0).
PositiveInt = Annotated[int, Field(gt=0, le=2**31 - 1), BeforeValidator(_no_bool)]
SizeTolerance = Annotated[int | Relative, BeforeValidator(_relative_or(parse_size)),
                          WithJsonSchema(_or_percent(_SIZE_SCHEMA))]
NumberTolerance = Annotated[float | Relative, BeforeValidator(_relative_or(_non_negative)),
                            WithJsonSchema(_or_percent({"type": "number", "minimum": 0}))]


def _delegate_name(name: str) -> str:
    if name in DELEGATES or (name.startswith("external:") and len(name) > len("external:")):
        return name
    if name.startswith(RUNNER) and re.fullmatch(RUNNER_NAME, name[len(RUNNER):]):
        return name
    raise ValueError(
        f"unknown delegate {name!r}; expected one of {', '.join(DELEGATES)}, \"external:PATH\" "
        f"or \"runner:NAME\" (a runner declared in pyproject.toml)"
    )


_RUNNER_PATTERN = f"{RUNNER}{RUNNER_NAME}"
_DELEGATE_PATTERN = f"xnnpack|builtin|reference|gpu|npu|external:.+|{_RUNNER_PATTERN}"


def _delegates_except(refused: tuple[str, ...]) -> str:
    return "|".join([*(name for name in DELEGATES if name not in refused), "external:.+"])
Delegate = Annotated[str, AfterValidator(_delegate_name),
                     WithJsonSchema({"type": "string", "pattern": f"^({_DELEGATE_PATTERN})$"})]


def _evaluation_delegate(name: str) -> str:
    if name in DELEGATES or (name.startswith("external:") and len(name) > len("external:")):
        return name
    why = "a runner reports latency only" if name.startswith(RUNNER) else "unknown delegate"
    raise ValueError(f"{why} ({name!r}): accuracy and fidelity are evaluated under one of "
                     f"{', '.join(DELEGATES)} or \"external:PATH\"")


# What accuracy.delegates, fidelity.delegates and fidelity.cross run the evaluation under.
EvaluationDelegate = Annotated[str, AfterValidator(_evaluation_delegate), WithJsonSchema(
    {"type": "string", "pattern": f"^({_delegates_except(())})$"})]
EvaluationDelegates = Annotated[list[EvaluationDelegate], Field(min_length=1)]


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


FIDELITY_BOUNDS = ("min_top1_agreement", "min_cosine", "max_abs_error", "min_snr_db")


class FidelityBounds(Strict):
    min_top1_agreement: Fraction | None = None
    min_cosine: Fraction | None = None
    max_abs_error: Annotated[float, BeforeValidator(_non_negative),
                             WithJsonSchema({"type": "number", "minimum": 0})] | None = None
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
    min_runs: Annotated[int, Field(ge=0), BeforeValidator(_no_bool)] | None = None
    min_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False), BeforeValidator(_no_bool)] | None = None


class RuntimeSettings(Strict):
    """How to measure (not a budget). Unset fields fall through to the next level of settings."""

    threads: PositiveInt | None = None
    delegates: list[Delegate] | None = None
    warmup: Runs | None = None
    timing: Runs | None = None
    input_shapes: dict[str, list[PositiveInt]] | None = None
    seed: Annotated[int, Field(ge=0, le=2**63 - 1), BeforeValidator(_no_bool)] | None = None  # numpy's range
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


class MemoryBudget(BaseModel):
    """``planned_arena`` and ``planned_total`` (arena plus resource-variable state) are static;
    every other key is a delegate with its measured memory."""

    model_config = ConfigDict(
        extra="allow", frozen=True,
        # gpu and npu show no memory (``refusal``); any key at all is a budget.
        json_schema_extra={"minProperties": 1, "propertyNames": {
            "pattern": f"^(planned_arena|planned_total|{_delegates_except(ACCELERATORS)})$"}},
    )
    __pydantic_extra__: dict[Delegate, DelegateMemory] = Field(init=False)
    planned_arena: Size | None = None
    planned_total: Size | None = None

    @property
    def delegates(self) -> dict[str, DelegateMemory]:
        return dict(self.__pydantic_extra__ or {})

    @model_validator(mode="after")
    def _measurable(self) -> MemoryBudget:
        if self.planned_arena is None and self.planned_total is None and not self.delegates:
            raise ValueError("empty budget table: give planned_arena, planned_total or a "
                             "delegate's { arena, peak_rss }, or remove it")
        for name, memory in self.delegates.items():
            for key in type(memory).model_fields:
                why = refusal(f"memory.{name}.{key}") if getattr(memory, key) is not None else None
                if why is not None:
                    raise ValueError(f"memory.{name}.{key}: {why}")
        return self


UNMEASURABLE_ON_ACCELERATORS = (
    "gpu and npu run as a LiteRT CompiledModel, which shows neither its memory nor its "
    "partitions; budget their latency, or delegation.min_fraction = 1.0 (fully accelerated)")
NO_BATCHES_ON_ACCELERATORS = (
    "batch sizes are timed under the Interpreter's delegates (xnnpack, builtin, reference, "
    "external): gpu and npu run as a LiteRT CompiledModel at the model's own batch")
RUNNER_LATENCY_ONLY = (
    "a runner (runner:NAME) reports latency only, from its benchmark's output: budget its "
    "latency (median, p90, p99, mean, cpu, init, first_invoke as its format gives them)")
NOTHING_DELEGATED = (
    "builtin and reference kernels delegate nothing (every op runs on CPU kernels, so the "
    "fraction is always 0); delegation budgets apply to xnnpack, gpu, npu and external delegates")


def refusal(key: str, value: object = None) -> str | None:
    """Why a budget key cannot be judged on its delegate, whatever the model; None if it can.

    ``key`` is a full key path such as ``memory.gpu.arena``; ``value`` the limit when the rule
    depends on it (an accelerator judges only ``min_fraction = 1.0``).
    """
    parts = key.split(".")
    if parts[0] in ("memory", "delegation") and parts[1:2] and parts[1].startswith(RUNNER):
        return RUNNER_LATENCY_ONLY
    if parts[0] == "latency" and parts[2:3] == ["per_sample"] and parts[1].startswith(RUNNER):
        return "a runner times the model at its own batch: " + RUNNER_LATENCY_ONLY
    if parts[0] == "latency" and parts[2:3] == ["per_sample"] and parts[1] in ACCELERATORS:
        return NO_BATCHES_ON_ACCELERATORS
    if len(parts) != 3 or parts[0] not in ("memory", "delegation"):
        return None
    table, delegate, leaf = parts
    if table == "delegation" and delegate in CPU_KERNELS:
        return NOTHING_DELEGATED
    if delegate not in ACCELERATORS:
        return None
    if table == "delegation" and leaf == "min_fraction":
        if value is None or value == 1.0:
            return None
        return (f"min_fraction = {value}: a CompiledModel reports only whether it accelerated "
                f"the whole model, so the only fraction it can judge is 1.0")
    return UNMEASURABLE_ON_ACCELERATORS


def _op_names(names: list[str]) -> list[str]:
    """Builtin op names as the runtime reports them; "CUSTOM" (any custom op) or "CUSTOM:Name"."""
    if not names:
        return names
    from .flatbuffer import builtin_op_names

    builtin = builtin_op_names()
    for name in names:
        if name == "CUSTOM" or (name.startswith("CUSTOM:") and len(name) > len("CUSTOM:")):
            continue
        if name not in builtin:
            near = difflib.get_close_matches(name.upper(), sorted(builtin), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"{name!r} is not a TFLite builtin op{hint} (write \"CUSTOM\" for any "
                             f"custom op, \"CUSTOM:Name\" for one)")
    return names


class DelegationBudget(BudgetTable):
    min_fraction: Fraction | None = None
    max_partitions: PositiveInt | None = None
    forbid_fallback: Annotated[list[str], AfterValidator(_op_names)] = Field(default_factory=list)


def _delegation_schema(schema: dict[str, Any]) -> None:
    """Delegation budgets as ``refusal`` allows them: none for CPU kernels, and an accelerator
    judges only full acceleration."""
    schema["$defs"]["Variant"]["properties"]["delegation"]["patternProperties"] = {
        f"^({_delegates_except(CPU_KERNELS + ACCELERATORS)})$": {"$ref": "#/$defs/DelegationBudget"},
        f"^({'|'.join(ACCELERATORS)})$": {
            "type": "object", "additionalProperties": False, "required": ["min_fraction"],
            "properties": {"min_fraction": {"const": 1.0}},
        },
    }


class Variant(Strict):
    size: SizeBudget | None = None
    accuracy: AccuracyBudget | None = None
    fidelity: FidelityBudget | None = None
    sparsity: SparsityBudget | None = None
    runtime: RuntimeSettings | None = None
    latency: dict[Delegate, LatencyBudget] = Field(default_factory=dict)
    memory: MemoryBudget | None = None
    delegation: dict[Delegate, DelegationBudget] = Field(default_factory=dict)

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
        return self


# The tables of a variant that hold budgets (``runtime`` holds settings).
BUDGET_SECTIONS = ("size", "accuracy", "fidelity", "sparsity", "latency", "memory", "delegation")


class Defaults(Strict):
    runtime: RuntimeSettings | None = None


def _percentage_only(value: object) -> Relative:
    if (percent := parse_percent(value)) is not None:
        return Relative(percent=percent)
    raise ValueError(f"regression.latency takes a percentage such as \"5%\" (the candidate is "
                     f"timed against the baseline's model, so only a ratio means anything), "
                     f"got {value!r}")


class Regression(BudgetTable):
    """Tolerances against a baseline (``--tflite-baseline``): how much worse than the base
    branch a figure may get. Absolute in the figure's unit, or "N%" of the baseline's value."""

    size: SizeTolerance | None = None
    gzip: SizeTolerance | None = None
    planned_arena: SizeTolerance | None = None
    sparsity: NumberTolerance | None = None  # how far sparsity may fall
    accuracy: NumberTolerance | None = None  # how much the metric may worsen
    fidelity: NumberTolerance | None = None  # how far cosine and top-1 agreement may fall
    ops: Literal["exact", "report"] | None = None  # any change in op counts fails, or is shown
    latency: Annotated[Relative, BeforeValidator(_percentage_only),
                       WithJsonSchema({"type": "string", "pattern": _PERCENT_PATTERN})] | None = None


class BudgetFile(Strict):
    model: str | None = None
    source: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    variants: dict[str, Variant] = Field(default_factory=dict)
    regression: Regression | None = None

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
        empty = [name for name, variant in self.variants.items() if not variant.has_budgets]
        if empty and self.regression is None:
            raise ValueError(
                f"[variants.{empty[0]}] has no budgets, so it would pass without checking "
                f"anything: give it at least one of {', '.join(BUDGET_SECTIONS)} (or a "
                f"[regression] table for the whole file)")
        return self


class Budget:
    """A loaded budget file: the validated schema plus where it came from."""

    def __init__(self, path: Path, spec: BudgetFile) -> None:
        self.path = path
        self.spec = spec

    @property
    def model(self) -> str:
        return self.spec.model or self.path.stem

    @property
    def source(self) -> Path | None:
        return (self.path.parent / self.spec.source).resolve() if self.spec.source else None

    def variant(self, name: str) -> Variant:
        try:
            return self.spec.variants[name]
        except KeyError:
            known = ", ".join(sorted(self.spec.variants)) or "none"
            raise BudgetFileError(
                f"{self.path}: no [variants.{name}] section (variants in this file: {known}). "
                f"Add one, or convert with variant=... naming an existing section."
            ) from None


def load(path: Path, runners: Runners | None = None) -> Budget:
    """Read and validate one budget file; every problem becomes one readable BudgetFileError.

    ``runners``: the project's declared runners; a ``runner:NAME`` the file names and they lack
    is refused here. None when the pyproject is not known yet: the engine refuses it at check
    time instead.
    """
    if not path.is_file():
        raise BudgetFileError(
            f"budget file {path} does not exist. Create it (`tflite-budget schema` gives the "
            f"JSON Schema), or point --tflite-budget-dir / the tflite_budget_dir ini key at it."
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BudgetFileError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise BudgetFileError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except ValueError as exc:  # tomllib's int() past Python's 4300-digit limit
        raise BudgetFileError(f"{path}: invalid TOML: a number too long to read ({exc})") from None
    except RecursionError:  # tomllib reads nested arrays and inline tables recursively
        raise BudgetFileError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    try:
        budget = Budget(path, BudgetFile.model_validate(data))
    except ValidationError as exc:
        raise BudgetFileError(f"{path}: invalid budget file:\n{describe_errors(exc)}") from None
    for key, name in runner_keys(budget.spec):
        if runners is not None and name not in runners.declared:
            raise BudgetFileError(f"{path}: {key}: {runners.undeclared(name)} (refused when the "
                                  f"budget file loaded)")
    return budget


def runner_keys(spec: BudgetFile) -> list[tuple[str, str]]:
    """(key path, NAME) of every ``runner:NAME`` the file names: latency tables and
    ``runtime.delegates`` (memory and delegation tables refuse runners on their own)."""
    found = []
    settings = [("defaults.runtime", spec.defaults.runtime)]
    for variant_name, variant in spec.variants.items():
        found += [(f'variants.{variant_name}.latency."{delegate}"', delegate)
                  for delegate in variant.latency]
        settings.append((f"variants.{variant_name}.runtime", variant.runtime))
    for where, runtime in settings:
        found += [(f"{where}.delegates", delegate)
                  for delegate in (runtime.delegates or [] if runtime is not None else [])]
    return [(key, delegate[len(RUNNER):]) for key, delegate in found
            if delegate.startswith(RUNNER)]


def describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"] if not _is_internal_loc(part))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; `tflite-budget schema` lists the keys)"
        # A whole table as "got" is noise: the key path already names it.
        shown = error["type"] == "missing" or isinstance(error["input"], dict)
        text = repr(error["input"])
        # A very long value would bury the message: its start is enough to find it.
        got = "" if shown else f" (got {text if len(text) <= 80 else text[:80] + '...'})"
        if error["type"] in ("value_error", "extra_forbidden"):
            got = "" if text in message else got
        lines.append(f"  {location or '(top level)'}: {message}{got}")
    return "\n".join(dict.fromkeys(lines))


def _is_internal_loc(part: object) -> bool:
    # Union members and validator functions show up in pydantic's error locations; users never
    # wrote them, so keep only the key path.
    text = str(part)
    internal = ("int", "float", "Relative", "str", "[key]")
    return text in internal or text.startswith(("function-", "constrained-"))


def json_schema() -> str:
    schema = BudgetFile.model_json_schema()
    _delegation_schema(schema)
    _latency_schema(schema)
    _close_delegate_tables(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pytest-tflite budget file"
    return json.dumps(schema, indent=2)


def _latency_schema(schema: dict[str, Any]) -> None:
    """gpu and npu latency tables without ``per_sample``, as ``refusal`` has it."""
    defs = schema["$defs"]
    accelerator = json.loads(json.dumps(defs["LatencyBudget"]))
    del accelerator["properties"]["per_sample"]
    accelerator["title"] = "AcceleratorLatencyBudget"
    accelerator["allOf"] = [{"anyOf": [branch for branch in accelerator["allOf"][0]["anyOf"]
                                       if branch["required"] != ["per_sample"]]}]
    defs["AcceleratorLatencyBudget"] = accelerator
    schema["$defs"]["Variant"]["properties"]["latency"]["patternProperties"] = {
        f"^({_delegates_except(ACCELERATORS)})$": {"$ref": "#/$defs/LatencyBudget"},
        f"^({'|'.join(ACCELERATORS)}|{_RUNNER_PATTERN})$":
            {"$ref": "#/$defs/AcceleratorLatencyBudget"},
    }


def _close_delegate_tables(node: Any) -> None:
    """Tables keyed by delegate name accept only those keys, as the loader does."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for child in node.values():
            _close_delegate_tables(child)
    elif isinstance(node, list):
        for child in node:
            _close_delegate_tables(child)


# Every leaf of the schema is one of three kinds; tests/test_budget_keys.py walks the JSON Schema
# and holds each leaf to its kind: a budget is judged against a measured value at 0.5x and 2x
# (or refused when the file loads, see ``refusal``), a setting shows its effect on the
# measurement or the report, a regression tolerance needs a baseline. Paths are relative to a
# variant (``[defaults.runtime]`` shares the variant's runtime keys); <delegate>, <layer> and
# <input> stand for any name. A new key joins exactly one kind.
KEY_KINDS: dict[str, tuple[str, ...]] = {
    "budget": (
        "size.max", "size.max_gzip",
        "accuracy.min", "accuracy.max", "accuracy.max_drop",
        "fidelity.min_top1_agreement", "fidelity.min_cosine", "fidelity.max_abs_error",
        "fidelity.min_snr_db",
        *(f"fidelity.cross.{key}" for key in FIDELITY_BOUNDS),
        "sparsity.min", "sparsity.pattern", "sparsity.layers.<layer>.min",
        *(f"latency.<delegate>.{key}" for key in LatencyBudget.model_fields
          if key != "per_sample"),
        "latency.<delegate>.per_sample.median",
        "memory.planned_arena", "memory.planned_total",
        "memory.<delegate>.arena", "memory.<delegate>.peak_rss",
        *(f"delegation.<delegate>.{key}" for key in DelegationBudget.model_fields),
    ),
    "setting": (
        "model", "source", "accuracy.metric", "accuracy.direction",
        "accuracy.delegates", "fidelity.delegates", "fidelity.cross.delegate",
        "fidelity.cross.against",
        "runtime.threads", "runtime.delegates", "runtime.warmup.min_runs",
        "runtime.warmup.min_seconds", "runtime.timing.min_runs", "runtime.timing.min_seconds",
        "runtime.input_shapes.<input>", "runtime.seed", "runtime.timeout", "runtime.max_memory",
        "runtime.batch_sizes", "latency.<delegate>.per_sample.batch",
    ),
    "regression": tuple(f"regression.{key}" for key in Regression.model_fields),
}
