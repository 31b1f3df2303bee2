"""Subprocess entry for running a model: imports only ai_edge_litert and numpy.

``python -m pytest_tflite.measure.worker run MODEL INPUTS.npz OUTPUTS.npz`` feeds float inputs
(quantized on the way in where the model's inputs are integer) one sample at a time and writes
the outputs, dequantized to float. It prints one JSON line: ``{"ok": true}`` or the error.
Running in a subprocess means a model that crashes the interpreter takes only this process down.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _quantize(values: Any, detail: dict[str, Any]) -> Any:
    import numpy as np

    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        values = np.clip(np.round(values / scale + zero_point), info.min, info.max)
    return values.astype(dtype)


def _dequantize(values: Any, detail: dict[str, Any]) -> Any:
    import numpy as np

    scale, zero_point = detail["quantization"]
    if np.issubdtype(values.dtype, np.integer) and scale:
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)


def _match_inputs(details: list[dict[str, Any]], names: list[str]) -> list[int]:
    """Position in the caller's list for each interpreter input: by name where it matches."""
    order = []
    for position, detail in enumerate(details):
        found = [i for i, name in enumerate(names) if name and name in detail["name"]]
        order.append(found[0] if len(found) == 1 else position)
    return order if sorted(order) == list(range(len(details))) else list(range(len(details)))


def run(model_path: str, inputs_path: str, outputs_path: str) -> None:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    with np.load(inputs_path, allow_pickle=False) as data:
        count = int(data["count"])
        arrays = [data[f"input_{i}"] for i in range(count)]
        names = [str(n) for n in data["names"]] if "names" in data else [""] * count
    interpreter = Interpreter(model_path=model_path)
    interpreter.allocate_tensors()
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if len(inputs) != count:
        raise ValueError(f"the model has {len(inputs)} inputs, {count} were given")
    order = _match_inputs(inputs, names)
    samples = len(arrays[0]) if arrays else 1
    results: list[list[Any]] = [[] for _ in outputs]
    for n in range(samples):
        for detail, position in zip(inputs, order):
            sample = arrays[position][n : n + 1]
            if list(sample.shape) != list(detail["shape"]):
                interpreter.resize_tensor_input(detail["index"], sample.shape)
                interpreter.allocate_tensors()
            interpreter.set_tensor(detail["index"], _quantize(sample, detail))
        interpreter.invoke()
        for k, detail in enumerate(outputs):
            results[k].append(_dequantize(interpreter.get_tensor(detail["index"]), detail))
    outputs_by_name: dict[str, Any] = {f"output_{k}": np.concatenate(r) for k, r in enumerate(results)}
    np.savez(outputs_path, **outputs_by_name)


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["run"] and len(argv) == 4:
            run(*argv[1:])
        else:
            raise ValueError(f"usage: worker run MODEL INPUTS OUTPUTS (got {argv})")
    except Exception as exc:
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps({"ok": True}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
