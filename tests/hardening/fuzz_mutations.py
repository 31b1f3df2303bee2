"""Flatbuffer-aware mutants of small valid models, and the outcome of measuring one.

Shared by ``tests/hardening/test_fuzz.py`` (a fast seeded sample) and ``bench/hardening_fuzz.py`` (the
long run). A mutant is a seed model edited through LiteRT's flatbuffer object API
(``ModelT.InitFromPackedBuf``, edit, re-pack) or, where the object API cannot express the damage
(a vector whose length lies, a file cut short), patched at known byte offsets. Each mutation
class names one kind of damage:

    shape           tensor shapes: zero, negative, huge (2**31-1, products past 2**40), rank 8
    buffer_index    a tensor's buffer index out of range, or another tensor's buffer
    opcode_index    an operator's opcode index out of range or another operator's; bad opcodes
    subgraph_index  WHILE / IF / CALL_ONCE subgraph indices out of range, swapped, or cycles
    quantization    zero / NaN / inf / negative scales, zero points out of range, length
                    mismatches, quantized_dimension out of range
    sparsity        SparsityParameters: traversal order, block map, dimension metadata with bad
                    segments and indices
    table           truncated files, duplicated operators / tensors / subgraphs, vector lengths
                    that lie
    bytes           the byte-level mutations: truncation, flips, 0x00/0xFF fills, deleted or
                    duplicated chunks, a corrupt header

``measure_outcome`` runs a file through ``tflite-budget measure`` in this process (the static
checks here, the interpreter in the worker) and sorts what happened into one ``Outcome``.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import re
import signal
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tests.helpers.models import Op, Subgraph, Tensor, build_model

# ---------------------------------------------------------------- seed models


def fc_model() -> bytes:
    """x[1,8] -> FULLY_CONNECTED -> RELU -> ADD(const) -> SOFTMAX: 1 KB, mostly structure."""
    rng = np.random.default_rng(0)
    return build_model([Subgraph(
        tensors=[Tensor("x", [1, 8]), Tensor("w", [4, 8], data=rng.normal(size=(4, 8))),
                 Tensor("b", [4], data=rng.normal(size=4)), Tensor("h", [1, 4]),
                 Tensor("r", [1, 4]), Tensor("c", [1, 4], data=rng.normal(size=(1, 4))),
                 Tensor("s", [1, 4]), Tensor("y", [1, 4])],
        ops=[Op("FULLY_CONNECTED", [0, 1, 2], [3]), Op("RELU", [3], [4]), Op("ADD", [4, 5], [6]),
             Op("SOFTMAX", [6], [7])],
        inputs=[0], outputs=[7],
    )])


def control_flow_model() -> bytes:
    """CALL_ONCE(init), then WHILE(x < -10) x += 1, then IF(0 < y) relu(y) else logistic(y).

    The loop condition is false for every input in [-1, 1], so a mutant that breaks the body's
    arithmetic still ends; the interpreter prepares every subgraph all the same.
    """
    return build_model([
        Subgraph([Tensor("x", [1]), Tensor("y", [1]), Tensor("zero", [1], data=[0.0]),
                  Tensor("c", [1], dtype="bool"), Tensor("z", [1])],
                 [Op("CALL_ONCE", [], [], options={"init_subgraph_index": 3}),
                  Op("WHILE", [0], [1], options={"cond_subgraph_index": 1, "body_subgraph_index": 2}),
                  Op("LESS", [2, 1], [3]),
                  Op("IF", [3, 1], [4], options={"then_subgraph_index": 4, "else_subgraph_index": 5})],
                 inputs=[0], outputs=[4], name="main"),
        Subgraph([Tensor("a", [1]), Tensor("limit", [1], data=[-10.0]),
                  Tensor("go", [1], dtype="bool")],
                 [Op("LESS", [0, 1], [2])], inputs=[0], outputs=[2], name="cond"),
        Subgraph([Tensor("a", [1]), Tensor("one", [1], data=[1.0]), Tensor("b", [1])],
                 [Op("ADD", [0, 1], [2])], inputs=[0], outputs=[2], name="body"),
        Subgraph([], [], inputs=[], outputs=[], name="init"),
        Subgraph([Tensor("a", [1]), Tensor("b", [1])], [Op("RELU", [0], [1])],
                 inputs=[0], outputs=[1], name="then"),
        Subgraph([Tensor("a", [1]), Tensor("b", [1])], [Op("LOGISTIC", [0], [1])],
                 inputs=[0], outputs=[1], name="else"),
    ])


def int8_model() -> bytes:
    """x int8[1,8] -> FULLY_CONNECTED (int8 weights per channel, int32 bias) -> RELU -> y int8."""
    rng = np.random.default_rng(1)
    model = unpack(build_model([Subgraph(
        tensors=[Tensor("x", [1, 8], dtype="int8", scale=0.05, zero_point=-3),
                 Tensor("w", [4, 8], dtype="int8", data=rng.integers(-127, 128, (4, 8)),
                        scale=0.01, zero_point=0),
                 Tensor("b", [4], dtype="int32", data=rng.integers(-500, 500, 4),
                        scale=0.0005, zero_point=0),
                 Tensor("h", [1, 4], dtype="int8", scale=0.1, zero_point=2),
                 Tensor("y", [1, 4], dtype="int8", scale=0.1, zero_point=2)],
        ops=[Op("FULLY_CONNECTED", [0, 1, 2], [3]), Op("RELU", [3], [4])],
        inputs=[0], outputs=[4],
    )]))
    weights, bias = model.subgraphs[0].tensors[1], model.subgraphs[0].tensors[2]
    weights.quantization.scale = [0.01, 0.02, 0.015, 0.01]
    weights.quantization.zeroPoint = [0, 0, 0, 0]
    bias.quantization.scale = [0.0005, 0.001, 0.00075, 0.0005]
    bias.quantization.zeroPoint = [0, 0, 0, 0]
    return pack(model)


def sparse_model() -> bytes:
    """x[1,4] -> FULLY_CONNECTED(DENSIFY(w)) -> y: w[3,4] stored sparse (rows dense, columns
    CSR), as ``Optimize.EXPERIMENTAL_SPARSITY`` writes it."""
    model = unpack(build_model([Subgraph(
        tensors=[Tensor("x", [1, 4]), Tensor("w", [5], data=[1.0, 2.0, 3.0, 4.0, 5.0]),
                 Tensor("w_dense", [3, 4]), Tensor("y", [1, 3])],
        ops=[Op("DENSIFY", [1], [2]), Op("FULLY_CONNECTED", [0, 2, -1], [3])],
        inputs=[0], outputs=[3],
    )]))
    weights = model.subgraphs[0].tensors[1]
    weights.shape = [3, 4]
    weights.sparsity = sparsity_parameters(
        traversal_order=[0, 1], block_map=[], segments=[0, 2, 3, 5], indices=[0, 3, 1, 0, 2],
        dense_sizes=(3, 4))
    return pack(model)


def sparsity_parameters(traversal_order: list[int], block_map: list[int], segments: list[int],
                        indices: list[int], dense_sizes: tuple[int, int]) -> Any:
    """A dense outer dimension of ``dense_sizes[0]`` and a CSR inner one of ``dense_sizes[1]``."""
    outer = schema.DimensionMetadataT()
    outer.format = schema.DimensionType.DENSE
    outer.denseSize = dense_sizes[0]
    inner = schema.DimensionMetadataT()
    inner.format = schema.DimensionType.SPARSE_CSR
    inner.denseSize = dense_sizes[1]
    inner.arraySegmentsType = schema.SparseIndexVector.Int32Vector
    inner.arraySegments = schema.Int32VectorT()
    inner.arraySegments.values = list(segments)
    inner.arrayIndicesType = schema.SparseIndexVector.Int32Vector
    inner.arrayIndices = schema.Int32VectorT()
    inner.arrayIndices.values = list(indices)
    parameters = schema.SparsityParametersT()
    parameters.traversalOrder = list(traversal_order)
    parameters.blockMap = list(block_map)
    parameters.dimMetadata = [outer, inner]
    return parameters


SEEDS: dict[str, Callable[[], bytes]] = {
    "fc": fc_model, "control": control_flow_model, "int8": int8_model, "sparse": sparse_model,
}


def unpack(content: bytes) -> Any:
    return schema.ModelT.InitFromPackedBuf(bytearray(content), 0)


def pack(model: Any) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# ---------------------------------------------------------------- mutations

Rng = np.random.Generator


def _pick(rng: Rng, values: list[Any]) -> Any:
    return values[int(rng.integers(0, len(values)))]


def _ints(values: Any) -> list[int]:
    """An optional vector of the object API (None, a list or a numpy array) as a list."""
    return [] if values is None else [int(v) for v in values]


def _tensors(model: Any) -> list[tuple[int, int, Any]]:
    return [(s, t, tensor) for s, subgraph in enumerate(model.subgraphs)
            for t, tensor in enumerate(subgraph.tensors or [])]


def _operators(model: Any) -> list[tuple[int, int, Any]]:
    return [(s, o, op) for s, subgraph in enumerate(model.subgraphs)
            for o, op in enumerate(subgraph.operators or [])]


def mutate_shape(content: bytes, rng: Rng) -> tuple[str, bytes]:
    model = unpack(content)
    s, t, tensor = _pick(rng, _tensors(model))
    shape = _ints(tensor.shape) or [1]
    rank = len(shape)
    axis = int(rng.integers(0, rank))
    kind = _pick(rng, ["zero", "negative", "int32 max", "past 2**40", "rank 8", "rank 0",
                       "signature", "grown"])
    if kind == "zero":
        shape[axis] = 0
    elif kind == "negative":
        shape[axis] = int(_pick(rng, [-1, -2, -(2**31)]))
    elif kind == "int32 max":
        shape[axis] = 2**31 - 1
    elif kind == "past 2**40":
        shape = [2**20, 2**20, 2] if rank < 3 else [2**14] * rank
    elif kind == "rank 8":
        shape = [1] * (8 - rank) + shape
    elif kind == "rank 0":
        shape = []
    elif kind == "signature":  # a dynamic signature that disagrees with the shape
        tensor.shapeSignature = [-1] * (rank + int(rng.integers(0, 2)))
    else:  # a larger dimension than the data or the neighbours fit
        shape[axis] = shape[axis] * int(_pick(rng, [2, 3, 1000]))
    tensor.shape = shape
    return f"subgraph {s} tensor {t} ({kind}): shape {shape}", pack(model)


def mutate_buffer_index(content: bytes, rng: Rng) -> tuple[str, bytes]:
    model = unpack(content)
    s, t, tensor = _pick(rng, _tensors(model))
    count = len(model.buffers)
    kind = _pick(rng, ["one past", "far past", "uint32 max", "another tensor's", "empty"])
    value = {"one past": count, "far past": count + 1000, "uint32 max": 2**32 - 1,
             "another tensor's": int(rng.integers(0, count)), "empty": 0}[kind]
    tensor.buffer = value
    if kind == "far past":  # also a buffer whose data claims to lie outside the file
        extra = schema.BufferT()
        extra.offset, extra.size = 2**40, 64
        model.buffers.append(extra)
        tensor.buffer = len(model.buffers) - 1
    return f"subgraph {s} tensor {t} ({kind}): buffer {tensor.buffer} of {count}", pack(model)


def mutate_opcode_index(content: bytes, rng: Rng) -> tuple[str, bytes]:
    model = unpack(content)
    count = len(model.operatorCodes)
    kind = _pick(rng, ["one past", "uint32 max", "another operator's", "another operator's",
                       "unknown builtin",
                       "deprecated code disagrees", "custom without code", "version 99"])
    if kind in ("one past", "uint32 max", "another operator's"):
        s, o, op = _pick(rng, _operators(model))
        op.opcodeIndex = {"one past": count, "uint32 max": 2**32 - 1,
                          "another operator's": int(rng.integers(0, count))}[kind]
        return f"subgraph {s} operator {o} ({kind}): opcode index {op.opcodeIndex}", pack(model)
    c = int(rng.integers(0, count))
    code = model.operatorCodes[c]
    if kind == "unknown builtin":
        code.builtinCode = int(_pick(rng, [400, 2**31 - 1, -5]))
        code.deprecatedBuiltinCode = 127
    elif kind == "deprecated code disagrees":
        code.deprecatedBuiltinCode = int(rng.integers(0, 127))
    elif kind == "custom without code":
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = None
    else:
        code.version = 99
    return f"operator code {c} ({kind})", pack(model)


_SUBGRAPH_FIELDS = {
    schema.BuiltinOptions.WhileOptions: ("condSubgraphIndex", "bodySubgraphIndex"),
    schema.BuiltinOptions.IfOptions: ("thenSubgraphIndex", "elseSubgraphIndex"),
    schema.BuiltinOptions.CallOnceOptions: ("initSubgraphIndex",),
}


def mutate_subgraph_index(content: bytes, rng: Rng) -> tuple[str, bytes]:
    model = unpack(content)
    count = len(model.subgraphs)
    calls = [(s, o, op) for s, o, op in _operators(model) if op.builtinOptionsType in _SUBGRAPH_FIELDS]
    kind = _pick(rng, ["out of range", "negative", "main", "self", "swapped", "another",
                       "mutual cycle", "called subgraph calls main"])
    if kind in ("mutual cycle", "called subgraph calls main"):
        # A call planted inside a called subgraph: then -> main, or then <-> else.
        target = 0 if kind == "called subgraph calls main" else 5
        for caller in ([4] if target == 0 else [4, 5]):
            callee = target if caller == 4 else 4
            subgraph = model.subgraphs[caller]
            call = schema.OperatorT()
            call.opcodeIndex = next(i for i, c in enumerate(model.operatorCodes)
                                    if c.builtinCode == schema.BuiltinOperator.CALL_ONCE)
            call.inputs, call.outputs = [], []
            call.builtinOptionsType = schema.BuiltinOptions.CallOnceOptions
            call.builtinOptions = schema.CallOnceOptionsT()
            call.builtinOptions.initSubgraphIndex = callee
            subgraph.operators.insert(0, call)
        return f"{kind}: CALL_ONCE planted in subgraph 4 calling {target}", pack(model)
    s, o, op = _pick(rng, calls)
    fields = _SUBGRAPH_FIELDS[op.builtinOptionsType]
    field = _pick(rng, list(fields))
    if kind == "swapped" and len(fields) == 2:
        a, b = (getattr(op.builtinOptions, f) for f in fields)
        setattr(op.builtinOptions, fields[0], b)
        setattr(op.builtinOptions, fields[1], a)
        return f"subgraph {s} operator {o}: {fields} swapped", pack(model)
    value = {"out of range": count + int(rng.integers(0, 3)), "negative": -1, "main": 0,
             "self": s, "swapped": int(rng.integers(1, count)),
             "another": int(rng.integers(1, count))}[kind]
    setattr(op.builtinOptions, field, value)
    return f"subgraph {s} operator {o} ({kind}): {field} = {value}", pack(model)


def mutate_quantization(content: bytes, rng: Rng) -> tuple[str, bytes]:
    model = unpack(content)
    quantized = [(s, t, x) for s, t, x in _tensors(model) if x.quantization is not None
                 and x.quantization.scale is not None and len(x.quantization.scale)]
    s, t, tensor = _pick(rng, quantized or _tensors(model))
    if tensor.quantization is None or tensor.quantization.scale is None:
        tensor.quantization = schema.QuantizationParametersT()
        tensor.quantization.scale, tensor.quantization.zeroPoint = [0.5], [0]
    q = tensor.quantization
    scales, zero_points = [float(v) for v in q.scale], _ints(q.zeroPoint)
    kind = _pick(rng, ["zero scale", "NaN scale", "inf scale", "negative scale", "tiny scale",
                       "zero point out of range", "zero point huge", "more scales",
                       "more zero points", "no zero points", "quantized dimension",
                       "negative quantized dimension"])
    i = int(rng.integers(0, len(scales)))
    if kind == "zero scale":
        scales[i] = 0.0
    elif kind == "NaN scale":
        scales[i] = math.nan
    elif kind == "inf scale":
        scales[i] = math.inf
    elif kind == "negative scale":
        scales[i] = -abs(scales[i])
    elif kind == "tiny scale":
        scales[i] = 1e-45
    elif kind == "zero point out of range":
        zero_points = [int(_pick(rng, [300, -300, 128, -129]))] * max(len(zero_points), 1)
    elif kind == "zero point huge":
        zero_points = [2**62] * max(len(zero_points), 1)
    elif kind == "more scales":
        scales = scales + [0.1] * int(rng.integers(1, 9))
    elif kind == "more zero points":
        zero_points = zero_points + [0] * int(rng.integers(1, 9))
    elif kind == "no zero points":
        zero_points = []
    elif kind == "quantized dimension":
        q.quantizedDimension = int(_pick(rng, [1, 2, 7, 2**31 - 1]))
    else:
        q.quantizedDimension = -1
    q.scale, q.zeroPoint = scales, zero_points
    return f"subgraph {s} tensor {t} ({kind})", pack(model)


def mutate_sparsity(content: bytes, rng: Rng) -> tuple[str, bytes]:
    model = unpack(content)
    sparse = [(s, t, x) for s, t, x in _tensors(model) if x.sparsity is not None]
    if sparse:
        s, t, tensor = _pick(rng, sparse)
    else:  # sparse metadata on a dense constant (or, failing that, any tensor)
        constants = [(s, t, x) for s, t, x in _tensors(model) if x.buffer]
        s, t, tensor = _pick(rng, constants or _tensors(model))
        rows = max((_ints(tensor.shape) or [1])[0], 1)
        elements = int(np.prod(_ints(tensor.shape) or [1]))
        tensor.sparsity = sparsity_parameters(
            [0, 1], [], list(range(rows + 1)), [0] * rows, (rows, max(elements // max(rows, 1), 1)))
    p = tensor.sparsity
    inner = p.dimMetadata[-1] if p.dimMetadata else None
    kind = _pick(rng, ["traversal order out of range", "traversal order duplicated",
                       "traversal order short", "block map out of range", "block map long",
                       "no dimension metadata", "extra dimension metadata",
                       "segments decreasing", "segments past indices", "segments short",
                       "indices past dense size", "negative index", "dense size zero",
                       "dense size huge", "no segments", "uint8 segments", "as is"])
    if kind == "traversal order out of range":
        p.traversalOrder = [0, 9]
    elif kind == "traversal order duplicated":
        p.traversalOrder = [0, 0]
    elif kind == "traversal order short":
        p.traversalOrder = [0]
    elif kind == "block map out of range":
        p.traversalOrder, p.blockMap = [0, 1, 2], [5]
    elif kind == "block map long":
        p.blockMap = [0, 1, 0, 1]
    elif kind == "no dimension metadata":
        p.dimMetadata = []
    elif kind == "extra dimension metadata":
        p.dimMetadata = [*(p.dimMetadata or []), copy.deepcopy(inner or schema.DimensionMetadataT())]
    elif inner is not None and inner.arraySegments is not None and inner.arrayIndices is not None:
        segments, indices = _ints(inner.arraySegments.values), _ints(inner.arrayIndices.values)
        if kind == "segments decreasing":
            segments = segments[::-1]
        elif kind == "segments past indices":
            segments[-1] = len(indices) + 100
        elif kind == "segments short":
            segments = segments[:1]
        elif kind == "indices past dense size":
            indices[int(rng.integers(0, len(indices)))] = inner.denseSize + 7
        elif kind == "negative index":
            indices[0] = -3
        elif kind == "dense size zero":
            inner.denseSize = 0
        elif kind == "dense size huge":
            inner.denseSize = 2**31 - 1
        elif kind == "no segments":
            inner.arraySegmentsType, inner.arraySegments = schema.SparseIndexVector.NONE, None
        elif kind == "uint8 segments":
            inner.arraySegmentsType = schema.SparseIndexVector.Uint8Vector
            inner.arraySegments = schema.Uint8VectorT()
            inner.arraySegments.values = [v % 256 for v in segments] + [255]
        if inner.arraySegments is not None and kind != "uint8 segments":
            inner.arraySegments.values = segments
        inner.arrayIndices.values = indices
    return f"subgraph {s} tensor {t} ({kind})", pack(model)


# Field slots of the schema's tables (vtable offsets), for byte patches the object API cannot
# make: a vector's length prefix sits 4 bytes before its first element.
_MODEL_VECTORS = {"operator_codes": 6, "subgraphs": 8, "buffers": 12}
_SUBGRAPH_VECTORS = {"tensors": 4, "inputs": 6, "outputs": 8, "operators": 10}
_TENSOR_VECTORS = {"shape": 4}
_OPERATOR_VECTORS = {"inputs": 6, "outputs": 8}


def vector_lengths(content: bytes) -> list[tuple[str, int, int]]:
    """(name, byte offset of the length prefix, length) of the model's main vectors."""
    root = schema.Model.GetRootAs(content, 0)
    found: list[tuple[str, int, int]] = []

    def add(table: Any, slots: dict[str, int], where: str) -> None:
        for name, slot in slots.items():
            offset = table._tab.Offset(slot)
            if offset:
                start = table._tab.Vector(offset)
                found.append((f"{where}{name}", start - 4, table._tab.VectorLen(offset)))

    add(root, _MODEL_VECTORS, "model.")
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        add(subgraph, _SUBGRAPH_VECTORS, f"subgraph {s}.")
        for t in range(subgraph.TensorsLength()):
            add(subgraph.Tensors(t), _TENSOR_VECTORS, f"subgraph {s}.tensor {t}.")
        for o in range(subgraph.OperatorsLength()):
            add(subgraph.Operators(o), _OPERATOR_VECTORS, f"subgraph {s}.operator {o}.")
    return found


def mutate_table(content: bytes, rng: Rng) -> tuple[str, bytes]:
    kind = _pick(rng, ["truncated", "length lies", "length lies", "duplicate operator",
                       "duplicate tensor", "duplicate subgraph", "duplicate buffer"])
    if kind == "truncated":
        cut = int(rng.integers(8, len(content)))
        return f"truncated to {cut} of {len(content)} bytes", content[:cut]
    if kind == "length lies":
        name, position, length = _pick(rng, vector_lengths(content))
        lie = int(_pick(rng, [length + 1, length + 1000, 0, 2**31 - 1, 2**32 - 1,
                              max(length - 1, 0)]))
        data = bytearray(content)
        struct.pack_into("<I", data, position, lie)
        return f"{name} length {length} -> {lie}", bytes(data)
    model = unpack(content)
    if kind == "duplicate operator":
        s, o, op = _pick(rng, _operators(model))
        model.subgraphs[s].operators.insert(o + int(rng.integers(0, 2)), copy.deepcopy(op))
        return f"subgraph {s} operator {o} duplicated", pack(model)
    if kind == "duplicate tensor":
        s, t, tensor = _pick(rng, _tensors(model))
        model.subgraphs[s].tensors.insert(t, copy.deepcopy(tensor))  # later indices shift by one
        return f"subgraph {s} tensor {t} duplicated in place", pack(model)
    if kind == "duplicate subgraph":
        s = int(rng.integers(0, len(model.subgraphs)))
        model.subgraphs.insert(s, copy.deepcopy(model.subgraphs[s]))
        return f"subgraph {s} duplicated in place", pack(model)
    b = int(rng.integers(0, len(model.buffers)))
    model.buffers.insert(b, copy.deepcopy(model.buffers[b]))
    return f"buffer {b} duplicated in place", pack(model)


def mutate_bytes(content: bytes, rng: Rng) -> tuple[str, bytes]:
    data = bytearray(content)
    size = len(data)
    kind = str(rng.choice(["truncate", "flip", "fill", "delete", "duplicate", "header", "data",
                           "data"]))
    if kind == "truncate":
        return kind, bytes(data[: int(rng.integers(0, size))])
    if kind == "flip":
        for position in rng.integers(0, size, int(rng.integers(1, 17))):
            data[position] ^= int(rng.integers(1, 256))
    elif kind == "fill":
        value = int(rng.choice([0x00, 0xFF]))
        for position in rng.integers(0, size, int(rng.integers(1, 17))):
            data[position] = value
    elif kind == "delete":
        start = int(rng.integers(0, size))
        del data[start : start + int(rng.integers(1, 65))]
    elif kind == "duplicate":
        start = int(rng.integers(0, size))
        data[start:start] = data[start : start + int(rng.integers(1, 65))]
    elif kind == "data":  # flips inside the constants' data, where structure checks cannot look
        regions = buffer_data(content) or [(0, size)]
        for position in rng.integers(0, len(regions), int(rng.integers(1, 17))):
            start, end = regions[int(position)]
            data[int(rng.integers(start, end))] ^= int(rng.integers(1, 256))
    else:  # the root table offset (bytes 0-3) and the "TFL3" identifier (bytes 4-7)
        for position in rng.choice(8, int(rng.integers(1, 4)), replace=False):
            data[position] ^= int(rng.integers(1, 256))
    return kind, bytes(data)


def buffer_data(content: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each non-empty buffer's data in the file."""
    root = schema.Model.GetRootAs(content, 0)
    regions = []
    for b in range(root.BuffersLength()):
        table = root.Buffers(b)._tab
        offset = table.Offset(4)  # Buffer.data
        if offset and table.VectorLen(offset):
            start = table.Vector(offset)
            regions.append((start, start + table.VectorLen(offset)))
    return regions


# Mutation class -> (the function, the seeds it applies to).
CLASSES: dict[str, tuple[Callable[[bytes, Rng], tuple[str, bytes]], tuple[str, ...]]] = {
    "shape": (mutate_shape, ("fc", "control", "int8", "sparse")),
    "buffer_index": (mutate_buffer_index, ("fc", "control", "int8", "sparse")),
    "opcode_index": (mutate_opcode_index, ("fc", "control", "int8", "sparse")),
    "subgraph_index": (mutate_subgraph_index, ("control",)),
    "quantization": (mutate_quantization, ("int8", "int8", "fc")),
    "sparsity": (mutate_sparsity, ("sparse", "sparse", "fc", "int8")),
    "table": (mutate_table, ("fc", "control", "int8", "sparse")),
    "bytes": (mutate_bytes, ("fc", "control", "int8", "sparse")),
}


@dataclass(frozen=True)
class Mutant:
    mutation_class: str
    seed: str
    detail: str
    content: bytes

    def file_name(self, index: int) -> str:
        return f"{index:04d}_{self.mutation_class}_{self.seed}.tflite"


def mutants(per_class: int, seed: int, classes: list[str] | None = None) -> Iterator[Mutant]:
    """``per_class`` mutants of each class, seeded; classes take turns."""
    rng = np.random.default_rng(seed)
    seeds = {name: build() for name, build in SEEDS.items()}
    names = classes or list(CLASSES)
    for _ in range(per_class):
        for name in names:
            mutate, applies_to = CLASSES[name]
            seed_name = _pick(rng, list(applies_to))
            detail, content = mutate(seeds[seed_name], rng)
            yield Mutant(name, seed_name, detail, content)


# ---------------------------------------------------------------- outcomes

# What the package says, by where it says it (flatbuffer/, static checks, runtime.py,
# worker/delegates.py, worker/main.py). Order matters: the first match names the category.
CATEGORIES = [
    ("not a TFLite model", r"not a TFLite model"),
    ("corrupt (static)", r"corrupt TFLite model"),
    ("invalid structure (static)", r"has no subgraph|no subgraph \d+|tensor buffer -?\d+ out of range|"
                                   r"but the subgraph has|but the model has"),
    ("is a directory", r"is a directory, not a \.tflite file"),
    ("does not exist", r"model file .* does not exist"),
    ("rejected by the interpreter", r"the interpreter rejected the model \(corrupt or invalid\)"),
    ("failed running", r"the interpreter failed running the model \(corrupt or invalid\)"),
    ("crashed", r"crashed the interpreter \(SIG[A-Z]+\)"),
    ("timed out", r"timed out after [\d.]+ s"),
    ("memory cap", r"exceeded the memory cap"),
    ("dynamic shape", r"has a dynamic shape"),
    # A native error raised by invoke() reaches the parent as the worker's exception; only the
    # interpreter's own error types are expected here (a KeyError would be a bug in the worker).
    ("invoke failed", r"builtin: (RuntimeError|ValueError|MemoryError): \S"),
]
MEASURED = ("ran", "unsupported")


@dataclass(frozen=True)
class Outcome:
    """``kind``: measured, rejected (with a known reason), crash (uncontained: a traceback, an
    exception, an unknown exit or error) or hang (past the bound). ``category``: the reason."""

    kind: str
    category: str
    message: str
    seconds: float
    allocated: bool  # the worker reached allocate_tensors() on this file


class _Hang(Exception):
    pass


@contextmanager
def _bounded(seconds: float) -> Iterator[None]:
    """Raise _Hang in this (main) thread after ``seconds``: a static check that loops forever
    must not stop the fuzz run."""

    def expire(signum: int, frame: Any) -> None:
        raise _Hang()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _allocated(trace: Path, path: Path) -> bool:
    if not trace.exists():
        return False
    return any(line.split(" ", 1) == ["allocate_tensors", str(path)]
               for line in trace.read_text(encoding="utf-8").splitlines())


def measure_outcome(path: Path, bound_s: float, trace: Path) -> Outcome:
    """``tflite-budget measure PATH --delegate builtin --json`` in this process, sorted.

    The caller sets the runtime protocol (short) and the worker timeout (below ``bound_s``);
    ``trace`` is the PYTEST_TFLITE_TRACE file the worker reports allocate_tensors() in.
    """
    from pytest_tflite import cli

    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    saved = os.environ.get("PYTEST_TFLITE_TRACE")
    os.environ["PYTEST_TFLITE_TRACE"] = str(trace)
    try:
        with redirect_stdout(out), redirect_stderr(err), _bounded(bound_s):
            code = cli.main(["measure", str(path), "--delegate", "builtin", "--json"])
    except _Hang:
        return Outcome("hang", "hang", f"no answer within {bound_s:g} s",
                       time.monotonic() - start, _allocated(trace, path))
    except BaseException as exc:  # a traceback the user would see
        return Outcome("crash", type(exc).__name__, f"tflite-budget raised {exc!r}",
                       time.monotonic() - start, _allocated(trace, path))
    finally:
        if saved is None:
            os.environ.pop("PYTEST_TFLITE_TRACE", None)
        else:
            os.environ["PYTEST_TFLITE_TRACE"] = saved
    seconds = time.monotonic() - start
    allocated = _allocated(trace, path)
    stdout, stderr = out.getvalue(), err.getvalue()

    def crash(why: str) -> Outcome:
        return Outcome("crash", why, (stdout + stderr)[-2000:], seconds, allocated)

    if seconds > bound_s:
        return Outcome("hang", "hang", f"took {seconds:.1f} s", seconds, allocated)
    if "Traceback" in stdout + stderr or "INTERNALERROR" in stdout + stderr:
        return crash("traceback")
    if code == 0:
        if stderr:
            return crash("stderr on success")
        found = json.loads(stdout)["delegates"]["builtin"]
        if found["status"] == "ok":
            return Outcome("measured", "ran", "", seconds, allocated)
        if found["status"] == "unsupported" and found["reason"].strip():
            return Outcome("measured", "unsupported", found["reason"], seconds, allocated)
        return crash(f"exit 0 with status {found['status']!r}")
    if code != 2:
        return crash(f"exit {code}")
    if not stderr.startswith("tflite-budget: error: ") or str(path) not in stderr:
        return crash("error without the path")
    for category, pattern in CATEGORIES:
        if re.search(pattern, stderr):
            return Outcome("rejected", category, stderr.strip(), seconds, allocated)
    return crash("error of no known category")
