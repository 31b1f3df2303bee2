"""Baselines: saved on the base branch, compared against on the head, never a silent pass."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite.baseline import (
    BASELINE_VERSION,
    Baseline,
    BaselineError,
    save,
)
from pytest_tflite.environment import environment_fingerprint
from pytest_tflite.results import Check, Entry, Measurement
from tests.helpers.gate import gate

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _entry(test: str, model: str = "m", variant: str = "v", size: int = 100,
           model_path: str = "") -> Entry:
    measurement = Measurement(size_bytes=size, gzip_bytes=size - 10, ops={"ADD": 1}, subgraphs=[],
                              planned_arena_bytes=64, inputs=[], outputs=[], sparsity=0.0,
                              sparsity_layers=[])
    return Entry(test, model, variant, "float32", measurement,
                 [Check("size.max", size, 1000, "pass", "bytes")], model_path=model_path)


# --- the store ------------------------------------------------------------------------------------


def test_save_writes_the_layout_and_reads_back_the_same_entries(tmp_path: Path) -> None:
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"TFL3-not-really-a-model")
    entries = [_entry("t.py::a", model_path=str(tflite)), _entry("t.py::b", variant="w", size=7)]
    environment = environment_fingerprint(threads=1)
    lines = save(tmp_path / "base", entries, environment)
    assert len(lines) == 2
    manifest = json.loads((tmp_path / "base" / "manifest.json").read_text())
    assert manifest == {"version": BASELINE_VERSION, "environment": environment,
                        "files": {name: hashlib.sha256((tmp_path / "base" / name).read_bytes())
                                  .hexdigest() for name in ("m/v.json", "m/v.tflite", "m/w.json")}}
    assert sorted(p.name for p in (tmp_path / "base" / "m").iterdir()) == ["v.json", "v.tflite",
                                                                           "w.json"]
    assert not list((tmp_path / "base").rglob(".*"))  # no temporary files left behind
    baseline = Baseline.open(tmp_path / "base")
    found = baseline.lookup("m", "v")
    assert found is not None and found.entry == entries[0]
    assert found.tflite is not None and found.tflite.read_bytes() == tflite.read_bytes()
    missing_model = baseline.lookup("m", "w")
    assert missing_model is not None and missing_model.tflite is None
    assert baseline.lookup("m", "new") is None


def test_two_tests_saving_one_model_variant_is_an_error_naming_both(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match=r"two tests measured m \[v\]: t.py::a and t.py::b"):
        save(tmp_path / "base", [_entry("t.py::a"), _entry("t.py::b")], {})
    assert not (tmp_path / "base" / "manifest.json").exists()  # nothing half-written


def test_environment_fingerprint_names_what_the_figures_depend_on() -> None:
    found = environment_fingerprint(threads=2)
    assert {"python", "tensorflow", "ai_edge_litert", "numpy", "cpu", "isa",
            "threads"} <= set(found)
    assert found["threads"] == 2 and found["cpu"]
    assert found["tensorflow"] and found["ai_edge_litert"] and found["numpy"]


@pytest.mark.parametrize(("setup", "says"), [
    (lambda d: None, "does not exist: save one on the base branch"),
    (lambda d: d.mkdir(), "manifest.json is missing"),
    (lambda d: (d.mkdir(), (d / "manifest.json").write_text("{not json")), "is corrupt"),
    (lambda d: (d.mkdir(), (d / "manifest.json").write_text('{"version": 99}')),
     "has version 99; this pytest-tflite reads version 1"),
])
def test_a_bad_baseline_directory_is_a_clear_error(tmp_path: Path, setup: Any, says: str) -> None:
    setup(tmp_path / "base")
    with pytest.raises(BaselineError, match=says):
        Baseline.open(tmp_path / "base")


def test_a_corrupt_entry_is_an_error_not_a_pass(tmp_path: Path) -> None:
    save(tmp_path / "base", [_entry("t.py::a")], {})
    (tmp_path / "base" / "m" / "v.json").write_text('{"test": "t"}')
    with pytest.raises(BaselineError, match=r"v.json is corrupt"):
        Baseline.open(tmp_path / "base").lookup("m", "v")


def test_an_interrupted_save_is_refused_where_it_rewrote_and_used_where_it_did_not(
        tmp_path: Path) -> None:
    # The previous save's manifest stays until the new save ends; files rewritten before the
    # kill no longer match its hashes.
    save(tmp_path / "base", [_entry("t.py::a"), _entry("t.py::b", variant="w")], {})
    (tmp_path / "base" / "m" / "v.json").write_text(
        json.dumps(_entry("t.py::a", size=99).to_json()))
    baseline = Baseline.open(tmp_path / "base")
    with pytest.raises(BaselineError, match=r"v.json is corrupt .*does not match the hash in the "
                                            r"manifest.*save the baseline again"):
        baseline.lookup("m", "v")
    assert baseline.lookup("m", "w") is not None
    # A variant the interrupted save added is not part of the baseline yet.
    (tmp_path / "base" / "m" / "new.json").write_text(json.dumps(_entry("t.py::c").to_json()))
    assert baseline.lookup("m", "new") is None


def test_a_first_save_killed_before_its_manifest_says_so(tmp_path: Path) -> None:
    save(tmp_path / "base", [_entry("t.py::a")], {})
    (tmp_path / "base" / "manifest.json").unlink()
    with pytest.raises(BaselineError, match=r"manifest.json is missing but .* holds entries: a "
                                            r"save was interrupted"):
        Baseline.open(tmp_path / "base")


def test_a_listed_model_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"TFL3")
    save(tmp_path / "base", [_entry("t.py::a", model_path=str(tflite))], {})
    (tmp_path / "base" / "m" / "v.tflite").unlink()
    with pytest.raises(BaselineError, match=r"v.tflite is missing or unreadable"):
        Baseline.open(tmp_path / "base").lookup("m", "v")


# --- end to end: base branch, then head -------------------------------------------------------------

BUDGET = """
    [variants.float32]
    size = { max = "1 MiB" }

    [regression]
    size = "1%"
    ops = "exact"
"""
@pytest.mark.parametrize("xdist", [["-p", "no:xdist"], ["-n", "0"], ["-n", "2"]],
                         ids=["no-xdist", "n0", "n2"])
def test_a_model_that_grew_fails_against_the_base_branch(project: Any, xdist: list[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    p = gate(project, {"mlp": BUDGET})
    monkeypatch.setenv("UNITS", "16")
    saved = p.runpytest("-p", "no:randomly", *xdist, "--tflite-baseline-save=base")
    saved.assert_outcomes(passed=1)
    saved.stdout.fnmatch_lines(["*tflite baseline saved: *base (1 model variant(s))*"])
    base = json.loads((p.path / "base" / "mlp" / "float32.json").read_text())
    assert (p.path / "base" / "mlp" / "float32.tflite").stat().st_size == base["size_bytes"]

    # The same model on the head: within 1%, op counts equal.
    same = p.runpytest("-p", "no:randomly", *xdist, "--tflite-baseline=base",
                       "--tflite-report=same.json")
    same.assert_outcomes(passed=1)
    checks = {c["metric"]: c for c in json.loads((p.path / "same.json").read_text())
              ["entries"][0]["checks"]}
    assert checks["regression.size"]["baseline"] == base["size_bytes"]
    assert checks["regression.size"]["delta"] == 0 and checks["regression.ops"]["verdict"] == "pass"

    # A wider hidden layer on the head: the file grows by far more than 1%.
    monkeypatch.setenv("UNITS", "64")
    grown = p.runpytest("-p", "no:randomly", *xdist, "--tflite-baseline=base",
                        "--tflite-report=grown.json")
    grown.assert_outcomes(failed=1)
    entry = json.loads((p.path / "grown.json").read_text())["entries"][0]
    check = {c["metric"]: c for c in entry["checks"]}["regression.size"]
    assert check["verdict"] == "fail"
    assert check["delta"] == entry["size_bytes"] - base["size_bytes"] > 0.01 * base["size_bytes"]
    grown.stdout.fnmatch_lines(["*regression.size*fail*"])
    # The summary: the figure once, base -> head with its change, the limit it broke and the
    # place to change it (a [regression] key: no ratchet command).
    change = check["delta"] / base["size_bytes"]
    grown.stdout.fnmatch_lines([
        "failed, one line per variant and figure:",
        # fnmatch reads [...] as a set of characters: ? stands for each bracket.
        f"  mlp ?float32? file size: * -> * KiB (+*, {change:+.1%}); grew most: dense/kernel "
        f"+1.5 KiB, dense/bias +192 B; fail: regression.size <= *",
        "      change: *mlp.toml ?regression? size"])
    assert "--tflite-loosen" not in grown.stdout.str()


def test_without_a_baseline_regression_keys_skip(project: Any) -> None:
    p = gate(project, {"mlp": BUDGET.replace('size = { max = "1 MiB" }', "")})
    result = p.runpytest("-p", "no:randomly", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*regression.size: not compared: no baseline*"])


def test_a_missing_baseline_directory_stops_the_run_at_start(project: Any) -> None:
    p = gate(project, {"mlp": BUDGET})
    result = p.runpytest("--tflite-baseline=nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--tflite-baseline: baseline directory *nowhere does not exist*"])


def test_a_new_model_variant_is_not_compared_and_says_so(project: Any) -> None:
    p = gate(project, {"mlp": BUDGET})
    save(p.path / "base", [], {})
    result = p.runpytest("-p", "no:randomly", "--tflite-baseline=base", "--tflite-report=r.json")
    result.assert_outcomes(passed=1)  # size.max passed; the regression keys say why they skipped
    checks = json.loads((p.path / "r.json").read_text())["entries"][0]["checks"]
    skipped = [c for c in checks if c["metric"].startswith("regression.")]
    assert skipped and all(c["verdict"] == "skip" and "has no mlp [float32]" in c["reason"]
                           for c in skipped)


def test_a_baseline_from_another_environment_is_a_warning_in_the_report(project: Any) -> None:
    p = gate(project, {"mlp": BUDGET})
    p.runpytest("-p", "no:randomly", "--tflite-baseline-save=base").assert_outcomes(passed=1)
    manifest = json.loads((p.path / "base" / "manifest.json").read_text())
    manifest["environment"]["tensorflow"] = "1.0.0"
    (p.path / "base" / "manifest.json").write_text(json.dumps(manifest))
    result = p.runpytest("-p", "no:randomly", "--tflite-baseline=base", "--tflite-report=r.json")
    result.assert_outcomes(passed=1)
    (entry,) = json.loads((p.path / "r.json").read_text())["entries"]
    assert any("tensorflow 1.0.0 -> " in w for w in entry["warnings"])
    result.stdout.fnmatch_lines(["*BaselineMismatchWarning*tensorflow 1.0.0 -> *"])


LATENCY_BUDGET = """
    [defaults.runtime]
    delegates = ["builtin"]
    warmup = { min_runs = 1, min_seconds = 0 }
    timing = { min_runs = 5, min_seconds = 0 }

    [variants.float32]
    size = { max = "4 MiB" }

    [regression]
    latency = "10%"
"""


def test_a_slower_model_fails_the_paired_latency_comparison(project: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    p = gate(project, {"mlp": LATENCY_BUDGET}, widths=(16, 1024), inputs=256)
    monkeypatch.setenv("UNITS", "16")
    p.runpytest("-p", "no:randomly", "--tflite-baseline-save=base").assert_outcomes(passed=1)
    # A layer 64 times wider: far more than 10% slower, whatever the machine's noise.
    monkeypatch.setenv("UNITS", "1024")
    result = p.runpytest("-p", "no:randomly", "--tflite-baseline=base", "--tflite-report=r.json")
    result.assert_outcomes(failed=1)
    (entry,) = json.loads((p.path / "r.json").read_text())["entries"]
    comparison = entry["delegates"]["builtin"]["comparison"]
    assert comparison["verdict"] == "regressed" and comparison["low"] > 1.1
    check = {c["metric"]: c for c in entry["checks"]}["regression.latency.builtin"]
    assert check["verdict"] == "fail" and check["measured"] == comparison["ratio"]
    assert (check["baseline"], check["budget"]) == (1.0, pytest.approx(1.1))
    result.stdout.fnmatch_lines(["*regression.latency.builtin*fail*"])


def test_a_budget_files_own_threads_do_not_read_as_another_environment(project: Any) -> None:
    # The manifest records the run's threads; a budget file's [defaults.runtime] threads must
    # not make the same machine look like another one.
    p = gate(project, {"mlp": "[defaults.runtime]\nthreads = 2\n" + BUDGET})
    p.runpytest("-p", "no:randomly", "--tflite-baseline-save=base").assert_outcomes(passed=1)
    result = p.runpytest("-p", "no:randomly", "--tflite-baseline=base", "--tflite-report=r.json")
    result.assert_outcomes(passed=1)
    (entry,) = json.loads((p.path / "r.json").read_text())["entries"]
    assert entry["warnings"] == []
