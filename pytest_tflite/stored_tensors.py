"""Which tensors live in the file: the one home of that rule, for the flatbuffer view and the
worker alike (the arena measurement skips them; the planner never places them). The worker
imports it, so: the standard library and ``ai_edge_litert`` only, nothing else of the package."""

from __future__ import annotations

from typing import Any


def holds_data(buffer: Any) -> bool:
    """Whether a flatbuffer ``Buffer`` table carries a constant: bytes inline, or an offset and
    size into the file past the flatbuffer (models over 2 GB). Buffer 0 is the empty sentinel."""
    return buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)


def stored_in_file(tensor: Any, buffer: Any) -> bool:
    """Whether a ``Tensor`` table's data lives in the file: its ``buffer`` table holds data, or
    it names an external buffer. Such tensors never take arena memory."""
    external = int(tensor.ExternalBuffer()) if hasattr(tensor, "ExternalBuffer") else 0
    return external != 0 or holds_data(buffer)


def constant_tensors(content: bytes) -> dict[int, set[int]]:
    """Per subgraph, the indices of tensors whose data is in the file (not in any arena)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)
    constants: dict[int, set[int]] = {}
    for number in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(number)
        tensors = [subgraph.Tensors(index) for index in range(subgraph.TensorsLength())]
        constants[number] = {index for index, tensor in enumerate(tensors)
                             if stored_in_file(tensor, model.Buffers(tensor.Buffer()))}
    return constants
