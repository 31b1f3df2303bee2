"""The planned arena: how many bytes of activations a model needs, planned the way TFLite Micro's
``GreedyMemoryPlanner`` plans its arena, from the flatbuffer alone.

The figure is static: the same file gives the same number on every machine and under every
delegate, which is what makes it a budget a CI gate can hold exactly. The rules below are the
contract of ``planned_arena_bytes``; changing one changes the figure every budget was written for.

Planned tensors
    The subgraph's non-constant tensors: those whose buffer holds no data (buffer index 0, or a
    buffer with empty data and no external size) and that have no external buffer. Constant
    tensors (weights, biases, shape operands) live in the model, not in the arena.

Size
    The product of the flatbuffer's ``shape`` field (where the converter writes 1 for a dynamic
    dimension; an absent shape is a scalar; a negative dimension counts as 1) times the element
    size: float64/int64/uint64/complex64 8, complex128 16, float32/int32/uint32 4,
    float16/bfloat16/int16/uint16 2, int8/uint8/bool/float8 1, and int4/uint4/int2 1 (TFLite Micro
    unpacks them to a byte per element). ``string``, ``resource``, ``variant`` and unknown types
    have no fixed size and are skipped. The size is rounded up to a multiple of 16 bytes
    (``kBufferAlignment``); zero-size tensors are skipped.

Lifetime (inclusive operator indices, in the subgraph's operator order)
    First use: the index of the first operator that writes the tensor; 0 for subgraph inputs,
    variable tensors, and tensors that are read but never written (they must exist before the
    subgraph runs). Last use: the index of the last operator that reads it, and at least the last
    operator's index for subgraph outputs and variable tensors (state lives through the whole
    subgraph); a tensor written and never read lives ``[writer, writer]``. A tensor no operator
    touches is skipped unless it is a subgraph input or output, or a variable. Optional inputs
    (index -1) and operator intermediates are not planned.

Greedy by size
    Tensors are sorted by size, largest first (ties: lower first use, then lower tensor index).
    Each is placed at the lowest offset where it overlaps in memory no already placed tensor whose
    lifetime overlaps its own. The subgraph's planned arena is ``max(offset + size)``, 0 when
    nothing is planned.

The model's total
    Subgraph 0 plus every subgraph reachable from it through the subgraph indices in WHILE (cond,
    body), IF (then, else) and CALL_ONCE (init) options, each counted once. Other subgraphs
    (signatures that are not called, unused functions) are planned and reported but not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..flatbuffer import FlatbufferView, TensorInfo

ALIGNMENT = 16  # TFLite Micro's kBufferAlignment

ELEMENT_BYTES: dict[str, int] = {
    "float64": 8, "int64": 8, "uint64": 8, "complex64": 8, "complex128": 16,
    "float32": 4, "int32": 4, "uint32": 4,
    "float16": 2, "bfloat16": 2, "int16": 2, "uint16": 2,
    "int8": 1, "uint8": 1, "bool": 1, "float8_e4m3fn": 1, "float8_e5m2": 1,
    "int4": 1, "uint4": 1, "int2": 1,
}


@dataclass(frozen=True)
class Placement:
    """Where one tensor sits in a subgraph's arena, and when it is alive."""

    tensor: int
    name: str
    size: int
    first_use: int
    last_use: int
    offset: int


@dataclass(frozen=True)
class SubgraphPlan:
    index: int
    bytes: int
    placements: tuple[Placement, ...]


@dataclass(frozen=True)
class ArenaPlan:
    """``bytes``: the model's total over ``counted`` (subgraph 0 and those it calls);
    ``subgraphs``: the plan of every subgraph, counted or not, by index."""

    bytes: int
    subgraphs: tuple[SubgraphPlan, ...]
    counted: tuple[int, ...]


def aligned(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


def tensor_bytes(tensor: TensorInfo) -> int:
    """The arena bytes of one tensor, aligned; 0 for types without a fixed element size."""
    elements = 1
    for dimension in tensor.shape:
        elements *= dimension if dimension >= 0 else 1
    return aligned(elements * ELEMENT_BYTES.get(tensor.dtype, 0))


def greedy_offsets(buffers: Sequence[tuple[int, int, int]]) -> list[int]:
    """Offsets for ``(size, first_use, last_use)`` buffers, in the order given.

    Largest first (ties: earlier first use, then earlier in ``buffers``), each at the lowest
    offset clear of every placed buffer alive at the same time. Only the buffers alive at the
    same time are looked at, through numpy, so thousands of tensors plan in well under a second.
    """
    import numpy as np

    count = len(buffers)
    order = sorted(range(count), key=lambda i: (-buffers[i][0], buffers[i][1], i))
    starts = np.empty(count, dtype=np.int64)  # placed so far, in placement order
    ends = np.empty(count, dtype=np.int64)
    firsts = np.empty(count, dtype=np.int64)
    lasts = np.empty(count, dtype=np.int64)
    offsets = [0] * count
    for placed, i in enumerate(order):
        size, first, last = buffers[i]
        live = (firsts[:placed] <= last) & (lasts[:placed] >= first)
        offset = 0
        if live.any():
            live_starts = starts[:placed][live]
            by_start = np.argsort(live_starts, kind="stable")
            live_starts = live_starts[by_start]
            reach = np.maximum.accumulate(ends[:placed][live][by_start])
            # The lowest candidate before each live buffer is the furthest end of those below it.
            candidates = np.concatenate(([0], reach[:-1]))
            fits = np.flatnonzero(live_starts - candidates >= size)
            offset = int(candidates[fits[0]]) if fits.size else int(reach[-1])
        offsets[i] = offset
        starts[placed], ends[placed] = offset, offset + size
        firsts[placed], lasts[placed] = first, last
    return offsets


def lifetimes(view: FlatbufferView, index: int) -> dict[int, tuple[int, int]]:
    """``{tensor: (first_use, last_use)}`` of the planned tensors of one subgraph (any size)."""
    tensors = view.tensors(index)
    operators = view.operators(index)
    final = max(len(operators) - 1, 0)
    writer: dict[int, int] = {}
    reader: dict[int, int] = {}
    for operator in operators:
        for t in operator.outputs:
            if t >= 0:
                writer.setdefault(t, operator.index)
        for t in operator.inputs:
            if t >= 0:
                reader[t] = operator.index
    inputs = set(view.subgraph_inputs(index))
    outputs = set(view.subgraph_outputs(index))
    variables = {t.index for t in tensors if t.variable}
    result = {}
    for t in sorted(writer.keys() | reader.keys() | inputs | outputs | variables):
        if t < 0 or tensors[t].constant:
            continue
        first = 0 if t in inputs or t in variables else writer.get(t, 0)
        last = max(reader.get(t, first), first)
        if t in outputs or t in variables:
            last = max(last, final)
        result[t] = (first, last)
    return result


def plan_subgraph(view: FlatbufferView, index: int) -> SubgraphPlan:
    """The greedy plan of one subgraph's arena."""
    tensors = view.tensors(index)
    planned = [(t, tensor_bytes(tensors[t]), life) for t, life in lifetimes(view, index).items()]
    planned = [entry for entry in planned if entry[1] > 0]
    offsets = greedy_offsets([(size, first, last) for _, size, (first, last) in planned])
    placements = tuple(
        Placement(tensor=t, name=tensors[t].name, size=size, first_use=first, last_use=last,
                  offset=offset)
        for (t, size, (first, last)), offset in zip(planned, offsets)
    )
    total = max((p.offset + p.size for p in placements), default=0)
    return SubgraphPlan(index=index, bytes=total, placements=placements)


def called_subgraphs(view: FlatbufferView) -> tuple[int, ...]:
    """Subgraph 0 and every subgraph reachable from it through WHILE, IF and CALL_ONCE."""
    if view.subgraph_count == 0:
        return ()
    seen = {0}
    pending = [0]
    while pending:
        for operator in view.operators(pending.pop()):
            for target in operator.called_subgraphs:
                if target not in seen:
                    seen.add(target)
                    pending.append(target)
    return tuple(sorted(seen))


def planned_arena(view: FlatbufferView) -> ArenaPlan:
    """Plans of every subgraph and the model's total over subgraph 0 and those it calls."""
    plans = tuple(plan_subgraph(view, s) for s in range(view.subgraph_count))
    counted = called_subgraphs(view)
    return ArenaPlan(bytes=sum(plans[s].bytes for s in counted), subgraphs=plans, counted=counted)
