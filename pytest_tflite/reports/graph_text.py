"""A graph diff as short lines a reviewer reads in five seconds (``CONV_2D 3 → 4``,
``dense_1/kernel 64×64 → 64×96 (+2.0 KiB int8)``, ``xnnpack: MEAN (main/7) delegate →
fallback``), and the constants that grew most in one phrase, for a size regression's row.

Names come from the models: every line is made safe to print (``printable.log_line``).
"""

from __future__ import annotations

from ..nodes import (
    BufferGrowth,
    ErrorChange,
    GraphDiff,
    NodeRef,
    PlacementMove,
    TensorChange,
    shape_text,
)
from ..printable import log_line, printable
from ..units import format_bytes

ARROW = "→"
ERROR_SHOWN = 0.001  # an error added that grew by less (0.1% of the tensor's RMS) is noise


def _signed_bytes(change: int) -> str:
    return ("+" if change >= 0 else "\u2212") + format_bytes(abs(change))


def _at(node: NodeRef) -> str:
    """Where Model Explorer finds the node: ``main/5``."""
    return f"{printable(node.graph)}/{node.node}"


def _node(what: str, node: NodeRef) -> str:
    output = f" {printable(node.output)}" if node.output else ""
    return f"{what}: {node.op}{output} ({_at(node)})"


def short_name(name: str) -> str:
    """A converter's fused name (``a/Relu;a/BiasAdd;a/MatMul``) by its first part, ``a/Relu;…``:
    the full name is in the JSON report, and Model Explorer's id beside it finds the node."""
    first, _, rest = name.partition(";")
    return printable(first + (";…" if rest else ""))


def _growth(change: TensorChange) -> int:
    if change.base_bytes is None or change.head_bytes is None:
        return 0
    return change.head_bytes - change.base_bytes


def _tensor(change: TensorChange) -> str:
    """A shape or type change, short: ``dense_1/kernel 64×64 → 64×96 (+2.0 KiB int8)``; the
    per-channel scales that follow a new shape are part of it, not another change."""
    name = short_name(change.name)
    before, after = shape_text(change.base_shape), shape_text(change.head_shape)
    if "type" in change.changed:
        return (f"{name} {printable(change.base_dtype)} {before} {ARROW} "
                f"{printable(change.head_dtype)} {after}")
    text = f"{name} {before} {ARROW} {after}"
    if change.base_bytes is not None and change.head_bytes is not None:
        text += f" ({_signed_bytes(_growth(change))} {printable(change.head_dtype)})"
    return text


def _requantized(changes: list[TensorChange]) -> list[str]:
    """Tensors whose scale or zero point alone moved, in one line: any retraining or new
    calibration moves them all, so each on its own line would bury the cause."""
    if not changes:
        return []
    names = ", ".join(short_name(c.name) for c in changes[:2])
    more = f" and {len(changes) - 2} more" if len(changes) > 2 else ""
    return [f"requantized (scale or zero point moved): {names}{more}"]


def _new_constant(growth: BufferGrowth) -> str:
    shape = shape_text(growth.head_shape)
    return (f"new constant: {short_name(growth.tensor)} {printable(growth.dtype)} {shape} "
            f"({_signed_bytes(growth.head_bytes)})")


def _grown_constant(growth: BufferGrowth) -> str:
    return (f"{short_name(growth.tensor)} {format_bytes(growth.base_bytes)} {ARROW} "
            f"{format_bytes(growth.head_bytes)}")


def _move(move: PlacementMove) -> str:
    return (f"{printable(move.delegate)}: {move.node.op} ({_at(move.node)}) {move.base} {ARROW} "
            f"{move.head}")


def _error(change: ErrorChange) -> str:
    where = f"{short_name(change.tensor)} ({_at(change.node)})"
    if change.base is None:
        return f"{where}: quantization error added {change.head:.1%} (new)"
    return f"{where}: quantization error added {change.base:.1%} {ARROW} {change.head:.1%}"


def all_lines(diff: GraphDiff) -> list[str]:
    """Every line of the diff, most telling first: op counts, nodes added and removed, nodes
    that moved between a delegate and the CPU, tensors resized or retyped (the most bytes
    first), constants grown, error grown, then the requantized tensors in one line.
    Not the notes (what could not be compared): ``note_lines`` has them."""
    lines = [f"{count.op} {count.base} {ARROW} {count.head}" for count in diff.ops]
    lines += [_node("added", node) for node in diff.added]
    lines += [_node("removed", node) for node in diff.removed]
    lines += [_move(move) for move in diff.placement]
    reshaped = sorted((c for c in diff.tensors if {"shape", "type"} & set(c.changed)),
                      key=lambda c: -_growth(c))
    lines += [_tensor(change) for change in reshaped]
    # A constant whose tensor line already shows its growth is not repeated.
    shown = {change.name for change in reshaped}
    for growth in diff.buffers:
        if growth.base_shape is None:
            lines.append(_new_constant(growth))
        elif growth.tensor not in shown:
            lines.append(_grown_constant(growth))
    lines += [_error(change) for change in diff.errors
              if change.head - (change.base or 0.0) >= ERROR_SHOWN]
    lines += _requantized([c for c in diff.tensors if c.changed == ["quantization"]])
    return lines


def diff_lines(diff: GraphDiff, limit: int = 12) -> list[str]:
    """At most ``limit`` lines (the last one then says how many more there are), each safe to
    print; empty for a diff with nothing in it."""
    lines = all_lines(diff)
    omitted = sum(diff.omitted.values())  # cut from the diff's own lists already
    if omitted or len(lines) > limit:
        keep = min(len(lines), max(limit - 1, 0))
        lines = [*lines[:keep], f"… and {len(lines) - keep + omitted} more"]
    return [log_line(line) for line in lines]


def grown_buffers(diff: GraphDiff, n: int = 3) -> str:
    """The ``n`` constants that grew most, for a size regression's row:
    ``dense_1/kernel +2.0 KiB, dense_0/kernel +512 B, inserted/kernel +4.0 KiB (new)``;
    empty when none grew."""
    parts = []
    for growth in diff.buffers[:n]:
        new = " (new)" if growth.base_shape is None else ""
        parts.append(f"{short_name(growth.tensor)} "
                     f"{_signed_bytes(growth.head_bytes - growth.base_bytes)}{new}")
    return log_line(", ".join(parts))


def note_lines(diff: GraphDiff) -> list[str]:
    """What could not be compared, and why, each safe to print (notes name files and delegates)."""
    return [log_line(note) for note in diff.notes]
