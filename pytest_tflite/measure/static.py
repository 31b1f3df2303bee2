"""Static measurement: what the file alone tells, without TensorFlow or an interpreter."""

from __future__ import annotations

import zlib
from typing import cast

from ..model import TFLiteModel
from ..results import LayerSparsity, Measurement, Subgraph, TensorSpec
from .planner import planned_arena
from .sparsity import measure_sparsity
from .state import planned_state

GZIP_CHUNK = 1 << 20


def gzip_size(content: bytes | memoryview) -> int:
    """The length of ``gzip.compress(content, compresslevel=9, mtime=0)`` (mtime 0 keeps it a
    pure function of the bytes), counted over a stream: the compressed copy of a 200 MB model
    of random weights is nearly as large as the model, and the parent must not hold both."""
    stream = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    view = memoryview(content)
    size = 0
    for start in range(0, len(view), GZIP_CHUNK):
        size += len(stream.compress(view[start:start + GZIP_CHUNK]))
    return size + len(stream.flush())


def measure_static(model: TFLiteModel) -> Measurement:
    """Size, gzip size, ops, subgraphs, planned arena and state, I/O and weight sparsity of a
    model, in the JSON contract's keys. ``planned_arena_bytes`` is the model's total (subgraph 0
    and the subgraphs it calls); each subgraph also carries its own plan, counted in the total or
    not. ``planned_state_bytes`` is the resource variables, which live beside the arena."""
    model.view.validate()
    summary = model.view.summary()
    arena = planned_arena(model.view)
    subgraphs = [
        cast(Subgraph, {**entry, "planned_arena_bytes": arena.subgraphs[entry["index"]].bytes})
        for entry in summary["subgraphs"]
    ]
    sparsity = measure_sparsity(model.view)
    return Measurement(
        size_bytes=model.size_bytes,
        gzip_bytes=gzip_size(model.content),
        ops=summary["ops"],
        subgraphs=subgraphs,
        planned_arena_bytes=arena.bytes,
        inputs=cast(list[TensorSpec], summary["inputs"]),
        outputs=cast(list[TensorSpec], summary["outputs"]),
        sparsity=sparsity["sparsity"],
        sparsity_layers=cast(list[LayerSparsity], sparsity["sparsity_layers"]),
        planned_state_bytes=planned_state(model.view),
    )
