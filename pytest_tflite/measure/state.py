"""The planned state: how many bytes a model's resource variables hold between invokes, from the
flatbuffer alone.

Streaming models (keyword spotters, streaming audio) keep their state in resource variables:
``VAR_HANDLE`` names a variable, ``ASSIGN_VARIABLE`` writes it and ``READ_VARIABLE`` reads it.
That memory lives beside the arena the planner plans (``planner.py``), never inside it: TFLite
Micro allocates each variable once, as a persistent buffer, when it is first assigned. The rules
below are the contract of ``planned_state_bytes``.

Identity
    A variable is its ``VAR_HANDLE``'s ``container`` and ``shared_name`` options (an absent one
    reads as ""), as both runtimes key their variables: two ``VAR_HANDLE`` ops with the same pair,
    in one subgraph or in several, are one variable, counted once.

Size
    The value tensor of every ``ASSIGN_VARIABLE`` whose resource input a ``VAR_HANDLE`` of the
    same subgraph writes, in any subgraph (streaming models often assign in an init subgraph that
    ``CALL_ONCE`` runs), sized as the planner sizes a tensor (shape times element size, rounded up
    to 16 bytes, as TFLite Micro aligns its persistent buffers). When assignments disagree, the
    largest wins: the variable must hold each of them. A handle that reaches
    an ``ASSIGN_VARIABLE`` only through a subgraph's inputs (a WHILE body) is not followed.

Stateful tensors
    Old-style ``is_variable`` tensors (LSTM state) are not counted here: the planner already plans
    them, alive through the whole subgraph, so counting them again would double them.
"""

from __future__ import annotations

from ..flatbuffer import FlatbufferView
from .planner import tensor_bytes

Identity = tuple[str, str]  # (container, shared_name)


def variable_sizes(view: FlatbufferView) -> dict[Identity, int]:
    """``{(container, shared_name): bytes}`` of every resource variable the model names."""
    sizes: dict[Identity, int] = {}
    for subgraph in range(view.subgraph_count):
        tensors = view.tensors(subgraph)
        handles: dict[int, Identity] = {}  # resource tensor -> the variable it names
        for operator in view.operators(subgraph):
            if operator.opcode == "VAR_HANDLE":
                identity = _identity(view, subgraph, operator.index)
                # A variable never assigned holds nothing the runtime must allocate: 0 bytes.
                sizes.setdefault(identity, 0)
                for t in operator.outputs:
                    if t >= 0:
                        handles[t] = identity
            elif operator.opcode == "ASSIGN_VARIABLE" and len(operator.inputs) >= 2:
                handle, value = operator.inputs[0], operator.inputs[1]
                if handle in handles and value >= 0:
                    identity = handles[handle]
                    sizes[identity] = max(sizes[identity], tensor_bytes(tensors[value]))
    return sizes


def planned_state(view: FlatbufferView) -> int:
    """The bytes of all resource variables together, each counted once."""
    return sum(variable_sizes(view).values())


def _identity(view: FlatbufferView, subgraph: int, operator: int) -> Identity:
    options = view.operator_options(subgraph, operator)
    return _text(options.get("container")), _text(options.get("shared_name"))


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)
