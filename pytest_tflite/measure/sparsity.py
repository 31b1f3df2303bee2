"""Weight sparsity: how many weight values are zero, read from the ``.tflite`` file alone.

The rules below are the contract of ``sparsity`` and ``sparsity_layers``.

Weights
    The weight operand of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, CONV_3D (input 1),
    TRANSPOSE_CONV and CONV_3D_TRANSPOSE (input 1, the filter; input 0 is the output shape), and
    BATCH_MATMUL (whichever operand is constant). The operand is followed back through DEQUANTIZE
    and DENSIFY to the constant the file stores (a float16 or sparse weight is stored once and
    expanded at run time). Each stored constant counts once, however many operators read it.
    Biases, shape operands and activations are not weights; neither are weights whose data is
    not in the file (external buffers) or whose type has no zero to count (strings, float8).

Zeros
    Float weights: values equal to 0.0 (either sign). Quantized weights (int8, uint8, int16,
    int4, ...): stored values equal to the zero point, per tensor or per channel along the
    quantization's ``quantized_dimension``; they are the values that dequantize to exactly 0.

Sparse storage (``Optimize.EXPERIMENTAL_SPARSITY``)
    A tensor with sparsity parameters counts at its dense size (the product of its shape). The
    positions it does not store are zeros; so are stored values equal to the zero point
    (block-sparse formats store whole blocks, zeros included). The stored positions come from
    walking the dimension metadata in traversal order, as TFLite's DENSIFY does.

Layer names
    ``name`` is the layer a weight belongs to, read from its tensor name: of the names TFLite
    joined with ";" the first with at least two "/"-separated segments, less trailing
    ``ReadVariableOp`` segments, gives its second-to-last segment (the scope of the op that reads
    the weight): ``sequential/conv2d_1/Conv2D`` -> ``conv2d_1``,
    ``model/dense/BiasAdd;model/dense/MatMul`` -> ``dense``. A name with no "/" is kept whole.
    Budgets match layers with ``results.layer_matches``, against the whole tensor name.

N:M patterns
    "N:M" means at most N nonzero values in every M consecutive values along the weight's
    input-channel axis (2:4: at least two zeros in every four): the last axis of CONV_2D,
    FULLY_CONNECTED, TRANSPOSE_CONV ([out, h, w, in]) and CONV_3D_TRANSPOSE weights; axis 3 of
    CONV_3D ([d, h, w, in, out]); the contracted axis of a BATCH_MATMUL operand. A channel count
    that is not a multiple of M ends in a short group, padded with zeros. DEPTHWISE_CONV_2D
    weights have no input-channel axis to group along (each output channel reads one input
    channel), so the pattern check skips them and says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError
from ..flatbuffer import FlatbufferView, TensorInfo
from ..results import PatternLayer, SparsityPattern

# Operator -> the inputs that may hold its weights.
WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "CONV_2D": (1,),
    "DEPTHWISE_CONV_2D": (1,),
    "FULLY_CONNECTED": (1,),
    "CONV_3D": (1,),
    "TRANSPOSE_CONV": (1,),
    "CONV_3D_TRANSPOSE": (1,),
    "BATCH_MATMUL": (0, 1),
}
# Operators that only expand a stored weight: the weight is their input.
EXPANDING_OPS = frozenset({"DEQUANTIZE", "DENSIFY"})
# Stored types whose zeros are counted.
COUNTED_TYPES = frozenset({
    "float64", "float32", "float16", "bfloat16",
    "int64", "int32", "int16", "int8", "int4", "uint64", "uint32", "uint16", "uint8", "uint4",
})
# The input-channel axis of each operator's weight, for N:M patterns (None: no such axis).
INPUT_AXIS: dict[str, int | None] = {
    "CONV_2D": -1,
    "FULLY_CONNECTED": -1,
    "TRANSPOSE_CONV": -1,
    "CONV_3D_TRANSPOSE": -1,
    "CONV_3D": -2,
    "DEPTHWISE_CONV_2D": None,
}

_READ_VARIABLE = re.compile(r"ReadVariableOp(_?\d+)?$")


@dataclass(frozen=True)
class Weight:
    """A stored weight constant and the first operator that reads it as weights."""

    subgraph: int
    tensor: TensorInfo
    opcode: str
    input_axis: int | None  # the axis N:M groups run along; None: no input-channel axis

    @property
    def layer(self) -> str:
        return layer_name(self.tensor.name)


@dataclass(frozen=True)
class LayerSparsity:
    """Zeros of one weight tensor, counted at its dense size."""

    name: str
    tensor: str
    dtype: str
    elements: int
    zeros: int
    format: str  # "dense" or "sparse"

    @property
    def sparsity(self) -> float:
        return self.zeros / self.elements if self.elements else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tensor": self.tensor, "dtype": self.dtype,
                "elements": self.elements, "zeros": self.zeros, "sparsity": self.sparsity,
                "format": self.format}


def layer_name(tensor_name: str) -> str:
    """The layer a weight tensor belongs to (the rule is in the module's docstring)."""
    for name in tensor_name.split(";"):
        segments = name.split("/")
        while len(segments) > 2 and _READ_VARIABLE.fullmatch(segments[-1]):
            segments.pop()
        if len(segments) >= 2 and segments[-2]:
            return segments[-2]
    return tensor_name


def weight_tensors(view: FlatbufferView) -> list[Weight]:
    """The stored weight constants of every subgraph, each once, in operator order."""
    weights: dict[tuple[int, int], Weight] = {}
    for subgraph in range(view.subgraph_count):
        tensors = view.tensors(subgraph)
        operators = view.operators(subgraph)
        writers = {out: op for op in operators for out in op.outputs if out >= 0}
        for operator in operators:
            for position in WEIGHT_INPUTS.get(operator.opcode, ()):
                if position >= len(operator.inputs) or operator.inputs[position] < 0:
                    continue
                index = _stored(operator.inputs[position], tensors, writers)
                if index is None or (subgraph, index) in weights:
                    continue
                tensor = tensors[index]
                if tensor.dtype not in COUNTED_TYPES or view.tensor_data(subgraph, index) is None:
                    continue
                axis = INPUT_AXIS.get(operator.opcode)
                if operator.opcode == "BATCH_MATMUL":
                    axis = _contracted_axis(view.operator_options(subgraph, operator.index),
                                            rhs=position == 1)
                weights[(subgraph, index)] = Weight(subgraph, tensor, operator.opcode, axis)
    return list(weights.values())


def _stored(index: int, tensors: list[TensorInfo], writers: Mapping[int, Any]) -> int | None:
    """The constant tensor an operand comes from, through expanding ops; None for an activation."""
    seen = set()
    while not tensors[index].constant:
        writer = writers.get(index)
        if writer is None or writer.opcode not in EXPANDING_OPS or not writer.inputs:
            return None
        if index in seen or writer.inputs[0] < 0:
            return None
        seen.add(index)
        index = writer.inputs[0]
    return None if tensors[index].variable else index


def _contracted_axis(options: Mapping[str, Any], *, rhs: bool) -> int:
    # lhs [..., M, K] contracts its last axis, rhs [..., K, N] its second to last; adjoint
    # operands are transposed.
    if rhs:
        return -1 if options.get("adj_y") else -2
    return -2 if options.get("adj_x") else -1


def zero_mask(view: FlatbufferView, subgraph: int, tensor: int) -> Any:
    """A boolean array of the tensor's dense shape: True where the weight is zero."""
    import numpy as np

    info = view.tensors(subgraph)[tensor]
    values = view.tensor_values(subgraph, tensor)
    sparsity = view.tensor_sparsity(subgraph, tensor)
    shape = tuple(max(d, 0) for d in info.shape)
    if sparsity is None:
        return _is_zero(view, subgraph, tensor, values, channels=None)
    positions = _stored_positions(view, info, sparsity, shape)
    count = len(positions[0]) if positions else 1
    if info.dtype in ("int4", "uint4") and len(values) == count + 1:
        values = values[:count]  # the padding nibble of an odd count
    if len(values) != count:
        raise ModelError(f"{view.origin}: corrupt TFLite model: sparse tensor {info.name!r} "
                         f"stores {len(values)} values, its sparsity metadata names {count}")
    quantization = view.tensor_quantization(subgraph, tensor)
    dimension = quantization.quantized_dimension if quantization else 0
    channels = positions[dimension] if positions and dimension < len(positions) else None
    mask = np.ones(shape, dtype=bool)
    mask[positions] = _is_zero(view, subgraph, tensor, values, channels=channels)
    return mask


def _is_zero(view: FlatbufferView, subgraph: int, tensor: int, values: Any,
             channels: Any) -> Any:
    """Which values are zero: 0.0, or the zero point of their channel. ``channels``: the channel
    of each value of a 1-D ``values`` (None: ``values`` has the tensor's dense shape)."""

    info = view.tensors(subgraph)[tensor]
    quantization = view.tensor_quantization(subgraph, tensor)
    if info.dtype.startswith(("float", "bfloat")) or quantization is None:
        return values == 0
    if len(quantization.zero_points) == 1:
        return values == quantization.zero_points[0]
    zero_points, dimension = _channel_zero_points(view, subgraph, tensor)
    if channels is not None:
        return values == zero_points[channels]
    broadcast = [1] * len(info.shape)
    broadcast[dimension] = -1
    return values == zero_points.reshape(broadcast)


def _channel_zero_points(view: FlatbufferView, subgraph: int, tensor: int) -> tuple[Any, int]:
    """A per-channel quantized tensor's zero points (int64) and the dimension they run along,
    checked against its shape."""
    import numpy as np

    info = view.tensors(subgraph)[tensor]
    quantization = view.tensor_quantization(subgraph, tensor)
    assert quantization is not None
    zero_points = np.asarray(quantization.zero_points, dtype=np.int64)
    dimension = quantization.quantized_dimension
    rank = len(info.shape)
    if not 0 <= dimension < rank or info.shape[dimension] != len(zero_points):
        raise ModelError(
            f"{view.origin}: corrupt TFLite model: tensor {info.name!r} has "
            f"{len(zero_points)} zero points along dimension {dimension} of shape "
            f"{list(info.shape)}")
    return zero_points, dimension


def _stored_positions(view: FlatbufferView, info: TensorInfo, sparsity: Any,
                      shape: tuple[int, ...]) -> tuple[Any, ...]:
    """The dense coordinates (one index array per dimension) of each stored value, in storage
    order: TFLite's ``FormatConverter`` walk, vectorized level by level."""
    import numpy as np

    rank = len(shape)
    order = sparsity.traversal_order
    levels = sparsity.dimensions
    block_map = sparsity.block_map

    def corrupt(why: str) -> ModelError:
        return ModelError(f"{view.origin}: corrupt TFLite model: sparse tensor {info.name!r}: "
                          f"{why}")

    if len(levels) != len(order) or sorted(order) != list(range(len(order))) \
            or len(order) != rank + len(block_map) \
            or any(not 0 <= d < rank for d in block_map):
        raise corrupt(f"traversal order {list(order)}, block map {list(block_map)} and "
                      f"{len(levels)} dimension entries do not describe a rank-{rank} tensor")
    parents = np.zeros(1, dtype=np.int64)  # each node's position in its level's storage
    coordinates: list[Any] = []  # per level, each node's index along that level's dimension
    for level in levels:
        if level.format == "dense":
            size = level.dense_size
            steps = np.arange(size, dtype=np.int64)
            coordinates = [np.repeat(c, size) for c in coordinates]
            coordinates.append(np.tile(steps, len(parents)))
            parents = (parents[:, None] * size + steps).reshape(-1)
        else:
            segments = np.asarray(level.segments, dtype=np.int64)
            indices = np.asarray(level.indices, dtype=np.int64)
            if len(parents) and (len(segments) < int(parents.max()) + 2):
                raise corrupt(f"{len(segments)} segments for {int(parents.max()) + 1} rows")
            starts, ends = segments[parents], segments[parents + 1]
            counts = ends - starts
            if (counts < 0).any() or (len(counts) and int(ends.max()) > len(indices)):
                raise corrupt("segments point outside the indices")
            total = int(counts.sum())
            owner = np.repeat(np.arange(len(parents)), counts)
            children = np.repeat(starts, counts) + (
                np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
            coordinates = [c[owner] for c in coordinates]
            coordinates.append(indices[children])
            parents = children
    if rank == 0:
        return ()
    dense: list[Any] = [None] * rank
    for level, dimension in enumerate(order[:rank]):
        dense[dimension] = coordinates[level]
    for level in range(rank, len(order)):
        block = order[level] - rank
        dimension = block_map[block]
        dense[dimension] = dense[dimension] * levels[level].dense_size + coordinates[level]
    for dimension, index in enumerate(dense):
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= shape[dimension]):
            raise corrupt(f"a stored value lies outside shape {list(shape)}")
    return tuple(dense)


# Values a dense weight's zeros are counted over at a time: a whole-tensor mask would cost a
# byte a value (as much again as an int8 model's file) in the parent.
ZERO_COUNT_CHUNK = 1 << 22


def zero_count(view: FlatbufferView, subgraph: int, tensor: int) -> tuple[int, int]:
    """``(zeros, elements)`` of a weight at its dense size: ``zero_mask``'s sum and size, counted
    chunk by chunk for a dense tensor so memory stays flat however large the weight."""
    import numpy as np

    if view.tensor_sparsity(subgraph, tensor) is not None:
        mask = zero_mask(view, subgraph, tensor)
        return int(mask.sum()), int(mask.size)
    info = view.tensors(subgraph)[tensor]
    values = view.tensor_values(subgraph, tensor)
    quantization = view.tensor_quantization(subgraph, tensor)
    if info.dtype.startswith(("float", "bfloat")) or quantization is None \
            or len(quantization.zero_points) == 1:
        zero = 0 if quantization is None or info.dtype.startswith(("float", "bfloat")) \
            else quantization.zero_points[0]
        flat = values.reshape(-1)
        zeros = sum(int(np.count_nonzero(flat[start:start + ZERO_COUNT_CHUNK] == zero))
                    for start in range(0, flat.size, ZERO_COUNT_CHUNK))
        return zeros, int(flat.size)
    zero_points, dimension = _channel_zero_points(view, subgraph, tensor)
    # Channel by channel blocks: the quantized dimension first (a view, no copy).
    channels = np.moveaxis(values, dimension, 0)
    step = max(1, ZERO_COUNT_CHUNK // max(1, values.size // max(1, channels.shape[0])))
    trailing = (1,) * (channels.ndim - 1)
    zeros = 0
    for start in range(0, channels.shape[0], step):
        block = channels[start:start + step]
        zeros += int(np.count_nonzero(
            block == zero_points[start:start + step].reshape(-1, *trailing)))
    return zeros, int(values.size)


def layer_sparsity(view: FlatbufferView) -> list[LayerSparsity]:
    """Zeros and elements of every weight tensor of the model."""
    layers = []
    for weight in weight_tensors(view):
        zeros, elements = zero_count(view, weight.subgraph, weight.tensor.index)
        sparse = view.tensor_sparsity(weight.subgraph, weight.tensor.index) is not None
        layers.append(LayerSparsity(
            name=weight.layer, tensor=weight.tensor.name, dtype=weight.tensor.dtype,
            elements=elements, zeros=zeros,
            format="sparse" if sparse else "dense",
        ))
    return layers


def measure_sparsity(view: FlatbufferView) -> dict[str, Any]:
    """``sparsity`` (zeros over elements of all weights; 0.0 without weights) and
    ``sparsity_layers``, in the JSON contract's keys."""
    layers = layer_sparsity(view)
    return {"sparsity": overall_sparsity(layers),
            "sparsity_layers": [layer.as_dict() for layer in layers]}


def overall_sparsity(layers: Iterable[LayerSparsity]) -> float:
    zeros = elements = 0
    for layer in layers:
        zeros += layer.zeros
        elements += layer.elements
    return zeros / elements if elements else 0.0


def pattern_violations(zeros: Any, n: int, m: int, axis: int = -1) -> tuple[int, int]:
    """``(violating groups, groups)``: groups of ``m`` consecutive values along ``axis`` of a
    zero mask (``zero_mask``) that hold more than ``n`` nonzero values. A last, short group is
    padded with zeros."""
    import numpy as np

    if not 0 < n < m:
        raise ValueError(f"pattern {n}:{m} must have 0 < N < M")
    nonzero = ~np.asarray(zeros, dtype=bool)
    if nonzero.ndim == 0 or nonzero.size == 0:
        return 0, 0
    nonzero = np.moveaxis(nonzero, axis, -1)
    padding = (-nonzero.shape[-1]) % m
    if padding:
        pad = np.zeros((*nonzero.shape[:-1], padding), dtype=bool)
        nonzero = np.concatenate([nonzero, pad], axis=-1)
    counts = nonzero.reshape(-1, m).sum(axis=1)
    return int((counts > n).sum()), int(counts.size)


def check_pattern(view: FlatbufferView, n: int, m: int) -> SparsityPattern:
    """The N:M pattern over every weight: totals, each checked layer's groups, the names of the
    layers that break it, and the layers skipped with the reason (JSON builtins only)."""
    layers: list[PatternLayer] = []
    skipped: list[PatternLayer] = []
    for weight in weight_tensors(view):
        entry: PatternLayer = {"name": weight.layer, "tensor": weight.tensor.name}
        rank = len(weight.tensor.shape)
        axis = weight.input_axis
        if axis is None or rank == 0 or not -rank <= axis < rank:
            reason = (f"{weight.opcode} weights have no input-channel axis" if axis is None
                      else f"{weight.opcode} weight of shape {list(weight.tensor.shape)}")
            skipped.append({**entry, "reason": reason})
            continue
        mask = zero_mask(view, weight.subgraph, weight.tensor.index)
        violating, groups = pattern_violations(mask, n, m, axis=axis)
        layers.append({**entry, "axis": axis % rank, "groups": groups,
                       "violating_groups": violating})
    return {
        "pattern": f"{n}:{m}",
        "groups": sum(layer.get("groups", 0) for layer in layers),
        "violating_groups": sum(layer.get("violating_groups", 0) for layer in layers),
        "violating_layers": [layer.get("name", "") for layer in layers
                             if layer.get("violating_groups")],
        "layers": layers,
        "skipped": skipped,
    }
