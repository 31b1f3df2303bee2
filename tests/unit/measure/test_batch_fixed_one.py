"""runtime.batch_sizes on models whose inputs fix batch 1, as most shipped ``.tflite`` files do:
the worker resizes them anyway, invokes once and keeps the size only if every output that was at
batch 1 now has the batch first. A graph that reshapes to a fixed 1 runs at a larger batch but
does one sample's work (or mixes the samples): that size is ``unsupported``, naming the output,
and never timed. Models with a dynamic batch keep the strict resize (test_batch_sweep.py)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pytest_tflite import engine
from pytest_tflite.budget import load
from pytest_tflite.model import TFLiteModel
from pytest_tflite.results import Entry
from pytest_tflite.verdicts import judge
from tests.helpers.models import Op, Subgraph, Tensor, build_model

FAST = "warmup = { min_runs = 1, min_seconds = 0 }\ntiming = { min_runs = 5, min_seconds = 0 }"
SIZES = [1, 4, 16]
DELEGATES = ("xnnpack", "builtin")


def _dense(extra: list[Tensor], ops: list[Op], outputs: list[int]) -> bytes:
    """FULLY_CONNECTED 8 -> 4 on an input that fixes batch 1 (shape_signature [1, 8]), then
    ``ops`` over ``extra`` tensors (numbered from 4)."""
    rng = np.random.default_rng(0)
    tensors = [Tensor("x", [1, 8], shape_signature=[1, 8]),
               Tensor("w", [4, 8], data=rng.normal(size=(4, 8))),
               Tensor("b", [4], data=np.zeros(4)),
               Tensor("y", [1, 4], shape_signature=[1, 4])]
    return build_model([Subgraph(tensors + extra, [Op("FULLY_CONNECTED", [0, 1, 2], [3]), *ops],
                                 inputs=[0], outputs=outputs)])


def follows_model() -> bytes:
    """Outputs: ``y`` [1, 4] (follows the batch), ``by_unit`` = RESHAPE(y, [4, -1]) ([4, 1] at
    batch 1: its first dimension was not 1, so it says nothing) and ``scalar`` = 1 + 2 (rank 0)."""
    return _dense([Tensor("to", [2], dtype="int32", data=[4, -1]), Tensor("by_unit", [4, 1]),
                   Tensor("one", [], data=1.0), Tensor("two", [], data=2.0),
                   Tensor("scalar", [])],
                  [Op("RESHAPE", [3, 4], [5], options={"new_shape": [4, -1]}),
                   Op("ADD", [6, 7], [8])], outputs=[3, 5, 8])


def reshape_model(new_shape: list[int]) -> bytes:
    """``y`` reshaped to a hard-coded ``new_shape`` (the output ``flat``), as a converter that
    baked batch 1 into a Flatten writes it."""
    return _dense([Tensor("to", [2], dtype="int32", data=new_shape), Tensor("flat", [1, 4])],
                  [Op("RESHAPE", [3, 4], [5], options={"new_shape": new_shape})], outputs=[5])


def _run(folder: Path, content: bytes, budgets: str = "") -> Entry:
    path = folder / "m.tflite"
    path.write_bytes(content)
    budget = folder / "m.toml"
    budget.write_text(textwrap.dedent(f"""
        [defaults.runtime]
        delegates = {json.dumps(list(DELEGATES))}
        batch_sizes = {json.dumps(SIZES)}
        {FAST}

        [variants.v]
        size = {{ max = "1 MiB" }}
        """) + budgets)
    return engine.run(TFLiteModel.from_path(path), load(budget), "v", engine.Settings())


@pytest.fixture(scope="module")
def follows(tmp_path_factory: pytest.TempPathFactory) -> Entry:
    return _run(tmp_path_factory.mktemp("follows"), follows_model(),
                '[variants.v.latency.xnnpack]\nper_sample = { batch = 16, median = "10 s" }\n')


@pytest.fixture(scope="module")
def reshaped(tmp_path_factory: pytest.TempPathFactory) -> Entry:
    return _run(tmp_path_factory.mktemp("reshaped"), reshape_model([1, -1]),
                '[variants.v.latency.builtin]\nper_sample = { batch = 4, median = "10 s" }\n')


def test_the_models_fix_batch_1_as_built() -> None:
    # The premise, read from LiteRT itself: a strict resize would refuse every batch but 1.
    from ai_edge_litert.interpreter import Interpreter

    for content in (follows_model(), reshape_model([1, -1])):
        interpreter = Interpreter(model_content=content)
        detail, = interpreter.get_input_details()
        assert detail["shape_signature"].tolist() == [1, 8]
        with pytest.raises(RuntimeError, match="only allows mutating unknown dimensions"):
            interpreter.resize_tensor_input(detail["index"], [4, 8], strict=True)


@pytest.mark.parametrize("delegate", DELEGATES)
def test_outputs_that_follow_the_batch_are_timed_at_each_size(follows: Entry,
                                                              delegate: str) -> None:
    found = follows.measurement.delegates[delegate]
    assert found.status == "ok", found.reason
    assert found.batches is not None and [b.batch for b in found.batches] == SIZES
    for at in found.batches:
        assert at.status == "ok" and at.reason == "", at
        assert at.input_shapes == [[at.batch, 8]]
        assert at.latency_ms is not None and at.latency_ms.n == 5
        assert at.latency_ms.median is not None
        assert at.per_sample_ms == at.latency_ms.median / at.batch


@pytest.mark.parametrize("delegate", DELEGATES)
def test_an_output_reshaped_to_a_fixed_1_makes_the_batch_unsupported(reshaped: Entry,
                                                                     delegate: str) -> None:
    found = reshaped.measurement.delegates[delegate]
    assert found.status == "ok" and found.latency_ms is not None  # batch 1 measures as ever
    assert found.batches is not None
    one, *others = found.batches
    assert one.status == "ok" and one.per_sample_ms is not None and one.input_shapes == [[1, 8]]
    assert [b.batch for b in others] == [4, 16]
    for at in others:
        assert at.status == "unsupported"
        assert at.latency_ms is None and at.per_sample_ms is None  # never timed
        assert at.reason.startswith(f"cannot run at batch {at.batch}: ")
        # 4 samples of 4 features reshaped to [1, -1]: [1, 16]; at 16 samples, [1, 64].
        assert f"its output 'flat' stays at batch 1 (shape [1, {4 * at.batch}]" in at.reason


def test_a_fixed_reshape_that_cannot_hold_the_batch_is_refused_in_the_interpreters_words(
        tmp_path: Path) -> None:
    # RESHAPE to a constant [1, 4] cannot take 4 x 4 values: allocation fails, as it says.
    found = _run(tmp_path, reshape_model([1, 4])).measurement.delegates["builtin"]
    assert found.batches is not None
    assert [b.status for b in found.batches] == ["ok", "unsupported", "unsupported"]
    assert "num_input_elements != num_output_elements (16 != 4)" in found.batches[1].reason


def test_per_sample_budget_on_a_fixed_batch_model_passes_roomy_and_fails_tight(
        follows: Entry, tmp_path: Path) -> None:
    at = follows.measurement.delegates["xnnpack"].batch(16)
    assert at is not None and at.per_sample_ms is not None
    verdicts = {}
    for name, factor in (("tight", 0.5), ("roomy", 2.0)):
        path = tmp_path / f"{name}.toml"
        path.write_text(f'[variants.v.runtime]\nbatch_sizes = [1, 16]\n'
                        f'[variants.v.latency.xnnpack.per_sample]\nbatch = 16\n'
                        f'median = "{at.per_sample_ms * factor!r} ms"\n')
        check, = judge(follows.measurement, load(path).variant("v"))
        assert check.metric == "latency.xnnpack.per_sample.median"
        assert check.measured == at.per_sample_ms
        verdicts[name] = check.verdict
    assert verdicts == {"tight": "fail", "roomy": "pass"}
    check, = [c for c in follows.checks if c.metric == "latency.xnnpack.per_sample.median"]
    assert check.verdict == "pass"  # the run's own budget ("10 s")


def test_per_sample_budget_on_an_unsupported_batch_is_an_error_naming_the_output(
        reshaped: Entry) -> None:
    check, = [c for c in reshaped.checks if c.metric == "latency.builtin.per_sample.median"]
    assert check.verdict == "error" and check.measured is None
    assert "cannot run at batch 4" in check.reason and "'flat' stays at batch 1" in check.reason
