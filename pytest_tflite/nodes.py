"""Per-node results: where each operator ran, the quantization error it added, and what changed
in the graph between a baseline's model and this one.

Nodes are named as Model Explorer names them for a ``.tflite``: the graph id is the subgraph's
name (``"main"`` for an unnamed subgraph 0, see ``graph_id``) and a node's id is the operator's
index in that subgraph, so an overlay can be written from these records and the flatbuffer
alone. Base and head nodes are matched by their output tensor's name, never by index: indices
shift when a layer is inserted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Placed = Literal["delegate", "fallback", "custom"]


def graph_id(subgraph: int, name: str) -> str:
    """Model Explorer's graph id for a subgraph: its name, ``"main"`` for an unnamed first one,
    ``"subgraph_N"`` for another unnamed one."""
    if name:
        return name
    return "main" if subgraph == 0 else f"subgraph_{subgraph}"


def graph_ids(names: Sequence[str]) -> list[str]:
    """The graph id Model Explorer's viewer shows for each subgraph, by index: ``graph_id``,
    except that the viewer renames the second and later graphs of an id already taken to
    ``"ID (2)"``, ``"ID (3)"`` (the adapter keeps the duplicates; the web app's
    ``addGraphCollections`` renames them, and node data is looked up by the new id). Two
    subgraphs with one name happen: an unnamed subgraph 1 beside one named ``subgraph_1``."""
    seen: dict[str, int] = {}
    ids = []
    for index, name in enumerate(names):
        wanted = graph_id(index, name)
        count = seen.get(wanted, 0)
        seen[wanted] = count + 1
        ids.append(wanted if count == 0 else f"{wanted} ({count + 1})")
    return ids


def shape_text(shape: Sequence[int]) -> str:
    """``64×96``; ``scalar`` for a rank-0 tensor."""
    return "×".join(map(str, shape)) or "scalar"


class GraphIds(dict[int, str]):
    """``graph_ids`` by subgraph index, read from ``Measurement.subgraphs`` records; a subgraph
    past them (an entry without static figures) gets the id of an unnamed one."""

    @classmethod
    def of(cls, subgraphs: Iterable[Mapping[str, Any]]) -> GraphIds:
        names = {int(s["index"]): str(s.get("name") or "") for s in subgraphs}
        return cls(enumerate(graph_ids([names.get(i, "") for i in range(max(names, default=-1) + 1)])))

    def __missing__(self, subgraph: int) -> str:
        return graph_id(subgraph, "")


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class NodePlacement:
    """One operator under one delegate run: taken by the delegate, left to a CPU kernel
    (``fallback``), or a custom op the delegate did not take (``custom``)."""

    subgraph: int
    index: int  # the operator's index in its subgraph: Model Explorer's node id
    op: str  # builtin name, or CUSTOM:code
    output: str  # its first output tensor's name ("" when it has none): the key across models
    placed: Placed


@dataclass
class LayerError:
    """One operator's quantized output against the float reference's tensor of the same name,
    over the first evaluation samples."""

    tensor: str
    subgraph: int
    index: int
    op: str
    rmse: float
    max_abs_error: float
    scale: float
    rmse_over_scale: float
    relative_rmse: float | None  # rmse / rms of the reference tensor; None when that is 0
    # relative_rmse minus the worst relative_rmse among the op's compared inputs (0 when lower):
    # the error this op adds, rather than the error it inherits.
    added: float | None = None


@dataclass
class NodeRef:
    """A node by Model Explorer's ids and by what identifies it across models."""

    graph: str
    node: str  # str(operator index)
    op: str
    output: str


@dataclass
class OpCount:
    op: str
    base: int
    head: int


@dataclass
class TensorChange:
    """A tensor of both models (same name) whose shape, type or quantization changed."""

    name: str
    base: str  # as people read it: "int8 64×64, per-channel (64 scales)"
    head: str
    changed: list[str]  # of "shape", "type", "quantization"
    base_bytes: int | None = None  # its constant data, when it has any
    head_bytes: int | None = None
    # The figures ``base`` and ``head`` are written from, for reports that say less.
    base_dtype: str = ""
    head_dtype: str = ""
    base_shape: list[int] = field(default_factory=list)
    head_shape: list[int] = field(default_factory=list)


@dataclass
class BufferGrowth:
    """A constant whose data grew (or is new): the size regression's likely cause."""

    tensor: str
    dtype: str
    base_shape: list[int] | None  # None: the constant is new
    head_shape: list[int]
    base_bytes: int
    head_bytes: int


@dataclass
class PlacementMove:
    """A node (matched by output tensor) that ran differently under ``delegate``."""

    delegate: str
    node: NodeRef
    base: Placed
    head: Placed


@dataclass
class ErrorChange:
    """A node's quantization error added (``LayerError.added``) in base and head."""

    node: NodeRef
    tensor: str
    base: float | None  # None: the node is new, or its error was not measured in the base
    head: float


@dataclass
class GraphDiff:
    """Base vs head: the structure from the two flatbuffers, placement and error from the
    measurements. Lists are capped; ``omitted`` counts what was left out of each."""

    ops: list[OpCount] = field(default_factory=list)
    tensors: list[TensorChange] = field(default_factory=list)
    buffers: list[BufferGrowth] = field(default_factory=list)  # grown most first
    added: list[NodeRef] = field(default_factory=list)
    removed: list[NodeRef] = field(default_factory=list)
    placement: list[PlacementMove] = field(default_factory=list)
    errors: list[ErrorChange] = field(default_factory=list)  # grown most first
    omitted: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what could not be compared, and why

    @property
    def empty(self) -> bool:
        return not (self.ops or self.tensors or self.buffers or self.added or self.removed
                    or self.placement or self.errors)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GraphDiff:
        def refs(items: list[dict[str, Any]]) -> list[NodeRef]:
            return [NodeRef(**_known(NodeRef, item)) for item in items]

        return cls(
            ops=[OpCount(**_known(OpCount, o)) for o in data.get("ops", [])],
            tensors=[TensorChange(**_known(TensorChange, t)) for t in data.get("tensors", [])],
            buffers=[BufferGrowth(**_known(BufferGrowth, b)) for b in data.get("buffers", [])],
            added=refs(data.get("added", [])), removed=refs(data.get("removed", [])),
            placement=[PlacementMove(p["delegate"], NodeRef(**_known(NodeRef, p["node"])),
                                     p["base"], p["head"]) for p in data.get("placement", [])],
            errors=[ErrorChange(NodeRef(**_known(NodeRef, e["node"])), e["tensor"], e["base"],
                                e["head"]) for e in data.get("errors", [])],
            omitted=dict(data.get("omitted", {})), notes=list(data.get("notes", [])))


def placements_from_json(items: list[dict[str, Any]] | None) -> list[NodePlacement] | None:
    return None if items is None else [NodePlacement(**_known(NodePlacement, p)) for p in items]


def layers_from_json(items: list[dict[str, Any]] | None) -> list[LayerError] | None:
    return None if items is None else [LayerError(**_known(LayerError, r)) for r in items]
