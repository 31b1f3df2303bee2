"""Delegate refusals: budget keys no model can be judged on, under some delegate.

A budget that can never be measured would parse and then do nothing, so the tables refuse these
keys when the file loads, with the reason here; ``tests/unit/budget/test_budget_keys.py`` holds every key on
every delegate either to a refusal or to a judged check.
"""

from __future__ import annotations

from ..runner_config import PREFIX as RUNNER
from .types import ACCELERATORS, CPU_KERNELS

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

# cost.<delegate>.*: instructions are counted under valgrind on the Interpreter's CPU kernels.
NO_COUNT_ON_ACCELERATORS = (
    "instructions are counted under valgrind on the CPU: gpu and npu run on an accelerator "
    "valgrind cannot see; budget cost under xnnpack, builtin or reference")
NO_COUNT_ON_EXTERNAL = (
    "instructions are counted only for the Interpreter's own kernels (xnnpack, builtin, "
    "reference): an external delegate's library may hand work to hardware valgrind cannot see")
NO_COUNT_ON_RUNNERS = (
    "a runner (runner:NAME) reports latency only, from its benchmark's output: no instruction "
    "count; budget cost under xnnpack, builtin or reference")


def _cost_refusal(delegate: str) -> str | None:
    if delegate.startswith(RUNNER):
        return NO_COUNT_ON_RUNNERS
    if delegate.startswith("external:"):
        return NO_COUNT_ON_EXTERNAL
    return NO_COUNT_ON_ACCELERATORS if delegate in ACCELERATORS else None


def refusal(key: str, value: object = None) -> str | None:
    """Why a budget key cannot be judged on its delegate, whatever the model; None if it can.

    ``key`` is a full key path such as ``memory.gpu.arena``; ``value`` the limit when the rule
    depends on it (an accelerator judges only ``min_fraction = 1.0``).
    """
    parts = key.split(".")
    if parts[0] == "cost" and len(parts) >= 3:  # an external:PATH name may hold dots
        return _cost_refusal(".".join(parts[1:-1]))
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
