"""LiteRT quantizer recipes: ``recipe="litert_quantizer:NAME"`` or a short ``lq_*`` name.

Any zero-argument function of ``litert_quantizer.recipe`` quantizes a float ``.tflite`` (the
source itself, or what the ``float32`` recipe made of a Keras or SavedModel source). The
quantizer runs in a worker subprocess (``quantizer.worker``) under the same process-group,
memory-cap and parent-death rules as the measurement worker; the result is then checked against
the float model in the measurement worker. No TensorFlow anywhere on this path.
"""

from __future__ import annotations

import ast
import importlib.util
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...errors import ConversionError, SanityError

PREFIX = "litert_quantizer:"
# Short names, in the recipe table of docs/converting.md, for the real functions of litert_quantizer.recipe.
SHORT_NAMES: dict[str, str] = {
    "lq_wi8": "weight_only_wi8_afp32",
    "lq_wi4": "weight_only_wi4_afp32",
    "lq_dynamic_wi8": "dynamic_wi8_afp32",
    "lq_dynamic_wi4": "dynamic_wi4_afp32",
    "lq_dynamic_wi4_b32": "dynamic_wi4b32_afp32",
    "lq_static_a8w8": "static_wi8_ai8",
    "lq_static_a16w8": "static_wi8_ai16",
}
WORKER_MODULE = "pytest_tflite.conversion.quantizer.worker"
INSTALL = "pip install 'pytest-tflite[quantizer]'"
SANITY_SAMPLES = 8


def is_quantizer_recipe(recipe: str | None) -> bool:
    return recipe is not None and (recipe.startswith(PREFIX) or recipe in SHORT_NAMES)


def recipe_function(recipe: str) -> str:
    """The ``litert_quantizer.recipe`` function that ``recipe`` names; unknown names fail, with
    the available ones."""
    function = SHORT_NAMES.get(recipe) or recipe.removeprefix(PREFIX)
    available = available_recipes()
    if function not in available:
        short = ", ".join(f"{k} ({v})" for k, v in SHORT_NAMES.items())
        raise ConversionError(
            f"recipe {recipe!r}: litert_quantizer.recipe has no zero-argument recipe function "
            f"{function!r}. Available: {', '.join(PREFIX + name for name in available)}; "
            f"short names: {short}")
    return function


@lru_cache(maxsize=1)
def available_recipes() -> tuple[str, ...]:
    """The public zero-argument functions of ``litert_quantizer.recipe``, read from its source.

    Read, not imported: importing the quantizer costs seconds (ml_dtypes, scipy, the
    interpreter), which only the worker should pay.
    """
    spec = importlib.util.find_spec("litert_quantizer")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = next((Path(p, "recipe.py") for p in locations if Path(p, "recipe.py").is_file()), None)
    if path is None:
        raise ConversionError(f"the LiteRT quantizer recipes need litert-quantizer: {INSTALL}")
    names = []
    # ``def name(...)`` and ``name = lambda **kwargs: ...`` (how it spells the blockwise ones).
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.FunctionDef):
            name, arguments = node.name, node.args
        elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda)
              and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            name, arguments = node.targets[0].id, node.value.args
        else:
            continue
        positional = [*arguments.posonlyargs, *arguments.args]
        if (not name.startswith("_") and len(arguments.defaults) == len(positional)
                and None not in arguments.kw_defaults):
            names.append(name)
    return tuple(names)


def needs_calibration(function: str) -> bool:
    """Static recipes quantize activations and calibrate their ranges (the worker checks too,
    with the quantizer's own ``need_calibration``)."""
    return function.startswith("static_")


def quantize(float_content: bytes, function: str, samples: list[Any] | dict[str, Any] | None,
             origin: str, timeout: float) -> tuple[bytes, dict[str, Any]]:
    """The quantized model's bytes and the worker's note (seconds, quantizer version)."""
    from ...measure.isolated import WorkerFailed, call_worker

    with tempfile.TemporaryDirectory(prefix="pytest-tflite-") as scratch:
        float_path, out_path = Path(scratch, "float.tflite"), Path(scratch, "quantized.tflite")
        float_path.write_bytes(float_content)
        arguments = [function, str(float_path), str(out_path)]
        if samples is not None:
            arguments.append(str(save_arrays(Path(scratch, "calibration.npz"), samples)))
        try:
            result = call_worker(arguments, timeout, module=WORKER_MODULE)
        except WorkerFailed as exc:
            raise ConversionError(f"{origin}: the LiteRT quantizer (recipe {function!r}) "
                                  f"failed: {exc.reason}") from None
        if result.get("status") != "ok":
            raise ConversionError(f"{origin}: the LiteRT quantizer refused recipe {function!r}: "
                                  f"{result.get('reason')}")
        return out_path.read_bytes(), result


def save_arrays(path: Path, samples: list[Any] | dict[str, Any]) -> Path:
    """Arrays for a worker: ``input_{i}``, with ``names`` (empty strings: model order)."""
    import numpy as np

    names = list(samples) if isinstance(samples, dict) else [""] * len(samples)
    arrays = list(samples.values()) if isinstance(samples, dict) else list(samples)
    content: dict[str, Any] = {f"input_{i}": np.asarray(a) for i, a in enumerate(arrays)}
    np.savez(path, count=len(arrays), names=np.array(names), **content)
    return path


def check_against_float(float_content: bytes, quantized: bytes,
                        samples: list[Any] | dict[str, Any] | None, recipe: str,
                        thresholds: dict[str, float], origin: str,
                        timeout: float | None) -> dict[str, Any]:
    """The sanity check: the quantized model against the float model it was made from, both
    run in the measurement worker on the first representative samples (else seeded random
    data), outputs paired by signature name."""
    from ...measure.isolated import RunRefused, run_model
    from ...model import TFLiteModel
    from ..sanity import compare

    inputs, names = _sanity_inputs(TFLiteModel(float_content, Path(origin), "float32",
                                               "float32", origin), samples)
    with tempfile.TemporaryDirectory(prefix="pytest-tflite-") as scratch:
        float_path, quantized_path = Path(scratch, "float.tflite"), Path(scratch, "q.tflite")
        float_path.write_bytes(float_content)
        quantized_path.write_bytes(quantized)
        try:
            reference = run_model(float_path, inputs, names, timeout=timeout)
            candidate = run_model(quantized_path, inputs, names, timeout=timeout)
        except RunRefused as exc:
            raise SanityError(f"{origin}: the quantized model cannot be run on the sanity "
                              f"inputs: {exc.reason}") from None
    result = compare(reference.by_name(),
                     candidate.by_name() if candidate.signature else candidate.arrays,
                     recipe, thresholds=thresholds, origin=origin)
    return result.to_json()


def _sanity_inputs(float_model: Any, samples: list[Any] | dict[str, Any] | None
                   ) -> tuple[list[Any], list[str] | None]:
    import numpy as np

    if isinstance(samples, dict):
        return [np.asarray(a)[:SANITY_SAMPLES] for a in samples.values()], list(samples)
    if samples is not None:
        return [np.asarray(a)[:SANITY_SAMPLES] for a in samples], None
    rng = np.random.default_rng(0)
    arrays = []
    for detail in float_model.view.io_details("inputs"):
        shape = (SANITY_SAMPLES, *[d if d > 0 else 1 for d in detail["shape_signature"][1:]])
        if str(detail["dtype"]).startswith("float"):
            arrays.append(rng.standard_normal(shape).astype(detail["dtype"]))
        else:
            arrays.append(rng.integers(0, 2, shape).astype(detail["dtype"]))
    return arrays, None
