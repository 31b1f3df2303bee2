"""Representative data: the user's arrays, normalised and checked against the model's inputs.

Formats: one array (a one-input model), a list of arrays (one per input, in input order), a dict
``{input_name: array}``, or TF's own generator factory. Samples lie along axis 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ConversionError
from .sources import Loaded


def normalize(data: Any) -> list[Any] | dict[str, Any] | None:
    """Normalise to one float array per input (list in model order, or dict by name)."""
    import numpy as np

    if data is None:
        return None
    if callable(data):  # TF's own format: a generator of per-sample lists or dicts
        data = _collect_generator(data)
    if isinstance(data, Mapping):
        return {str(k): np.asarray(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [np.asarray(v) for v in data]
    return [np.asarray(data)]


def _collect_generator(factory: Callable[[], Iterable[Any]]) -> list[Any] | dict[str, Any]:
    import numpy as np

    batches = list(factory())
    if not batches:
        raise ConversionError("representative_data yielded no samples")
    if isinstance(batches[0], Mapping):
        return {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}
    return [np.concatenate([np.asarray(b[i]) for b in batches]) for i in range(len(batches[0]))]


def in_input_order(samples: list[Any] | dict[str, Any], loaded: Loaded) -> list[Any]:
    """Check representative data against the model's inputs; return arrays in input order."""
    import numpy as np

    names = [name for name, _, _ in loaded.inputs]
    if isinstance(samples, dict):
        missing = [n for n in names if n not in samples]
        if missing:
            raise ConversionError(
                f"representative_data has keys {sorted(samples)}, the model's inputs are {names}"
            )
        arrays = [samples[n] for n in names]
    else:
        arrays = list(samples)
    if len(arrays) != len(loaded.inputs):
        raise ConversionError(
            f"representative_data gives {len(arrays)} array(s), the model has {len(names)} "
            f"input(s) {names}: pass one array per input (a list in input order, or a dict)"
        )
    ordered = []
    counts = {len(a) if a.ndim else 0 for a in arrays}
    if len(counts) != 1 or 0 in counts:
        raise ConversionError(
            f"representative_data arrays need the same, non-zero number of samples along axis 0 "
            f"(got {sorted(counts)})"
        )
    for array, (name, shape, dtype) in zip(arrays, loaded.inputs):
        expected = "(N, " + ", ".join("?" if d is None else str(d) for d in shape[1:]) + ")"
        if array.ndim != len(shape) or any(
            want is not None and want != got for want, got in zip(shape[1:], array.shape[1:])
        ):
            raise ConversionError(
                f"representative_data for input {name!r} has shape {array.shape}, the model "
                f"expects {expected}: samples along axis 0, then the input's own shape"
            )
        if dtype.startswith("float") and not np.issubdtype(array.dtype, np.floating):
            raise ConversionError(
                f"representative_data for input {name!r} has dtype {array.dtype}, the model "
                f"expects {dtype}: preprocess it as the model's callers do and cast to {dtype}"
            )
        ordered.append(array.astype(dtype) if dtype.startswith("float") else array)
    return ordered
