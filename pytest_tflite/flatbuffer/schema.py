"""Names from LiteRT's flatbuffer schema (``ai_edge_litert.schema_py_generated``, loaded on
first use): operator and tensor type names, and option names in snake case. The set of builtin
operator names is the ground floor's ``op_names``, for rooms that need no flatbuffer view."""

from __future__ import annotations

import re
from typing import Any

_OPERATOR_NAMES: dict[int, str] | None = None
_TYPE_NAMES: dict[int, str] | None = None


def litert_schema() -> Any:
    """LiteRT's generated schema module, imported on first use: a view costs nothing until read."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def operator_name(code: int) -> str:
    global _OPERATOR_NAMES
    if _OPERATOR_NAMES is None:
        table = litert_schema().BuiltinOperator
        _OPERATOR_NAMES = {v: k for k, v in vars(table).items() if isinstance(v, int)}
    return _OPERATOR_NAMES.get(code, f"UNKNOWN_{code}")


def dtype_name(code: int) -> str:
    global _TYPE_NAMES
    if _TYPE_NAMES is None:
        table = litert_schema().TensorType
        _TYPE_NAMES = {v: k.lower() for k, v in vars(table).items() if isinstance(v, int)}
    return _TYPE_NAMES.get(code, f"type_{code}")


def snake_case(name: str) -> str:
    """Keras's own to_snake_case, which also gives TFLite's option names from the object API's:
    Conv2D -> conv2d, MaxPooling2D -> max_pooling2d, dilationWFactor -> dilation_w_factor."""
    intermediate = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def vector(value: Any) -> Any:
    """A flatbuffer vector as numpy gives it; empty where the field is absent (flatbuffers
    returns 0 for an absent vector)."""
    return [] if isinstance(value, int) else value
