"""What explains a variant's change, for people: the graph diff against the base in a few lines,
and the nodes that add the most quantization error (or whose error grew most). The PR comment,
the job summary, the HTML page and the terminal read these; none of it is a verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..nodes import GraphIds, LayerError
from ..results import Entry
from .graph_text import ERROR_SHOWN, diff_lines, grown_buffers, note_lines

TOP_NODES = 10
SUMMARY_LINES = 2  # graph changes named in a folded section's summary


@dataclass(frozen=True)
class NodeError:
    """One row of the "largest quantization error" list."""

    tensor: str
    op: str
    node: str  # Model Explorer's "graph/node id", e.g. "main/5"
    error: float  # the error the op adds (relative RMSE), in head
    base: float | None  # the same in base, when the run compared with one
    compared: bool  # whether base was looked for (so None means a new node, or unmeasured)


def grew_most(entry: Entry) -> str:
    """``; grew most: dense_1/kernel +8.0 KiB, …`` for a file-size row, or nothing."""
    diff = entry.graph_diff
    return f"; grew most: {grown_buffers(diff, 3)}" if diff is not None and diff.buffers else ""


def graph_changes(entry: Entry) -> list[str]:
    """The graph diff's lines (empty when nothing changed or there was no base)."""
    diff = entry.graph_diff
    if diff is None:
        return []
    return [*diff_lines(diff), *note_lines(diff)]


def changed_summary(entries: Sequence[Entry], who: dict[int, str]) -> str:
    """``int8: CONV_2D 3 → 4; dense_1/kernel 64×64 → 64×96 (+8 KiB int8)``: the first lines of
    each changed variant, for a folded section's one-line summary."""
    parts = []
    for entry in entries:
        if entry.graph_diff is None or entry.graph_diff.empty:
            continue
        lines = diff_lines(entry.graph_diff)[:SUMMARY_LINES]
        parts.append(f"{who[id(entry)]}: {'; '.join(lines)}")
    return " · ".join(parts)


def worst_nodes(entry: Entry, limit: int = TOP_NODES) -> list[NodeError]:
    """The nodes that add the most error; by the growth of that error when the base measured it
    too (a new node counts from 0)."""
    layers = [layer for layer in entry.measurement.layers or [] if layer.added is not None]
    diff = entry.graph_diff
    changed = {change.tensor: change.base for change in diff.errors} if diff is not None else {}
    compared = bool(changed)

    def base(layer: LayerError) -> float | None:
        # diff.errors holds the changed nodes only: one missing from it kept its error.
        return changed.get(layer.tensor, layer.added)

    graphs = GraphIds.of(entry.measurement.subgraphs)
    rows = [NodeError(layer.tensor, layer.op, f"{graphs[layer.subgraph]}/{layer.index}",
                      float(layer.added or 0.0),
                      base(layer) if compared else None, compared) for layer in layers]
    if compared:  # the nodes whose error grew; the others are no news
        rows = sorted((r for r in rows if r.error - (r.base or 0.0) >= ERROR_SHOWN),
                      key=lambda r: -(r.error - (r.base or 0.0)))
    else:
        rows = sorted((r for r in rows if r.error >= ERROR_SHOWN), key=lambda r: -r.error)
    return rows[:limit]


def node_error_text(row: NodeError) -> str:
    """``+1.0% (0.3% → 1.3%)`` against a base; ``1.3%`` alone (relative RMSE the op adds)."""
    if not row.compared:
        return f"{row.error:.1%}"
    if row.base is None:
        return f"{row.error:.1%} (new)"
    return f"{row.error - row.base:+.1%} ({row.base:.1%} → {row.error:.1%})"


def terminal_lines(entries: Sequence[Entry]) -> list[str]:
    """One line per variant whose graph changed, for the terminal summary."""
    lines = []
    for entry in entries:
        changes = graph_changes(entry)
        if entry.graph_diff is not None and not entry.graph_diff.empty:
            shown = "; ".join(changes[:3]) + (f"; … {len(changes) - 3} more"
                                               if len(changes) > 3 else "")
            lines.append(f"graph {entry.model} [{entry.variant}]: {shown}")
    return lines
