"""Run a model over whole arrays, inside the worker: batched where the model allows.

A batch dimension declared dynamic (-1 in the shape signature) is resized to the batch size and
the model runs once per batch; otherwise it runs one sample at a time. Float data goes into
integer (quantized) inputs through the input's scale and zero point, and integer outputs come
back dequantized, so callers always see float values.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

DEFAULT_BATCH = 256


def quantize(values: Any, detail: dict[str, Any]) -> Any:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if np.issubdtype(dtype, np.integer) and scale and np.issubdtype(values.dtype, np.floating):
        info = np.iinfo(dtype)
        values = np.clip(np.round(values / scale + zero_point), info.min, info.max)
    return values.astype(dtype)


def dequantize(values: Any, detail: dict[str, Any]) -> Any:
    scale, zero_point = detail["quantization"]
    if np.issubdtype(values.dtype, np.integer) and scale:
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)


def match_inputs(details: list[dict[str, Any]], names: list[str]) -> list[int]:
    """Position in the caller's list for each interpreter input: by name where it matches."""
    order = []
    for position, detail in enumerate(details):
        found = [i for i, name in enumerate(names) if name and name in detail["name"]]
        order.append(found[0] if len(found) == 1 else position)
    return order if sorted(order) == list(range(len(details))) else list(range(len(details)))


def select_outputs(details: list[dict[str, Any]], output: str | int | None) -> list[int]:
    """Indices (into ``details``) of the outputs to return: all, or one by name or index."""
    if output is None:
        return list(range(len(details)))
    if isinstance(output, int):
        if not 0 <= output < len(details):
            raise ValueError(f"output={output}: the model has {len(details)} output(s)")
        return [output]
    names = [d["name"] for d in details]
    found = [i for i, name in enumerate(names) if name == output or output in name.split(":")[0]]
    if len(found) != 1:
        raise ValueError(f"output={output!r} matches {len(found)} of the model's outputs {names}")
    return found


def signature_order(interpreter: Any, details: list[dict[str, Any]]) -> list[int]:
    """Outputs in the order the source model declares them.

    The interpreter lists outputs by tensor; a Keras 3 export names them output_0, output_1...
    in the model's order, which is the order users (and Keras's predict) index them by.
    """
    try:
        signatures = interpreter.get_signature_list()
        if len(signatures) != 1:
            return list(range(len(details)))
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        named = runner.get_output_details()
    except Exception:  # no signature, or an API that changed: keep the interpreter's order
        return list(range(len(details)))
    if len(named) != len(details) or not all(re.fullmatch(r"output_\d+", n) for n in named):
        return list(range(len(details)))
    position = {d["index"]: k for k, d in enumerate(details)}
    ordered = sorted(named, key=lambda n: int(n.split("_")[1]))
    found = [position.get(named[n]["index"]) for n in ordered]
    return [k for k in found if k is not None] if None not in found else list(range(len(details)))


def run_arrays(interpreter: Any, arrays: list[Any], names: list[str],
               output: str | int | None = None,
               batch: int = DEFAULT_BATCH) -> tuple[list[Any], bool]:
    """(outputs, batched): the chosen outputs over all samples, and whether batches were used."""
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if len(inputs) != len(arrays):
        raise ValueError(f"the model has {len(inputs)} input(s), {len(arrays)} array(s) were given")
    order = match_inputs(inputs, names)
    ordered = [arrays[position] for position in order]
    samples = len(ordered[0]) if ordered else 1
    for detail, array in zip(inputs, ordered):
        if len(array) != samples:
            raise ValueError("every input array needs the same number of samples")
        expected = [int(d) for d in detail["shape_signature"]][1:]
        given = list(array.shape[1:])
        if len(expected) != len(given) or any(e not in (-1, g) for e, g in zip(expected, given)):
            raise ValueError(f"input {detail['name']!r} takes samples of shape {expected}, "
                             f"the data has {given}")
    outputs = [outputs[k] for k in signature_order(interpreter, outputs)]
    chosen = select_outputs(outputs, output)
    resizable = all(int(d["shape_signature"][0]) == -1 for d in inputs)
    size = min(batch, samples) if resizable else 1
    results: list[list[Any]] = [[] for _ in chosen]
    current = None
    for start in range(0, samples, size):
        chunk = [a[start:start + size] for a in ordered]
        if len(chunk[0]) != current:
            current = len(chunk[0])
            for detail, array in zip(inputs, chunk):
                interpreter.resize_tensor_input(detail["index"], list(array.shape), strict=False)
            interpreter.allocate_tensors()
        for detail, array in zip(inputs, chunk):
            interpreter.set_tensor(detail["index"], quantize(array, detail))
        interpreter.invoke()
        for slot, k in enumerate(chosen):
            results[slot].append(dequantize(interpreter.get_tensor(outputs[k]["index"]), outputs[k]))
    return [np.concatenate(r) for r in results], size > 1
