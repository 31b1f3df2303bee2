"""Placement per node (``DelegateResult.placement``): which node a delegate took, which a CPU
kernel ran, which custom op stayed out; measured in the worker on hand-built models whose
operators, and which of them XNNPACK has no kernel for, are known in advance.

XNNPACK has no SIGN kernel and takes no custom op (the AudioSpectrogram custom op of the
built-in resolver runs on its own CPU kernel); it takes RELU, TANH and LOGISTIC. The totals the
budgets read (delegated_nodes, fallback_ops) must be what the placement list adds up to.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pytest_tflite.measure.runtime import measure_delegate
from pytest_tflite.nodes import NodePlacement
from pytest_tflite.results import DelegateResult
from pytest_tflite.settings import Runs, RuntimeSettings
from tests.helpers.models import Op, Subgraph, Tensor, build_model, run

QUICK = RuntimeSettings(warmup=Runs(1, 0), timing=Runs(3, 0))


def measured(folder: Path, name: str, content: bytes, delegate: str) -> DelegateResult:
    path = folder / f"{name}.tflite"
    path.write_bytes(content)
    found = measure_delegate(path, delegate, QUICK)
    assert found.status == "ok", found.reason
    return found


def unary_chain(kinds: list[str]) -> bytes:
    """``t0 -> kinds[0] -> t1 -> ... -> tN``, [1, 8] float tensors."""
    tensors = [Tensor(f"t{i}", [1, 8]) for i in range(len(kinds) + 1)]
    ops = [Op(kind, [i], [i + 1]) for i, kind in enumerate(kinds)]
    return build_model([Subgraph(tensors, ops, inputs=[0], outputs=[len(kinds)])])


def assert_totals_agree(found: DelegateResult) -> None:
    """delegated_nodes and fallback_ops are what the placement list adds up to (fallback_ops
    names a custom op by its code alone, as the runtime does)."""
    assert found.placement is not None
    assert found.delegated_nodes == sum(p.placed == "delegate" for p in found.placement)
    assert found.total_nodes == len(found.placement)
    left = Counter(p.op.removeprefix("CUSTOM:") for p in found.placement if p.placed != "delegate")
    assert found.fallback_ops == dict(left)


def test_the_node_xnnpack_refuses_is_the_one_fallback(tmp_path: Path) -> None:
    found = measured(tmp_path, "sign", unary_chain(["RELU", "SIGN", "RELU"]), "xnnpack")
    assert found.placement == [
        NodePlacement(0, 0, "RELU", "t1", "delegate"),
        NodePlacement(0, 1, "SIGN", "t2", "fallback"),
        NodePlacement(0, 2, "RELU", "t3", "delegate"),
    ]
    assert found.placement_note == ""  # one subgraph: nothing left out
    assert_totals_agree(found)


def test_two_refused_nodes_in_a_longer_chain(tmp_path: Path) -> None:
    kinds = ["RELU", "TANH", "SIGN", "LOGISTIC", "RELU", "SIGN", "RELU"]
    found = measured(tmp_path, "sign2", unary_chain(kinds), "xnnpack")
    assert found.placement is not None
    assert [p.op for p in found.placement] == kinds
    assert [p.output for p in found.placement] == [f"t{i}" for i in range(1, 8)]
    assert [p.index for p in found.placement if p.placed == "fallback"] == [2, 5]
    assert {p.placed for p in found.placement if p.index not in (2, 5)} == {"delegate"}
    assert found.partitions == 3
    assert_totals_agree(found)


def audio_spectrogram_model() -> bytes:
    """x [16, 1] -> RELU -> AudioSpectrogram (window 8, stride 4: 3 windows of 5 bins) -> RELU.
    AudioSpectrogram is a custom op the built-in op resolver registers; its options are a
    flexbuffer map the builder cannot write, so they are set on the built model."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import flexbuffers

    content = build_model([Subgraph(
        [Tensor("x", [16, 1]), Tensor("y", [16, 1]), Tensor("spectrogram", [1, 3, 5]),
         Tensor("out", [1, 3, 5])],
        [Op("RELU", [0], [1]), Op("CUSTOM", [1], [2], custom_code="AudioSpectrogram"),
         Op("RELU", [2], [3])],
        inputs=[0], outputs=[3])])
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    model.subgraphs[0].operators[1].customOptions = list(flexbuffers.Dumps(
        {"window_size": 8, "stride": 4, "magnitude_squared": False}))
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_a_custom_op_the_delegate_leaves_is_custom(tmp_path: Path) -> None:
    content = audio_spectrogram_model()
    # It runs: a constant signal has all its energy in bin 0 (|sum of 8 Hann-windowed ones|).
    spectrum = run(content, np.ones((16, 1), np.float32))[0]
    assert spectrum.shape == (1, 3, 5) and np.all(spectrum[..., 0] > 10 * spectrum[..., 2])
    found = measured(tmp_path, "custom", content, "xnnpack")
    assert found.placement == [
        NodePlacement(0, 0, "RELU", "y", "delegate"),
        NodePlacement(0, 1, "CUSTOM:AudioSpectrogram", "spectrogram", "custom"),
        NodePlacement(0, 2, "RELU", "out", "delegate"),
    ]
    assert found.fallback_ops == {"AudioSpectrogram": 1} and found.partitions == 2
    assert_totals_agree(found)


@pytest.mark.parametrize("delegate", ["builtin", "reference"])
def test_without_a_delegate_there_is_no_placement_and_the_note_says_why(tmp_path: Path,
                                                                       delegate: str) -> None:
    found = measured(tmp_path, "sign", unary_chain(["RELU", "SIGN"]), delegate)
    assert found.placement is None
    assert found.placement_note == (f"no delegate is applied under {delegate}: every op ran on "
                                    f"CPU kernels (fallback_ops counts them)")
    assert found.fallback_ops == {"RELU": 1, "SIGN": 1}


def call_once_model() -> bytes:
    """main: CALL_ONCE (init = subgraph 1), then x -> RELU -> y; init: k -> RELU -> TANH."""
    main = Subgraph([Tensor("x", [4]), Tensor("y", [4])],
                    [Op("CALL_ONCE", [], [], options={"init_subgraph_index": 1}),
                     Op("RELU", [0], [1])], inputs=[0], outputs=[1])
    init = Subgraph([Tensor("k", [8], data=np.ones(8)), Tensor("a", [8]), Tensor("b", [8])],
                    [Op("RELU", [0], [1]), Op("TANH", [1], [2])], inputs=[], outputs=[])
    return build_model([main, init])


def test_only_subgraph_0_is_placed_and_the_note_names_the_others(tmp_path: Path) -> None:
    found = measured(tmp_path, "call_once", call_once_model(), "xnnpack")
    # CALL_ONCE has no output tensor: its output name is "".
    assert found.placement == [NodePlacement(0, 0, "CALL_ONCE", "", "fallback"),
                               NodePlacement(0, 1, "RELU", "y", "delegate")]
    assert found.placement_note.startswith("subgraph 0 only: subgraphs 1 (control flow")
    assert "NumNodes, NodeName, NodeInputs and NodeOutputs take no subgraph index" in \
        found.placement_note
    assert_totals_agree(found)


def test_litert_lists_the_nodes_of_subgraph_0_alone() -> None:
    """Why placement stops at subgraph 0: the wrapper counts subgraphs and their tensors, but
    its node calls take a node index only and answer for the primary subgraph (LiteRT 2.3)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(  # no delegate: no DELEGATE node appended to subgraph 0's nodes
        model_content=call_once_model(),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    wrapper = interpreter._interpreter
    assert wrapper.NumSubgraphs() == 2
    assert [wrapper.NumTensors(s) for s in range(2)] == [2, 3]
    assert wrapper.NumNodes() == 2  # main's CALL_ONCE and RELU, never init's two ops
    assert [wrapper.NodeName(i) for i in range(2)] == ["CALL_ONCE", "RELU"]
    with pytest.raises(TypeError):
        wrapper.NumNodes(1)  # no subgraph argument to ask for
    with pytest.raises(TypeError):
        wrapper.NodeName(0, 1)


def test_placement_survives_the_json_round_trip() -> None:
    result = DelegateResult("ok", placement=[NodePlacement(0, 1, "SIGN", "t2", "fallback")],
                            placement_note="n")
    again = DelegateResult.from_json(result.to_json())
    assert again.placement == result.placement and again.placement_note == "n"
    assert DelegateResult.from_json({"status": "ok"}).placement is None
