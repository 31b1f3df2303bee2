"""runtime.batch_sizes and latency.<delegate>.per_sample: the worker resizes dimension 0 of
every input and times each batch size after the batch-1 figures; a batch the model refuses is
reported per size in the interpreter's words while the others still measure; per-sample budgets
are judged at their batch and refused at load when that batch is never measured."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite import engine
from pytest_tflite.budget import load
from pytest_tflite.errors import BudgetFileError
from pytest_tflite.model import TFLiteModel
from pytest_tflite.results import Entry
from pytest_tflite.verdicts import judge
from tests.helpers.models import Op, Subgraph, Tensor, build_model

FAST = "warmup = { min_runs = 1, min_seconds = 0 }\ntiming = { min_runs = 5, min_seconds = 0 }"
SIZES = [1, 4, 16]


def dense_model() -> bytes:
    """FULLY_CONNECTED 8 -> 4 whose batch dimension is dynamic (shape_signature [-1, 8])."""
    rng = np.random.default_rng(0)
    return build_model([Subgraph(
        tensors=[Tensor("x", [1, 8], shape_signature=[-1, 8]),
                 Tensor("w", [4, 8], data=rng.normal(size=(4, 8))),
                 Tensor("b", [4], data=np.zeros(4)),
                 Tensor("y", [1, 4], shape_signature=[-1, 4])],
        ops=[Op("FULLY_CONNECTED", [0, 1, 2], [3])], inputs=[0], outputs=[3])])


def fixed_reshape_model() -> bytes:
    """A dynamic batch on the input, then RESHAPE to a hard-coded [1, 8]: only batch 1 runs."""
    return build_model([Subgraph(
        tensors=[Tensor("x", [1, 8], shape_signature=[-1, 8]),
                 Tensor("shape", [2], dtype="int32", data=[1, 8]), Tensor("y", [1, 8])],
        ops=[Op("RESHAPE", [0, 1], [2], options={"new_shape": [1, 8]})],
        inputs=[0], outputs=[2])])


def _budget(folder: Path, text: str, name: str = "m.toml") -> Any:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return load(path)


def _run(folder: Path, content: bytes, budgets: str, name: str) -> Entry:
    path = folder / f"{name}.tflite"
    path.write_bytes(content)
    budget = _budget(folder, f"""
[defaults.runtime]
delegates = ["xnnpack", "builtin"]
batch_sizes = {json.dumps(SIZES)}
{FAST}

[variants.v]
size = {{ max = "1 MiB" }}
{budgets}
""", f"{name}.toml")
    return engine.run(TFLiteModel.from_path(path), budget, "v", engine.Settings())


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Entry:
    folder = tmp_path_factory.mktemp("dense")
    return _run(folder, dense_model(), 'latency.xnnpack.per_sample = { batch = 16, median = "10 s" }',
                "dense")


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Entry:
    folder = tmp_path_factory.mktemp("fixed")
    return _run(folder, fixed_reshape_model(),
                'latency.builtin.per_sample = { batch = 4, median = "10 s" }', "fixed")


@pytest.mark.parametrize("delegate", ["xnnpack", "builtin"])
def test_each_batch_size_runs_at_its_shape(dense: Entry, delegate: str) -> None:
    found = dense.measurement.delegates[delegate]
    assert found.status == "ok", found.reason
    assert found.latency_ms is not None  # the batch-1 figures stay as they were
    assert found.batches is not None
    assert [b.batch for b in found.batches] == SIZES
    for at in found.batches:
        assert at.status == "ok" and at.reason == "", at
        assert at.latency_ms is not None and at.latency_ms.n == 5
        assert at.latency_ms.median is not None
        assert at.per_sample_ms == at.latency_ms.median / at.batch  # exactly
        assert at.input_shapes == [[at.batch, 8]]  # what the worker really ran
    assert found.batch(16) is not None and found.batch(16).input_shapes == [[16, 8]]  # type: ignore[union-attr]


def test_batches_round_trip_through_json(dense: Entry) -> None:
    document = json.loads(json.dumps(dense.to_json()))
    batches = document["delegates"]["xnnpack"]["batches"]
    assert [set(b) >= {"batch", "status", "reason", "latency_ms", "per_sample_ms"}
            for b in batches] == [True] * len(SIZES)
    assert {"median", "p90", "p99", "min", "mean", "std", "n"} <= set(batches[0]["latency_ms"])
    again = Entry.from_json(document)
    assert again.measurement.delegates == dense.measurement.delegates


def test_a_batch_the_model_refuses_is_reported_per_size(fixed: Entry) -> None:
    for delegate, words in (("builtin", "num_input_elements != num_output_elements"),
                            ("xnnpack", "XNNPack delegate failed to reshape")):
        found = fixed.measurement.delegates[delegate]
        assert found.status == "ok" and found.latency_ms is not None  # batch 1 measures
        assert found.batches is not None
        one, *others = found.batches
        assert one.batch == 1 and one.status == "ok" and one.per_sample_ms is not None
        assert [b.batch for b in others] == [4, 16]
        for at in others:
            assert at.status == "unsupported" and at.latency_ms is None and at.per_sample_ms is None
            assert at.reason.startswith(f"cannot run at batch {at.batch}: ") and words in at.reason


def test_a_model_with_a_fixed_batch_other_than_1_is_refused_in_the_interpreters_words(
        tmp_path: Path) -> None:
    # Only a fixed batch of 1 is resized anyway (tests/unit/measure/test_batch_fixed_one.py).
    content = build_model([Subgraph([Tensor("x", [2, 8]), Tensor("y", [2, 8])],
                                    [Op("RELU", [0], [1])], inputs=[0], outputs=[1])])
    entry = _run(tmp_path, content, "", "relu")
    found = entry.measurement.delegates["builtin"]
    assert found.batches is not None
    assert [b.status for b in found.batches] == ["unsupported"] * 3  # 1 and 16 are not 2 either
    assert "only allows mutating unknown dimensions" in found.batches[1].reason


def test_a_failed_batch_makes_its_per_sample_budget_an_error(fixed: Entry) -> None:
    check, = [c for c in fixed.checks if c.metric == "latency.builtin.per_sample.median"]
    assert check.verdict == "error" and check.measured is None
    assert "cannot run at batch 4" in check.reason


def test_per_sample_budget_passes_roomy_and_fails_tight(dense: Entry, tmp_path: Path) -> None:
    at = dense.measurement.delegates["xnnpack"].batch(16)
    assert at is not None and at.per_sample_ms is not None
    verdicts = {}
    for name, factor in (("tight", 0.5), ("roomy", 2.0)):
        budget = _budget(tmp_path, f"""
            [variants.v.runtime]
            batch_sizes = [1, 16]
            [variants.v.latency.xnnpack.per_sample]
            batch = 16
            median = "{at.per_sample_ms * factor!r} ms"
        """, f"{name}.toml")
        check, = judge(dense.measurement, budget.variant("v"))
        assert check.metric == "latency.xnnpack.per_sample.median" and check.unit == "ms"
        assert check.measured == at.per_sample_ms
        verdicts[name] = check.verdict
    assert verdicts == {"tight": "fail", "roomy": "pass"}
    check, = [c for c in dense.checks if c.metric == "latency.xnnpack.per_sample.median"]
    assert check.verdict == "pass"  # the run's own budget ("10 s")


def test_per_sample_skips_like_latency_when_the_delegate_is_unavailable(dense: Entry,
                                                                        tmp_path: Path) -> None:
    import dataclasses

    from pytest_tflite.results import DelegateResult

    budget = _budget(tmp_path, """
        [defaults.runtime]
        batch_sizes = [16]
        [variants.v.latency.xnnpack.per_sample]
        batch = 16
        median = "1 s"
    """)
    gone = dataclasses.replace(dense.measurement, delegates={
        "xnnpack": DelegateResult("unavailable", "no such library")})
    check, = judge(gone, budget.variant("v"))
    assert check.verdict == "skip" and "no such library" in check.reason


@pytest.mark.parametrize(("text", "message"), [
    ("""
     [variants.v.latency.xnnpack.per_sample]
     batch = 32
     median = "0.2 ms"
     """, "variants.v.latency.xnnpack.per_sample.batch: batch 32 is never measured"),
    ("""
     [defaults.runtime]
     batch_sizes = [1, 8]
     [variants.v.latency.xnnpack.per_sample]
     batch = 32
     median = "0.2 ms"
     """, "variants.v.latency.xnnpack.per_sample.batch: batch 32 is not one of "
          "runtime.batch_sizes [1, 8]"),
    ("""
     [defaults.runtime]
     batch_sizes = [1, 32]
     [variants.v.runtime]
     batch_sizes = [1, 8]
     [variants.v.latency.xnnpack.per_sample]
     batch = 32
     median = "0.2 ms"
     """, "batch 32 is not one of runtime.batch_sizes [1, 8]"),  # the variant's own wins
    ("""
     [defaults.runtime]
     batch_sizes = [1, 32]
     [variants.v.latency.gpu.per_sample]
     batch = 32
     median = "0.2 ms"
     """, "latency.gpu.per_sample: batch sizes are timed under the Interpreter's delegates"),
    ("""
     [defaults.runtime]
     batch_sizes = []
     [variants.v]
     size = { max = "1 MiB" }
     """, "defaults.runtime.batch_sizes"),
])
def test_per_sample_budgets_refused_at_load(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(BudgetFileError) as refused:
        _budget(tmp_path, text)
    assert message in str(refused.value), refused.value


def test_batch_sizes_from_the_defaults_serve_every_variant(tmp_path: Path) -> None:
    budget = _budget(tmp_path, """
        [defaults.runtime]
        batch_sizes = [1, 8, 32]
        [variants.a.latency.xnnpack]
        per_sample = { batch = 32, median = "0.2 ms" }
        [variants.b.latency.builtin]
        per_sample = { batch = 8, median = "200 us" }
    """)
    assert budget.variant("a").latency["xnnpack"].per_sample.batch == 32
    assert budget.variant("b").latency["builtin"].per_sample.median == pytest.approx(0.2)


def test_the_ratchet_moves_per_sample_only_as_a_timing(dense: Entry, tmp_path: Path) -> None:
    import dataclasses

    from pytest_tflite.ratchet import RatchetOptions, plan, rewrite, rule_for

    rule, keys = rule_for("latency.xnnpack.per_sample.median")
    assert rule is not None and rule.timing and rule.kind == "time"
    assert keys == ("latency", "xnnpack", "per_sample", "median")
    text = ('[defaults.runtime]\nbatch_sizes = [1, 16]\n[variants.v.latency.xnnpack]\n'
            'per_sample = { batch = 16, median = "10 s" }\n')
    path = tmp_path / "ratchet.toml"
    path.write_text(text)
    entry = dataclasses.replace(dense, budget_path=str(path))
    assert plan([entry], {str(path): text}) == []  # left alone without --tflite-ratchet-timing
    changes = plan([entry], {str(path): text}, RatchetOptions(timing=True))
    assert [c.metric for c in changes] == ["latency.xnnpack.per_sample.median"]
    path.write_text(rewrite(text, changes))
    assert load(path).variant("v").latency["xnnpack"].per_sample.median < 10_000  # type: ignore[union-attr]


def test_cli_measure_prints_a_table_per_delegate(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_tflite.cli import main

    path = tmp_path / "dense.tflite"
    path.write_bytes(dense_model())
    assert main(["measure", str(path), "--delegate", "builtin", "--batch-sizes", "1,4"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("builtin by batch size:"):].splitlines()
    assert table[1].split() == ["batch", "status", "median", "per", "sample", "reason"]
    assert [row.split()[:2] for row in table[3:5]] == [["1", "ok"], ["4", "ok"]]
    assert main(["measure", str(path), "--batch-sizes", "0,4"]) == 2
