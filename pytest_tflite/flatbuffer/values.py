"""A constant tensor's stored bytes decoded into numpy values, in the stored type: int4/uint4
unpacked, bfloat16 widened exactly to float32, the rest read as they lie (little-endian)."""

from __future__ import annotations

from typing import Any

from ..errors import ModelError
from .info import TensorInfo

# Stored types numpy reads directly (little-endian, as TFLite stores them).
NUMPY_TYPES = {
    "float64": "<f8", "float32": "<f4", "float16": "<f2",
    "int64": "<i8", "int32": "<i4", "int16": "<i2", "int8": "i1",
    "uint64": "<u8", "uint32": "<u4", "uint16": "<u2", "uint8": "u1", "bool": "?",
}


def decode_values(info: TensorInfo, data: memoryview, sparse: bool, origin: str) -> Any:
    """``data`` (the tensor's bytes in the file) as a numpy array shaped like the tensor, or 1-D
    for a sparse tensor, whose buffer holds only the stored values."""
    import numpy as np

    elements = 1
    for dimension in info.shape:
        elements *= max(dimension, 0)
    if info.dtype in ("int4", "uint4"):
        raw = np.frombuffer(data, dtype=np.uint8)
        if not sparse and len(raw) == elements:  # unpacked: one value a byte
            nibbles = raw & 0x0F
        else:  # packed: two values a byte, low nibble first (a sparse tensor's always are)
            nibbles = np.stack([raw & 0x0F, raw >> 4], axis=1).reshape(-1)
            nibbles = nibbles if sparse else nibbles[:elements]
        values = (nibbles.astype(np.int8) ^ 8) - 8 if info.dtype == "int4" else nibbles
    elif info.dtype == "bfloat16":
        bits = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
        values = bits.view(np.float32)
    elif info.dtype in NUMPY_TYPES:
        numpy_type = np.dtype(NUMPY_TYPES[info.dtype])
        if len(data) % numpy_type.itemsize:
            raise ModelError(f"{origin}: tensor {info.name!r} holds {len(data)} bytes, "
                             f"not a whole number of {info.dtype} values")
        values = np.frombuffer(data, dtype=numpy_type)
    else:
        raise ModelError(f"{origin}: tensor {info.name!r}: cannot decode {info.dtype}")
    if sparse:
        return values
    if values.size != elements:
        raise ModelError(f"{origin}: corrupt TFLite model: tensor {info.name!r} has "
                         f"shape {list(info.shape)} ({elements} values) but stores "
                         f"{values.size}")
    return values.reshape(info.shape)

