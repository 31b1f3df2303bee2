"""What changed in the graph between a baseline's model and this one: op counts, tensors whose
shape, type or quantization changed, the constants that grew, nodes added or removed (from the
two flatbuffers alone: no TensorFlow, no interpreter), and, from the two measurements, nodes
that moved between a delegate and the CPU and nodes whose quantization error grew.

It explains a regression; it judges nothing. Nodes and tensors are matched by name, never by
index: inserting one layer shifts the index of every node after it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .errors import ModelError, TFLiteError
from .flatbuffer import FlatbufferView, QuantizationInfo, TensorInfo
from .nodes import (
    BufferGrowth,
    ErrorChange,
    GraphDiff,
    GraphIds,
    LayerError,
    NodePlacement,
    NodeRef,
    OpCount,
    PlacementMove,
    TensorChange,
    graph_ids,
    shape_text,
)
from .results import Measurement

# What a report can show; the rest is counted in GraphDiff.omitted.
LIMIT = 50
BUFFER_LIMIT = 10

T = TypeVar("T")


# ---------------------------------------------------------------- structure, from the flatbuffers


@dataclass(frozen=True)
class _Node:
    graph: str
    index: int
    op: str
    outputs: tuple[str, ...]  # output tensor names, "" for an unnamed one

    @property
    def ref(self) -> NodeRef:
        return NodeRef(self.graph, str(self.index), self.op, self.outputs[0] if self.outputs else "")


@dataclass(frozen=True)
class _Tensor:
    graph: str
    subgraph: int
    info: TensorInfo
    quantization: QuantizationInfo | None
    stored_bytes: int | None  # its data in the file; None for a tensor without any


def _graph_ids(view: FlatbufferView) -> list[str]:
    return graph_ids([s["name"] for s in view.subgraphs])


def _nodes(view: FlatbufferView) -> dict[str, list[_Node]]:
    nodes: dict[str, list[_Node]] = {}
    for subgraph, graph in enumerate(_graph_ids(view)):
        tensors = view.tensors(subgraph)
        nodes[graph] = [
            _Node(graph, op.index, op.opcode,
                  tuple(tensors[t].name if t >= 0 else "" for t in op.outputs))
            for op in view.operators(subgraph)]
    return nodes


def _tensors(view: FlatbufferView) -> tuple[dict[tuple[str, str], _Tensor], list[str]]:
    """Every named tensor by (graph id, name), the first of a repeated name; and notes."""
    found: dict[tuple[str, str], _Tensor] = {}
    notes = []
    for subgraph, graph in enumerate(_graph_ids(view)):
        repeated = 0
        for info in view.tensors(subgraph):
            if not info.name:
                continue
            if (graph, info.name) in found:
                repeated += 1
                continue
            data = view.tensor_data(subgraph, info.index) if info.constant else None
            found[graph, info.name] = _Tensor(
                graph, subgraph, info, view.tensor_quantization(subgraph, info.index),
                None if data is None else len(data))
        if repeated:
            notes.append(f"{graph}: {repeated} tensor names of {view.origin} appear more than "
                         f"once; only the first of each was compared")
    return found, notes


def _op_counts(base: FlatbufferView, head: FlatbufferView) -> list[OpCount]:
    names = sorted(set(base.ops) | set(head.ops))
    changed = [OpCount(name, base.ops.get(name, 0), head.ops.get(name, 0)) for name in names
               if base.ops.get(name, 0) != head.ops.get(name, 0)]
    # The largest change first: a new or vanished op type reads before a count nudged by one.
    return sorted(changed, key=lambda c: -abs(c.head - c.base))


def _match_nodes(base: list[_Node], head: list[_Node]) -> tuple[list[_Node], list[_Node]]:
    """(removed, added): base and head nodes left unmatched. A node is the same node when it
    has the same op and writes a tensor of the same name: its first output first, then any of
    its outputs; nodes without a named output (e.g. ASSIGN_VARIABLE) pair up by op, in order.
    A tensor now written by another kind of op is a node removed and a node added."""
    taken: set[int] = set()
    first: dict[tuple[str, str], int] = {}
    any_output: dict[tuple[str, str], list[int]] = defaultdict(list)
    unnamed: dict[str, list[int]] = defaultdict(list)
    for position, node in enumerate(head):
        named = [name for name in node.outputs if name]
        if node.outputs and node.outputs[0]:
            first.setdefault((node.op, node.outputs[0]), position)
        for name in named:
            any_output[node.op, name].append(position)
        if not named:
            unnamed[node.op].append(position)

    def take(candidates: Iterable[int]) -> bool:
        for position in candidates:
            if position not in taken:
                taken.add(position)
                return True
        return False

    pending, removed = [], []
    for node in base:
        key = (node.op, node.outputs[0]) if node.outputs and node.outputs[0] else None
        if key is None or key not in first or not take([first[key]]):
            pending.append(node)
    for node in pending:  # after every first-output match, so none is stolen by a fallback
        named = [name for name in node.outputs if name]
        if named:
            matched = any(take(any_output.get((node.op, name), [])) for name in named)
        else:
            matched = take(unnamed.get(node.op, []))
        if not matched:
            removed.append(node)
    added = [node for position, node in enumerate(head) if position not in taken]
    return removed, added


def _scales(quantization: QuantizationInfo | None) -> str:
    if quantization is None:
        return ""
    scales, zero_points = quantization.scales, quantization.zero_points
    if len(scales) == 1:
        return f", scale {scales[0]:.6g}, zero point {zero_points[0]}"
    text = (f", per-channel ({len(scales)} scales, axis {quantization.quantized_dimension}, "
            f"{min(scales):.6g}–{max(scales):.6g}")
    if any(zero_points):
        text += f", zero points {min(zero_points)}–{max(zero_points)}"
    return text + ")"


def describe(tensor: TensorInfo, quantization: QuantizationInfo | None, detail: bool = False
             ) -> str:
    """A tensor as people read it: ``int8 64×64, per-channel (64 scales)``, ``float32 1×64``.
    ``detail``: the axis and range of per-channel scales too, for changes the short form hides."""
    text = f"{tensor.dtype} {shape_text(tensor.shape)}"
    if quantization is None:
        return text
    if detail:
        return text + _scales(quantization)
    scales = quantization.scales
    if len(scales) > 1:
        return f"{text}, per-channel ({len(scales)} scales)"
    return f"{text}, scale {scales[0]:.3g}, zero point {quantization.zero_points[0]}"


def _quantization_changed(base: QuantizationInfo | None, head: QuantizationInfo | None) -> bool:
    if base is None or head is None:
        return base is not head
    if base.scales != head.scales or base.zero_points != head.zero_points:
        return True
    # The axis means something only with one scale per channel.
    return len(head.scales) > 1 and base.quantized_dimension != head.quantized_dimension


def _tensor_change(base: _Tensor, head: _Tensor) -> TensorChange | None:
    changed = [what for what, differs in (
        ("shape", base.info.shape != head.info.shape),
        ("type", base.info.dtype != head.info.dtype),
        ("quantization", _quantization_changed(base.quantization, head.quantization)),
    ) if differs]
    if not changed:
        return None
    before = describe(base.info, base.quantization)
    after = describe(head.info, head.quantization)
    if before == after:  # e.g. per-channel scales changed in value only
        before = describe(base.info, base.quantization, detail=True)
        after = describe(head.info, head.quantization, detail=True)
    return TensorChange(head.info.name, before, after, changed, base.stored_bytes,
                        head.stored_bytes, base.info.dtype, head.info.dtype,
                        list(base.info.shape), list(head.info.shape))


def _growth(base: Mapping[tuple[str, str], _Tensor], head: Mapping[tuple[str, str], _Tensor]
            ) -> list[BufferGrowth]:
    """Constants of head that grew against the base constant of the same name, or are new;
    grown most first. A buffer shared by several tensors counts once."""
    grown, seen = [], set()
    for key, tensor in head.items():
        if tensor.stored_bytes is None or tensor.info.buffer in seen:
            continue
        seen.add(tensor.info.buffer)
        before = base.get(key)
        base_bytes = None if before is None else before.stored_bytes
        if base_bytes is None or tensor.stored_bytes > base_bytes:  # new, or grown
            grown.append(BufferGrowth(
                tensor.info.name, tensor.info.dtype,
                None if base_bytes is None or before is None else list(before.info.shape),
                list(tensor.info.shape), base_bytes or 0, tensor.stored_bytes))
    return sorted(grown, key=lambda g: g.base_bytes - g.head_bytes)


def structural_diff(base: FlatbufferView, head: FlatbufferView) -> GraphDiff:
    """Op counts, tensor changes, grown constants and nodes added or removed, read from the two
    flatbuffers alone. Each list is capped; ``omitted`` counts what was left out."""
    result = GraphDiff()
    base_tensors, base_notes = _tensors(base)
    head_tensors, head_notes = _tensors(head)
    changes = [change for key, tensor in head_tensors.items() if key in base_tensors
               if (change := _tensor_change(base_tensors[key], tensor)) is not None]
    # Shape and type changes before quantization-only ones: the cap should drop the latter.
    changes.sort(key=lambda c: c.changed == ["quantization"])

    base_nodes, head_nodes = _nodes(base), _nodes(head)
    removed, added = [], []
    for graph in [*base_nodes, *(g for g in head_nodes if g not in base_nodes)]:
        gone, new = _match_nodes(base_nodes.get(graph, []), head_nodes.get(graph, []))
        removed += [node.ref for node in gone]
        added += [node.ref for node in new]

    result.ops = _cap(result, "ops", _op_counts(base, head))
    result.tensors = _cap(result, "tensors", changes)
    result.buffers = _cap(result, "buffers", _growth(base_tensors, head_tensors), BUFFER_LIMIT)
    result.added = _cap(result, "added", added)
    result.removed = _cap(result, "removed", removed)
    result.notes += base_notes + head_notes
    return result


def _cap(diff: GraphDiff, name: str, items: list[T], limit: int = LIMIT) -> list[T]:
    if len(items) > limit:
        diff.omitted[name] = len(items) - limit
    return items[:limit]


# ---------------------------------------------------------------- from the two measurements


def _by_output(placements: Sequence[NodePlacement], graphs: GraphIds
               ) -> dict[tuple[str, ...], NodePlacement]:
    """Placements keyed by (graph id, output name); an operator without a named output by
    (graph id, op, its count among such ops), the best a name-less node allows."""
    keyed: dict[tuple[str, ...], NodePlacement] = {}
    ordinal: dict[tuple[str, str], int] = defaultdict(int)
    for placement in placements:
        graph = graphs[placement.subgraph]
        if placement.output:
            keyed.setdefault((graph, placement.output), placement)
        else:
            count = ordinal[graph, placement.op]
            ordinal[graph, placement.op] += 1
            keyed[graph, placement.op, str(count)] = placement
    return keyed


def _placement(base: Measurement, head: Measurement) -> tuple[list[PlacementMove], list[str]]:
    moves, notes = [], []
    base_graphs, head_graphs = GraphIds.of(base.subgraphs), GraphIds.of(head.subgraphs)
    for delegate, after in head.delegates.items():
        before = base.delegates.get(delegate)
        if before is None:
            continue  # a delegate new to this run: nothing to move from
        if after.placement is None or before.placement is None:
            if after.placement is not None:
                why = before.placement_note or "a baseline saved before placement was recorded"
                notes.append(f"{delegate}: placement not compared: none in the baseline ({why})")
            elif before.placement is not None:
                why = after.placement_note or "not recorded"
                notes.append(f"{delegate}: placement not compared: none in this run ({why})")
            continue
        old = _by_output(before.placement, base_graphs)
        for key, node in _by_output(after.placement, head_graphs).items():
            was = old.get(key)
            if was is not None and was.placed != node.placed:
                ref = NodeRef(head_graphs[node.subgraph], str(node.index), node.op, node.output)
                moves.append(PlacementMove(delegate, ref, was.placed, node.placed))
    # Moves to the CPU first: they are what slows a model down.
    moves.sort(key=lambda m: (m.head != "fallback", m.delegate, m.node.graph, int(m.node.node)))
    return moves, notes


def placement_moves(base_measurement: Measurement, head_measurement: Measurement
                    ) -> list[PlacementMove]:
    """Nodes, matched by output tensor name, that one delegate placed differently in head than
    in base (taken by the delegate, left to a CPU kernel, a custom op); moves to fallback first."""
    return _placement(base_measurement, head_measurement)[0]


def error_changes(base_layers: Sequence[LayerError], head_layers: Sequence[LayerError],
                  graphs: GraphIds | None = None) -> list[ErrorChange]:
    """Nodes whose quantization error added (``LayerError.added``) changed, matched by their
    tensor's name within its subgraph; the largest increase first. A node new in head (or not
    measured in base) has ``base`` None and counts its whole error as the increase.
    ``graphs``: head's graph ids (unnamed subgraphs when not given)."""
    graphs = graphs if graphs is not None else GraphIds()
    before: dict[tuple[int, str], float | None] = {}
    for layer in base_layers:
        before.setdefault((layer.subgraph, layer.tensor), layer.added)
    changes = []
    for layer in head_layers:
        if layer.added is None:
            continue
        was = before.get((layer.subgraph, layer.tensor))
        # The same model on the same data repeats its error to float32 noise: not a change.
        if was is not None and math.isclose(was, layer.added, rel_tol=1e-6, abs_tol=1e-9):
            continue
        node = NodeRef(graphs[layer.subgraph], str(layer.index), layer.op, layer.tensor)
        changes.append(ErrorChange(node, layer.tensor, was, layer.added))
    return sorted(changes, key=lambda c: -(c.head - (c.base or 0.0)))


def _errors(base: Measurement, head: Measurement) -> tuple[list[ErrorChange], list[str]]:
    if head.layers is None:
        return [], []
    if base.layers is None:
        why = base.layers_note or "a baseline saved before it was measured, or without " \
                                  "--tflite-node-data"
        return [], [f"quantization error per node not compared: none in the baseline ({why})"]
    return error_changes(base.layers, head.layers, GraphIds.of(head.subgraphs)), []


def diff(base_view: FlatbufferView | None, head_view: FlatbufferView,
         base_measurement: Measurement | None = None,
         head_measurement: Measurement | None = None) -> GraphDiff:
    """Base vs head: the structure from the two flatbuffers (``base_view`` None: not compared);
    placement moves and error changes from the two measurements when both are given, with
    ``notes`` saying what could not be compared and why. A model whose data cannot be read (a
    buffer past the file's end, which validation does not look at) leaves a note: the diff
    explains, it never fails a test."""
    if base_view is None:
        result = GraphDiff(notes=["the baseline keeps no .tflite of this variant: the graphs "
                                  "were not compared"])
    else:
        try:
            result = structural_diff(base_view, head_view)
        except ModelError as exc:
            result = GraphDiff(notes=[f"the graphs were not compared: {exc}"])
    if base_measurement is None or head_measurement is None:
        return result
    moves, placement_notes = _placement(base_measurement, head_measurement)
    errors, error_notes = _errors(base_measurement, head_measurement)
    result.placement = _cap(result, "placement", moves)
    result.errors = _cap(result, "errors", errors)
    result.notes += placement_notes + error_notes
    return result


def against_baseline(tflite: Path | None, base: Measurement, head_view: FlatbufferView,
                     head: Measurement) -> GraphDiff:
    """``diff`` against a baseline's saved model file and measurement: what the engine keeps in
    an entry and ``tflite-budget explore`` colours. A model file that cannot be read is a note."""
    base_view = None
    if tflite is not None:
        try:
            base_view = FlatbufferView(tflite.read_bytes(), origin=str(tflite))
            base_view.validate()
        except (OSError, TFLiteError) as exc:
            found = diff(None, head_view, base, head)
            found.notes[0] = f"the baseline's model could not be read: {exc}"
            return found
    return diff(base_view, head_view, base, head)
