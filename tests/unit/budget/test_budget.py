"""The budget file schema: units, normalisation, and one readable error per bad input."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite import cli
from pytest_tflite.budget import Budget, Relative, load
from pytest_tflite.errors import BudgetFileError

FULL = """\
model = "digits_cnn"
source = "models/digits.tflite"

[defaults.runtime]
threads = 1
delegates = ["xnnpack", "builtin"]

[variants.int8]
size     = { max = "24 KiB", max_gzip = "20 KiB" }
accuracy = { metric = "top1", min = 0.95, max_drop = 0.01 }
fidelity = { min_top1_agreement = 0.99, min_cosine = 0.995, max_abs_error = 0.1, min_snr_db = 30 }
sparsity = { min = 0.5, pattern = "2:4", layers = { conv2d_1 = { min = 0.6 } } }

[variants.int8.runtime]
warmup = { min_runs = 10, min_seconds = 0.5 }
timing = { min_runs = 50, min_seconds = 1.0 }
input_shapes = { input_1 = [1, 96, 96, 3] }
seed = 0

[variants.int8.latency.xnnpack]
median = "0.8 ms"
p90 = "1.2 ms"
cpu = "1.0 ms"
init = "20 ms"
first_invoke = "5 ms"

[variants.int8.latency.builtin]
median = "500 us"
p99 = "1 s"
init = 3

[variants.int8.memory]
planned_arena = "64 KiB"

[variants.int8.memory.builtin]
arena = "600 KiB"
peak_rss = "8 MiB"

[variants.int8.delegation.xnnpack]
min_fraction = 1.0
max_partitions = 1
forbid_fallback = ["CUSTOM"]

[variants.float16]
size = { max = "1 MB", max_gzip = 1000 }
accuracy = { metric = "mae", max = 0.2, max_drop = "1%" }

[regression]
size = "1%"
latency = "5%"
accuracy = 0.005
"""


def write(tmp_path: Path, text: str, name: str = "digits_cnn.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> tuple[Path, str]:
    path = write(tmp_path, text)
    with pytest.raises(BudgetFileError) as info:
        load(path)
    return path, str(info.value)


# --- a valid file ------------------------------------------------------------------------------


def test_full_example_parses_to_base_units(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    budget = load(path)
    assert isinstance(budget, Budget)
    assert budget.path == path
    assert budget.model == "digits_cnn"
    assert budget.source == (tmp_path / "models" / "digits.tflite").resolve()

    spec = budget.spec
    assert spec.defaults.runtime is not None
    assert spec.defaults.runtime.threads == 1
    assert spec.defaults.runtime.delegates == ["xnnpack", "builtin"]

    int8 = budget.variant("int8")
    assert int8.size is not None
    assert int8.size.max == 24576
    assert int8.size.max_gzip == 20480

    assert int8.accuracy is not None
    assert int8.accuracy.metric == "top1"
    assert int8.accuracy.min == 0.95
    assert int8.accuracy.max_drop == 0.01
    assert int8.accuracy.higher_is_better

    assert int8.fidelity is not None
    assert int8.fidelity.min_top1_agreement == 0.99
    assert int8.fidelity.min_cosine == 0.995
    assert int8.fidelity.max_abs_error == 0.1
    assert int8.fidelity.min_snr_db == 30.0

    assert int8.sparsity is not None
    assert int8.sparsity.min == 0.5
    assert int8.sparsity.pattern == "2:4"
    assert int8.sparsity.layers["conv2d_1"].min == 0.6

    runtime = int8.runtime
    assert runtime is not None
    assert runtime.warmup is not None and runtime.timing is not None
    assert (runtime.warmup.min_runs, runtime.warmup.min_seconds) == (10, 0.5)
    assert (runtime.timing.min_runs, runtime.timing.min_seconds) == (50, 1.0)
    assert runtime.input_shapes == {"input_1": [1, 96, 96, 3]}
    assert runtime.seed == 0

    xnnpack = int8.latency["xnnpack"]
    assert xnnpack.median == pytest.approx(0.8)
    assert xnnpack.p90 == pytest.approx(1.2)
    assert xnnpack.cpu == pytest.approx(1.0)
    assert xnnpack.init == pytest.approx(20.0)
    assert xnnpack.first_invoke == pytest.approx(5.0)
    assert xnnpack.p99 is None
    builtin = int8.latency["builtin"]
    assert builtin.median == pytest.approx(0.5)  # "500 us"
    assert builtin.p99 == pytest.approx(1000.0)  # "1 s"
    assert builtin.init == pytest.approx(3.0)  # a bare number is milliseconds

    assert int8.memory is not None
    assert int8.memory.planned_arena == 65536
    assert set(int8.memory.delegates) == {"builtin"}
    assert int8.memory.delegates["builtin"].arena == 600 * 1024
    assert int8.memory.delegates["builtin"].peak_rss == 8 * 1024 * 1024

    delegation = int8.delegation["xnnpack"]
    assert delegation.min_fraction == 1.0
    assert delegation.max_partitions == 1
    assert delegation.forbid_fallback == ["CUSTOM"]

    float16 = budget.variant("float16")
    assert float16.size is not None
    assert float16.size.max == 1_000_000  # MB is decimal
    assert float16.size.max_gzip == 1000
    assert float16.accuracy is not None
    assert not float16.accuracy.higher_is_better
    assert float16.accuracy.max == 0.2
    assert float16.accuracy.max_drop == Relative(percent=1)

    assert spec.regression is not None
    assert spec.regression.size == Relative(percent=1)
    assert spec.regression.latency == Relative(percent=5)
    assert isinstance(spec.regression.latency, Relative)
    assert spec.regression.latency.fraction == pytest.approx(0.05)
    assert spec.regression.accuracy == pytest.approx(0.005)
    assert not isinstance(spec.regression.accuracy, Relative)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24 KiB", 24576),
        ("24KiB", 24576),
        ("1.5 KiB", 1536),
        ("2 KB", 2000),
        ("3 MiB", 3 * 1024 * 1024),
        ("2 MB", 2_000_000),
        ("100 B", 100),
        ("100", None),  # a string needs a unit
    ],
)
def test_size_units(tmp_path: Path, text: str, expected: int | None) -> None:
    path = write(tmp_path, f'[variants.v]\nsize = {{ max = "{text}" }}\n')
    if expected is None:
        with pytest.raises(BudgetFileError, match=re.escape("variants.v.size.max")):
            load(path)
        return
    size = load(path).variant("v").size
    assert size is not None
    assert size.max == expected
    assert isinstance(size.max, int)


def test_bare_size_is_bytes(tmp_path: Path) -> None:
    budget = load(write(tmp_path, "[variants.v]\nsize = { max = 24576, max_gzip = 1024.0 }\n"))
    size = budget.variant("v").size
    assert size is not None
    assert (size.max, size.max_gzip) == (24576, 1024)
    assert isinstance(size.max_gzip, int)


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [('"0.8 ms"', 0.8), ('"1 s"', 1000.0), ('"500 us"', 0.5), ('"1e3 us"', 1.0), ("2.5", 2.5),
     ("3", 3.0)],
)
def test_time_units(tmp_path: Path, text: str, expected_ms: float) -> None:
    path = write(tmp_path, f"[variants.v.latency.xnnpack]\nmedian = {text}\n")
    assert load(path).variant("v").latency["xnnpack"].median == pytest.approx(expected_ms)


def test_model_defaults_to_file_stem(tmp_path: Path) -> None:
    budget = load(write(tmp_path, '[variants.int8]\nsize = { max = "1 KiB" }\n', "my_net.toml"))
    assert budget.model == "my_net"
    assert budget.source is None


def test_empty_file_is_a_valid_budget(tmp_path: Path) -> None:
    budget = load(write(tmp_path, ""))
    assert budget.spec.variants == {}
    assert budget.spec.regression is None


def test_external_delegate_key_is_accepted(tmp_path: Path) -> None:
    text = (
        '[variants.v.latency."external:/path/libdelegate.so"]\nmedian = "1 ms"\n'
        '[variants.v.memory."external:/path/libdelegate.so"]\narena = "1 KiB"\n'
        '[variants.v.delegation."external:/path/libdelegate.so"]\nmin_fraction = 0.5\n'
        '[defaults.runtime]\ndelegates = ["external:/path/libdelegate.so", "gpu", "npu"]\n'
    )
    budget = load(write(tmp_path, text))
    variant = budget.variant("v")
    assert variant.latency["external:/path/libdelegate.so"].median == 1.0
    assert variant.memory is not None
    assert variant.memory.delegates["external:/path/libdelegate.so"].arena == 1024
    assert variant.delegation["external:/path/libdelegate.so"].min_fraction == 0.5
    assert budget.spec.defaults.runtime is not None
    assert budget.spec.defaults.runtime.delegates == [
        "external:/path/libdelegate.so", "gpu", "npu"]


def test_unknown_variant_lists_the_variants(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    budget = load(path)
    with pytest.raises(BudgetFileError) as info:
        budget.variant("nope")
    message = str(info.value)
    assert str(path) in message
    assert "nope" in message
    assert "float16" in message and "int8" in message


@pytest.mark.parametrize(("written", "shown"), [
    ('"\\n"', '"\\n"'), ('"a\\u0000b"', '"a\\u0000b"'), ('"\\u202Esize"', '"\\u202Esize"'),
    ('"size "', "size "),  # printable: as written, without quotes
])
def test_a_key_that_does_not_print_is_shown_escaped_on_one_line(tmp_path: Path, written: str,
                                                                 shown: str) -> None:
    # Found by bench/hardening_hypothesis.py: an unknown key "\n" split its error over two
    # lines, so the message no longer named the key (and a name could start a log command).
    _, message = load_error(tmp_path, f"[variants.a]\nsize = {{ max = 10 }}\n{written} = 1\n")
    (line,) = [line for line in message.splitlines() if "unknown key" in line]
    assert line.startswith(f"  variants.a.{shown}: unknown key")
    assert message.count("\n") == 1  # the file's line, then this one


def test_unknown_variant_in_a_file_without_variants(tmp_path: Path) -> None:
    budget = load(write(tmp_path, 'model = "m"\n'))
    with pytest.raises(BudgetFileError, match="none"):
        budget.variant("int8")


# --- bad input: one BudgetFileError naming the file, the key path and what was expected ---------

BAD = [
    # (id, toml, key path, words that say what was expected)
    ("unknown-top-level", "modle = 'x'\n", "modle", "unknown key"),
    ("unknown-in-size", '[variants.int8]\nsize = { maxx = "1 KiB" }\n',
     "variants.int8.size.maxx", "unknown key"),
    ("unknown-in-variant", "[variants.int8]\nsizes = {}\n", "variants.int8.sizes", "unknown key"),
    ("unknown-in-latency-table", '[variants.int8.latency.xnnpack]\nmedain = "1 ms"\n',
     "variants.int8.latency.xnnpack.medain", "unknown key"),
    ("unknown-in-memory-delegate", '[variants.int8.memory.builtin]\narenaa = "1 KiB"\n',
     "variants.int8.memory.builtin.arenaa", "unknown key"),
    ("unknown-in-runtime", "[defaults.runtime]\nthread = 1\n", "defaults.runtime.thread",
     "unknown key"),
    ("unknown-in-regression", '[regression]\nsizes = "1%"\n', "regression.sizes", "unknown key"),
    ("unknown-in-layer", "[variants.int8]\nsparsity = { layers = { c = { mn = 0.5 } } }\n",
     "variants.int8.sparsity.layers.c.mn", "unknown key"),
    ("latency-unknown-delegate", '[variants.int8.latency.xnnpak]\nmedian = "1 ms"\n',
     "variants.int8.latency.xnnpak", "unknown delegate"),
    ("delegation-unknown-delegate", "[variants.int8.delegation.xnnpak]\nmin_fraction = 1.0\n",
     "variants.int8.delegation.xnnpak", "unknown delegate"),
    ("runtime-unknown-delegate", '[defaults.runtime]\ndelegates = ["xnnpak"]\n',
     "defaults.runtime.delegates.0", "unknown delegate"),
    ("external-without-path", '[variants.int8.latency."external:"]\nmedian = 1\n',
     "variants.int8.latency.external:", "unknown delegate"),
    ("size-lowercase-kb", '[variants.int8]\nsize = { max = "12 kb" }\n',
     "variants.int8.size.max", "KiB"),
    ("size-unknown-unit", '[variants.int8]\nsize = { max = "3 parsecs" }\n',
     "variants.int8.size.max", "KiB"),
    ("time-unknown-unit", '[variants.int8.latency.xnnpack]\nmedian = "3 parsecs"\n',
     "variants.int8.latency.xnnpack.median", "ms"),
    ("time-size-unit", '[variants.int8.latency.xnnpack]\nmedian = "3 KiB"\n',
     "variants.int8.latency.xnnpack.median", "ms"),
    ("size-zero", "[variants.int8]\nsize = { max = 0 }\n", "variants.int8.size.max",
     "greater than 0"),
    ("size-zero-with-unit", '[variants.int8]\nsize = { max_gzip = "0 KiB" }\n',
     "variants.int8.size.max_gzip", "greater than 0"),
    ("size-negative", "[variants.int8]\nsize = { max = -5 }\n", "variants.int8.size.max",
     "greater than 0"),
    ("size-boolean", "[variants.int8]\nsize = { max = true }\n", "variants.int8.size.max",
     "expected a size"),
    ("size-half-byte", '[variants.int8]\nsize = { max = "0.5 B" }\n', "variants.int8.size.max",
     "whole number"),
    ("size-fractional-bytes", "[variants.int8]\nsize = { max = 1.5 }\n",
     "variants.int8.size.max", "whole number"),
    ("memory-size-zero", "[variants.int8.memory]\nplanned_arena = 0\n",
     "variants.int8.memory.planned_arena", "greater than 0"),
    ("time-zero", "[variants.int8.latency.xnnpack]\nmedian = 0\n",
     "variants.int8.latency.xnnpack.median", "greater than 0"),
    ("time-negative", '[variants.int8.latency.xnnpack]\np90 = "-1 ms"\n',
     "variants.int8.latency.xnnpack.p90", "expected a time"),
    ("time-boolean", "[variants.int8.latency.xnnpack]\nmedian = true\n",
     "variants.int8.latency.xnnpack.median", "expected a time"),
    ("time-nan", "[variants.int8.latency.xnnpack]\nmedian = nan\n",
     "variants.int8.latency.xnnpack.median", "greater than 0"),
    ("sparsity-over-1", "[variants.int8]\nsparsity = { min = 1.5 }\n",
     "variants.int8.sparsity.min", "between 0 and 1"),
    ("sparsity-negative", "[variants.int8]\nsparsity = { min = -0.1 }\n",
     "variants.int8.sparsity.min", "between 0 and 1"),
    ("layer-sparsity-over-1", "[variants.int8]\nsparsity = { layers = { c = { min = 2 } } }\n",
     "variants.int8.sparsity.layers.c.min", "between 0 and 1"),
    ("min-fraction-over-1", "[variants.int8.delegation.xnnpack]\nmin_fraction = 1.01\n",
     "variants.int8.delegation.xnnpack.min_fraction", "between 0 and 1"),
    ("cosine-over-1", "[variants.int8]\nfidelity = { min_cosine = 2 }\n",
     "variants.int8.fidelity.min_cosine", "between 0 and 1"),
    ("agreement-boolean", "[variants.int8]\nfidelity = { min_top1_agreement = true }\n",
     "variants.int8.fidelity.min_top1_agreement", "number"),
    ("mae-with-min", '[variants.int8]\naccuracy = { metric = "mae", min = 0.1 }\n',
     "variants.int8.accuracy", "use max"),
    ("rmse-with-min", '[variants.int8]\naccuracy = { metric = "rmse", min = 0.1 }\n',
     "variants.int8.accuracy", "use max"),
    ("top1-with-max", '[variants.int8]\naccuracy = { metric = "top1", max = 0.1 }\n',
     "variants.int8.accuracy", "use min"),
    ("top0", '[variants.int8]\naccuracy = { metric = "top0", min = 0.1 }\n',
     "variants.int8.accuracy", "top1"),
    ("unknown-metric", '[variants.int8]\naccuracy = { metric = "f1" }\n',
     "variants.int8.accuracy.metric", "mae"),
    ("negative-max-drop", '[variants.int8]\naccuracy = { metric = "top1", max_drop = -0.1 }\n',
     "variants.int8.accuracy.max_drop", ">= 0"),
    ("pattern-4-2", '[variants.int8]\nsparsity = { pattern = "4:2" }\n',
     "variants.int8.sparsity", "N:M"),
    ("pattern-0-4", '[variants.int8]\nsparsity = { pattern = "0:4" }\n',
     "variants.int8.sparsity", "N:M"),
    ("pattern-not-n-m", '[variants.int8]\nsparsity = { pattern = "2-4" }\n',
     "variants.int8.sparsity.pattern", "pattern"),
    ("threads-zero", "[defaults.runtime]\nthreads = 0\n", "defaults.runtime.threads",
     "greater than 0"),
    ("threads-boolean", "[variants.int8.runtime]\nthreads = true\n",
     "variants.int8.runtime.threads", "number"),
    ("input-shape-negative", "[variants.int8.runtime]\ninput_shapes = { x = [1, -1] }\n",
     "variants.int8.runtime.input_shapes.x.1", "greater than 0"),
    ("regression-negative-percent", '[regression]\nsize = "-1%"\n', "regression.size",
     "expected"),
    ("regression-boolean", "[regression]\naccuracy = true\n", "regression.accuracy",
     "expected a number"),
    ("size-not-a-table", '[variants.int8]\nsize = "24 KiB"\n', "variants.int8.size",
     "dictionary"),
    ("variants-not-a-table", "variants = 3\n", "variants", "dictionary"),
]


@pytest.mark.parametrize(("text", "key", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_value_names_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path, message = load_error(tmp_path, text)
    assert str(path) in message
    # the key path appears as its own entry: "  variants.int8.size.max: ..."
    assert re.search(rf"^\s+{re.escape(key)}: ", message, re.MULTILINE), message
    assert expected in message
    assert "Traceback" not in message
    assert "function-" not in message  # pydantic internals stay out of the user's message


def test_memory_unknown_delegate_names_the_key_path(tmp_path: Path) -> None:
    path, message = load_error(tmp_path, '[variants.int8.memory.xnnpak]\narena = "1 KiB"\n')
    assert str(path) in message
    assert "unknown delegate" in message
    assert re.search(r"^\s+variants\.int8\.memory\.xnnpak: ", message, re.MULTILINE), message


def test_memory_unknown_delegate_is_rejected(tmp_path: Path) -> None:
    path, message = load_error(tmp_path, '[variants.int8.memory.xnnpak]\narena = "1 KiB"\n')
    assert str(path) in message
    assert "variants.int8.memory" in message
    assert "unknown delegate 'xnnpak'" in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    _, message = load_error(
        tmp_path, '[variants.int8]\nsize = { max = "12 kb", max_gzip = 0 }\nfoo = 1\n')
    assert "variants.int8.size.max:" in message
    assert "variants.int8.size.max_gzip:" in message
    assert "variants.int8.foo:" in message


def test_invalid_toml_gives_line_information(tmp_path: Path) -> None:
    path, message = load_error(tmp_path, 'model = "m"\n[variants.int8\nsize = 1\n')
    assert str(path) in message
    assert "invalid TOML" in message
    assert "line 2" in message


def test_duplicate_key_is_invalid_toml(tmp_path: Path) -> None:
    _, message = load_error(tmp_path, 'model = "a"\nmodel = "b"\n')
    assert "invalid TOML" in message
    assert "line 2" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "budgets" / "absent.toml"
    with pytest.raises(BudgetFileError) as info:
        load(path)
    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)


def test_directory_is_not_a_budget_file(tmp_path: Path) -> None:
    path = tmp_path / "dir.toml"
    path.mkdir()
    with pytest.raises(BudgetFileError, match=re.escape(str(path))):
        load(path)


def test_binary_file_is_not_a_budget_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00\x01model")
    with pytest.raises(BudgetFileError) as info:
        load(path)
    assert str(path) in str(info.value)
    assert "UTF-8" in str(info.value)


# --- the JSON Schema ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["schema"]) == 0
    return json.loads(out.getvalue())


def test_schema_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema"]) == 0
    captured = capsys.readouterr()
    schema = json.loads(captured.out)
    assert "variants" in schema["properties"]
    assert "regression" in schema["properties"]
    assert schema["type"] == "object"
    assert "$schema" in schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow $ref and pick the object member of an Optional[...] anyOf."""
    while True:
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        elif "anyOf" in node:
            objects = [n for n in node["anyOf"] if n.get("type") != "null"]
            assert len(objects) == 1, node
            node = objects[0]
        else:
            return node


def _accepts_key(node: dict[str, Any], key: str) -> bool:
    """Whether a JSON Schema object node lets ``key`` through (properties, patterns, extras)."""
    if key in node.get("properties", {}):
        return True
    if any(re.search(p, key) for p in node.get("patternProperties", {})):
        return True
    if "propertyNames" in node:
        names = node["propertyNames"]
        if "pattern" in names and not re.search(names["pattern"], key):
            return False
        if "enum" in names and key not in names["enum"]:
            return False
    return node.get("additionalProperties", True) is not False


def test_schema_rejects_unknown_keys(schema: dict[str, Any]) -> None:
    assert schema["additionalProperties"] is False
    variant = schema["$defs"]["Variant"]
    assert variant["additionalProperties"] is False
    assert not _accepts_key(variant, "sizes")
    assert _accepts_key(variant, "size")
    for name, definition in schema["$defs"].items():
        if definition.get("type") == "object" and name != "MemoryBudget":
            assert definition.get("additionalProperties") is False, name
    size = _resolve(schema, variant["properties"]["size"])
    assert set(size["properties"]) == {"max", "max_gzip"}
    assert not _accepts_key(size, "maxx")


def _alternatives(node: dict[str, Any]) -> list[dict[str, Any]]:
    if "anyOf" not in node:
        return [node]
    return [leaf for member in node["anyOf"] for leaf in _alternatives(member)]


def test_schema_describes_units(schema: dict[str, Any]) -> None:
    size = _alternatives(schema["$defs"]["SizeBudget"]["properties"]["max"])
    patterns = [n["pattern"] for n in size if "pattern" in n]
    assert len(patterns) == 1
    assert re.search(patterns[0], "24 KiB")
    assert not re.search(patterns[0], "12 kb")
    integer = [n for n in size if n.get("type") == "integer"]
    assert integer and integer[0]["exclusiveMinimum"] == 0
    median = _alternatives(schema["$defs"]["LatencyBudget"]["properties"]["median"])
    time_pattern = next(n["pattern"] for n in median if "pattern" in n)
    assert re.search(time_pattern, "500 us") and not re.search(time_pattern, "3 parsecs")


@pytest.mark.parametrize("section", ["latency", "delegation", "memory"])
def test_schema_rejects_unknown_delegates(schema: dict[str, Any], section: str) -> None:
    node = _resolve(schema, schema["$defs"]["Variant"]["properties"][section])
    assert _accepts_key(node, "xnnpack")
    assert _accepts_key(node, "external:/path/libdelegate.so")
    assert not _accepts_key(node, "xnnpak")
