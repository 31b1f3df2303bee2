"""Static measurement: what the file alone tells, without TensorFlow or an interpreter."""

from __future__ import annotations

import gzip
from typing import Any

from ..model import TFLiteModel


def gzip_size(content: bytes) -> int:
    # mtime=0 keeps the figure a pure function of the bytes.
    return len(gzip.compress(content, compresslevel=9, mtime=0))


def measure_static(model: TFLiteModel) -> dict[str, Any]:
    """Size, gzip size, ops, subgraphs and I/O of a model, in the JSON contract's keys."""
    model.view.validate()
    summary = model.view.summary()
    return {
        "size_bytes": model.size_bytes,
        "gzip_bytes": gzip_size(model.content),
        "ops": summary["ops"],
        "subgraphs": summary["subgraphs"],
        "inputs": summary["inputs"],
        "outputs": summary["outputs"],
    }
