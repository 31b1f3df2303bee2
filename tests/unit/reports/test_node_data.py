"""Model Explorer node data: the documents ``overlays`` writes (values, colours, reasons), the
folder ``write_node_data`` leaves, and, with the ``explorer`` extra, every key they use checked
against the graphs Model Explorer's own adapter makes of the same file."""

from __future__ import annotations

import json

import pytest

from pytest_tflite.files import path_part
from pytest_tflite.nodes import ErrorChange, GraphDiff, NodeRef, PlacementMove, graph_ids
from pytest_tflite.reports.node_data import PLACED_CODES, PLACED_COLOURS, overlays, write_node_data
from pytest_tflite.results import DelegateResult
from tests.helpers.models import Op, Subgraph, Tensor, build_model, chain_model
from tests.helpers.node_entries import adapter_graphs, need_explorer, node_entry

LOOP = {"cond_subgraph_index": 1, "body_subgraph_index": 2}


def while_model(names: tuple[str, str, str], body_ops: int = 2) -> bytes:
    """``count, x = WHILE(count, x)``: cond ``count < 3`` (LESS), body ``count + 1`` (ADD) and
    ``body_ops - 1`` RELUs over x; the three subgraphs named ``names`` ("" leaves one unnamed)."""
    main = Subgraph([Tensor("count", [1]), Tensor("x", [4]), Tensor("count_out", [1]),
                     Tensor("x_out", [4])],
                    [Op("WHILE", [0, 1], [2, 3], options=LOOP)], inputs=[0, 1], outputs=[2, 3],
                    name=names[0])
    cond = Subgraph([Tensor("count", [1]), Tensor("x", [4]), Tensor("limit", [1], data=[3.0]),
                     Tensor("less", [1], dtype="bool")],
                    [Op("LESS", [0, 2], [3])], inputs=[0, 1], outputs=[3], name=names[1])
    relus = body_ops - 1
    tensors = [Tensor("count", [1]), Tensor("x", [4]), Tensor("one", [1], data=[1.0]),
               Tensor("count_next", [1]), *(Tensor(f"x{i + 1}", [4]) for i in range(relus))]
    ops = [Op("ADD", [0, 2], [3]),
           *(Op("RELU", [1 if i == 0 else 3 + i], [4 + i]) for i in range(relus))]
    body = Subgraph(tensors, ops, inputs=[0, 1], outputs=[3, 3 + relus], name=names[2])
    return build_model([main, cond, body])


def test_graph_ids_follow_the_adapter_and_the_viewers_renaming():
    assert graph_ids(["", "", ""]) == ["main", "subgraph_1", "subgraph_2"]
    assert graph_ids(["encoder", "", "decoder"]) == ["encoder", "subgraph_1", "decoder"]
    # An unnamed subgraph 2 beside one named "subgraph_2": the viewer renames the second.
    assert graph_ids(["", "subgraph_2", ""]) == ["main", "subgraph_2", "subgraph_2 (2)"]
    assert graph_ids(["a", "a", "a"]) == ["a", "a (2)", "a (3)"]


def test_placement_is_a_code_and_a_colour_per_operator(tmp_path):
    path = tmp_path / "chain.tflite"
    path.write_bytes(chain_model([4, 4, 4, 4]))  # three RELUs
    found = overlays(node_entry(path))
    results = found.files["placement.xnnpack.json"]["main"]["results"]
    assert results == {"0": {"value": 0, "bgColor": "#1b9e77"},
                       "1": {"value": 1, "bgColor": "#d95f02"},
                       "2": {"value": 2, "bgColor": "#7570b3"}}
    thresholds = found.files["placement.xnnpack.json"]["main"]["thresholds"]
    assert [(t["value"], t["bgColor"]) for t in thresholds] == [
        (PLACED_CODES[p], PLACED_COLOURS[p]) for p in ("delegate", "fallback", "custom")]


def test_error_is_the_added_error_on_a_white_to_red_gradient(tmp_path):
    path = tmp_path / "chain.tflite"
    path.write_bytes(chain_model([4, 4, 4]))
    document = overlays(node_entry(path)).files["error.json"]["main"]
    assert {k: v["value"] for k, v in document["results"].items()} == {"0": 0.01, "1": 0.02}
    assert [g["stop"] for g in document["gradient"]] == [0, 1]


def test_the_diffs_colour_what_changed_only(tmp_path):
    path = tmp_path / "chain.tflite"
    path.write_bytes(chain_model([4, 4, 4, 4]))
    entry = node_entry(path)
    ref = NodeRef("main", "1", "RELU", "x2")
    entry.graph_diff = GraphDiff(
        placement=[PlacementMove("xnnpack", ref, "delegate", "fallback")],
        errors=[ErrorChange(ref, "x2", 0.25, 0.75), ErrorChange(NodeRef("main", "2", "RELU", "x3"),
                                                                "x3", 0.5, 0.125)],
        omitted={"errors": 7})
    found = overlays(entry)
    assert found.files["placement-diff.xnnpack.json"]["main"]["results"] == {
        "1": {"value": 1, "bgColor": "#d95f02"}}
    errors = found.files["error-diff.json"]["main"]["results"]
    assert errors == {"1": {"value": 0.5, "bgColor": "#d73027"},
                      "2": {"value": -0.375, "bgColor": "#1a9850"}}
    assert found.notes == ["7 more errors changes than the graph diff keeps (2) are not coloured"]


def test_what_was_not_measured_is_skipped_with_its_reason(tmp_path):
    path = tmp_path / "chain.tflite"
    path.write_bytes(chain_model([4, 4]))
    entry = node_entry(path)
    entry.measurement.layers = None
    entry.measurement.layers_note = "no evaluation data"
    entry.measurement.delegates["gpu"] = DelegateResult("unavailable", reason="no GPU here")
    entry.graph_diff = None
    found = overlays(entry)
    assert set(found.files) == {"placement.xnnpack.json"}
    assert found.skipped == {"error.json": "no evaluation data",
                             "placement.gpu.json": "no GPU here",
                             "error-diff.json": "no baseline to compare with (--tflite-baseline)",
                             "placement-diff.json": "no baseline to compare with "
                                                    "(--tflite-baseline)"}


def test_the_folder_holds_the_model_its_overlays_and_the_commands(tmp_path):
    path = tmp_path / "chain.tflite"
    path.write_bytes(chain_model([4, 4, 4]))
    hostile = node_entry(path, model="../../etc/x; rm -rf ~", variant="$(touch pwned)")
    plain = node_entry(path, model="digits", variant="int8")
    twin = node_entry(path, model="digits", variant="int8")  # a second test of the same variant
    twin.model_path = ""
    out = tmp_path / "node-data"
    stale = out / "digits" / "int8-2" / "model.tflite"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier run's model")
    written = write_node_data(out, [hostile, plain, twin])
    folder = out / path_part(hostile.model) / path_part(hostile.variant)
    assert folder.parent.parent == out and folder.name == "__touch_pwned_"
    assert (folder / "model.tflite").read_bytes() == path.read_bytes()
    assert json.loads((out / "digits/int8/placement.xnnpack.json").read_text()) == \
        overlays(plain).files["placement.xnnpack.json"]
    assert not stale.exists()  # the twin has no model: the earlier run's copy is gone
    assert all(p.resolve().is_relative_to(out.resolve()) for p in written)
    readme = (out / "README.md").read_text()
    names = ",".join(overlays(plain).files)
    assert f"`cd digits/int8 && model-explorer model.tflite --node_data_paths={names}`" in readme
    assert "tflite-budget explore digits/int8/model.tflite --model=digits --variant=int8" in readme
    assert "## digits/int8-2\n\nNo model file" in readme
    assert "$(" not in readme and ";" not in readme.split("## ")[1].split("\n")[0]


@pytest.mark.parametrize("names", [("", "", ""), ("main", "cond", ""), ("", "subgraph_2", ""),
                                   ("net", "loop", "loop")])
def test_every_key_names_a_node_of_the_adapters_graphs(tmp_path, names):
    """Each overlay's graph ids and node ids, against Model Explorer's own adapter: the graph
    (the adapter's id, before the viewer renames a duplicate) holds a node of that id whose
    label is the operator's name."""
    need_explorer()
    path = tmp_path / "model.tflite"
    path.write_bytes(while_model(names, body_ops=3))
    entry = node_entry(path)
    graphs = adapter_graphs(path)
    assert [g["subgraphIndex"] for g in graphs] == [0, 1, 2]
    viewer_ids = graph_ids(list(names))
    # The adapter's ids are graph_id's: the viewer's without the " (2)" of a renamed duplicate.
    assert [g["id"] for g in graphs] == [i.split(" (")[0] for i in viewer_ids]
    labels = {viewer_ids[g["subgraphIndex"]]: {n["id"]: n["label"] for n in g["nodes"]}
              for g in graphs}
    opcodes = {(p.subgraph, str(p.index)): p.op
               for p in entry.measurement.delegates["xnnpack"].placement or []}
    found = overlays(entry)
    assert set(found.files) == {"error.json", "placement.xnnpack.json", "error-diff.json",
                                "placement-diff.xnnpack.json"}
    for name, document in found.files.items():
        keys = {(graph, node) for graph, data in document.items() for node in data["results"]}
        assert len(keys) == len(opcodes), name  # every operator, once
        for graph, node in keys:
            subgraph = viewer_ids.index(graph)
            assert labels[graph][node] == opcodes[subgraph, node].lower(), (name, graph, node)
