"""How a graph diff and the per-op error read: the cause first, in its own units; what every
retraining moves (scales) in one line; noise left out."""

from __future__ import annotations

from pytest_tflite.nodes import ErrorChange, GraphDiff, LayerError, NodeRef, TensorChange
from pytest_tflite.reports.explain import node_error_text, worst_nodes
from pytest_tflite.reports.graph_text import diff_lines, short_name
from tests.helpers.entries import entry


def _change(name: str, base: str, head: str, changed: list[str],
            base_bytes: int | None = None, head_bytes: int | None = None) -> TensorChange:
    """A change as graph_diff writes it: the dtypes and shapes are those its descriptions
    start with (``int8 64×512, …``)."""
    (base_dtype, base_shape), (head_dtype, head_shape) = (
        (d.split(",")[0].split(" ")[0], [int(n) for n in d.split(",")[0].split(" ")[1].split("×")])
        for d in (base, head))
    return TensorChange(name, base, head, changed, base_bytes, head_bytes, base_dtype,
                        head_dtype, base_shape, head_shape)


def test_a_resized_layer_leads_and_the_requantized_tensors_share_one_line() -> None:
    # What a widened Dense 64 -> 96 gives after int8 conversion (seen on the example project):
    # its kernel and bias resized with their per-channel scales, the activation resized, and
    # every other tensor's scale moved by the new calibration.
    diff = GraphDiff(tensors=[
        _change("seq/dense_1/Relu;seq/dense_1/BiasAdd", "int32 64, per-channel (64 scales)",
                "int32 96, per-channel (96 scales)", ["shape", "quantization"], 256, 384),
        _change("seq/dense_1/MatMul", "int8 64×512, per-channel (64 scales)",
                "int8 96×512, per-channel (96 scales)", ["shape", "quantization"], 32768, 49152),
        _change("seq/conv/Conv2D", "int8 16×3×3×1, per-channel (16 scales, axis 0, 0.001–0.002)",
                "int8 16×3×3×1, per-channel (16 scales, axis 0, 0.0011–0.0021)",
                ["quantization"], 144, 144),
        _change("seq/conv/Relu;seq/conv/BiasAdd", "int8 1×6×6×16, scale 0.0053, zero point -128",
                "int8 1×6×6×16, scale 0.0051, zero point -128", ["quantization"]),
        _change("seq/flatten/Reshape", "int8 1×512, scale 0.0053, zero point -128",
                "int8 1×512, scale 0.0051, zero point -128", ["quantization"]),
    ])
    assert diff_lines(diff) == [
        "seq/dense_1/MatMul 64×512 → 96×512 (+16.0 KiB int8)",  # the most bytes first
        "seq/dense_1/Relu;… 64 → 96 (+128 B int32)",
        "requantized (scale or zero point moved): seq/conv/Conv2D, seq/conv/Relu;… and 1 more",
    ]


def test_a_type_change_reads_as_types_and_shapes() -> None:
    diff = GraphDiff(tensors=[_change("w", "float32 8×8", "int8 8×8, scale 0.1, zero point 0",
                                      ["type", "quantization"], 256, 64)])
    assert diff_lines(diff) == ["w float32 8×8 → int8 8×8"]


def test_fused_names_are_cut_at_their_first_part_and_stay_printable() -> None:
    assert short_name("a/Relu;a/BiasAdd;a/MatMul") == "a/Relu;…"
    assert short_name("plain/name") == "plain/name"
    assert short_name("evil\x1b[31m;x") == "evil\\x1b[31m;…"


def _layers(*added: float) -> list[LayerError]:
    return [LayerError(f"t{i}", 0, i, "FULLY_CONNECTED", 0.0, 0.0, 1.0, 0.0, value, value)
            for i, value in enumerate(added)]


def test_without_a_base_the_worst_nodes_are_the_largest_errors_and_zeros_are_left_out() -> None:
    e = entry()
    e.measurement.subgraphs = [{"index": 0, "name": "", "operators": 4, "tensors": 8,
                                "planned_arena_bytes": 0}]
    e.measurement.layers = _layers(0.02, 0.0, 0.31, 0.0004)
    rows = worst_nodes(e)
    assert [(r.tensor, r.node) for r in rows] == [("t2", "main/2"), ("t0", "main/0")]
    assert node_error_text(rows[0]) == "31.0%"


def test_against_a_base_only_the_nodes_whose_error_grew_are_listed_by_growth() -> None:
    e = entry()
    e.measurement.subgraphs = [{"index": 0, "name": "serving", "operators": 3, "tensors": 6,
                                "planned_arena_bytes": 0}]
    e.measurement.layers = _layers(0.05, 0.30, 0.10)
    ref = NodeRef("serving", "0", "FULLY_CONNECTED", "t0")
    e.graph_diff = GraphDiff(errors=[
        ErrorChange(NodeRef("serving", "1", "FULLY_CONNECTED", "t1"), "t1", 0.29, 0.30),
        ErrorChange(ref, "t0", 0.01, 0.05),
        ErrorChange(NodeRef("serving", "2", "FULLY_CONNECTED", "t2"), "t2", 0.20, 0.10)])
    rows = worst_nodes(e)
    # t0 grew by 4 points, t1 by 1; t2 fell and is no news.
    assert [(r.tensor, r.node) for r in rows] == [("t0", "serving/0"), ("t1", "serving/1")]
    assert node_error_text(rows[0]) == "+4.0% (1.0% → 5.0%)"
