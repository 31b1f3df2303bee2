"""Entries with per-node results made up for every operator of a real ``.tflite`` (the node keys
depend on the flatbuffer alone), and what Model Explorer's own adapter makes of that file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite.measure.static import measure_static
from pytest_tflite.model import TFLiteModel
from pytest_tflite.nodes import (
    ErrorChange,
    GraphDiff,
    GraphIds,
    LayerError,
    NodePlacement,
    NodeRef,
    Placed,
    PlacementMove,
)
from pytest_tflite.results import DelegateResult, Entry

REQUIRE = "PYTEST_TFLITE_REQUIRE_EXPLORER"
CYCLE: tuple[Placed, ...] = ("delegate", "fallback", "custom")


def need_explorer() -> None:
    """Skip without the ``explorer`` extra, unless PYTEST_TFLITE_REQUIRE_EXPLORER=1 (.ci/run)."""
    try:
        import ai_edge_model_explorer_adapter  # noqa: F401
        import model_explorer  # noqa: F401
    except ImportError as exc:
        message = f'Model Explorer is not installed ({exc}): pip install "pytest-tflite[explorer]"'
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{message}; {REQUIRE}=1 asks for it", pytrace=False)
        pytest.skip(message)


def node_entry(path: Path, placed: Callable[[int, int], Placed] | None = None,
               model: str = "m", variant: str = "v") -> Entry:
    """An entry of the model at ``path`` whose every operator has a placement under xnnpack
    (``placed(subgraph, index)``, default: delegate, fallback, custom in turn), an added error
    (0.01 per operator counted so far), and a graph diff that moved and changed every one."""
    model_file = TFLiteModel.from_path(path)
    measurement, view = measure_static(model_file), model_file.view
    ids = GraphIds.of(measurement.subgraphs)
    placements, layers, moves, errors = [], [], [], []
    counted = 0
    for subgraph in range(view.subgraph_count):
        tensors = view.tensors(subgraph)
        for op in view.operators(subgraph):
            output = tensors[op.outputs[0]].name if op.outputs else ""
            where = placed(subgraph, op.index) if placed else CYCLE[counted % 3]
            counted += 1
            placements.append(NodePlacement(subgraph, op.index, op.opcode, output, where))
            layers.append(LayerError(output, subgraph, op.index, op.opcode, rmse=0.1,
                                     max_abs_error=0.2, scale=0.05, rmse_over_scale=2.0,
                                     relative_rmse=0.01 * counted, added=0.01 * counted))
            ref = NodeRef(ids[subgraph], str(op.index), op.opcode, output)
            moves.append(PlacementMove("xnnpack", ref, "fallback" if where == "delegate"
                                       else "delegate", where))
            errors.append(ErrorChange(ref, output, 0.005 * counted, 0.01 * counted))
    measurement.delegates = {"xnnpack": DelegateResult("ok", placement=placements)}
    measurement.layers = layers
    return Entry(f"t::{model}[{variant}]", model, variant, "tflite", measurement, [],
                 model_path=str(path), graph_diff=GraphDiff(placement=moves, errors=errors))


def adapter_graphs(path: Path) -> list[dict[str, Any]]:
    """The graphs Model Explorer's server makes of a ``.tflite`` (its built-in flatbuffer
    adapter, the default for the extension): id, subgraph index and nodes, in file order."""
    from model_explorer.builtin_tflite_flatbuffer_adapter import BuiltinTfliteFlatbufferAdapter

    converted = BuiltinTfliteFlatbufferAdapter().convert(str(path), {})
    return [graph for collection in converted["graphCollections"] for graph in collection.graphs]
