"""Accuracy and fidelity: the evaluation data, and the candidate model run on it.

The candidate always runs in the measurement worker (a crashing model fails only its test).
Its float reference is loaded and run by ``conversion.reference`` (a Keras or SavedModel
reference needs TensorFlow, which measurement never imports). The metrics that score both are
in ``metrics``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EvaluationError, LiteRTMissingError, OutputOrderWarning, TFLiteError
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
    naturally: ``output_0``, ``output_1``...; see ``signature_order``), which is the order
    ``conversion.reference.run_reference`` counts in too. A model without a SignatureDef counts its tensors
    instead, with an OutputOrderWarning. ``timeout`` in seconds (None: the worker's default).
    """
    prediction, found = run_tflite(path, data, output, "candidate", timeout)
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
        prediction, found = run_tflite(path, data, output, "candidate", timeout, delegate)
    except DelegateRefused as exc:
        status: DelegateStatus = "unavailable" if exc.status == "unavailable" else "unsupported"
        return DelegateRun(delegate, status, exc.reason)
    return DelegateRun(delegate, "ok", "", prediction, found.batched, found.delegated_nodes,
                       found.total_nodes)


def run_tflite(path: Path, data: EvalData, output: str | int | None, role: str,
               timeout: float | None, delegate: str | None = None) -> tuple[Any, Any]:
    """The chosen output and the run's ``isolated.Outputs``, checked: one output, all finite.
    ``role`` names the model in messages (``candidate``, ``reference``)."""
    import numpy as np

    from .isolated import DelegateRefused, RunRefused

    _check_shapes(path, data)
    try:
        found = run_model(path, data.inputs, data.names, output=output, timeout=timeout,
                          delegate=delegate)
    except (DelegateRefused, LiteRTMissingError):  # LiteRT missing: the environment, as it is
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
