"""The budget file: one model's TOML budgets, validated, in base units.

Rooms, one job each (imports only the ground floor: ``errors``, ``units``, ``runner_config``,
``keys``, ``op_names``):

- ``types``: constrained values (sizes, times, fractions, tolerances, delegate names);
- ``tables``: the pydantic tables, one per TOML table;
- ``refusals``: budget keys some delegate can never measure, and why;
- ``loading``: reading a file into a ``Budget``, with readable errors;
- ``schema``: the JSON Schema editors validate against.

What other modules use is re-exported here. Imports neither pytest nor TensorFlow.
"""

from __future__ import annotations

from ..keys import FIDELITY_BOUNDS, KEY_KINDS
from .loading import Budget, describe_errors, load, runner_keys
from .refusals import (
    NO_BATCHES_ON_ACCELERATORS,
    NOTHING_DELEGATED,
    RUNNER_LATENCY_ONLY,
    UNMEASURABLE_ON_ACCELERATORS,
    refusal,
)
from .schema import json_schema
from .tables import (
    BUDGET_SECTIONS,
    AccuracyBudget,
    BudgetFile,
    BudgetTable,
    CrossFidelityBudget,
    Defaults,
    DelegateCost,
    DelegateMemory,
    DelegationBudget,
    FidelityBounds,
    FidelityBudget,
    LatencyBudget,
    MemoryBudget,
    PerSampleBudget,
    Regression,
    RuntimeTable,
    SparsityBudget,
    Variant,
)
from .types import ACCELERATORS, CPU_KERNELS, DELEGATES, Relative

__all__ = [
    "ACCELERATORS", "BUDGET_SECTIONS", "CPU_KERNELS", "DELEGATES", "FIDELITY_BOUNDS", "KEY_KINDS",
    "NOTHING_DELEGATED", "NO_BATCHES_ON_ACCELERATORS", "RUNNER_LATENCY_ONLY",
    "UNMEASURABLE_ON_ACCELERATORS", "AccuracyBudget", "Budget", "BudgetFile", "BudgetTable",
    "CrossFidelityBudget", "Defaults", "DelegateCost", "DelegateMemory", "DelegationBudget", "FidelityBounds",
    "FidelityBudget", "LatencyBudget", "MemoryBudget", "PerSampleBudget", "Regression",
    "Relative", "RuntimeTable", "SparsityBudget", "Variant", "describe_errors", "json_schema",
    "load", "refusal", "runner_keys",
]
