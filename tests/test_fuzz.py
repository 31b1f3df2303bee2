"""Bad input never crashes, tracebacks or hangs ``tflite-budget measure``.

A seeded fuzz run mutates a small valid model (truncation, byte flips, bytes set to 0x00/0xFF,
chunk deletion and duplication, header corruption), and explicit cases cover files that are not
models at all and models that lie about themselves. Every run must exit 0 (the model ran, or a
delegate said it cannot run it) or 2 with the file's path and a known category of error, within
a bound, and never show a Python traceback.

The CLI has no flag for the runtime protocol, so the built-in defaults are patched to a short one
(one warm-up run, three timed runs, a 20 s timeout): most mutants fail static validation in
microseconds; the rest run in the worker subprocess for a fraction of a second.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from pytest_tflite import cli
from pytest_tflite.measure import runtime

from .flatbuffer_models import Op, Subgraph, Tensor, build_model

SEED = 20250611
MUTATIONS = 300
TIMEOUT_S = 20.0
BOUND_S = TIMEOUT_S + 15  # the worker's timeout plus process start and static checks

# What the package says, by where it says it (flatbuffer.py, runtime.py, worker/delegates.py,
# worker/main.py).
# Order matters: the first match names the category.
CATEGORIES = [
    ("not a TFLite model", r"not a TFLite model"),
    ("corrupt (static)", r"corrupt TFLite model"),
    ("invalid structure (static)", r"has no subgraph|no subgraph \d+|tensor buffer -?\d+ out of range|"
                                   r"but the subgraph has|but the model has"),
    ("is a directory", r"is a directory, not a \.tflite file"),
    ("does not exist", r"model file .* does not exist"),
    ("rejected by the interpreter", r"the interpreter rejected the model \(corrupt or invalid\)"),
    ("crashed", r"crashed the interpreter \(SIG[A-Z]+\)"),
    ("timed out", r"timed out after [\d.]+ s"),
    ("dynamic shape", r"has a dynamic shape"),
    # A native error raised by invoke() reaches the parent as the worker's exception; only the
    # interpreter's own error types are expected here (a KeyError would be a bug in the worker).
    ("invoke failed", r"builtin: (RuntimeError|ValueError|MemoryError): \S"),
]


@pytest.fixture(autouse=True)
def short_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"warmup", "timing", "timeout"} <= set(runtime.BUILTIN_DEFAULTS)
    monkeypatch.setitem(runtime.BUILTIN_DEFAULTS, "warmup", {"min_runs": 1, "min_seconds": 0})
    monkeypatch.setitem(runtime.BUILTIN_DEFAULTS, "timing", {"min_runs": 3, "min_seconds": 0})
    monkeypatch.setitem(runtime.BUILTIN_DEFAULTS, "timeout", TIMEOUT_S * 1000)


def small_model() -> bytes:
    """x[1,8] -> FULLY_CONNECTED -> RELU -> ADD(const) -> SOFTMAX: 1 KB, mostly structure."""
    rng = np.random.default_rng(0)
    return build_model([Subgraph(
        tensors=[Tensor("x", [1, 8]), Tensor("w", [4, 8], data=rng.normal(size=(4, 8))),
                 Tensor("b", [4], data=rng.normal(size=4)), Tensor("h", [1, 4]),
                 Tensor("r", [1, 4]), Tensor("c", [1, 4], data=rng.normal(size=(1, 4))),
                 Tensor("s", [1, 4]), Tensor("y", [1, 4])],
        ops=[Op("FULLY_CONNECTED", [0, 1, 2], [3]), Op("RELU", [3], [4]), Op("ADD", [4, 5], [6]),
             Op("SOFTMAX", [6], [7])],
        inputs=[0], outputs=[7],
    )])


def mutate(content: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    data = bytearray(content)
    size = len(data)
    kind = str(rng.choice(["truncate", "flip", "fill", "delete", "duplicate", "header"]))
    if kind == "truncate":
        return kind, bytes(data[: int(rng.integers(0, size))])
    if kind == "flip":
        for position in rng.integers(0, size, int(rng.integers(1, 17))):
            data[position] ^= int(rng.integers(1, 256))
    elif kind == "fill":
        value = int(rng.choice([0x00, 0xFF]))
        for position in rng.integers(0, size, int(rng.integers(1, 17))):
            data[position] = value
    elif kind == "delete":
        start = int(rng.integers(0, size))
        del data[start : start + int(rng.integers(1, 65))]
    elif kind == "duplicate":
        start = int(rng.integers(0, size))
        data[start:start] = data[start : start + int(rng.integers(1, 65))]
    else:  # the root table offset (bytes 0-3) and the "TFL3" identifier (bytes 4-7)
        for position in rng.choice(8, int(rng.integers(1, 4)), replace=False):
            data[position] ^= int(rng.integers(1, 256))
    return kind, bytes(data)


def measure(path: Path) -> str:
    """Run ``tflite-budget measure PATH --delegate builtin --json``; check the bad-input contract
    and return the outcome's category."""
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(["measure", str(path), "--delegate", "builtin", "--json"])
        except BaseException as exc:  # a traceback the user would see
            pytest.fail(f"{path}: tflite-budget raised {type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - start
    stdout, stderr = out.getvalue(), err.getvalue()
    assert elapsed < BOUND_S, f"{path}: took {elapsed:.1f} s"
    assert "Traceback" not in stdout + stderr, stdout + stderr
    assert code in (0, 2), (path, code, stderr)
    if code == 0:
        assert stderr == "", stderr
        found = json.loads(stdout)["delegates"]["builtin"]
        assert found["status"] in ("ok", "unsupported"), found
        if found["status"] == "ok":
            assert found["latency_ms"]["n"] == 3  # the short protocol took effect
            return "ran"
        assert found["reason"].strip(), found
        return "unsupported"
    assert stderr.startswith("tflite-budget: error: "), stderr
    assert str(path) in stderr, stderr
    for category, pattern in CATEGORIES:
        if re.search(pattern, stderr):
            return category
    pytest.fail(f"{path}: exit 2 with an error of no known category: {stderr}")


def test_fuzzed_models_fail_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(SEED)
    base = small_model()
    by_category: Counter[str] = Counter()
    by_kind: Counter[tuple[str, str]] = Counter()
    start = time.monotonic()
    for index in range(MUTATIONS):
        kind, content = mutate(base, rng)
        path = tmp_path / f"mutant_{index:03d}_{kind}.tflite"
        path.write_bytes(content)
        category = measure(path)
        by_category[category] += 1
        by_kind[kind, category] += 1
    with capsys.disabled():
        print(f"\nfuzz: {MUTATIONS} mutations in {time.monotonic() - start:.1f} s")
        for category, count in by_category.most_common():
            kinds = ", ".join(f"{k} {n}" for (k, c), n in sorted(by_kind.items()) if c == category)
            print(f"  {count:4d}  {category}  ({kinds})")
    # The run exercised both sides: static validation and the interpreter in the worker.
    assert by_category["corrupt (static)"] + by_category["not a TFLite model"] >= MUTATIONS // 3
    assert by_category["ran"] >= 5, by_category


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
    monkeypatch.setitem(runtime.BUILTIN_DEFAULTS, "timeout", 3000)
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
    start = time.monotonic()
    assert measure(path) == "timed out"
    assert time.monotonic() - start < 15
