"""The planned arena (measure/planner.py) on hand-built models whose plan is worked out by hand
below, on TFLite Micro's own planner cases, and on a converted Keras model."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite.errors import ModelError
from pytest_tflite.flatbuffer import FlatbufferView, TensorInfo
from pytest_tflite.measure.planner import (
    aligned,
    called_subgraphs,
    greedy_offsets,
    lifetimes,
    plan_subgraph,
    planned_arena,
    tensor_bytes,
)
from pytest_tflite.measure.static import measure_static
from pytest_tflite.model import TFLiteModel
from tests.helpers.models import Op, Subgraph, Tensor, build_model, chain_model, run


def arena(content: bytes) -> int:
    return planned_arena(FlatbufferView(content)).bytes


def offsets(content: bytes, subgraph: int = 0) -> dict[str, tuple[int, int]]:
    """``{tensor name: (offset, size)}`` of one subgraph's plan."""
    plan = plan_subgraph(FlatbufferView(content), subgraph)
    return {p.name: (p.offset, p.size) for p in plan.placements}


# --- the greedy core, on TFLite Micro's greedy_memory_planner_test cases --------------------------


def test_greedy_matches_tflite_micro_medium_case() -> None:
    # TestGreedyMedium: (size, first, last); expected offsets 50, 70, 40, 0, 0 and 90 bytes.
    buffers = [(10, 0, 1), (20, 1, 2), (30, 2, 3), (40, 3, 4), (50, 0, 1)]
    placed = greedy_offsets(buffers)
    assert placed == [50, 70, 40, 0, 0]
    assert max(o + s for o, (s, _, _) in zip(placed, buffers)) == 90


def test_greedy_matches_tflite_micro_basic_and_overlap_cases() -> None:
    assert greedy_offsets([(10, 0, 1), (20, 2, 3)]) == [0, 0]  # TestGreedyBasics: 20 bytes
    placed = greedy_offsets([(100, 0, 1), (50, 2, 3), (20, 1, 2)])  # TestOverlapCase: 120 bytes
    assert placed == [0, 0, 100]
    assert greedy_offsets([]) == []


def test_greedy_ties_go_to_the_earlier_first_use_then_the_lower_index() -> None:
    # Three equal buffers alive together: placed by first use (the third starts at 0), then index.
    assert greedy_offsets([(16, 1, 2), (16, 1, 2), (16, 0, 2)]) == [16, 32, 0]


def test_greedy_never_overlaps_live_buffers_and_is_fast() -> None:
    rng = np.random.default_rng(0)
    buffers = []
    for _ in range(3000):
        first = int(rng.integers(0, 3000))
        buffers.append((int(rng.integers(1, 64)) * 16, first, first + int(rng.integers(0, 40))))
    start = time.perf_counter()
    placed = greedy_offsets(buffers)
    assert time.perf_counter() - start < 2.0
    by_first = sorted(range(len(buffers)), key=lambda i: buffers[i][1])
    for n, i in enumerate(by_first):
        size, first, last = buffers[i]
        for j in by_first[n + 1:]:
            other, other_first, other_last = buffers[j]
            if other_first > last:
                break
            if other_last >= first:  # alive together: must not share a byte
                assert placed[i] + size <= placed[j] or placed[j] + other <= placed[i]


# --- sizes ---------------------------------------------------------------------------------------


def _info(shape: tuple[int, ...], dtype: str) -> TensorInfo:
    return TensorInfo(index=0, name="t", shape=shape, dtype=dtype, buffer=0, constant=False,
                      variable=False)


def test_tensor_bytes_round_up_to_16() -> None:
    assert aligned(0) == 0 and aligned(1) == 16 and aligned(16) == 16 and aligned(17) == 32
    assert tensor_bytes(_info((3,), "int8")) == 16  # 3 bytes
    assert tensor_bytes(_info((2, 5), "float32")) == 48  # 40 bytes
    assert tensor_bytes(_info((1, 3), "int16")) == 16  # 6 bytes
    assert tensor_bytes(_info((5,), "float16")) == 16  # 10 bytes
    assert tensor_bytes(_info((3,), "int64")) == 32  # 24 bytes
    assert tensor_bytes(_info((3,), "complex64")) == 32  # 24 bytes
    assert tensor_bytes(_info((), "float32")) == 16  # a scalar: 4 bytes
    assert tensor_bytes(_info((4, 0), "float32")) == 0
    assert tensor_bytes(_info((8,), "string")) == 0
    assert tensor_bytes(_info((1,), "resource")) == 0


# --- hand-built models, planned by hand --------------------------------------------------------


def test_single_add_of_two_inputs() -> None:
    # x, y, out: float32 [2, 5] = 40 bytes each, rounded up to 48. All three are alive at op 0,
    # so nothing is shared: 3 * 48 = 144.
    model = build_model([Subgraph(
        tensors=[Tensor("x", [2, 5]), Tensor("y", [2, 5]), Tensor("out", [2, 5])],
        ops=[Op("ADD", [0, 1], [2])], inputs=[0, 1], outputs=[2],
    )])
    (out,) = run(model, np.ones((2, 5)), np.full((2, 5), 2.0))
    assert np.all(out == 3.0)
    assert arena(model) == 144
    assert offsets(model) == {"x": (0, 48), "y": (48, 48), "out": (96, 48)}


def test_chain_reuses_memory() -> None:
    # in[100] -> RELU -> a -> RELU -> b -> RELU -> out, float32: 400 bytes each (a multiple of 16).
    # Lifetimes: in [0,0], a [0,1], b [1,2], out [2,2]. All equal in size, so by first use:
    #   in  -> 0          (nothing placed)
    #   a   -> 400        (in at 0..400 is alive at op 0)
    #   b   -> 0          (only a, at 400..800, is alive with it: in is dead)
    #   out -> 400        (only b, at 0..400, is alive at op 2: out shares a's bytes)
    # planned = 2 * 400 = 800, against 4 * 400 = 1600 without reuse.
    model = chain_model([100, 100, 100, 100])
    (out,) = run(model, np.arange(-50, 50))
    assert np.array_equal(out, np.maximum(np.arange(-50, 50), 0))
    assert arena(model) == 800
    assert offsets(model) == {"x0": (0, 400), "x1": (400, 400), "x2": (0, 400), "x3": (400, 400)}


def test_long_chain_needs_two_buffers_and_plans_fast() -> None:
    # 3000 RELUs over 64 floats (256 bytes): at any op only its input and output are alive.
    model = chain_model([64] * 3001)
    assert run(model, np.ones(64))[0].tolist() == [1.0] * 64
    start = time.perf_counter()
    assert arena(model) == 2 * 256
    assert time.perf_counter() - start < 2.0


def test_alignment_rounding() -> None:
    # int8 [3] -> RELU -> [3] -> RELU -> [3]: 3 bytes each, 16 in the arena; the middle one is
    # alive with both others, the two ends share: 2 * 16 = 32 (not 9, nor 2 * 3).
    model = chain_model([3, 3, 3], dtype="int8")
    assert run(model, [-1, 2, 3])[0].tolist() == [0, 2, 3]
    assert arena(model) == 32
    # 17 int8 elements take two 16-byte blocks: 32 each, in and out alive together: 64.
    model = chain_model([17, 17], dtype="int8")
    run(model, np.arange(17))
    assert arena(model) == 64


def test_constant_tensors_are_not_planned() -> None:
    # x + c -> out with c a constant float32 [4]: x and out, 16 bytes each, alive together: 32.
    constant = build_model([Subgraph(
        tensors=[Tensor("x", [4]), Tensor("c", [4], data=[1, 2, 3, 4]), Tensor("out", [4])],
        ops=[Op("ADD", [0, 1], [2])], inputs=[0], outputs=[2],
    )])
    assert run(constant, np.zeros(4))[0].tolist() == [1, 2, 3, 4]
    assert arena(constant) == 32
    assert "c" not in offsets(constant)
    assert [t.constant for t in FlatbufferView(constant).tensors(0)] == [False, True, False]
    # The same graph with c an input: 3 * 16 = 48.
    fed = build_model([Subgraph(
        tensors=[Tensor("x", [4]), Tensor("c", [4]), Tensor("out", [4])],
        ops=[Op("ADD", [0, 1], [2])], inputs=[0, 1], outputs=[2],
    )])
    run(fed, np.zeros(4), np.ones(4))
    assert arena(fed) == 48


def test_unread_untouched_and_empty_tensors() -> None:
    # x -> RELU -> unread (never read, not an output: [0, 0]); x -> TANH -> y; "loose" is touched
    # by nothing; "empty" has no elements. float32 [4]: 16 bytes each.
    #   x [0,1] -> 0; unread [0,0] -> 16 (x alive); y [1,1] -> 16 (only x alive): 32.
    model = build_model([Subgraph(
        tensors=[Tensor("x", [4]), Tensor("unread", [4]), Tensor("y", [4]), Tensor("loose", [64]),
                 Tensor("e_in", [0]), Tensor("empty", [0])],
        ops=[Op("RELU", [0], [1]), Op("TANH", [0], [2]), Op("RELU", [4], [5])],
        inputs=[0, 4], outputs=[2, 5],
    )])
    run(model, np.zeros(4), np.zeros(0))
    view = FlatbufferView(model)
    assert lifetimes(view, 0) == {0: (0, 1), 1: (0, 0), 2: (1, 2), 4: (0, 2), 5: (2, 2)}
    assert offsets(model) == {"x": (0, 16), "unread": (16, 16), "y": (16, 16)}
    assert arena(model) == 32


def test_variable_tensors_live_through_the_subgraph() -> None:
    # x + state -> y -> RELU -> z; state is a variable: [0, 1] although only op 0 reads it.
    #   x [0,0], state [0,1], y [0,1], z [1,1]; 16 bytes each.
    #   x -> 0; state -> 16; y -> 32; z -> 0 (x is dead at op 1): 48.
    model = build_model([Subgraph(
        tensors=[Tensor("x", [4]), Tensor("state", [4], is_variable=True), Tensor("y", [4]),
                 Tensor("z", [4])],
        ops=[Op("ADD", [0, 1], [2]), Op("RELU", [2], [3])], inputs=[0], outputs=[3],
    )])
    assert run(model, [1, -2, 3, 4])[0].tolist() == [1, 0, 3, 4]
    assert offsets(model) == {"x": (0, 16), "state": (16, 16), "y": (32, 16), "z": (0, 16)}
    assert arena(model) == 48


def while_cond(n: int) -> Subgraph:
    """``count < 3``, over the loop variables ``(count [1], x [n])``."""
    return Subgraph(
        tensors=[Tensor("count", [1]), Tensor("x", [n]), Tensor("limit", [1], data=[3.0]),
                 Tensor("again", [1], dtype="bool")],
        ops=[Op("LESS", [0, 2], [3])], inputs=[0, 1], outputs=[3], name="cond",
    )


def while_body(n: int) -> Subgraph:
    """``(count + 1, x * 2)``."""
    return Subgraph(
        tensors=[Tensor("count", [1]), Tensor("x", [n]), Tensor("one", [1], data=[1.0]),
                 Tensor("two", [1], data=[2.0]), Tensor("count_next", [1]), Tensor("x_next", [n])],
        ops=[Op("ADD", [0, 2], [4]), Op("MUL", [1, 3], [5])],
        inputs=[0, 1], outputs=[4, 5], name="body",
    )


LOOP = {"cond_subgraph_index": 1, "body_subgraph_index": 2}


def while_model(n: int = 10) -> bytes:
    """Main: ``count, x = WHILE(count, x)`` with cond 1 and body 2."""
    main = Subgraph(
        tensors=[Tensor("count", [1]), Tensor("x", [n]), Tensor("count_out", [1]),
                 Tensor("x_out", [n])],
        ops=[Op("WHILE", [0, 1], [2, 3], options=LOOP)],
        inputs=[0, 1], outputs=[2, 3], name="main",
    )
    return build_model([main, while_cond(n), while_body(n)])


def test_while_adds_its_cond_and_body() -> None:
    # n = 10 floats: 40 bytes -> 48; [1] float or bool -> 16.
    # main: all four tensors alive at op 0: 48 + 48 + 16 + 16 = 128.
    # cond: count [0,0] 16, x (input, unread) [0,0] 48, again [0,0] 16; limit is a constant:
    #       48 + 16 + 16 = 80.
    # body: count [0,0] 16, x [0,1] 48, count_next [0,1] 16 (an output), x_next [1,1] 48.
    #       x -> 0; x_next -> 48 (x alive); count -> 48 (alive with x only); count_next -> 96
    #       (alive with all three): 112.
    # total = 128 + 80 + 112 = 320.
    model = while_model()
    count, x = run(model, [0.0], np.arange(10))
    assert count.tolist() == [3.0]
    assert x.tolist() == (np.arange(10) * 8).tolist()
    plan = planned_arena(FlatbufferView(model))
    assert [s.bytes for s in plan.subgraphs] == [128, 80, 112]
    assert plan.counted == (0, 1, 2)
    assert plan.bytes == 320
    assert offsets(model, 2) == {"count": (48, 16), "x": (0, 48), "count_next": (96, 16),
                                 "x_next": (48, 48)}


def test_call_once_adds_its_init_and_uncalled_subgraphs_do_not_count() -> None:
    # main: CALL_ONCE(init = 1), then x -> RELU -> y; x [0,1] and y [1,1], 16 bytes each: 32.
    # init: k (constant) -> RELU -> a -> TANH -> b, float32 [8] = 32 bytes; a [0,1], b [1,1]: 64.
    # spare: a subgraph nothing calls, x [16] -> RELU -> y: 64 + 64 = 128, planned, not counted.
    # total = 32 + 64 = 96.
    main = Subgraph(
        tensors=[Tensor("x", [4]), Tensor("y", [4])],
        ops=[Op("CALL_ONCE", [], [], options={"init_subgraph_index": 1}), Op("RELU", [0], [1])],
        inputs=[0], outputs=[1], name="main",
    )
    init = Subgraph(
        tensors=[Tensor("k", [8], data=np.ones(8)), Tensor("a", [8]), Tensor("b", [8])],
        ops=[Op("RELU", [0], [1]), Op("TANH", [1], [2])], inputs=[], outputs=[], name="init",
    )
    spare = Subgraph(
        tensors=[Tensor("x", [16]), Tensor("y", [16])], ops=[Op("RELU", [0], [1])],
        inputs=[0], outputs=[1], name="spare",
    )
    model = build_model([main, init, spare])
    assert run(model, [-1, 0, 1, 2])[0].tolist() == [0, 0, 1, 2]
    plan = planned_arena(FlatbufferView(model))
    assert [s.bytes for s in plan.subgraphs] == [32, 64, 128]
    assert plan.counted == (0, 1)
    assert plan.bytes == 96


def test_each_called_subgraph_counts_once() -> None:
    # Two WHILE loops in a row over the same cond and body (n = 10: 48 bytes per x, 16 per count).
    # main: count [0,0], x [0,0], c1 [0,1], x1 [0,1], c2 [1,1], x2 [1,1].
    #   x -> 0; x1 -> 48; x2 -> 0 (x dead at op 1); count -> 96 (x, x1 alive);
    #   c1 -> 112 (x, x1, x2, count alive); c2 -> 96 (x1, x2, c1 alive; count dead): 128.
    # total = 128 + cond 80 + body 112 = 320: cond and body once, not once per loop.
    n = 10
    main = Subgraph(
        tensors=[Tensor("count", [1]), Tensor("x", [n]), Tensor("c1", [1]), Tensor("x1", [n]),
                 Tensor("c2", [1]), Tensor("x2", [n])],
        ops=[Op("WHILE", [0, 1], [2, 3], options=LOOP), Op("WHILE", [2, 3], [4, 5], options=LOOP)],
        inputs=[0, 1], outputs=[4, 5], name="main",
    )
    model = build_model([main, while_cond(n), while_body(n)])
    assert run(model, [0.0], np.ones(n))[1].tolist() == [8.0] * n  # the second loop exits at once
    plan = planned_arena(FlatbufferView(model))
    assert plan.counted == (0, 1, 2)
    assert [s.bytes for s in plan.subgraphs] == [128, 80, 112]
    assert plan.bytes == 320


def test_custom_op_model_is_planned_but_does_not_run() -> None:
    model = build_model([Subgraph(
        tensors=[Tensor("x", [4]), Tensor("y", [4])],
        ops=[Op("CUSTOM", [0], [1], custom_code="MyOp")], inputs=[0], outputs=[1],
    )])
    assert FlatbufferView(model).ops == {"CUSTOM:MyOp": 1}
    assert arena(model) == 32
    with pytest.raises(RuntimeError, match="unresolved custom op"):
        run(model, np.zeros(4))


def test_builder_sets_both_opcode_fields() -> None:
    from ai_edge_litert import schema_py_generated as schema

    model = build_model([Subgraph(
        tensors=[Tensor("x", [1]), Tensor("y", [1])],
        ops=[Op("CALL_ONCE", [], [], options={"init_subgraph_index": 1}), Op("RELU", [0], [1])],
        inputs=[0], outputs=[1],
    ), Subgraph(tensors=[], ops=[], inputs=[], outputs=[])])
    root = schema.Model.GetRootAs(model, 0)
    codes = {root.OperatorCodes(i).BuiltinCode(): root.OperatorCodes(i).DeprecatedBuiltinCode()
             for i in range(root.OperatorCodesLength())}
    assert codes == {schema.BuiltinOperator.CALL_ONCE: 127, schema.BuiltinOperator.RELU: 19}
    assert root.Version() == 3 and root.Buffers(0).DataLength() == 0
    assert FlatbufferView(model).ops == {"CALL_ONCE": 1, "RELU": 1}
    run(model, [1.0])


def test_bad_references_are_model_errors() -> None:
    reads_past_the_end = build_model([Subgraph(
        tensors=[Tensor("x", [4]), Tensor("y", [4])], ops=[Op("RELU", [0], [7])],
        inputs=[0], outputs=[1],
    )])
    with pytest.raises(ModelError, match="operator 0 writes tensor 7, but the subgraph has 2"):
        planned_arena(FlatbufferView(reads_past_the_end, origin="bad.tflite"))
    calls_nothing = build_model([Subgraph(
        tensors=[Tensor("x", [1]), Tensor("y", [1])],
        ops=[Op("WHILE", [0], [1], options={"cond_subgraph_index": 5, "body_subgraph_index": 0})],
        inputs=[0], outputs=[1],
    )])
    with pytest.raises(ModelError, match="calls subgraph 5, but the model has 1"):
        planned_arena(FlatbufferView(calls_nothing))
    with pytest.raises(ModelError, match="no subgraph 3"):
        plan_subgraph(FlatbufferView(calls_nothing), 3)
    assert called_subgraphs(FlatbufferView(chain_model([4, 4]))) == (0,)


# --- a converted Keras model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([
        tf_keras.Input((10, 10, 1)),
        tf_keras.layers.Conv2D(4, 3, activation="relu"),
        tf_keras.layers.MaxPooling2D(),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dense(16, activation="relu"),
        tf_keras.layers.Dense(5),
    ])
    path = tmp_path_factory.mktemp("planner") / "cnn.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def _activation_bytes(path: Path) -> list[int]:
    """Aligned bytes of every non-constant tensor: the model's inputs and every operator output,
    as the interpreter (not the flatbuffer) reports them."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    active = {d["index"] for d in interpreter.get_input_details()}
    for op in interpreter._get_ops_details():
        active.update(int(i) for i in op["outputs"] if i >= 0)
    details: dict[int, Any] = {d["index"]: d for d in interpreter.get_tensor_details()}
    return [aligned(int(np.prod(details[i]["shape"])) * np.dtype(details[i]["dtype"]).itemsize)
            for i in sorted(active)]


def test_keras_model_lies_between_largest_and_sum_of_activations(keras_model: Path) -> None:
    activations = _activation_bytes(keras_model)
    planned = arena(keras_model.read_bytes())
    assert max(activations) <= planned <= sum(activations)
    # Activations here: input 400, conv 1024, pool 256, flatten 256, dense 64 and 32 (sum 2032).
    # Only the input and the conv output are alive together (1424 on TF 2.21); the rest reuse.
    assert planned < sum(activations)


# --- measure_static ----------------------------------------------------------------------------


def test_measure_static_reports_the_planned_arena(tmp_path: Path, keras_model: Path) -> None:
    path = tmp_path / "while.tflite"
    path.write_bytes(while_model())
    measurement = measure_static(TFLiteModel.from_path(path))
    assert measurement.planned_arena_bytes == 320
    assert [(s["index"], s["name"], s["operators"], s["tensors"], s["planned_arena_bytes"])
            for s in measurement.subgraphs] == [
        (0, "main", 1, 4, 128), (1, "cond", 1, 4, 80), (2, "body", 2, 6, 112)]
    assert json.loads(json.dumps(measurement.to_json())) == measurement.to_json()
    for key in ("size_bytes", "gzip_bytes", "ops", "inputs", "outputs"):
        assert key in measurement.to_json()

    keras = measure_static(TFLiteModel.from_path(keras_model))
    assert keras.planned_arena_bytes == keras.subgraphs[0]["planned_arena_bytes"] > 0
    assert type(keras.planned_arena_bytes) is int


def test_measure_static_reports_bad_references_as_model_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.tflite"
    path.write_bytes(build_model([Subgraph(
        tensors=[Tensor("x", [4]), Tensor("y", [4])], ops=[Op("RELU", [9], [1])],
        inputs=[0], outputs=[1],
    )]))
    with pytest.raises(ModelError, match=r"bad\.tflite: subgraph 0: operator 0 reads tensor 9"):
        measure_static(TFLiteModel.from_path(path))
