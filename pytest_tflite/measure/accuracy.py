"""Accuracy and fidelity: a candidate model evaluated on data, next to its float reference.

The candidate always runs in the measurement worker (a crashing model fails only its test);
a Keras or SavedModel reference runs here, where TensorFlow already lives. The metrics that
score both are in ``metrics``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EvaluationError, OutputOrderWarning, TFLiteError
from ..results import DelegateStatus
from .isolated import run_model


@dataclass
class EvalData:
    inputs: list[Any]  # one array per model input, samples along axis 0
    names: list[str]  # input names when the data came as a dict, else ""
    labels: Any | None

    @property
    def samples(self) -> int:
        return len(self.inputs[0])


def eval_data(data: Any) -> EvalData:
    """Accepts ``(x, y)``, ``x`` alone (fidelity needs no labels) or an iterable of such batches.

    ``x``: an array for a one-input model, a list of arrays in input order, or a dict by name.
    """
    import numpy as np

    if data is None:
        raise EvaluationError("eval_data is required: pass eval_data=(x, y)")
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
    elif isinstance(data, (np.ndarray, Mapping)) or (
            isinstance(data, list) and data and isinstance(data[0], np.ndarray)):
        x, y = data, None
    elif isinstance(data, Iterable):
        x, y = _concatenate_batches(data)
    else:
        raise EvaluationError(f"eval_data: expected (x, y), x, or an iterable of batches; "
                              f"got {type(data).__name__}")
    if isinstance(x, Mapping):
        names, arrays = [str(k) for k in x], [np.asarray(v) for v in x.values()]
    elif isinstance(x, (list, tuple)):
        if len(x) > 1:
            # A .tflite and its Keras source may order their inputs differently, so a position
            # would feed the candidate and the reference different inputs: pair by name.
            raise EvaluationError(
                f"eval_data gives {len(x)} inputs as a list: pass a dict {{input_name: array}} "
                f"instead, since the .tflite and its source may order their inputs differently")
        names, arrays = [""], [np.asarray(v) for v in x]
    else:
        names, arrays = [""], [np.asarray(x)]
    if not arrays or any(a.ndim == 0 or len(a) == 0 for a in arrays):
        raise EvaluationError("eval_data is empty: it needs at least one sample along axis 0")
    if len({len(a) for a in arrays}) != 1:
        raise EvaluationError(f"eval_data inputs have different sample counts "
                              f"{[len(a) for a in arrays]}")
    for array in arrays:
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise EvaluationError(f"eval_data inputs must be numeric arrays, got dtype {array.dtype}")
    labels = None if y is None else np.asarray(y)
    if labels is not None and len(labels) != len(arrays[0]):
        raise EvaluationError(f"eval_data has {len(arrays[0])} inputs but {len(labels)} labels")
    return EvalData(arrays, names, labels)


def _concatenate_batches(batches: Iterable[Any]) -> tuple[Any, Any]:
    import numpy as np

    xs, ys = [], []
    for batch in batches:
        if isinstance(batch, tuple) and len(batch) == 2:
            xs.append(batch[0])
            ys.append(batch[1])
        else:
            xs.append(batch)
    if not xs:
        raise EvaluationError("eval_data is empty: the iterable yielded no batches")

    def join(parts: list[Any]) -> Any:
        first = parts[0]
        if isinstance(first, Mapping):
            return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in first}
        if isinstance(first, (list, tuple)):
            return [np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(len(first))]
        return np.concatenate([np.asarray(p) for p in parts])

    return join(xs), (join(ys) if ys else None)


# ---------------------------------------------------------------- running models


def run_candidate(path: Path, data: EvalData, output: str | int | None, *,
                  timeout: float | None = None) -> tuple[Any, bool]:
    """The candidate's chosen output over the data, in the worker; and whether it batched.

    ``output``: the signature's output key, or an index into the signature order (names sorted
    naturally: ``output_0``, ``output_1``...; see worker/inference.py), which is the order
    ``run_reference`` counts in too. A model without a SignatureDef counts its tensors
    instead, with an OutputOrderWarning. ``timeout`` in seconds (None: the worker's default).
    """
    prediction, found = _run_tflite(path, data, output, "candidate", timeout)
    return prediction, found.batched


@dataclass
class DelegateRun:
    """The candidate under one named delegate (``accuracy.delegates``, ``fidelity.delegates``,
    ``fidelity.cross``): its chosen output, or why there is none."""

    delegate: str
    status: DelegateStatus  # ok, unavailable (the machine lacks it), unsupported (it refused)
    reason: str = ""
    prediction: Any = None
    batched: bool = False
    delegated_nodes: int | None = None  # the nodes the delegate took, as the run reported them
    total_nodes: int | None = None


def run_candidate_under(path: Path, data: EvalData, output: str | int | None, delegate: str, *,
                        timeout: float | None = None) -> DelegateRun:
    """The candidate's chosen output under ``delegate`` alone, in the worker: no fallback, so a
    delegate the machine lacks or that refuses the model is that run's status."""
    from .isolated import DelegateRefused

    try:
        prediction, found = _run_tflite(path, data, output, "candidate", timeout, delegate)
    except DelegateRefused as exc:
        status: DelegateStatus = "unavailable" if exc.status == "unavailable" else "unsupported"
        return DelegateRun(delegate, status, exc.reason)
    return DelegateRun(delegate, "ok", "", prediction, found.batched, found.delegated_nodes,
                       found.total_nodes)


def _run_tflite(path: Path, data: EvalData, output: str | int | None, role: str,
                timeout: float | None, delegate: str | None = None) -> tuple[Any, Any]:
    """The chosen output and the run's ``isolated.Outputs``."""
    import numpy as np

    from .isolated import DelegateRefused, RunRefused

    _check_shapes(path, data)
    try:
        found = run_model(path, data.inputs, data.names, output=output, timeout=timeout,
                          delegate=delegate)
    except DelegateRefused:
        raise
    except RunRefused as exc:
        where = "eval_data" if exc.what == "inputs" else f"the {role} {path}"
        raise EvaluationError(f"{where}: {exc.reason}") from None
    except TFLiteError as exc:
        raise EvaluationError(f"evaluating the {role}: {exc}") from None
    if len(found.arrays) != 1:
        raise EvaluationError(f"the model has {len(found.arrays)} outputs: pick one with "
                              f"output=NAME (one of {found.available}) or output=INDEX")
    if not found.signature and len(found.available) > 1 and isinstance(output, int):
        warnings.warn(OutputOrderWarning(
            f"{path}: the model has no SignatureDef, so output={output} counts its "
            f"{len(found.available)} output tensors in file order {found.available}; "
            f"name the output (output=NAME) to be sure which one is measured"), stacklevel=3)
    prediction = found.arrays[0]
    if not np.all(np.isfinite(prediction)):
        bad = int(np.count_nonzero(~np.isfinite(prediction)))
        raise EvaluationError(f"{path}: the {role} outputs NaN or Inf for {bad} of "
                              f"{prediction.size} values: its metrics would be meaningless")
    return prediction, found


def _check_shapes(path: Path, data: EvalData) -> None:
    from ..flatbuffer import FlatbufferView

    inputs = FlatbufferView(Path(path).read_bytes(), origin=str(path)).io_details("inputs")
    if len(inputs) != len(data.inputs):
        raise EvaluationError(f"eval_data gives {len(data.inputs)} input array(s), the model "
                              f"{path} takes {len(inputs)}")
    if any(data.names):
        return  # matched by name in the worker, which checks the shapes then
    for detail, array in zip(inputs, data.inputs):
        expected = detail["shape_signature"][1:]
        given = list(array.shape[1:])
        if len(expected) != len(given) or any(e not in (-1, g) for e, g in zip(expected, given)):
            raise EvaluationError(
                f"eval_data: input {detail['name']!r} takes samples of shape {expected}, the "
                f"data has {given}")


def run_reference(reference: Any, data: EvalData, output: str | int | None, *,
                  timeout: float | None = None) -> Any:
    """The float reference's chosen output: a Keras model, a SavedModel, or a float ``.tflite``.

    ``output`` selects the same output as in ``run_candidate``: a Keras or SavedModel reference
    names its outputs as the converter names them in the ``.tflite``'s signature, and counts
    them in the same signature order. ``timeout`` (seconds) applies to a ``.tflite`` reference,
    which runs in the worker.
    """
    import numpy as np

    from ..conversion.frameworks import import_tensorflow, keras_flavour
    from ..conversion.sources import classify, keras_input_name, load, output_arrays

    if _is_tflite(reference):
        model = float_reference_model(reference)
        _refuse_quantized(model)
        prediction, _ = _run_tflite(model.path, data, output, "reference", timeout)  # default kernels
        return prediction
    if keras_flavour(reference) is not None:
        names = [keras_input_name(t, i) for i, t in enumerate(reference.inputs)]
        arrays = _in_input_order(data, names)
        predicted = reference.predict(arrays if len(arrays) > 1 else arrays[0],
                                      batch_size=256, verbose=0)
        try:
            outputs = output_arrays(reference, predicted)
        except TFLiteError as exc:
            raise EvaluationError(f"reference: {exc}") from None
    else:

        try:
            loaded = load(classify(reference), import_tensorflow())
        except TFLiteError as exc:
            raise EvaluationError(f"reference: {exc}") from None
        outputs = loaded.reference(_in_input_order(data, [n for n, _, _ in loaded.inputs]))
    return np.asarray(_select(outputs, output), dtype=np.float32)


def _in_input_order(data: EvalData, names: list[str]) -> list[Any]:
    """The data's arrays in the reference's input order: by name for a dict, else as given."""
    if len(data.inputs) != len(names):
        raise EvaluationError(f"eval_data gives {len(data.inputs)} input array(s), the reference "
                              f"takes {len(names)} {names}")
    if not any(data.names):
        return list(data.inputs)
    order = []
    for name in names:
        found = [i for i, given in enumerate(data.names) if name in (given, _short_name(given))]
        if len(found) != 1:
            raise EvaluationError(
                f"eval_data: the inputs are given by the names {data.names}, which do not match "
                f"the model's input names {names}: use those as the keys")
        order.append(found[0])
    return [data.inputs[i] for i in order]


def _short_name(name: str) -> str:
    """A converted model's input tensor name to its signature name: serving_default_x:0 -> x."""
    base = re.sub(r":\d+$", "", name)
    return base[len("serving_default_"):] if base.startswith("serving_default_") else base


def _select(outputs: dict[str, Any], output: str | int | None) -> Any:
    names = list(outputs)
    if output is None:
        if len(names) > 1:
            raise EvaluationError(f"the reference has {len(names)} outputs: pick one with "
                                  f"output=NAME (one of {names}) or output=INDEX")
        return outputs[names[0]]
    if isinstance(output, int) and not isinstance(output, bool):
        if not 0 <= output < len(names):
            raise EvaluationError(f"output={output}: the reference has {len(names)} output(s) "
                                  f"{names}")
        return outputs[names[output]]
    if output not in outputs:
        raise EvaluationError(f"output={output!r} is not one of the reference's outputs {names}")
    return outputs[output]


def float_reference_model(reference: Any) -> Any:
    """The reference as a float ``.tflite`` (converted here when it is a Keras or SavedModel)."""
    from ..conversion.recipes import convert

    if _is_tflite(reference):
        return convert(reference)  # passed through as it is
    return convert(reference, "float32", sanity=False)


def _is_tflite(value: Any) -> bool:
    from ..conversion.sources import TFLITE_SUFFIXES
    from ..model import TFLiteModel

    return isinstance(value, (TFLiteModel, bytes)) or (
        isinstance(value, (str, Path)) and Path(value).suffix.lower() in TFLITE_SUFFIXES)


def _refuse_quantized(model: Any) -> None:
    quantized = [t for t in model.view.io_details("inputs") + model.view.io_details("outputs")
                 if t["dtype"] in ("int8", "uint8", "int16")]
    if quantized or "QUANTIZE" in model.view.ops:
        raise EvaluationError(
            f"reference {model.path} is itself quantized: the drop would be measured against "
            f"another approximation. Pass the float model (Keras, SavedModel or a float32 .tflite)"
        )
