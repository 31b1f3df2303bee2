"""The float reference that fidelity and per-layer errors are measured against: a Keras model,
a SavedModel, or a float ``.tflite``, loaded and run on the evaluation data.

Here, not in ``measure``, because a Keras or SavedModel reference runs in this process with
TensorFlow, and measurement never imports TensorFlow; a ``.tflite`` reference runs in the
measurement worker like the candidate (``measure.accuracy.run_tflite``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import EvaluationError, TFLiteError
from ..measure.accuracy import EvalData, run_tflite
from ..model import TFLiteModel
from .frameworks import import_tensorflow, keras_flavour
from .recipes import convert
from .sources import TFLITE_SUFFIXES, classify, keras_input_name, load, output_arrays


def run_reference(reference: Any, data: EvalData, output: str | int | None, *,
                  timeout: float | None = None) -> Any:
    """The float reference's chosen output: a Keras model, a SavedModel, or a float ``.tflite``.

    ``output`` selects the same output as in ``run_candidate``: a Keras or SavedModel reference
    names its outputs as the converter names them in the ``.tflite``'s signature, and counts
    them in the same signature order. ``timeout`` (seconds) applies to a ``.tflite`` reference,
    which runs in the worker.
    """
    import numpy as np

    if _is_tflite(reference):
        model = float_reference_model(reference)
        _refuse_quantized(model)
        prediction, _ = run_tflite(model.path, data, output, "reference", timeout)  # default kernels
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
    if _is_tflite(reference):
        return convert(reference)  # passed through as it is
    return convert(reference, "float32", sanity=False)


def _is_tflite(value: Any) -> bool:
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
