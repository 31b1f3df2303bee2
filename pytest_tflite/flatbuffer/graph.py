"""Reading one subgraph of a ``.tflite``: its tensors and operators, every index checked
against what the file holds, so a corrupt model is a ``ModelError`` naming what is out of range,
never an interpreter crash."""

from __future__ import annotations

from typing import Any

from ..errors import ModelError
from ..stored_tensors import stored_in_file
from .info import OperatorInfo, TensorInfo
from .schema import dtype_name, litert_schema, vector

# Builtin options that name other subgraphs: options type -> the accessors of those indices.
SUBGRAPH_OPTIONS = {
    "WhileOptions": ("CondSubgraphIndex", "BodySubgraphIndex"),
    "IfOptions": ("ThenSubgraphIndex", "ElseSubgraphIndex"),
    "CallOnceOptions": ("InitSubgraphIndex",),
}

Graph = tuple[list[TensorInfo], list[OperatorInfo], list[int], list[int]]


def read_graph(root: Any, index: int, opcodes: list[str], origin: str) -> Graph:
    """Subgraph ``index`` of the model ``root``: (tensors, operators, inputs, outputs).
    ``opcodes``: the model's operator code names, by index."""
    schema = litert_schema()
    subgraph = root.Subgraphs(index)
    where = f"{origin}: subgraph {index}"
    buffer_count = root.BuffersLength()

    def checked_buffer(buffer: int) -> Any:
        if not 0 <= buffer < max(buffer_count, 1):
            raise ModelError(f"{where}: tensor buffer {buffer} out of range ({buffer_count})")
        return root.Buffers(buffer) if buffer and buffer_count else None

    tensors = []
    for t in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(t)
        name = tensor.Name()
        buffer = int(tensor.Buffer())
        tensors.append(TensorInfo(
            index=t,
            name=name.decode("utf-8", "replace") if name else "",
            shape=tuple(int(d) for d in vector(tensor.ShapeAsNumpy())),
            dtype=dtype_name(tensor.Type()),
            buffer=buffer,
            constant=stored_in_file(tensor, checked_buffer(buffer)),
            variable=bool(tensor.IsVariable()),
        ))

    count = len(tensors)

    def indices(values: Any, what: str) -> tuple[int, ...]:
        result = tuple(int(v) for v in vector(values))
        for v in result:
            if not -1 <= v < count:
                raise ModelError(f"{where}: {what} tensor {v}, but the subgraph has "
                                 f"{count} tensors")
        return result

    option_names = {getattr(schema.BuiltinOptions, name): name for name in SUBGRAPH_OPTIONS}
    subgraph_count = int(root.SubgraphsLength())
    operators = []
    for o in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(o)
        opcode_index = int(operator.OpcodeIndex())
        if not 0 <= opcode_index < len(opcodes):
            raise ModelError(f"{where}: operator {o} has opcode index {opcode_index}, "
                             f"but the model has {len(opcodes)} operator codes")
        called: tuple[int, ...] = ()
        option_type = option_names.get(operator.BuiltinOptionsType(), "")
        table = operator.BuiltinOptions() if option_type in SUBGRAPH_OPTIONS else None
        if table is not None:
            options = getattr(schema, option_type)()
            options.Init(table.Bytes, table.Pos)
            called = tuple(int(getattr(options, field)()) for field in SUBGRAPH_OPTIONS[option_type])
            for target in called:
                if not 0 <= target < subgraph_count:
                    raise ModelError(f"{where}: operator {o} ({opcodes[opcode_index]}) calls "
                                     f"subgraph {target}, but the model has {subgraph_count}")
        operators.append(OperatorInfo(
            index=o,
            opcode=opcodes[opcode_index],
            inputs=indices(operator.InputsAsNumpy(), f"operator {o} reads"),
            outputs=indices(operator.OutputsAsNumpy(), f"operator {o} writes"),
            called_subgraphs=called,
        ))
    inputs = list(indices(subgraph.InputsAsNumpy(), "the inputs name"))
    outputs = list(indices(subgraph.OutputsAsNumpy(), "the outputs name"))
    return tensors, operators, inputs, outputs

