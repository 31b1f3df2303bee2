"""The quantization error per operator (measure/layers.py): each compared tensor attributed to
the operator producing it, and the error that operator adds to the worst of the activations it
reads. A layer broken on purpose must come first; the arithmetic is checked on a hand-built
graph whose figures are chosen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite.flatbuffer import FlatbufferView
from pytest_tflite.measure.layers import attributed
from pytest_tflite.nodes import LayerError
from pytest_tflite.reports.tables import layer_table
from tests.helpers.models import Op, Subgraph, Tensor, build_model


def row(tensor: str, relative: float | None) -> dict[str, Any]:
    return {"tensor": tensor, "rmse": 1.0, "max_abs_error": 2.0, "scale": 0.5,
            "rmse_over_scale": 2.0, "relative_rmse": relative}


def test_added_is_the_own_error_minus_the_worst_activation_read() -> None:
    # x, w (constant) -> FULLY_CONNECTED -> a -> RELU -> b; ADD(a, b) -> c; u -> TANH -> d.
    view = FlatbufferView(build_model([Subgraph(
        [Tensor("x", [1, 4]), Tensor("w", [4, 4], data=np.eye(4)), Tensor("a", [1, 4]),
         Tensor("b", [1, 4]), Tensor("c", [1, 4]), Tensor("u", [1, 4]), Tensor("d", [1, 4])],
        [Op("FULLY_CONNECTED", [0, 1], [2]), Op("RELU", [2], [3]), Op("ADD", [2, 3], [4]),
         Op("TANH", [5], [6])],
        inputs=[0, 5], outputs=[4, 6])]))
    rows = [row("x", 0.01), row("w", 0.5), row("a", 0.03), row("b", 0.025), row("c", 0.10),
            row("d", None), row("elsewhere", 0.9)]
    found = attributed(rows, view)
    # c reads a (0.03) and b (0.025); a reads x (0.01) and the constant w, whose error is a's
    # own; b only passes a's on (floored at 0); d's reference is all zeros; x and w are
    # produced by no op, and "elsewhere" is no tensor of the model: none of them is returned.
    assert [(e.tensor, e.index, e.op) for e in found] == [
        ("c", 2, "ADD"), ("a", 0, "FULLY_CONNECTED"), ("b", 1, "RELU"), ("d", 3, "TANH")]
    assert [e.added for e in found[:3]] == [pytest.approx(0.07), pytest.approx(0.02), 0.0]
    assert found[3].added is None and found[3].relative_rmse is None
    assert {e.subgraph for e in found} == {0}


def _fully_connected_ops(content: bytes) -> list[tuple[int, str]]:
    """(operator index, first output's name) of subgraph 0's FULLY_CONNECTED operators, read
    with LiteRT's schema rather than the package's view."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)
    graph = model.Subgraphs(0)
    found = []
    for index in range(graph.OperatorsLength()):
        operator = graph.Operators(index)
        code = model.OperatorCodes(operator.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == \
                schema.BuiltinOperator.FULLY_CONNECTED:
            found.append((index, graph.Tensors(operator.Outputs(0)).Name().decode()))
    return found


def test_the_layer_broken_on_purpose_adds_the_most_error(tmp_path: Path) -> None:
    import keras

    from pytest_tflite import convert
    from pytest_tflite.measure.layers import layer_errors

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8,)), keras.layers.Dense(32, activation="relu", name="first"),
        keras.layers.Dense(32, activation="relu", name="middle"),
        keras.layers.Dense(4, name="last")], name="mlp")
    samples = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    reference = convert(model, "float32", output_dir=tmp_path / "float")
    # The candidate's middle layer computes 4x what the reference's does (ReLU keeps the
    # factor): its own error is ~3 (relative), and the last layer only inherits it.
    kernel, bias = model.get_layer("middle").get_weights()
    model.get_layer("middle").set_weights([kernel * 4, bias])
    candidate = convert(model, "int8", representative_data=samples, output_dir=tmp_path / "int8")

    fully_connected = _fully_connected_ops(candidate.content)
    assert len(fully_connected) == 3
    middle_index, middle_output = fully_connected[1]
    assert "middle" in middle_output

    found = layer_errors(candidate, reference.path, [samples])
    assert all(isinstance(e, LayerError) for e in found)
    worst = max(found, key=lambda e: e.added or 0.0)
    assert (worst.index, worst.op, worst.tensor) == (middle_index, "FULLY_CONNECTED",
                                                     middle_output)
    assert found[0] == worst  # sorted by added, most first
    assert worst.relative_rmse is not None and 2.5 < worst.relative_rmse < 3.5
    assert worst.added is not None and worst.added > 2.5
    assert all((e.added or 0.0) < worst.added / 10 for e in found[1:])
    # The last layer's output error is as large, but inherited, not added.
    last = next(e for e in found if e.index == fully_connected[2][0])
    assert last.relative_rmse is not None and last.relative_rmse > 2.5

    table = "\n".join(layer_table(found))
    assert table.splitlines()[0].split()[:3] == ["op", "tensor", "added"]
    assert f"{middle_index} FULLY_CONNECTED" in table.splitlines()[2]

    # End to end: the engine measures it for --tflite-node-data (no check failed), and the
    # error overlay Model Explorer loads has its largest value on the broken node.
    from pytest_tflite import engine
    from pytest_tflite.budget import load
    from pytest_tflite.reports.node_data import overlays

    budget_file = tmp_path / "mlp.toml"
    budget_file.write_text('[variants.int8]\nsize = { max = "1 MiB" }\n')
    entry = engine.run(candidate, load(budget_file), "int8",
                       engine.Settings(runtime_off="not needed here", node_data=True),
                       evaluation=engine.Evaluation(samples, reference.path))
    assert entry.verdict == "pass" and entry.measurement.layers is not None
    results = overlays(entry).files["error.json"]["main"]["results"]
    assert max(results, key=lambda node: results[node]["value"]) == str(middle_index)
    assert results[str(middle_index)]["value"] == pytest.approx(worst.added)
