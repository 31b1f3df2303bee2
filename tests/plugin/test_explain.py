"""A regression explained end to end: the base branch saves a baseline, the head's one-layer
change reaches the PR comment, the JSON, the HTML and the terminal as a graph diff naming the
layer and the buffer that grew. Ready .tflite files: the inner sessions never import TensorFlow."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.gate import gate

BUDGET = """
    [defaults.runtime]
    delegates = ["xnnpack"]
    warmup = { min_runs = 1, min_seconds = 0 }
    timing = { min_runs = 3, min_seconds = 0 }

    [variants.float32]
    size = { max = "1 MiB" }

    [regression]
    size = "1%"
"""


def base_saved(project: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The gate with dense16 saved as the baseline in ``base``; UNITS left at 64 (the head)."""
    p = gate(project, {"mlp": BUDGET})
    monkeypatch.setenv("UNITS", "16")
    p.runpytest("-p", "no:randomly", "--tflite-baseline-save=base").assert_outcomes(passed=1)
    monkeypatch.setenv("UNITS", "64")
    return p


def test_a_one_layer_change_names_the_layer_and_the_buffer_that_grew(
        project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    p = base_saved(project, monkeypatch)
    result = p.runpytest("-p", "no:randomly", "--tflite-baseline=base", "--tflite-report=r.json",
                         "--tflite-markdown=comment.md", "--tflite-html=r.html")
    result.assert_outcomes(failed=1)
    (entry,) = json.loads((p.path / "r.json").read_text())["entries"]
    diff = entry["graph_diff"]
    # dense_model(units): kernel units×8 float32, bias units float32; nothing else changed.
    assert diff["ops"] == [] and diff["added"] == [] and diff["removed"] == []
    kernel, bias = diff["buffers"]
    assert (kernel["tensor"], kernel["base_bytes"], kernel["head_bytes"]) == \
        ("dense/kernel", 16 * 8 * 4, 64 * 8 * 4)
    assert (bias["tensor"], bias["base_bytes"], bias["head_bytes"]) == \
        ("dense/bias", 16 * 4, 64 * 4)
    assert {t["name"] for t in diff["tensors"]} >= {"dense/kernel", "dense/bias", "output"}

    comment = (p.path / "comment.md").read_text()
    summary = next(line for line in comment.splitlines() if "Graph changes" in line)
    assert summary.startswith("<details><summary>") and "dense/kernel 16×8 → 64×8" in summary
    # The size row names the buffers that grew most, largest first: +1.5 KiB, then +192 B.
    size_row = next(line for line in comment.splitlines() if "| file size |" in line)
    assert "grew most: dense/kernel +1.5 KiB, dense/bias +192 B" in size_row
    assert "dense/kernel 16×8 → 64×8" in (p.path / "r.html").read_text()
    result.stdout.fnmatch_lines(["graph mlp ?float32?: dense/kernel 16×8 -> 64×8 (+1.5 KiB float32)*"])


def test_the_same_model_has_an_empty_graph_diff_and_no_section(
        project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    p = base_saved(project, monkeypatch)
    monkeypatch.setenv("UNITS", "16")  # the head is the base's model
    result = p.runpytest("-p", "no:randomly", "--tflite-baseline=base", "--tflite-report=r.json",
                         "--tflite-markdown=comment.md")
    result.assert_outcomes(passed=1)
    (entry,) = json.loads((p.path / "r.json").read_text())["entries"]
    assert entry["graph_diff"]["ops"] == [] and entry["graph_diff"]["buffers"] == []
    assert entry["graph_diff"]["tensors"] == []
    assert "Graph changes" not in (p.path / "comment.md").read_text()


def test_node_data_and_the_graph_diff_change_no_verdict(project: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The same head judged with and without --tflite-node-data: the same checks, the same
    verdicts, the same figures for everything static."""
    p = base_saved(project, monkeypatch)
    plain = p.runpytest("-p", "no:randomly", "--tflite-baseline=base", "--tflite-report=a.json")
    explained = p.runpytest("-p", "no:randomly", "--tflite-baseline=base", "--tflite-report=b.json",
                            "--tflite-node-data=nodes")
    plain.assert_outcomes(failed=1)
    explained.assert_outcomes(failed=1)

    def judged(name: str) -> list[tuple[Any, ...]]:
        (entry,) = json.loads((p.path / name).read_text())["entries"]
        return [(c["metric"], c["verdict"], c["budget"], c["measured"], c["baseline"])
                for c in entry["checks"]]

    assert judged("a.json") == judged("b.json")
    folder = p.path / "nodes" / "mlp" / "float32"
    assert (folder / "model.tflite").read_bytes() == (p.path / "dense64.tflite").read_bytes()
    # The one FULLY_CONNECTED (float32) is XNNPACK's: code 0, node "0" of the unnamed graph.
    placement = json.loads((folder / "placement.xnnpack.json").read_text())
    assert placement["main"]["results"] == {"0": {"value": 0, "bgColor": "#1b9e77"}}
    readme = (p.path / "nodes" / "README.md").read_text()
    assert "`cd mlp/float32 && model-explorer model.tflite --node_data_paths=" \
           "placement.xnnpack.json`" in readme
    assert "not written, error.json: no evaluation data" in readme
