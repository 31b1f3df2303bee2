"""Per-layer quantization error, inside the worker: which layer lost the accuracy.

Both models run on the same samples with every intermediate tensor kept; each quantized
activation of the candidate, dequantized, is compared with the float reference's tensor of the
same name (converters keep Keras's layer names across recipes). This is the comparison
TensorFlow's quantization debugger makes, but it reads the candidate as it is, so it also
explains a model whose quantization was edited after conversion, and it needs no TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .inference import dequantize, match_inputs, quantize, signature

SAMPLES = 8


def _interpreter(path: str) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # No delegate: XNNPACK would fuse layers and keep their intermediate tensors to itself.
    interpreter = Interpreter(
        model_path=path, experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def layer_errors(candidate_path: str, reference_path: str, arrays: list[Any],
                 names: list[str]) -> list[dict[str, Any]]:
    candidate, reference = _interpreter(candidate_path), _interpreter(reference_path)
    reference_tensors = {d["name"]: d for d in reference.get_tensor_details()}
    compared = [d for d in candidate.get_tensor_details()
                if np.issubdtype(d["dtype"], np.integer) and d["quantization"][0]
                and d["name"] in reference_tensors
                and np.issubdtype(reference_tensors[d["name"]]["dtype"], np.floating)]
    sums: dict[str, dict[str, float]] = {}
    for sample in range(min(SAMPLES, len(arrays[0]))):
        for interpreter in (candidate, reference):
            details = interpreter.get_input_details()
            order = match_inputs(details, names, signature(interpreter))
            for detail, position in zip(details, order):
                value = arrays[position][sample:sample + 1]
                if list(value.shape) != list(detail["shape"]):
                    interpreter.resize_tensor_input(detail["index"], value.shape)
                    interpreter.allocate_tensors()
                interpreter.set_tensor(detail["index"], quantize(value, detail))
            interpreter.invoke()
        for detail in compared:
            try:
                got = dequantize(candidate.get_tensor(detail["index"]), detail).astype(np.float64)
                want = reference.get_tensor(reference_tensors[detail["name"]]["index"])
            except ValueError:
                continue  # constant-folded or freed: nothing to compare
            want = want.astype(np.float64)
            if got.shape != want.shape:
                continue
            entry = sums.setdefault(detail["name"], {"sq": 0.0, "n": 0.0, "max": 0.0,
                                                     "ref_sq": 0.0, "scale": detail["quantization"][0]})
            entry["sq"] += float(np.sum((got - want) ** 2))
            entry["ref_sq"] += float(np.sum(want**2))
            entry["n"] += got.size
            entry["max"] = max(entry["max"], float(np.max(np.abs(got - want))) if got.size else 0.0)
    rows: list[dict[str, Any]] = []
    for name, entry in sums.items():
        if not entry["n"]:
            continue
        rmse = float(np.sqrt(entry["sq"] / entry["n"]))
        rms = float(np.sqrt(entry["ref_sq"] / entry["n"]))
        rows.append({"tensor": name, "rmse": rmse, "max_abs_error": entry["max"],
                     "scale": entry["scale"], "rmse_over_scale": rmse / entry["scale"],
                     "relative_rmse": rmse / rms if rms else None})
    rows.sort(key=lambda r: -(r["relative_rmse"] or 0.0))
    return rows
