"""The graph diff, base vs head, on models built by hand (no TensorFlow): every expected value
below follows from the shapes and types the test writes, e.g. an int8 kernel widened from 64×64
to 64×96 stores 64 * 32 = 2048 more bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from pytest_tflite.errors import ModelError
from pytest_tflite.flatbuffer import FlatbufferView
from pytest_tflite.graph_diff import (
    against_baseline,
    diff,
    error_changes,
    placement_moves,
    structural_diff,
)
from pytest_tflite.nodes import (
    BufferGrowth,
    ErrorChange,
    GraphDiff,
    LayerError,
    NodePlacement,
    NodeRef,
    OpCount,
    PlacementMove,
    TensorChange,
)
from pytest_tflite.reports.graph_text import diff_lines, grown_buffers, note_lines
from pytest_tflite.results import DelegateResult, Measurement
from tests.helpers.models import Op, Subgraph, Tensor, build_model

INPUTS = 16


def _dense(name: str, inputs: int, units: int, source: int) -> tuple[list[Tensor], Op]:
    """An int8 FULLY_CONNECTED reading tensor ``source``: its kernel, bias and output tensors,
    to be placed at indices source+1.. by the caller."""
    tensors = [
        Tensor(f"{name}/kernel", [units, inputs], "int8", data=np.ones((units, inputs)),
               scale=0.02, zero_point=0),
        Tensor(f"{name}/bias", [units], "int32", data=np.zeros(units), scale=0.0002,
               zero_point=0),
        Tensor(f"{name}/MatMul", [1, units], "int8", scale=0.1, zero_point=0),
    ]
    return tensors, Op("FULLY_CONNECTED", [source, source + 1, source + 2], [source + 3])


def _mlp(layers: list[tuple[str, int]]) -> FlatbufferView:
    """``input [1, 16]`` through one int8 dense layer per (name, units), then SOFTMAX."""
    tensors = [Tensor("input", [1, INPUTS], "int8", scale=0.1, zero_point=0)]
    ops = []
    width = INPUTS
    for name, units in layers:
        new, op = _dense(name, width, units, len(tensors) - 1)
        tensors += new
        ops.append(op)
        width = units
    tensors.append(Tensor("probs", [1, width], "int8", scale=1 / 256, zero_point=-128))
    ops.append(Op("SOFTMAX", [len(tensors) - 2], [len(tensors) - 1]))
    content = build_model([Subgraph(tensors, ops, inputs=[0], outputs=[len(tensors) - 1])])
    return FlatbufferView(content, origin="test")


def _requantize(view: FlatbufferView, tensor: str, scales: list[float], axis: int = 0
                ) -> FlatbufferView:
    """``view`` with ``tensor`` given one scale per entry of ``scales`` along ``axis``."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(view.content), 0)
    for found in model.subgraphs[0].tensors:
        if found.name.decode() == tensor:
            found.quantization.scale = list(scales)
            found.quantization.zeroPoint = [0] * len(scales)
            found.quantization.quantizedDimension = axis
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return FlatbufferView(bytes(builder.Output()), origin="requantized")


# ---------------------------------------------------------------- structure


def test_a_widened_layer_is_a_shape_change_and_grown_constants() -> None:
    base = _mlp([("dense_0", 64), ("dense_1", 64)])
    head = _mlp([("dense_0", 96), ("dense_1", 64)])  # dense_1 now reads 96 inputs
    result = structural_diff(base, head)

    assert result.ops == []
    assert result.added == [] and result.removed == []
    kernel = TensorChange("dense_1/kernel", "int8 64×64, scale 0.02, zero point 0",
                          "int8 64×96, scale 0.02, zero point 0", ["shape"], 4096, 6144,
                          "int8", "int8", [64, 64], [64, 96])
    assert kernel in result.tensors
    assert {c.name for c in result.tensors} == {"dense_0/kernel", "dense_0/bias",
                                                "dense_0/MatMul", "dense_1/kernel"}
    activation = next(c for c in result.tensors if c.name == "dense_0/MatMul")
    assert (activation.base_bytes, activation.head_bytes) == (None, None)
    # int8 64×96 - 64×64 = 2048 bytes; dense_0's kernel 32 more rows of 16 int8; its bias 32
    # more int32.
    assert result.buffers == [
        BufferGrowth("dense_1/kernel", "int8", [64, 64], [64, 96], 4096, 6144),
        BufferGrowth("dense_0/kernel", "int8", [64, 16], [96, 16], 1024, 1536),
        BufferGrowth("dense_0/bias", "int32", [64], [96], 256, 384),
    ]
    assert result.omitted == {} and result.notes == []


def test_an_inserted_layer_is_one_added_node_and_the_shifted_ones_stay_matched() -> None:
    base = _mlp([("dense_0", 64), ("dense_1", 64)])
    head = _mlp([("dense_0", 64), ("inserted", 64), ("dense_1", 64)])
    result = structural_diff(base, head)

    assert result.ops == [OpCount("FULLY_CONNECTED", 2, 3)]
    # dense_1 moved from index 1 to 2 and SOFTMAX from 2 to 3: the same nodes, not reported.
    assert result.added == [NodeRef("main", "1", "FULLY_CONNECTED", "inserted/MatMul")]
    assert result.removed == []
    assert result.tensors == []  # dense_1 still reads 64 inputs
    assert result.buffers == [
        BufferGrowth("inserted/kernel", "int8", None, [64, 64], 0, 4096),
        BufferGrowth("inserted/bias", "int32", None, [64], 0, 256),
    ]


def test_a_removed_layer_names_the_base_node() -> None:
    base = _mlp([("dense_0", 64), ("inserted", 64), ("dense_1", 64)])
    head = _mlp([("dense_0", 64), ("dense_1", 64)])
    result = structural_diff(base, head)

    assert result.ops == [OpCount("FULLY_CONNECTED", 3, 2)]
    assert result.removed == [NodeRef("main", "1", "FULLY_CONNECTED", "inserted/MatMul")]
    assert result.added == [] and result.buffers == []


def test_a_node_whose_first_output_was_renamed_matches_by_another_output() -> None:
    def split(first: str) -> FlatbufferView:
        tensors = [Tensor("x", [6]), Tensor(first, [3]), Tensor("right", [3])]
        ops = [Op("SPLIT", [0], [1, 2])]
        return FlatbufferView(build_model([Subgraph(tensors, ops, [0], [1, 2])]))

    assert structural_diff(split("left"), split("left_renamed")).added == []


def test_a_tensor_written_by_another_op_is_a_node_removed_and_one_added() -> None:
    def activation(op: str) -> FlatbufferView:
        tensors = [Tensor("x", [4]), Tensor("act", [4])]
        return FlatbufferView(build_model([Subgraph(tensors, [Op(op, [0], [1])], [0], [1])]))

    result = structural_diff(activation("RELU"), activation("TANH"))
    assert result.ops == [OpCount("RELU", 1, 0), OpCount("TANH", 0, 1)]
    assert result.removed == [NodeRef("main", "0", "RELU", "act")]
    assert result.added == [NodeRef("main", "0", "TANH", "act")]


def test_per_tensor_to_per_channel_is_a_quantization_change() -> None:
    base = _mlp([("dense_0", 64), ("dense_1", 64)])
    head = _requantize(base, "dense_1/kernel", [0.01 * (1 + i / 64) for i in range(64)])
    result = structural_diff(base, head)

    assert result.tensors == [TensorChange(
        "dense_1/kernel", "int8 64×64, scale 0.02, zero point 0",
        "int8 64×64, per-channel (64 scales)", ["quantization"], 4096, 4096, "int8", "int8",
        [64, 64], [64, 64])]
    assert result.buffers == [] and result.ops == []


def test_a_scale_change_and_an_axis_change_are_quantization_changes() -> None:
    base = _mlp([("dense_0", 64), ("dense_1", 64)])
    scaled = structural_diff(base, _requantize(base, "dense_1/kernel", [0.025]))
    assert [(c.name, c.changed, c.head) for c in scaled.tensors] == [
        ("dense_1/kernel", ["quantization"], "int8 64×64, scale 0.025, zero point 0")]

    scales = [0.01 * (1 + i / 64) for i in range(64)]
    rows = _requantize(base, "dense_1/kernel", scales, axis=0)
    columns = _requantize(base, "dense_1/kernel", scales, axis=1)
    moved = structural_diff(rows, columns).tensors
    assert [(c.name, c.changed) for c in moved] == [("dense_1/kernel", ["quantization"])]
    # Both read "per-channel (64 scales)" short: the details say what differs.
    assert "axis 0" in moved[0].base and "axis 1" in moved[0].head


def test_a_model_whose_data_cannot_be_read_leaves_a_note() -> None:
    base, head = _mlp([("dense_0", 64)]), _mlp([("dense_0", 96)])

    def unreadable(subgraph: int, tensor: int) -> memoryview | None:
        raise ModelError("base.tflite: corrupt TFLite model: buffer 1 ends at byte 9999")

    base.tensor_data = unreadable  # type: ignore[method-assign]
    assert diff(base, head).notes == [
        "the graphs were not compared: base.tflite: corrupt TFLite model: buffer 1 ends at "
        "byte 9999"]


def test_long_lists_are_capped_and_counted() -> None:
    def chain(names: list[str]) -> FlatbufferView:
        tensors = [Tensor(name, [4]) for name in names]
        ops = [Op("RELU", [i], [i + 1]) for i in range(len(names) - 1)]
        return FlatbufferView(build_model([Subgraph(tensors, ops, [0], [len(names) - 1])]))

    base = chain(["x", "out"])
    head = chain(["x", *(f"relu_{i}" for i in range(60)), "out"])
    result = structural_diff(base, head)
    assert len(result.added) == 50 and result.omitted == {"added": 10}
    assert result.ops == [OpCount("RELU", 1, 61)]


# ---------------------------------------------------------------- from the measurements


def _measured(placements: dict[str, list[NodePlacement] | None],
              layers: list[LayerError] | None = None) -> Measurement:
    return Measurement(size_bytes=1, gzip_bytes=1, ops={}, subgraphs=[], planned_arena_bytes=0,
                       inputs=[], outputs=[], sparsity=0.0, sparsity_layers=[],
                       delegates={name: DelegateResult("ok", placement=placed)
                                  for name, placed in placements.items()},
                       layers=layers)


def test_placement_moves_are_matched_by_output_and_fallback_comes_first() -> None:
    base = _measured({"xnnpack": [
        NodePlacement(0, 0, "CONV_2D", "conv", "delegate"),
        NodePlacement(0, 1, "MEAN", "mean", "delegate"),
        NodePlacement(0, 2, "CUSTOM:Foo", "foo", "custom"),
        NodePlacement(0, 3, "SOFTMAX", "probs", "fallback"),
    ]})
    head = _measured({"xnnpack": [
        NodePlacement(0, 0, "CONV_2D", "conv", "delegate"),
        NodePlacement(0, 1, "RELU", "relu", "delegate"),  # inserted: indices after it shift
        NodePlacement(0, 2, "SOFTMAX", "probs", "delegate"),
        NodePlacement(0, 3, "MEAN", "mean", "fallback"),
    ]})
    assert placement_moves(base, head) == [
        PlacementMove("xnnpack", NodeRef("main", "3", "MEAN", "mean"), "delegate", "fallback"),
        PlacementMove("xnnpack", NodeRef("main", "2", "SOFTMAX", "probs"), "fallback",
                      "delegate"),
    ]


def test_placement_missing_from_an_older_baseline_is_a_note() -> None:
    view = _mlp([("dense_0", 64)])
    base = _measured({"xnnpack": None})
    head = _measured({"xnnpack": [NodePlacement(0, 0, "FULLY_CONNECTED", "dense_0/MatMul",
                                                "delegate")]})
    result = diff(view, view, base, head)
    assert result.empty and result.placement == []
    assert result.notes == ["xnnpack: placement not compared: none in the baseline (a "
                            "baseline saved before placement was recorded)"]


def test_error_missing_from_the_baseline_is_a_note_naming_why() -> None:
    view = _mlp([("dense_0", 64)])
    base = _measured({})
    base.layers_note = "no evaluation data: pass eval_data= and reference="
    head = _measured({}, layers=[_layer("dense_0/MatMul", 0, 0.02)])
    result = diff(view, view, base, head)
    assert result.errors == []
    assert result.notes == ["quantization error per node not compared: none in the baseline "
                            "(no evaluation data: pass eval_data= and reference=)"]
    assert diff_lines(result) == []  # notes are note_lines' job
    assert note_lines(GraphDiff(notes=["::warning::\x1b"])) == ["\\x3a:warning::\\x1b"]


def _layer(tensor: str, index: int, added: float | None) -> LayerError:
    return LayerError(tensor, 0, index, "FULLY_CONNECTED", rmse=0.1, max_abs_error=0.3,
                      scale=0.02, rmse_over_scale=5.0, relative_rmse=0.05, added=added)


def test_error_changes_are_matched_by_tensor_and_sorted_by_increase() -> None:
    base = [_layer("dense_0/MatMul", 0, 0.01), _layer("dense_1/MatMul", 1, 0.02),
            _layer("same/MatMul", 2, 0.03)]
    head = [_layer("dense_0/MatMul", 0, 0.015), _layer("inserted/MatMul", 1, 0.04),
            _layer("dense_1/MatMul", 2, 0.09), _layer("same/MatMul", 3, 0.03)]
    assert error_changes(base, head) == [
        ErrorChange(NodeRef("main", "2", "FULLY_CONNECTED", "dense_1/MatMul"),
                    "dense_1/MatMul", 0.02, 0.09),  # +0.07
        ErrorChange(NodeRef("main", "1", "FULLY_CONNECTED", "inserted/MatMul"),
                    "inserted/MatMul", None, 0.04),  # new: +0.04
        ErrorChange(NodeRef("main", "0", "FULLY_CONNECTED", "dense_0/MatMul"),
                    "dense_0/MatMul", 0.01, 0.015),  # +0.005
    ]


def test_diff_combines_structure_placement_and_error() -> None:
    base_view = _mlp([("dense_0", 64), ("dense_1", 64)])
    head_view = _mlp([("dense_0", 64), ("inserted", 64), ("dense_1", 64)])
    base = _measured({"xnnpack": [NodePlacement(0, 1, "FULLY_CONNECTED", "dense_1/MatMul",
                                                "delegate")]},
                     layers=[_layer("dense_1/MatMul", 1, 0.02)])
    head = _measured({"xnnpack": [NodePlacement(0, 2, "FULLY_CONNECTED", "dense_1/MatMul",
                                                "fallback")]},
                     layers=[_layer("dense_1/MatMul", 2, 0.05)])
    result = diff(base_view, head_view, base, head)
    assert result.added == [NodeRef("main", "1", "FULLY_CONNECTED", "inserted/MatMul")]
    assert [(m.node.node, m.base, m.head) for m in result.placement] == [
        ("2", "delegate", "fallback")]
    assert [(e.node.node, e.base, e.head) for e in result.errors] == [("2", 0.02, 0.05)]
    assert result.notes == []
    assert GraphDiff.from_json(result.to_json()) == result


def test_against_a_baseline_without_a_readable_model_the_measurements_still_compare(
        tmp_path: Path) -> None:
    view = _mlp([("dense_0", 64)])
    base = _measured({"xnnpack": [NodePlacement(0, 0, "FULLY_CONNECTED", "dense_0/MatMul",
                                                "delegate")]})
    head = _measured({"xnnpack": [NodePlacement(0, 0, "FULLY_CONNECTED", "dense_0/MatMul",
                                                "fallback")]})
    moved = [("0", "delegate", "fallback")]
    kept_none = against_baseline(None, base, view, head)
    assert [(m.node.node, m.base, m.head) for m in kept_none.placement] == moved
    assert kept_none.tensors == [] and kept_none.notes == [
        "the baseline keeps no .tflite of this variant: the graphs were not compared"]
    broken = tmp_path / "base.tflite"
    broken.write_bytes(b"not a model")
    unreadable = against_baseline(broken, base, view, head)
    assert [(m.node.node, m.base, m.head) for m in unreadable.placement] == moved
    assert unreadable.notes[0].startswith("the baseline's model could not be read: ")
    assert str(broken) in unreadable.notes[0]
    saved = tmp_path / "same.tflite"
    saved.write_bytes(view.content)
    assert against_baseline(saved, base, view, head).notes == []


# ---------------------------------------------------------------- as text


def test_diff_lines_of_a_widened_layer() -> None:
    result = structural_diff(_mlp([("dense_0", 64), ("dense_1", 64)]),
                             _mlp([("dense_0", 96), ("dense_1", 64)]))
    lines = diff_lines(result)
    assert "dense_1/kernel 64×64 → 64×96 (+2.0 KiB int8)" in lines
    assert "dense_0/MatMul 1×64 → 1×96" in lines
    assert grown_buffers(result) == ("dense_1/kernel +2.0 KiB, dense_0/kernel +512 B, "
                                     "dense_0/bias +128 B")


def test_diff_lines_of_an_inserted_layer_and_a_move() -> None:
    result = structural_diff(_mlp([("dense_0", 64), ("dense_1", 64)]),
                             _mlp([("dense_0", 64), ("inserted", 64), ("dense_1", 64)]))
    result.placement = [PlacementMove("xnnpack", NodeRef("main", "7", "MEAN", "mean"),
                                      "delegate", "fallback")]
    assert diff_lines(result) == [
        "FULLY_CONNECTED 2 → 3",
        "added: FULLY_CONNECTED inserted/MatMul (main/1)",
        "xnnpack: MEAN (main/7) delegate → fallback",
        "new constant: inserted/kernel int8 64×64 (+4.0 KiB)",
        "new constant: inserted/bias int32 64 (+256 B)",
    ]
    assert grown_buffers(result, n=1) == "inserted/kernel +4.0 KiB (new)"
    assert diff_lines(result, limit=3) == [
        "FULLY_CONNECTED 2 → 3", "added: FULLY_CONNECTED inserted/MatMul (main/1)",
        "… and 3 more"]


def test_diff_lines_of_error_growth_and_what_the_caps_cut() -> None:
    result = GraphDiff(errors=[
        ErrorChange(NodeRef("main", "2", "FULLY_CONNECTED", "d1"), "d1", 0.02, 0.09),
        ErrorChange(NodeRef("main", "1", "FULLY_CONNECTED", "new"), "new", None, 0.04),
        ErrorChange(NodeRef("main", "0", "FULLY_CONNECTED", "d0"), "d0", 0.05, 0.01),  # fell
    ], omitted={"errors": 7})
    assert diff_lines(result) == [
        "d1 (main/2): quantization error added 2.0% → 9.0%",
        "new (main/1): quantization error added 4.0% (new)",
        "… and 7 more",
    ]


def test_names_with_control_characters_print_escaped() -> None:
    result = GraphDiff(added=[NodeRef("main", "0", "RELU", "::warning::x\x1b[31m")])
    assert diff_lines(result) == ["added: RELU ::warning::x\\x1b[31m (main/0)"]
    result = GraphDiff(buffers=[BufferGrowth("::error::k\n", "int8", None, [4], 0, 4)])
    assert grown_buffers(result) == "\\x3a:error::k\\n +4 B (new)"
