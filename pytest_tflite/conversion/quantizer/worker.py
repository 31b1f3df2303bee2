"""``python -m pytest_tflite.conversion.quantizer.worker FUNCTION FLOAT OUT [CALIBRATION.npz]``.

The child side of the LiteRT quantizer recipes: runs ``litert_quantizer.recipe.FUNCTION()`` on
the float ``.tflite`` at FLOAT and writes the quantized model to OUT. Static recipes calibrate
on CALIBRATION.npz (``input_{i}`` arrays with samples along axis 0, ``names`` the inputs' names
or empty strings for model order), one sample at a time through the model's SignatureDef.

A subprocess because the quantizer runs the model in LiteRT's interpreter to calibrate it (a
model that crashes it takes only this process down) and because importing it costs seconds
(ml_dtypes, scipy). Prints one JSON line last, like the measurement worker; standard library,
numpy, ``ai_edge_litert`` and ``litert_quantizer`` only.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ...measure.worker.lifetime import apply_memory_cap, bind_to_parent, out_of_memory


class RecipeRefused(Exception):
    """The recipe cannot apply to this model or these arguments: reported, not a crash."""


def quantize(function: str, float_path: str, out_path: str,
             calibration_path: str | None = None) -> dict[str, Any]:
    from importlib import import_module
    from importlib.metadata import version

    recipe = import_module("litert_quantizer.recipe")  # untyped: no stubs, no py.typed
    make = getattr(recipe, function, None)
    if function.startswith("_") or not callable(make):
        raise RecipeRefused(f"litert_quantizer.recipe has no recipe function {function!r}")
    started = time.perf_counter()
    quantizer = import_module("litert_quantizer").Quantizer(float_path)
    quantizer.load_quantization_recipe(make())
    calibration = None
    if quantizer.need_calibration:
        if calibration_path is None:
            raise RecipeRefused(f"recipe {function!r} quantizes activations statically: it needs "
                                f"representative_data to calibrate their ranges")
        calibration = quantizer.calibrate(_calibration_data(float_path, calibration_path))
    result = quantizer.quantize(calibration, enable_progress_report=False)
    content = result.quantized_model
    if content is None:
        raise RecipeRefused(f"recipe {function!r} produced no model")
    with open(out_path, "wb") as stream:
        stream.write(bytes(content))
    return {"status": "ok", "seconds": time.perf_counter() - started,
            "calibrated": calibration is not None, "litert_quantizer": version("litert-quantizer")}


def _calibration_data(float_path: str, calibration_path: str) -> dict[str, list[dict[str, Any]]]:
    """``{signature_key: [{input_name: one sample}, ...]}``, what ``Quantizer.calibrate`` takes."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=float_path)
    signatures = interpreter.get_signature_list()
    if not signatures:
        raise RecipeRefused("the float model has no SignatureDef, which the quantizer's "
                            "calibration needs (models from TFLiteConverter have one)")
    key = next(iter(signatures))
    runner = interpreter.get_signature_runner(key)
    by_index = {int(detail["index"]): name for name, detail in runner.get_input_details().items()}
    in_model_order = [by_index.get(int(d["index"])) for d in interpreter.get_input_details()]
    with np.load(calibration_path, allow_pickle=False) as data:
        count = int(data["count"])
        arrays = [data[f"input_{i}"] for i in range(count)]
        given = [str(n) for n in data["names"]]
    wanted = list(runner.get_input_details())
    if any(given):
        unknown = [n for n in given if n not in wanted]
        if unknown:
            raise RecipeRefused(f"representative_data names {unknown}; the model's signature "
                                f"{key!r} takes {wanted}")
        names = given
    else:
        if len(arrays) != len(wanted) or None in in_model_order:
            raise RecipeRefused(f"representative_data gives {len(arrays)} array(s); the model's "
                                f"signature {key!r} takes {wanted}")
        names = [str(n) for n in in_model_order]
    details = runner.get_input_details()
    samples = [
        {name: np.asarray(array[i : i + 1], dtype=details[name]["dtype"])
         for name, array in zip(names, arrays)}
        for i in range(len(arrays[0]))
    ]
    return {key: samples}


def main(argv: list[str]) -> int:
    try:
        if len(argv) not in (3, 4):
            raise RecipeRefused(f"usage: quantizer.worker FUNCTION FLOAT OUT [CALIBRATION] "
                                f"(got {argv})")
        outcome: dict[str, Any] = {"ok": True, "result": quantize(*argv)}
    except RecipeRefused as exc:
        outcome = {"ok": True, "result": {"status": "error", "reason": str(exc)}}
    except Exception as exc:
        if out_of_memory(exc):
            outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "memory": True}
        else:
            # The quantizer's own refusals (an op it cannot handle, a broken model) are the
            # model's problem, reported as the recipe's failure, not as a crash.
            outcome = {"ok": True, "result": {"status": "error",
                                              "reason": f"{type(exc).__name__}: {exc}"}}
    print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    # Before the quantizer, numpy and the interpreter load: the limits then cover all of them.
    bind_to_parent()
    apply_memory_cap()
    sys.exit(main(sys.argv[1:]))
