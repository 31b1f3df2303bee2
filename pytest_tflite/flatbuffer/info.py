"""What the flatbuffer view returns: plain frozen records of a tensor, an operator, its
quantization and its sparse storage, as the ``.tflite`` declares them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a subgraph, as the flatbuffer declares it.

    ``constant`` is true when the tensor's data lives in the model (a buffer with bytes, or an
    external buffer), false for tensors the runtime must allocate (activations, inputs, state).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    constant: bool
    variable: bool


@dataclass(frozen=True)
class OperatorInfo:
    """One operator of a subgraph: its opcode name, tensor indices (-1: an omitted optional
    input) and the subgraphs its options call (WHILE cond/body, IF then/else, CALL_ONCE init)."""

    index: int
    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    called_subgraphs: tuple[int, ...]


@dataclass(frozen=True)
class QuantizationInfo:
    """A tensor's affine quantization: ``real = scale * (stored - zero_point)``.

    One scale and zero point per tensor, or one per channel along ``quantized_dimension``.
    """

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int


@dataclass(frozen=True)
class DimensionInfo:
    """One level of a sparse tensor's storage, in traversal order: ``dense`` (all ``dense_size``
    positions stored) or ``sparse_csr`` (``segments``/``indices`` name the stored positions)."""

    format: str
    dense_size: int
    segments: tuple[int, ...]
    indices: tuple[int, ...]


@dataclass(frozen=True)
class SparsityInfo:
    """The sparse storage of a constant (TFLite's ``SparsityParameters``): the tensor's ``shape``
    stays the dense shape; its buffer holds only the stored values, in traversal order."""

    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    dimensions: tuple[DimensionInfo, ...]
