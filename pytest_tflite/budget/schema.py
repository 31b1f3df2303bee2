"""The budget file's JSON Schema (``tflite-budget schema``), as strict as the loader.

The tables give pydantic's schema with their own hints; the rules that span tables (which
delegates take which budgets) are written in here, so that an editor refuses what the loader
refuses.
"""

from __future__ import annotations

import json
from typing import Any

from .tables import BudgetFile
from .types import ACCELERATORS, CPU_KERNELS, DELEGATES, RUNNER_PATTERN, delegates_except


def json_schema() -> str:
    schema = BudgetFile.model_json_schema()
    _delegation_schema(schema)
    _latency_schema(schema)
    _cost_schema(schema)
    _close_delegate_tables(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pytest-tflite budget file"
    return json.dumps(schema, indent=2)



def _delegation_schema(schema: dict[str, Any]) -> None:
    """Delegation budgets as ``refusal`` allows them: none for CPU kernels, and an accelerator
    judges only full acceleration."""
    schema["$defs"]["Variant"]["properties"]["delegation"]["patternProperties"] = {
        f"^({delegates_except(CPU_KERNELS + ACCELERATORS)})$": {"$ref": "#/$defs/DelegationBudget"},
        f"^({'|'.join(ACCELERATORS)})$": {
            "type": "object", "additionalProperties": False, "required": ["min_fraction"],
            "properties": {"min_fraction": {"const": 1.0}},
        },
    }

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
        f"^({delegates_except(ACCELERATORS)})$": {"$ref": "#/$defs/LatencyBudget"},
        f"^({'|'.join(ACCELERATORS)}|{RUNNER_PATTERN})$":
            {"$ref": "#/$defs/AcceleratorLatencyBudget"},
    }


def _cost_schema(schema: dict[str, Any]) -> None:
    """Cost budgets only under the Interpreter's CPU kernels, as ``refusal`` has it."""
    schema["$defs"]["Variant"]["properties"]["cost"]["patternProperties"] = {
        f"^({'|'.join(d for d in DELEGATES if d not in ACCELERATORS)})$":
            {"$ref": "#/$defs/DelegateCost"}}


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


