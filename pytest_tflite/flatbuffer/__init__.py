"""The read-only view of a ``.tflite`` flatbuffer (ops, tensors, buffers, options), through
``ai_edge_litert.schema_py_generated``: no TensorFlow, no interpreter.

``view`` (``FlatbufferView``, lazily read and validated), ``graph`` (one subgraph's tensors and
operators, range-checked), ``values`` (a constant's bytes as numpy values), ``info`` (the
records it returns), ``schema`` (names from LiteRT's schema). Which tensors live in the file is
the ground floor's ``stored_tensors``, shared with the worker.
"""

from .info import DimensionInfo, OperatorInfo, QuantizationInfo, SparsityInfo, TensorInfo
from .schema import dtype_name, operator_name, snake_case
from .view import MAX_TENSOR_ELEMENTS, TFLITE_IDENTIFIER, FlatbufferView

__all__ = [
    "MAX_TENSOR_ELEMENTS",
    "TFLITE_IDENTIFIER",
    "DimensionInfo",
    "FlatbufferView",
    "OperatorInfo",
    "QuantizationInfo",
    "SparsityInfo",
    "TensorInfo",
    "dtype_name",
    "operator_name",
    "snake_case",
]
