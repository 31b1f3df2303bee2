"""Bad input never crashes, tracebacks or hangs ``tflite-budget measure`` or a pytest session.

A seeded sample of flatbuffer-aware mutants (``tests/hardening/fuzz_mutations.py``: tensor shapes, buffer
and opcode indices, WHILE/IF/CALL_ONCE subgraph indices and cycles, quantization parameters,
sparse-tensor metadata, truncated and duplicated tables, lying vector lengths, and random bytes)
of four seed models runs through ``tflite-budget measure``: the static checks in this process,
the interpreter in the worker. Every run must exit 0 (the model ran, or a delegate said it cannot
run it) or 2 with the file's path and a known category of error (a contained worker crash counts),
within a bound, and never show a Python traceback. The worker reports each ``allocate_tensors()``
in a PYTEST_TFLITE_TRACE file, so the sample is held to reaching the interpreter too. Explicit
cases cover files that are not models at all, models that lie about themselves, and each bug the
fuzz found. ``bench/hardening_fuzz.py`` is the long run (1,000 mutants and more).

The CLI has no flag for the runtime protocol, so the built-in defaults are patched to a short one
(one warm-up run, three timed runs, a 10 s timeout): most mutants fail static validation in
microseconds; the rest run in the worker subprocess for a fraction of a second.
"""

from __future__ import annotations

import io
import json
import textwrap
import time
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pytest_tflite import cli, settings
from tests.hardening.fuzz_mutations import CLASSES, MEASURED, fc_model, measure_outcome, mutants
from tests.helpers.models import Op, Subgraph, Tensor, build_model

# The suite's sample: 3 rounds of the 8 classes (24 mutants, ~10-15 s, most of it in the worker).
# Seed 4 is one whose 3 rounds reach allocate_tensors() in every class (20250611 needed 6);
# bench/hardening_fuzz.py runs the same seed to 1,000 mutants, these first.
SEED = 4
PER_CLASS = 3
TIMEOUT_S = 10.0
BOUND_S = TIMEOUT_S + 15  # the worker's timeout plus process start and static checks


@pytest.fixture(autouse=True)
def short_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "BUILT_IN", replace(
        settings.BUILT_IN, warmup=settings.Runs(1, 0), timing=settings.Runs(3, 0),
        timeout=TIMEOUT_S))


small_model = fc_model


def measure(path: Path) -> str:
    """Run ``tflite-budget measure PATH --delegate builtin --json``; check the bad-input contract
    and return the outcome's category."""
    outcome = measure_outcome(path, BOUND_S, path.with_name(path.name + ".trace"))
    assert outcome.kind in ("measured", "rejected"), (path, outcome)
    return outcome.category


def test_fuzzed_models_fail_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace.log"
    by_class: dict[str, Counter[str]] = {name: Counter() for name in CLASSES}
    allocated: Counter[str] = Counter()
    start = time.monotonic()
    for index, mutant in enumerate(mutants(PER_CLASS, SEED)):
        path = tmp_path / mutant.file_name(index)
        path.write_bytes(mutant.content)
        outcome = measure_outcome(path, BOUND_S, trace)
        assert outcome.kind in ("measured", "rejected"), (mutant.detail, outcome)
        by_class[mutant.mutation_class][outcome.category] += 1
        allocated[mutant.mutation_class] += outcome.allocated
    with capsys.disabled():
        print(f"\nfuzz: {PER_CLASS * len(CLASSES)} mutations in {time.monotonic() - start:.1f} s")
        for name, categories in by_class.items():
            reasons = ", ".join(f"{c} {n}" for c, n in categories.most_common())
            print(f"  {name:<15} allocate_tensors {allocated[name]}/{PER_CLASS}  ({reasons})")
    # Every class got past the static checks into the interpreter at least once, and the run as
    # a whole exercised both sides.
    assert all(allocated[name] >= 1 for name in CLASSES), allocated
    total = sum(by_class.values(), Counter())
    assert total["corrupt (static)"] + total["invalid structure (static)"] >= 5, total
    assert total["rejected by the interpreter"] >= 3, total
    assert sum(total[c] for c in MEASURED) >= 5, total


def test_a_session_over_mutated_sources_reports_each_item_once(pytester: pytest.Pytester) -> None:
    """Budget files whose sources are mutants: one outcome per item, one JSON entry per item."""
    (pytester.path / "models").mkdir()
    (pytester.path / "budgets").mkdir()
    sample = list(mutants(2, 20250612))[:12]
    for index, mutant in enumerate(sample):
        (pytester.path / "models" / f"m{index}.tflite").write_bytes(mutant.content)
        (pytester.path / "budgets" / f"m{index}.toml").write_text(textwrap.dedent(f"""
            source = "../models/m{index}.tflite"
            [defaults.runtime]
            delegates = ["builtin"]
            warmup = {{ min_runs = 1, min_seconds = 0 }}
            timing = {{ min_runs = 3, min_seconds = 0 }}
            timeout = "{TIMEOUT_S:g} s"
            [variants.fuzz]
            size = {{ max = "1 MiB" }}
            latency.builtin = {{ median = "1 s" }}
        """))
    result = pytester.runpytest("budgets", "-p", "no:randomly", "-p", "no:cacheprovider", "-rA",
                                "--tflite-report=report.json")
    text = result.stdout.str()
    outcomes = result.parseoutcomes()
    assert result.ret in (0, 1), text
    assert outcomes.get("errors", 0) == 0 and "INTERNALERROR" not in text, text
    assert "Traceback" not in text, text
    counted = sum(outcomes.get(k, 0) for k in ("passed", "failed", "skipped"))
    assert counted == len(sample), outcomes
    items = {f"budgets/m{i}.toml::fuzz" for i in range(len(sample))}
    summary = [line for line in text.splitlines() if line.split(" ")[0] in
               ("PASSED", "FAILED", "SKIPPED")]
    assert sorted(line.split(" ")[1] for line in summary) == sorted(items), summary
    tests = [e["test"] for e in json.loads((pytester.path / "report.json").read_text())["entries"]]
    assert len(tests) == len(set(tests)) and set(tests) <= items, tests
    # Every item has its entry, an unreadable file's too (every key an error).
    assert set(tests) == items, tests


def test_an_unreadable_source_has_its_entry_in_the_report(pytester: pytest.Pytester) -> None:
    (pytester.path / "budgets").mkdir()
    (pytester.path / "budgets" / "cut.tflite").write_bytes(fc_model()[:300])
    (pytester.path / "budgets" / "cut.toml").write_text(
        'source = "cut.tflite"\n[variants.fuzz]\nsize = { max = "1 MiB" }\n')
    result = pytester.runpytest("budgets", "-p", "no:randomly", "--tflite-no-runtime",
                                "--tflite-report=report.json")
    result.assert_outcomes(failed=1)
    entries = json.loads((pytester.path / "report.json").read_text())["entries"]
    assert [e["test"] for e in entries] == ["budgets/cut.toml::fuzz"]
    entry = entries[0]
    assert entry["verdict"] == "error" and entry["size_bytes"] == 300
    assert [c["metric"] for c in entry["checks"]] == ["size.max"]
    assert entry["checks"][0]["verdict"] == "error" and entry["checks"][0]["measured"] is None
    assert "corrupt TFLite model" in entry["refused"], entry["refused"]


# ---------------------------------------------------------------- explicit cases


def _model(shape: list[int], signature: list[int] | None = None, op: str = "RELU",
           custom_code: str | None = None) -> bytes:
    return build_model([Subgraph(
        tensors=[Tensor("x", shape, shape_signature=signature),
                 Tensor("y", shape, shape_signature=signature)],
        ops=[Op(op, [0], [1], custom_code=custom_code)], inputs=[0], outputs=[1],
    )])


def _with_identifier(content: bytes) -> bytes:
    return content[:4] + b"TFL3" + content[8:]


BAD_FILES = {
    # name: (bytes, or None for a directory / a missing path; the expected category)
    "empty file": (b"", "not a TFLite model"),
    "seven bytes": (b"TFL3TFL", "not a TFLite model"),
    "random bytes": (np.random.default_rng(1).bytes(4096), "not a TFLite model"),
    "random bytes with the TFL3 identifier":
        (_with_identifier(np.random.default_rng(2).bytes(4096)), "corrupt (static)"),
    "text file": (b"model = 'digits'\n" * 40, "not a TFLite model"),
    "zip file (a .keras model)": (b"PK\x03\x04" + bytes(200), "not a TFLite model"),
    "header only": (small_model()[:8], "corrupt (static)"),
    "absurd shape": (_model([2**20, 2**20, 64]), "corrupt (static)"),
    "shape past int64": (_model([2**31 - 1] * 4), "corrupt (static)"),
    "negative dimension": (_model([-5, 8]), "corrupt (static)"),
    "dynamic input without a shape": (_model([1, 4], signature=[1, -1]), "dynamic shape"),
    "unresolved custom op": (_model([1, 4], op="CUSTOM", custom_code="NoSuchOp"), "unsupported"),
    "zero-size input": (_model([0, 4]), "ran"),
    "directory": (None, "is a directory"),
    "missing file": (None, "does not exist"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file(tmp_path: Path, case: str) -> None:
    content, expected = BAD_FILES[case]
    path = tmp_path / "model.tflite"
    if case == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    assert measure(path) == expected


def test_custom_op_is_named(tmp_path: Path) -> None:
    path = tmp_path / "custom.tflite"
    path.write_bytes(_model([1, 4], op="CUSTOM", custom_code="NoSuchOp"))
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["measure", str(path), "--delegate", "builtin", "--json"]) == 0
    found = json.loads(out.getvalue())["delegates"]["builtin"]
    assert found["status"] == "unsupported"
    assert "NoSuchOp" in found["reason"]


def test_model_that_never_ends_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WHILE (x < 1e9) x = relu(x): the interpreter never returns; the worker is killed."""
    monkeypatch.setattr(settings, "BUILT_IN", replace(settings.BUILT_IN, timeout=3.0))
    path = tmp_path / "forever.tflite"
    path.write_bytes(build_model([
        Subgraph([Tensor("x", [1]), Tensor("y", [1])],
                 [Op("WHILE", [0], [1], options={"cond_subgraph_index": 1, "body_subgraph_index": 2})],
                 inputs=[0], outputs=[1], name="main"),
        Subgraph([Tensor("a", [1]), Tensor("limit", [1], data=[1e9]), Tensor("go", [1], dtype="bool")],
                 [Op("LESS", [0, 1], [2])], inputs=[0], outputs=[2], name="cond"),
        Subgraph([Tensor("a", [1]), Tensor("b", [1])], [Op("RELU", [0], [1])],
                 inputs=[0], outputs=[1], name="body"),
    ]))
    outcome = measure_outcome(path, BOUND_S, tmp_path / "trace.log")
    # Killed at the 3 s set here, not at the 10 s default nor the BOUND_S bound (a "hang"): no
    # elapsed time is asserted, so a loaded machine cannot fail it.
    assert (outcome.kind, outcome.category) == ("rejected", "timed out"), outcome
    assert "timed out after 3 s" in outcome.message, outcome


# ---------------------------------------------------------------- regressions the fuzz found


def _calls(plant: dict[int, int], main_options: dict[str, int] | None = None) -> bytes:
    """The control-flow seed with WHILE's options replaced and CALL_ONCE planted in subgraphs:
    ``plant`` maps a subgraph to the subgraph its new CALL_ONCE calls."""
    from tests.hardening.fuzz_mutations import control_flow_model, pack, unpack

    model = unpack(control_flow_model())
    while_op = model.subgraphs[0].operators[1]
    for key, value in (main_options or {}).items():
        setattr(while_op.builtinOptions, key, value)
    call_once = model.subgraphs[0].operators[0]
    for caller, callee in plant.items():
        planted = unpack(control_flow_model()).subgraphs[0].operators[0]
        planted.opcodeIndex = call_once.opcodeIndex
        planted.builtinOptions.initSubgraphIndex = callee
        model.subgraphs[caller].operators.insert(0, planted)
    return pack(model)


CYCLES = {
    # Each crashed the interpreter with SIGSEGV (contained, but no reason): TFLite recurses.
    "WHILE body is the main subgraph": (_calls({}, {"bodySubgraphIndex": 0}), "0 -> 0"),
    "WHILE cond is the main subgraph": (_calls({}, {"condSubgraphIndex": 0}), "0 -> 0"),
    "a called subgraph calls main": (_calls({4: 0}), "0 -> 4 -> 0"),
    "two subgraphs call each other": (_calls({4: 5, 5: 4}), "4 -> 5 -> 4"),
    "a subgraph calls itself": (_calls({5: 5}), "5 -> 5"),
}


@pytest.mark.parametrize("case", list(CYCLES))
def test_subgraph_cycles_are_refused_statically(tmp_path: Path, case: str) -> None:
    content, cycle = CYCLES[case]
    path = tmp_path / "cycle.tflite"
    path.write_bytes(content)
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        assert cli.main(["measure", str(path), "--delegate", "builtin", "--json"]) == 2
    assert f"subgraphs call each other in a cycle ({cycle})" in err.getvalue()
    assert measure(path) == "corrupt (static)"
