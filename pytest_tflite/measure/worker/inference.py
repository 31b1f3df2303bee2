"""Run a model over whole arrays, inside the worker: batched where the model allows.

A batch dimension declared dynamic (-1 in the shape signature) is resized to the batch size and
the model runs once per batch; otherwise it runs one sample at a time. Float data goes into
integer (quantized) inputs through the input's scale and zero point, and integer outputs come
back dequantized, so callers always see float values.

Inputs and outputs are named by the model's SignatureDef (its only one, or ``serving_default``):
a converter may list the output tensors in any order and several outputs may share a shape, so
the signature's names are the only pairing that holds. Outputs come in *signature order*: their
names sorted naturally (``output_2`` before ``output_10``), which is Keras 3's ``output_N``
order and the sorted keys of a SavedModel signature. A model without a SignatureDef falls back
to its tensors' names and order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...signature_order import signature_order

DEFAULT_BATCH = 256
DEFAULT_SIGNATURE = "serving_default"


class SelectionError(ValueError):
    """The caller's input names or ``output=`` do not fit the model: its input, not a crash.

    ``what``: "inputs" (names or shapes of the data) or "output" (the ``output=`` choice).
    """

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what


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


@dataclass(frozen=True)
class Signature:
    """The SignatureDef a model is run by: its key, and its names to tensor indices."""

    key: str
    inputs: dict[str, int]
    outputs: dict[str, int]  # in signature order


def signature(interpreter: Any) -> Signature | None:
    """The model's SignatureDef: its only one, else ``serving_default``; None without one.

    Only a signature of the main subgraph counts (the interpreter runs that one).
    """
    try:
        signatures = interpreter.get_signature_list()
        if len(signatures) == 1:
            key = str(next(iter(signatures)))
        elif DEFAULT_SIGNATURE in signatures:
            key = DEFAULT_SIGNATURE
        else:
            return None
        runner = interpreter.get_signature_runner(key)
        inputs = {str(n): int(d["index"]) for n, d in runner.get_input_details().items()}
        outputs = {str(n): int(d["index"]) for n, d in runner.get_output_details().items()}
    except (AttributeError, ValueError, RuntimeError, KeyError):
        return None
    main_inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    main_outputs = {int(d["index"]) for d in interpreter.get_output_details()}
    if (set(inputs.values()) != main_inputs or set(outputs.values()) != main_outputs
            or len(outputs) != len(main_outputs)):
        return None
    return Signature(key, inputs, {n: outputs[n] for n in signature_order(outputs)})


def _short(tensor_name: str, key: str) -> str:
    """``serving_default_x:0`` -> ``x``: the input name inside a converter's tensor name."""
    base = re.sub(r":\d+$", "", tensor_name)
    return base[len(key) + 1:] if base.startswith(key + "_") else base


def input_names(details: list[dict[str, Any]], found: Signature | None) -> list[str]:
    """The model's input names, one per interpreter input: the signature's, else the tensors'."""
    by_index = {index: name for name, index in (found.inputs if found else {}).items()}
    return [by_index.get(int(d["index"]), str(d["name"])) for d in details]


def match_inputs(details: list[dict[str, Any]], names: list[str],
                 found: Signature | None = None) -> list[int]:
    """Position in the caller's list for each interpreter input.

    Without names (a list of arrays) the caller's order is the model's. With names (a dict),
    each must name exactly one input: its signature name, its tensor name, or the short form
    of the tensor name (``serving_default_x:0`` -> ``x``); anything else is a SelectionError.
    """
    if not any(names):
        return list(range(len(details)))
    key = found.key if found else DEFAULT_SIGNATURE
    model_names = input_names(details, found)
    order: list[int] = []
    for detail, model_name in zip(details, model_names):
        tensor = str(detail["name"])
        aliases = {model_name, tensor, re.sub(r":\d+$", "", tensor), _short(tensor, key)}
        matches = [i for i, name in enumerate(names) if name in aliases]
        if len(matches) != 1:
            break
        order.append(matches[0])
    if len(order) != len(details) or sorted(order) != list(range(len(names))):
        raise SelectionError(
            "inputs", f"the inputs are given by the names {list(names)}, which do not match the "
                      f"model's input names {model_names}: use those as the keys")
    return order


def output_names(details: list[dict[str, Any]], found: Signature | None) -> list[str]:
    """Names of ``details`` (the interpreter's outputs), as the caller sees them."""
    if found is None:
        return [str(d["name"]) for d in details]
    by_index = {index: name for name, index in found.outputs.items()}
    return [by_index[int(d["index"])] for d in details]


def select_outputs(details: list[dict[str, Any]], output: str | int | None,
                   found: Signature | None = None) -> list[int]:
    """Indices (into ``details``) of the outputs to return, in signature order.

    All outputs, or one by name (a signature output name; without a signature, a tensor name)
    or by index (into the signature order; without a signature, the tensor order).
    """
    names = output_names(details, found)
    position = {name: k for k, name in enumerate(names)}
    ordered = [position[n] for n in (list(found.outputs) if found else names)]
    shown = [names[k] for k in ordered]
    if output is None:
        return ordered
    if isinstance(output, int) and not isinstance(output, bool):
        if not 0 <= output < len(ordered):
            raise SelectionError("output", f"output={output}: the model has {len(ordered)} "
                                           f"output(s) {shown}")
        return [ordered[output]]
    if output in position:
        return [position[output]]
    if found is None:  # a tensor name without its ":0"
        stems = [k for k, name in enumerate(names) if name.split(":")[0] == output]
        if len(stems) == 1:
            return stems
    raise SelectionError("output", f"output={output!r} is not one of the model's outputs {shown}")


@dataclass(frozen=True)
class Run:
    arrays: list[Any]  # one float array per chosen output, samples along axis 0
    names: list[str]  # the chosen outputs' names (signature names, else tensor names)
    available: list[str]  # every output's name, in signature (else tensor) order
    signature: bool  # False: the model has no usable SignatureDef, names are tensor names
    batched: bool


def run_named(interpreter: Any, arrays: list[Any], names: list[str],
              output: str | int | None = None, batch: int = DEFAULT_BATCH) -> Run:
    """The chosen outputs over all samples, with their names, in signature order."""
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    found = signature(interpreter)
    if len(inputs) != len(arrays):
        raise SelectionError("inputs", f"the model has {len(inputs)} input(s) "
                                       f"{input_names(inputs, found)}, {len(arrays)} array(s) "
                                       f"were given")
    order = match_inputs(inputs, names, found)
    ordered = [arrays[position] for position in order]
    samples = len(ordered[0]) if ordered else 1
    for detail, array, name in zip(inputs, ordered, input_names(inputs, found)):
        if len(array) != samples:
            raise SelectionError("inputs", "every input array needs the same number of samples")
        expected = [int(d) for d in detail["shape_signature"]][1:]
        given = list(array.shape[1:])
        if len(expected) != len(given) or any(e not in (-1, g) for e, g in zip(expected, given)):
            raise SelectionError("inputs", f"input {name!r} takes samples of shape {expected}, "
                                           f"the data has {given}")
    chosen = select_outputs(outputs, output, found)
    all_names = output_names(outputs, found)
    every = select_outputs(outputs, None, found)
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
    return Run([np.concatenate(r) for r in results], [all_names[k] for k in chosen],
               [all_names[k] for k in every], found is not None, size > 1)


def run_arrays(interpreter: Any, arrays: list[Any], names: list[str],
               output: str | int | None = None,
               batch: int = DEFAULT_BATCH) -> tuple[list[Any], bool]:
    """(outputs, batched): the chosen outputs over all samples, and whether batches were used."""
    found = run_named(interpreter, arrays, names, output, batch)
    return found.arrays, found.batched
