"""Delegation coverage inside the worker: which nodes a delegate took, the partitions it made,
the ops left to CPU kernels, and the same per node (``placement``).

The Interpreter's Python wrapper lists the nodes of subgraph 0 only: ``NumNodes()``,
``NodeName(i)``, ``NodeInputs(i)`` and ``NodeOutputs(i)`` take no subgraph index (LiteRT 2.3),
while ``NumSubgraphs()`` and the tensor calls do. The ops of a WHILE body, an IF branch or a
CALL_ONCE initializer therefore cannot be listed, though a delegate may take them: the record
says which subgraphs it leaves out.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

# Op resolvers that apply no delegate: every node runs on a CPU kernel, nothing to place.
WITHOUT_DELEGATE = ("builtin", "reference")


def coverage(interpreter: Any, delegate: str) -> dict[str, Any]:
    """Delegated nodes, partitions, the ops left to CPU kernels and, where a delegate was
    applied (``xnnpack``, ``external:PATH``), the placement of every node of subgraph 0.

    Only the Interpreter's private ``_get_ops_details()`` lists DELEGATE nodes; each one
    replaced the original nodes between its inputs and outputs, found by walking back from
    its outputs to the tensors it takes in.
    """
    try:
        nodes = interpreter._get_ops_details()
    except Exception as exc:  # private API: say so when it changes
        return {"reason": f"delegation not measurable: _get_ops_details() failed ({exc})"}
    original = [n for n in nodes if n["op_name"] != "DELEGATE"]
    partitions = [n for n in nodes if n["op_name"] == "DELEGATE"]
    delegated = _delegated(interpreter, original, partitions)
    fallback = Counter(n["op_name"] for n in original if n["index"] not in delegated)
    found: dict[str, Any] = {
        "delegated_nodes": len(delegated),
        "total_nodes": len(original),
        "partitions": len(partitions),
        "fallback_ops": dict(sorted(fallback.items())),
    }
    subgraphs = int(interpreter._interpreter.NumSubgraphs())
    if delegate in WITHOUT_DELEGATE:
        found["placement"] = None
        found["placement_note"] = (f"no delegate is applied under {delegate}: every op ran on "
                                   f"CPU kernels (fallback_ops counts them)")
        return found
    found["placement"] = placement(interpreter, original, delegated)
    found["placement_note"] = left_out(subgraphs, delegate)
    return found


def placement(interpreter: Any, original: list[dict[str, Any]],
              delegated: set[int]) -> list[dict[str, Any]]:
    """One record per node of subgraph 0, in node order: ``{subgraph, index, op, output,
    placed}``, ``placed`` being ``delegate`` or ``fallback`` and ``op`` the runtime's name (a
    custom op's code alone). The parent tells custom ops apart (``measure.runtime``): it has
    LiteRT's schema loaded already, which would cost this process ~20 ms to import."""
    wrapper = interpreter._interpreter
    records = []
    for node in original:
        outputs = [int(t) for t in node["outputs"] if t >= 0]
        records.append({
            "subgraph": 0, "index": int(node["index"]), "op": str(node["op_name"]),
            "output": str(wrapper.TensorName(outputs[0], 0)) if outputs else "",
            "placed": "delegate" if node["index"] in delegated else "fallback",
        })
    return records


def left_out(subgraphs: int, delegate: str) -> str:
    """What the placement cannot list: every subgraph but the first, and why."""
    if subgraphs <= 1:
        return ""
    others = ", ".join(str(s) for s in range(1, subgraphs))
    return (f"subgraph 0 only: subgraphs {others} (control flow: WHILE, IF, CALL_ONCE bodies) "
            f"are not listed, since LiteRT's Interpreter lists the nodes of subgraph 0 alone "
            f"(NumNodes, NodeName, NodeInputs and NodeOutputs take no subgraph index); "
            f"{delegate} may have taken ops there, which delegated_nodes and fallback_ops do not "
            f"count either")


def _delegated(interpreter: Any, original: list[dict[str, Any]],
               partitions: list[dict[str, Any]]) -> set[int]:
    """The original nodes some DELEGATE node replaced."""
    producer = {int(t): n["index"] for n in original for t in n["outputs"] if t >= 0}
    by_index = {n["index"]: n for n in original}
    delegated: set[int] = set()
    for partition in partitions:
        boundary = {int(t) for t in partition["inputs"]}
        stack = [int(t) for t in partition["outputs"]]
        seen: set[int] = set()
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor in seen or tensor not in producer:
                continue
            seen.add(tensor)
            node = producer[tensor]
            if node not in delegated:
                delegated.add(node)
                stack.extend(int(t) for t in by_index[node]["inputs"] if t >= 0)
    # Nodes that feed no partition output (ASSIGN_VARIABLE and what leads to it) escape that
    # walk; a delegated node's own outputs are left unallocated by the interpreter (the
    # delegate keeps them) or come out of a DELEGATE node, and its inputs may be such too.
    partition_outputs = {int(t) for p in partitions for t in p["outputs"]}
    for node in original:
        outputs = [int(t) for t in node["outputs"] if t >= 0]
        tensors = outputs or [int(t) for t in node["inputs"] if t >= 0]
        if any(t in partition_outputs or _allocated(interpreter, t) is False for t in tensors):
            delegated.add(node["index"])
    return delegated


def _allocated(interpreter: Any, index: int) -> bool | None:
    """Whether the interpreter gave tensor ``index`` memory; None when it cannot be asked."""
    wrapper = interpreter._interpreter
    try:
        wrapper.TensorSize(index, 0)
        if np.dtype(wrapper.TensorType(index, 0)).kind in "OSUV":
            return None
        wrapper.tensor(interpreter, index, 0)
    except ValueError as exc:
        return False if "null" in str(exc).lower() else None
    except (RuntimeError, TypeError):
        return None
    return True
