"""Constrained types of the budget file: sizes, times, fractions, tolerances, delegate names.

Each type parses what a user writes (``"48 KiB"``, ``"5%"``, ``"runner:farm"``) into base units
(bytes, milliseconds, fractions 0..1) and carries the JSON Schema editors see for it. No tables
here: ``tables.py`` builds the budget file's tables from these types.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from ..errors import did_you_mean
from ..op_names import builtin_op_names
from ..runner_config import NAME_PATTERN as RUNNER_NAME
from ..runner_config import PREFIX as RUNNER
from ..units import (
    COUNT_PATTERN,
    PERCENT_PATTERN,
    SIZE_PATTERN,
    SIZE_UNITS,
    TIME_PATTERN,
    parse_count,
    parse_duration,
    parse_percent,
    parse_size,
    parse_time,
)

# Delegates the runtime measurement knows; "external:PATH" names a delegate shared library.
DELEGATES = ("xnnpack", "builtin", "reference", "gpu", "npu")
ACCELERATORS = ("gpu", "npu")  # LiteRT CompiledModel: whole-model figures only
CPU_KERNELS = ("builtin", "reference")  # no delegate at all: nothing is ever delegated


def no_bool(value: object) -> object:
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


def non_negative(value: object) -> float:
    value = no_bool(value)
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


def _or_percent(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [*schema.get("anyOf", [schema]), {"type": "string", "pattern": PERCENT_PATTERN}]}


Size = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_SIZE_SCHEMA)]
Duration = Annotated[float, BeforeValidator(parse_duration),
                     WithJsonSchema({"type": "string", "pattern": TIME_PATTERN,
                                     "description": "a time with its unit (us, ms, s)"})]
Time = Annotated[float, BeforeValidator(parse_time), WithJsonSchema(_TIME_SCHEMA)]
Fraction = Annotated[float, BeforeValidator(no_bool), AfterValidator(_fraction),
                     WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})]
# nan or inf as a bound would make a budget that never fails (or a timing loop that never ends).
Number = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(no_bool)]
# Threads, input dimensions and partitions are C ints in LiteRT.
# Field before BeforeValidator: the other way round, the schema says "gt"/"le", which no JSON
# Schema reader knows (editors accepted threads = 0).
PositiveInt = Annotated[int, Field(gt=0, le=2**31 - 1), BeforeValidator(no_bool)]
SizeTolerance = Annotated[int | Relative, BeforeValidator(_relative_or(parse_size)),
                          WithJsonSchema(_or_percent(_SIZE_SCHEMA))]
NumberTolerance = Annotated[float | Relative, BeforeValidator(_relative_or(non_negative)),
                            WithJsonSchema(_or_percent({"type": "number", "minimum": 0}))]
_COUNT_SCHEMA = {
    "anyOf": [
        {"type": "integer", "exclusiveMinimum": 0},
        {"type": "string", "pattern": COUNT_PATTERN},
    ],
    "description": "a count (instructions, cycles per invoke), or a string with k, M or G: "
                   "decimal (1k = 1,000, 1M = 1,000,000), unlike the KiB/MiB of sizes",
}
# cost.<delegate>.instructions and estimated_cycles: counts per invoke, k/M/G decimal.
Count = Annotated[int, BeforeValidator(parse_count), WithJsonSchema(_COUNT_SCHEMA)]
CountTolerance = Annotated[int | Relative, BeforeValidator(_relative_or(parse_count)),
                           WithJsonSchema(_or_percent(_COUNT_SCHEMA))]


def _delegate_name(name: str) -> str:
    if name in DELEGATES or (name.startswith("external:") and len(name) > len("external:")):
        return name
    if name.startswith(RUNNER) and re.fullmatch(RUNNER_NAME, name[len(RUNNER):]):
        return name
    raise ValueError(
        f"unknown delegate {name!r}{did_you_mean(name, DELEGATES)}; expected one of "
        f"{', '.join(DELEGATES)}, \"external:PATH\" or \"runner:NAME\" (a runner declared in "
        f"pyproject.toml)"
    )


RUNNER_PATTERN = f"{RUNNER}{RUNNER_NAME}"
_DELEGATE_PATTERN = f"xnnpack|builtin|reference|gpu|npu|external:.+|{RUNNER_PATTERN}"


def delegates_except(refused: tuple[str, ...]) -> str:
    """The delegate-name pattern without ``refused`` (and without runners)."""
    return "|".join([*(name for name in DELEGATES if name not in refused), "external:.+"])


Delegate = Annotated[str, AfterValidator(_delegate_name),
                     WithJsonSchema({"type": "string", "pattern": f"^({_DELEGATE_PATTERN})$"})]


def _evaluation_delegate(name: str) -> str:
    if name in DELEGATES or (name.startswith("external:") and len(name) > len("external:")):
        return name
    why = (f"a runner reports latency only ({name!r})" if name.startswith(RUNNER)
           else f"unknown delegate {name!r}{did_you_mean(name, DELEGATES)}")
    raise ValueError(f"{why}: accuracy and fidelity are evaluated under one of "
                     f"{', '.join(DELEGATES)} or \"external:PATH\"")


# What accuracy.delegates, fidelity.delegates and fidelity.cross run the evaluation under.
EvaluationDelegate = Annotated[str, AfterValidator(_evaluation_delegate), WithJsonSchema(
    {"type": "string", "pattern": f"^({delegates_except(())})$"})]
EvaluationDelegates = Annotated[list[EvaluationDelegate], Field(min_length=1)]



NonNegative = Annotated[float, BeforeValidator(non_negative),
                        WithJsonSchema({"type": "number", "minimum": 0})]


def _percentage_only(value: object) -> Relative:
    if (percent := parse_percent(value)) is not None:
        return Relative(percent=percent)
    raise ValueError(f"regression.latency takes a percentage such as \"5%\" (the candidate is "
                     f"timed against the baseline's model, so only a ratio means anything), "
                     f"got {value!r}")


# regression.latency: a ratio of paired timings, so only "N%" means anything.
Percentage = Annotated[Relative, BeforeValidator(_percentage_only),
                       WithJsonSchema({"type": "string", "pattern": PERCENT_PATTERN})]


def _op_names(names: list[str]) -> list[str]:
    """Builtin op names as the runtime reports them; "CUSTOM" (any custom op) or "CUSTOM:Name"."""
    if not names:
        return names
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


# delegation.<delegate>.forbid_fallback: builtin op names, "CUSTOM" or "CUSTOM:Name".
OpNames = Annotated[list[str], AfterValidator(_op_names)]
