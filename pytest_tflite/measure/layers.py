"""The quantization error per operator, parent side: the worker's ``layers`` rows (one per
quantized tensor of the candidate compared with the float reference's tensor of the same name)
attributed to the operator of subgraph 0 that produces each tensor, with the error it adds.

An operator's output carries the error of everything before it. What it adds is its own
relative RMSE minus the worst among the activations it reads that were compared (a graph input
included), floored at 0: a badly quantized layer stands out, and the layers after it, which
only pass its error on, do not. Its constant inputs (weights, biases) are not subtracted: their
quantization is part of what the operator adds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..flatbuffer import FlatbufferView
from ..model import TFLiteModel
from ..nodes import LayerError
from .isolated import layer_errors as tensor_errors


def layer_errors(candidate: TFLiteModel, reference_path: str | Path, inputs: list[Any],
                 names: list[str] | None = None, *,
                 timeout: float | None = None) -> list[LayerError]:
    """Per operator of the candidate whose output was compared, its error against the float
    reference at ``reference_path``, the most added first.

    ``inputs``: one array per model input, samples along axis 0; ``names`` their names (see
    ``isolated.run_model``). ``timeout`` in seconds (None: the worker's default).
    """
    rows = tensor_errors(candidate.path, Path(reference_path), inputs, names, timeout=timeout)
    return attributed(rows, candidate.view)


def attributed(rows: list[dict[str, Any]], view: FlatbufferView) -> list[LayerError]:
    """The worker's tensor rows as ``LayerError``s of the operators producing them, sorted by
    ``added``, most first (None last). Rows of tensors no operator produces (graph inputs,
    constants) count as inputs but are not returned."""
    tensors = view.tensors(0)
    index_of: dict[str, int] = {}
    for info in tensors:
        index_of.setdefault(info.name, info.index)
    producer = {t: op for op in view.operators(0) for t in op.outputs if t >= 0}
    by_name = {str(row["tensor"]): row for row in rows}
    found = []
    for row in rows:
        index = index_of.get(str(row["tensor"]))
        op = producer.get(index) if index is not None else None
        if op is None:
            continue
        read = [by_name.get(tensors[t].name) for t in op.inputs
                if t >= 0 and not tensors[t].constant]
        inherited = max((r["relative_rmse"] for r in read
                         if r is not None and r["relative_rmse"] is not None), default=0.0)
        relative = row["relative_rmse"]
        found.append(LayerError(
            tensor=str(row["tensor"]), subgraph=0, index=op.index, op=op.opcode,
            rmse=row["rmse"], max_abs_error=row["max_abs_error"], scale=row["scale"],
            rmse_over_scale=row["rmse_over_scale"], relative_rmse=relative,
            added=None if relative is None else max(0.0, relative - inherited)))
    found.sort(key=lambda e: (e.added is None, -(e.added or 0.0)))
    return found
