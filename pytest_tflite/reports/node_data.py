"""Model Explorer node data: per-node overlays of an entry, and a folder to view them from.

An overlay file is Model Explorer's node-data document (``model_explorer/node_data_builder.py``
in ``ai-edge-model-explorer``)::

    {graphId: {"name": ..., "results": {nodeId: {"value": number, "bgColor": css}},
               "thresholds": [{"value": number, "bgColor": css}, ...]   # or "gradient"
    }}

keyed as ``nodes`` names nodes: the graph id the viewer shows (``nodes.graph_ids``) and the
operator's index in its subgraph as the node id. Model Explorer types ``value`` as a number, so
a placement is a code (``PLACED_CODES``) and every node also carries its colour: the viewer
colours it the same whatever range the thresholds would give.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import path_part, write_atomic
from ..nodes import (
    ErrorChange,
    GraphIds,
    LayerError,
    NodePlacement,
    Placed,
    PlacementMove,
)
from ..results import Entry

# A placement as the number Model Explorer wants, and its colour (the Dark2 palette's first
# three: told apart by people with the common colour-vision deficiencies).
PLACED_CODES: dict[Placed, int] = {"delegate": 0, "fallback": 1, "custom": 2}
PLACED_COLOURS: dict[Placed, str] = {"delegate": "#1b9e77", "fallback": "#d95f02",
                                     "custom": "#7570b3"}
PLACED_LEGEND = "0 taken by the delegate, 1 CPU kernel (fallback), 2 custom op left out"
# The error a node adds: no error is white, the most in this model red.
ERROR_GRADIENT = [{"stop": 0, "bgColor": "#ffffff"}, {"stop": 1, "bgColor": "#d73027"}]
ERROR_GREW, ERROR_FELL = "#d73027", "#1a9850"
MODEL_FILE = "model.tflite"


@dataclass
class Overlays:
    """Node-data documents by file name, and, by the file name it would have had, why an
    overlay was not written."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what a written overlay leaves out


def overlays(entry: Entry) -> Overlays:
    """The overlays of one entry: ``error.json`` (the quantization error each operator adds),
    ``placement.<delegate>.json`` per delegate with a placement, and against the baseline
    (``entry.graph_diff``, which a run compared with one always has): ``error-diff.json`` and
    ``placement-diff.<delegate>.json``."""
    found = Overlays()
    graphs = GraphIds.of(entry.measurement.subgraphs)
    _error(entry, graphs, found)
    for delegate, result in entry.measurement.delegates.items():
        name = f"placement.{path_part(delegate)}.json"
        if result.placement is None:
            found.skipped[name] = (result.placement_note or result.reason
                                   or f"no placement recorded under {delegate}")
            continue
        found.files[name] = _placement(result.placement, graphs, delegate)
    _diff(entry, found)
    return found


def _results(nodes: Iterable[tuple[str, str, float, str | None]]) -> dict[str, dict[str, Any]]:
    """(graph, node, value, colour) -> {graph: {"results": {node: {"value", "bgColor"}}}}."""
    documents: dict[str, dict[str, Any]] = {}
    for graph, node, value, colour in nodes:
        result: dict[str, Any] = {"value": value}
        if colour is not None:
            result["bgColor"] = colour
        documents.setdefault(graph, {"results": {}})["results"][node] = result
    return documents


def _error(entry: Entry, graphs: GraphIds, found: Overlays) -> None:
    layers: list[LayerError] | None = entry.measurement.layers
    if layers is None:
        found.skipped["error.json"] = (entry.measurement.layers_note or
                                       "the quantization error per operator was not measured "
                                       "(it needs evaluation data and a float reference)")
        return
    measured = [layer for layer in layers if layer.added is not None and math.isfinite(layer.added)]
    if not measured:
        found.skipped["error.json"] = "no operator's added error could be measured"
        return
    document = _results((graphs[layer.subgraph], str(layer.index), float(layer.added or 0),
                         None) for layer in measured)
    for graph in document.values():
        graph.update(name="quantization error the operator adds (relative RMSE)",
                     gradient=ERROR_GRADIENT)
    found.files["error.json"] = document


def _placement(placements: Sequence[NodePlacement], graphs: GraphIds,
               delegate: str) -> dict[str, Any]:
    document = _results((graphs[node.subgraph], str(node.index),
                         PLACED_CODES[node.placed], PLACED_COLOURS[node.placed])
                        for node in placements)
    for graph in document.values():
        graph.update(name=f"placement under {delegate}: {PLACED_LEGEND}",
                     thresholds=_placed_thresholds())
    return document


def _placed_thresholds() -> list[dict[str, Any]]:
    return [{"value": code, "bgColor": PLACED_COLOURS[placed]}
            for placed, code in PLACED_CODES.items()]


def _diff(entry: Entry, found: Overlays) -> None:
    diff = entry.graph_diff
    if diff is None:
        found.skipped["error-diff.json"] = found.skipped["placement-diff.json"] = \
            "no baseline to compare with (--tflite-baseline)"
        return
    if diff.errors:
        found.files["error-diff.json"] = _error_diff(diff.errors)
    else:
        found.skipped["error-diff.json"] = "no operator's added error changed against the baseline"
    moves: dict[str, list[PlacementMove]] = {}
    for move in diff.placement:
        moves.setdefault(move.delegate, []).append(move)
    for delegate in sorted(set(entry.measurement.delegates) | set(moves)):
        name = f"placement-diff.{path_part(delegate)}.json"
        if delegate in moves:
            found.files[name] = _placement_diff(moves[delegate], delegate)
        else:
            found.skipped[name] = f"no operator moved under {delegate} against the baseline"
    for kind in ("errors", "placement"):
        if diff.omitted.get(kind):
            found.notes.append(f"{diff.omitted[kind]} more {kind} changes than the graph diff "
                               f"keeps ({len(getattr(diff, kind))}) are not coloured")


def _error_diff(changes: Sequence[ErrorChange]) -> dict[str, Any]:
    """Head minus base per node (a new node: its whole error); red where it grew."""
    values = [(c, c.head - (c.base or 0.0)) for c in changes]
    values = [(c, v) for c, v in values if math.isfinite(v)]
    document = _results((c.node.graph, c.node.node, v, ERROR_GREW if v > 0 else ERROR_FELL)
                        for c, v in values)
    top = max((v for _, v in values), default=0.0)
    thresholds = [{"value": 0, "bgColor": ERROR_FELL}]
    if top > 0:
        thresholds.append({"value": top, "bgColor": ERROR_GREW})
    for graph in document.values():
        graph.update(name="quantization error added, this model minus the baseline's",
                     thresholds=thresholds)
    return document


def _placement_diff(moves: Sequence[PlacementMove], delegate: str) -> dict[str, Any]:
    """The nodes that moved, coded by where they run now; the others are left uncoloured."""
    document = _results((m.node.graph, m.node.node, PLACED_CODES[m.head], PLACED_COLOURS[m.head])
                        for m in moves)
    for graph in document.values():
        graph.update(name=f"moved under {delegate} against the baseline, now: {PLACED_LEGEND}",
                     thresholds=_placed_thresholds())
    return document


def write_node_data(directory: Path, entries: Sequence[Entry]) -> list[Path]:
    """Per entry, ``DIRECTORY/<model>/<variant>/``: ``model.tflite`` (a copy of the measured
    file) and its overlays; then ``DIRECTORY/README.md`` with the command that views each."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    lines = ["# Model Explorer node data", "",
             "Each folder holds a model and its overlays. To view one, run the command from "
             "its folder (`pip install \"pytest-tflite[explorer]\"` first).", ""]
    taken: set[Path] = set()
    for entry in entries:
        folder = _folder(directory, entry, taken)
        folder.mkdir(parents=True, exist_ok=True)
        found = overlays(entry)
        model = Path(entry.model_path) if entry.model_path else None
        has_model = model is not None and model.is_file()
        if model is not None and has_model:  # (both: mypy does not narrow through a bool)
            shutil.copyfile(model, folder / MODEL_FILE)
            written.append(folder / MODEL_FILE)
        else:  # a copy left by an earlier run is another model
            (folder / MODEL_FILE).unlink(missing_ok=True)
        for name, document in found.files.items():
            write_atomic(folder / name, (json.dumps(document, separators=(",", ":")) + "\n").encode("utf-8"))
            written.append(folder / name)
        lines += _readme_section(directory, folder, entry, found, has_model)
    write_atomic(directory / "README.md", "\n".join(lines).encode("utf-8"))
    written.append(directory / "README.md")
    return written


def _folder(directory: Path, entry: Entry, taken: set[Path]) -> Path:
    """``<model>/<variant>``, made safe; two names made the same get ``-2``, ``-3``."""
    base = directory / path_part(entry.model) / path_part(entry.variant)
    folder, number = base, 1
    while folder in taken:
        number += 1
        folder = base.with_name(f"{base.name}-{number}")
    taken.add(folder)
    return folder


def _readme_section(directory: Path, folder: Path, entry: Entry, found: Overlays,
                    has_model: bool) -> list[str]:
    # Every name here went through path_part: nothing a shell would split or expand.
    where = folder.relative_to(directory).as_posix()
    lines = [f"## {where}", ""]
    if not has_model:
        lines += ["No model file: the run kept no `.tflite` for this variant "
                  "(model_path is empty or gone).", ""]
    elif found.files:
        paths = ",".join(found.files)
        lines += [f"`cd {where} && model-explorer {MODEL_FILE} --node_data_paths={paths}`", "",
                  f"or measure it again and serve it: `tflite-budget explore "
                  f"{where}/{MODEL_FILE} --model={path_part(entry.model)} "
                  f"--variant={path_part(entry.variant)}` (add `--base=BASELINE_DIR` for the "
                  f"diff)", ""]
    else:
        lines += [f"`cd {where} && model-explorer {MODEL_FILE}` (no overlay)", ""]
    lines += [f"- not written, {name}: {reason}" for name, reason in found.skipped.items()]
    lines += [f"- {note}" for note in found.notes]
    return [*lines, ""] if found.skipped or found.notes else lines
