"""The planned state (measure/state.py) of streaming models: resource variables, sized from the
values assigned to them, on hand-built models whose variables are known; the budgets
``memory.planned_state`` and ``memory.planned_total`` (arena plus state) judged through
``tflite-budget check``, and ``regression.planned_total`` against a baseline."""

from __future__ import annotations

import dataclasses
import io
import json
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite import cli
from pytest_tflite.budget import load
from pytest_tflite.flatbuffer import FlatbufferView
from pytest_tflite.measure.planner import planned_arena
from pytest_tflite.measure.state import planned_state, variable_sizes
from pytest_tflite.measure.static import measure_static
from pytest_tflite.model import TFLiteModel
from pytest_tflite.results import Measurement
from pytest_tflite.verdicts import judge
from tests.helpers.models import Op, Subgraph, Tensor, build_model, run

STATE_A = 40 * 4  # [1, 40] float32
STATE_B = 8 * 16  # [1, 8, 16] int8
# The main subgraph's activations, planned by hand: x [0, 4] at 0, a_read [3, 4] at 160, y [4, 8]
# at 320 (it overlaps both in time), b_read [8, 8] at 0 (only y is alive with it); 160 B each but
# b_read's 128 B. The init subgraph plans nothing: its handle is a resource, its value a constant.
ARENA = 3 * 160


def handle(output: int, name: str, container: str = "") -> Op:
    return Op("VAR_HANDLE", [], [output], options={"container": container, "shared_name": name})


def streaming_model() -> bytes:
    """A streaming model's two variables: ``state_a`` [1, 40] float32, zeroed in an init
    subgraph that CALL_ONCE runs, then ``state_a += x`` every invoke through a second VAR_HANDLE
    of the same name (so it is assigned twice); ``state_b`` [1, 8, 16] int8, assigned a constant
    in the main graph. Outputs: the new ``state_a`` and ``state_b`` as read back."""
    init = Subgraph(
        tensors=[Tensor("init/state_a", [], "resource"),
                 Tensor("init/zeros", [1, 40], data=np.zeros((1, 40)))],
        ops=[handle(0, "state_a"), Op("ASSIGN_VARIABLE", [0, 1], [])],
        inputs=[], outputs=[], name="init",
    )
    main = Subgraph(
        tensors=[Tensor("x", [1, 40]), Tensor("state_a", [], "resource"),
                 Tensor("state_b", [], "resource"), Tensor("a_read", [1, 40]), Tensor("y", [1, 40]),
                 Tensor("state_a_again", [], "resource"),
                 Tensor("b_value", [1, 8, 16], "int8", data=np.arange(128).reshape(1, 8, 16) - 64),
                 Tensor("b_read", [1, 8, 16], "int8")],
        ops=[Op("CALL_ONCE", [], [], options={"init_subgraph_index": 1}),
             handle(1, "state_a"), handle(2, "state_b"),
             Op("READ_VARIABLE", [1], [3]),
             Op("ADD", [0, 3], [4]),
             handle(5, "state_a"),
             Op("ASSIGN_VARIABLE", [5, 4], []),
             Op("ASSIGN_VARIABLE", [2, 6], []),
             Op("READ_VARIABLE", [2], [7])],
        inputs=[0], outputs=[4, 7], name="main",
    )
    return build_model([main, init])


def measured(content: bytes, tmp_path: Path, name: str = "streaming") -> Measurement:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(content)
    return measure_static(TFLiteModel.from_path(path))


def test_streaming_model_runs_and_keeps_its_state_in_litert() -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=streaming_model())
    interpreter.allocate_tensors()
    x = interpreter.get_input_details()[0]["index"]
    found = []
    for _ in range(3):
        interpreter.set_tensor(x, np.ones((1, 40), np.float32))
        interpreter.invoke()
        found.append([interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()])
    # state_a was zeroed once, then grows by x each invoke: the variables are real state.
    assert [float(y[0, 0]) for y, _ in found] == [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(found[-1][1], np.arange(128).reshape(1, 8, 16) - 64)


def test_planned_state_counts_each_variable_once_at_its_assigned_size(tmp_path: Path) -> None:
    content = streaming_model()
    view = FlatbufferView(content)
    assert variable_sizes(view) == {("", "state_a"): STATE_A, ("", "state_b"): STATE_B}
    found = measured(content, tmp_path)
    assert found.planned_state_bytes == 288 == STATE_A + STATE_B
    assert found.planned_arena_bytes == ARENA == planned_arena(view).bytes
    assert found.to_json()["planned_state_bytes"] == 288
    assert Measurement.from_json(found.to_json()).planned_state_bytes == 288


def test_largest_assignment_wins_and_an_unassigned_variable_is_empty() -> None:
    small = np.zeros((1, 4))
    model = build_model([Subgraph(
        tensors=[Tensor("v", [], "resource"), Tensor("small", [1, 4], data=small),
                 Tensor("large", [1, 12], data=np.zeros((1, 12))),
                 Tensor("never", [], "resource"), Tensor("other", [], "resource")],
        ops=[handle(0, "v"), Op("ASSIGN_VARIABLE", [0, 1], []), Op("ASSIGN_VARIABLE", [0, 2], []),
             handle(3, "never"),
             # The same shared_name in another container is another variable.
             handle(4, "v", container="elsewhere"), Op("ASSIGN_VARIABLE", [4, 1], [])],
        inputs=[], outputs=[],
    )])
    assert variable_sizes(FlatbufferView(model)) == {
        ("", "v"): 48, ("", "never"): 0, ("elsewhere", "v"): 16}  # 16 B: 4 floats, aligned
    assert planned_state(FlatbufferView(model)) == 64


def test_stateful_tensors_stay_in_the_arena_only(tmp_path: Path) -> None:
    # An old-style is_variable tensor is planned by the planner, alive through the subgraph:
    # counting it as state too would count it twice.
    model = build_model([Subgraph(
        tensors=[Tensor("x", [16]), Tensor("state", [16], is_variable=True), Tensor("y", [16])],
        ops=[Op("ADD", [0, 1], [2])], inputs=[0], outputs=[2],
    )])
    run(model, np.ones(16))
    found = measured(model, tmp_path, "stateful")
    assert found.planned_state_bytes == 0
    assert found.planned_arena_bytes == 3 * 64


def test_a_model_without_variables_has_no_state(tmp_path: Path) -> None:
    model = build_model([Subgraph(tensors=[Tensor("x", [4]), Tensor("y", [4])],
                                  ops=[Op("RELU", [0], [1])], inputs=[0], outputs=[1])])
    assert measured(model, tmp_path, "plain").planned_state_bytes == 0


# --- memory.planned_total and memory.planned_state through tflite-budget check -----------------


def check(tmp_path: Path, planned_total: int, key: str = "planned_total") -> tuple[int, dict[str, Any]]:
    model = tmp_path / "streaming.tflite"
    model.write_bytes(streaming_model())
    budget = tmp_path / f"{key}_{planned_total}.toml"
    budget.write_text(textwrap.dedent(f"""
        [variants.int8.memory]
        planned_arena = {ARENA}
        {key} = {planned_total}
    """))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["check", str(model), "--budget", str(budget), "--no-runtime", "--json"])
    assert "Traceback" not in out.getvalue() + err.getvalue()
    entry = json.loads(out.getvalue())
    return code, {c["metric"]: c for c in entry["checks"]}


def test_planned_total_holds_arena_plus_state(tmp_path: Path) -> None:
    code, checks = check(tmp_path, ARENA + 288)
    assert code == 0
    assert checks["memory.planned_total"]["verdict"] == "pass"
    assert checks["memory.planned_total"]["measured"] == ARENA + 288 == 768
    assert checks["memory.planned_arena"]["verdict"] == "pass"  # the arena alone fits its budget


def test_planned_total_fails_one_byte_under_arena_plus_state(tmp_path: Path) -> None:
    code, checks = check(tmp_path, ARENA + 288 - 1)
    assert code == 1
    assert checks["memory.planned_total"]["verdict"] == "fail"
    assert checks["memory.planned_arena"]["verdict"] == "pass"


def test_planned_state_holds_the_two_variables(tmp_path: Path) -> None:
    code, checks = check(tmp_path, STATE_A + STATE_B, "planned_state")
    assert code == 0
    found = checks["memory.planned_state"]
    assert (found["verdict"], found["measured"], found["budget"], found["unit"]) == (
        "pass", 288, 288, "bytes")


def test_planned_state_fails_one_byte_under_the_two_variables(tmp_path: Path) -> None:
    code, checks = check(tmp_path, STATE_A + STATE_B - 1, "planned_state")
    assert code == 1
    assert checks["memory.planned_state"]["verdict"] == "fail"
    assert checks["memory.planned_state"]["measured"] == 288
    assert checks["memory.planned_arena"]["verdict"] == "pass"  # the arena alone still fits


# --- regression.planned_total: arena plus state against the baseline ----------------------------


def test_regression_planned_total_fails_when_the_state_grew_past_the_tolerance(
        tmp_path: Path) -> None:
    # The base branch's streaming model: arena 480 B + state 288 B = 768 B. The head keeps the
    # arena and adds a third [1, 16] float32 variable: 64 B more state, 832 B in all (+8.3%).
    base = measured(streaming_model(), tmp_path)
    assert (base.planned_arena_bytes, base.planned_state_bytes) == (ARENA, 288)
    head = dataclasses.replace(base, planned_state_bytes=288 + 16 * 4)
    found = {}
    for tolerance in ('"5%"', '"9%"', "63", "64"):
        budget = tmp_path / f"regression_{len(found)}.toml"
        budget.write_text(f'[variants.v]\nsize = {{ max = "1 MiB" }}\n[regression]\n'
                          f'planned_total = {tolerance}\nplanned_arena = "0%"\n')
        loaded = load(budget)
        checks = {c.metric: c for c in judge(head, loaded.variant("v"), loaded.spec.regression,
                                             baseline=base)}
        found[tolerance] = checks["regression.planned_total"]
        # The arena alone did not grow: only the total sees the new state.
        assert checks["regression.planned_arena"].verdict == "pass"
    assert {t: c.verdict for t, c in found.items()} == {
        '"5%"': "fail", '"9%"': "pass", "63": "fail", "64": "pass"}
    five = found['"5%"']
    assert (five.measured, five.baseline, five.delta, five.unit) == (832, 768, 64, "bytes")
    assert five.budget == pytest.approx(768 * 1.05)  # "N%" of the baseline's total, not the head's
    assert found["64"].budget == 768 + 64
