"""TFLite's builtin operator names, read from LiteRT's flatbuffer schema.

Ground floor: the budget file checks ``forbid_fallback`` against these names and the verdicts
tell builtin ops from custom ones, neither of which should need the flatbuffer view. LiteRT's
schema module (pure Python, no interpreter) is imported only when the names are first asked for.
"""

from __future__ import annotations

from functools import cache


@cache
def builtin_op_names() -> frozenset[str]:
    """TFLite's builtin operator names (``CONV_2D``...), as the runtime reports them."""
    from ai_edge_litert import schema_py_generated

    table = schema_py_generated.BuiltinOperator
    return frozenset(name for name, value in vars(table).items() if isinstance(value, int))
