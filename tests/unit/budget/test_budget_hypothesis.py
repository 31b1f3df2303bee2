"""Budget files under hypothesis: what the JSON Schema calls valid loads, and everything near it
fails with one BudgetFileError that names the file and the key path, never another exception.

Documents come from ``tflite-budget schema`` itself, walked by a small generator below
(hypothesis-jsonschema 0.23 cannot draw objects under this hypothesis: ``'many' object has no
attribute 'more'``), so a key that joins the pydantic models joins these properties. The same
properties run with many more examples in ``bench/hardening_hypothesis.py``.

Where the schema and the loader disagree by design, the schema was tightened when a JSON Schema
can say it (non-empty budget tables, accuracy's metric/direction/bound rules, which delegates
take delegation and memory budgets, the C-int and int64 bounds). What a schema cannot say is
listed in ``BY_DESIGN`` below: a document refused for one of those reasons is discarded.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from pytest_tflite.budget import json_schema, load
from pytest_tflite.budget.loading import key_path
from pytest_tflite.errors import BudgetFileError
from pytest_tflite.keys import KEY_KINDS, NAMES_UNDER

SCHEMA: dict[str, Any] = json.loads(json_schema())
DEFS: dict[str, Any] = SCHEMA["$defs"]

# Refusals a JSON Schema cannot express (a regex cannot do arithmetic, and a rule that spans
# tables needs if/then): a schema-valid document refused with one of these is discarded.
BY_DESIGN = {
    # "0 B", "0.0001 KB", "0.5 B": the size pattern cannot say "a positive whole number of bytes".
    "size": re.compile(r"a size must be (greater than 0|a whole number of bytes|at most)"),
    # "0k", "0.0000001M", "99999999999G": the count pattern cannot say "a positive whole int64".
    "count": re.compile(r"a count must be (greater than 0|a whole number|at most)"),
    # "0 ms", "0.0 us", or so many digits that the number is infinite.
    "time": re.compile(r"a time must be (a finite number )?greater than 0"),
    "percent": re.compile(r"a percentage must be finite"),
    # sparsity.pattern "N:M" needs 0 < N < M.
    "n_of_m": re.compile(r"must be N:M with 0 < N < M"),
    # A variant with no budget table, in a file with no [regression]: a cross-table rule.
    "no_budgets": re.compile(r"has no budgets, so it would pass without checking anything"),
    # "top" followed by more than 4300 digits: Python will not read the number.
    "top_digits": re.compile(r"Exceeds the limit \(4300 digits\)"),
    # forbid_fallback names TFLite builtin ops: the list lives in LiteRT's schema, not in ours.
    "op_names": re.compile(r"is not a TFLite builtin op"),
    # latency.<d>.per_sample.batch must be one of runtime.batch_sizes, which may come from
    # [defaults.runtime]: a cross-table rule.
    "per_sample_batch": re.compile(r"per_sample\.batch: batch \d+ is (never measured|not one of)"),
    # fidelity.cross compares two delegates: against equal to delegate (either may be a default,
    # or "external:PATH") would need a comparison between two properties.
    "cross_itself": re.compile(r"fidelity\.cross compares two delegates"),
}

INT64 = 2**63 - 1

# Every leaf path the generator can emit (filled while the strategies are built) and every one
# it did emit (filled as examples are drawn).
REACHABLE: set[str] = set()
DRAWN: set[str] = set()


# --- documents from the JSON Schema -------------------------------------------------------------


def _resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = {**DEFS[node["$ref"].rsplit("/", 1)[-1]],
                **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _merge(base: dict[str, Any], branch: dict[str, Any]) -> dict[str, Any]:
    """One branch of an object's ``allOf: [{anyOf: ...}]`` constraints, applied to the object."""
    merged = dict(base)
    properties = dict(base.get("properties", {}))
    for name, extra in branch.get("properties", {}).items():
        properties[name] = False if extra is False else {**_resolve(properties[name]), **extra}
        if isinstance(properties[name], dict) and "const" in extra:
            properties[name] = {"const": extra["const"]}
    merged["properties"] = properties
    merged["required"] = [*base.get("required", []), *branch.get("required", [])]
    return merged


def _key_path(path: tuple[str, ...]) -> str:
    """``variants.<variant>.latency.<delegate>.median`` -> ``latency.<delegate>.median``."""
    text = ".".join(path)
    return re.sub(r"^(variants\.<variant>\.|defaults\.)", "", text)


def _leaf(path: tuple[str, ...], strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    key = _key_path(path)
    REACHABLE.add(key)

    def seen(value: Any) -> Any:
        DRAWN.add(key)
        return value

    return strategy.map(seen)


def _number(node: dict[str, Any], integer: bool) -> st.SearchStrategy[Any]:
    # TOML integers are unbounded, but the schema's unbounded "integer" means int64 here; past
    # it is the near-miss tests' ground.
    low = node.get("minimum", node.get("exclusiveMinimum", -INT64))
    high = node.get("maximum", INT64)
    exclusive = "exclusiveMinimum" in node
    ints = st.integers(math.ceil(low) + (1 if exclusive and float(low).is_integer() else 0),
                       math.floor(high))
    if integer:
        return ints
    floats = st.floats(float(low), float(high), exclude_min=exclusive,
                       allow_nan=False, allow_infinity=False)
    return st.one_of(ints, floats)


def from_schema(node: Any, path: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
    """Values valid against ``node``; None stands for "leave the key out" (TOML has no null)."""
    node = _resolve(node)
    if "const" in node:
        return _leaf(path, st.just(node["const"]))
    if "enum" in node:
        return _leaf(path, st.sampled_from(node["enum"]))
    if "allOf" in node:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        branches = [branch for part in node["allOf"] for branch in part["anyOf"]]
        return st.one_of([from_schema(_merge(rest, branch), path) for branch in branches])
    if "anyOf" in node:
        members = [m for m in node["anyOf"] if _resolve(m).get("type") != "null"]
        return st.one_of([from_schema(member, path) for member in members])
    kind = node.get("type")
    if kind == "object":
        return _object(node, path)
    if kind == "array":
        items = from_schema(node["items"], path)
        return _leaf(path, st.lists(items, min_size=node.get("minItems", 0), max_size=4))
    if kind == "string":
        text = st.from_regex(node["pattern"], fullmatch=True) if "pattern" in node else st.text()
        return _leaf(path, text)
    if kind in ("integer", "number"):
        return _leaf(path, _number(node, kind == "integer"))
    if kind == "boolean":
        return _leaf(path, st.booleans())
    raise AssertionError(f"{'.'.join(path)}: the generator does not read {node}")


def _object(node: dict[str, Any], path: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    required = set(node.get("required", []))
    fixed = {}
    for name, child in node.get("properties", {}).items():
        if child is False:
            continue
        value = from_schema(child, (*path, name))
        fixed[name] = value if name in required else st.one_of(st.none(), value)
    named: list[tuple[st.SearchStrategy[str], st.SearchStrategy[Any]]] = []
    for pattern, child in node.get("patternProperties", {}).items():
        named.append((st.from_regex(pattern, fullmatch=True), from_schema(child, (*path, "<delegate>"))))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        names = node.get("propertyNames", {}).get("pattern")
        keys = st.from_regex(names, fullmatch=True) if names else st.text(max_size=12)
        named.append((keys.filter(lambda key: key not in fixed),
                      from_schema(extra, (*path, NAMES_UNDER[path[-1]]))))
    least = node.get("minProperties", 0)

    @st.composite
    def table(draw: st.DrawFn) -> dict[str, Any]:
        result = {name: value for name, strategy in fixed.items()
                  if (value := draw(strategy)) is not None}
        for keys, values in named:
            extra_keys = draw(st.dictionaries(keys, values, max_size=2))
            result.update({k: v for k, v in extra_keys.items() if k not in result})
        if len(result) < least and named:
            keys, values = named[0]
            result[draw(keys.filter(lambda key: key not in result))] = draw(values)
        assume(len(result) >= least)
        return result

    return table()


DOCUMENTS = from_schema(SCHEMA)


def to_toml(document: dict[str, Any]) -> str:
    return tomlkit.dumps(document)


# --- loading through the users' path: budget.load on a file ------------------------------------


@contextmanager
def load_text(text: str, name: str = "digits_cnn.toml") -> Iterator[tuple[Path, Callable[[], Any]]]:
    """The text as a budget file, and its loader; the file's folder is removed on leaving (one
    folder per example, thousands of them in a run)."""
    with tempfile.TemporaryDirectory(prefix="budget-hypothesis-") as directory:
        path = Path(directory) / name
        path.write_text(text, encoding="utf-8")
        yield path, lambda: load(path)


def error_locations(message: str, file: Path | None = None) -> list[str]:
    """The key paths an error names: one per "  KEY: reason" line of a schema error, or the one
    of a refusal made after validation, written on one line as "FILE: KEY: reason"."""
    found = [match.group(1) for match in re.finditer(r"^  (.+?): ", message, re.MULTILINE)]
    prefix = f"{file}: "
    if file is not None and message.startswith(prefix) and "\n" not in message:
        rest = message[len(prefix):]
        if ": " in rest:
            found.append(rest.split(": ", 1)[0])
    return found


def check_valid_document_loads(document: dict[str, Any]) -> None:
    text = to_toml(document)
    with load_text(text) as (_, run):
        try:
            run()
        except BudgetFileError as exc:
            message = str(exc)
            # One entry per error: not splitlines, since a variant's name may hold U+2028 or "\r".
            reasons = message.split("\n  ")[1:]
            # Every refusal must be one the schema cannot express; anything else is a disagreement.
            unexplained = [line for line in reasons
                           if not any(rule.search(line) for rule in BY_DESIGN.values())]
            assert not unexplained, f"schema-valid, refused by the loader:\n{text}\n{message}"
            assume(False)


# --- near-misses --------------------------------------------------------------------------------

ODD_KEYS = st.one_of(
    st.sampled_from([
        "xnnpak", "Size", "size ", "", " ", "\u202esize", "s\u0301ize", "\U0001F600", "\x00",
        "\x7f", "\u200b", "max\u00a0", "latency.xnnpack", "\\u0000", "\ufeff", "\U000E0001",
        "x" * 300,
    ]),
    st.text(min_size=1, max_size=20),
)

ODD_VALUES = st.one_of(
    st.sampled_from([
        "5 parsecs", "-3 ms", "1e400 MB", "nan ms", "inf %", "inf%", "-5%", "5 %%", "", " ",
        "0 B", "0.5 B", "24 kib", "1,000 KB", "3 ms ms", "1e3 us", "0x10 B", "NaN", "top0",
        "custom", "2:4", "4:2", "0:0", "external:", "gpu", "CUSTOM:", "\x00", "\u202e5 ms",
        "5\u00a0ms", "\U0001F600", "x" * 10_000, "9" * 4000 + " MB", "9" * 4000 + "%",
        "9" * 400 + " ms",
        2**63, 2**64 + 1, -(2**63) - 1, 10**400, -(10**400), 0, -1, 1,
        math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308,
        True, False, [], [1, "a"], [[[]]], {}, {"max": 1}, {"": {}},
        datetime.date(2024, 2, 29), datetime.time(12, 0), datetime.datetime(1979, 5, 27, 7, 32),
    ]),
    st.integers(), st.floats(), st.text(max_size=30),
    st.lists(st.integers(-3, 3), max_size=3),
)


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    return found


def _tables(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if not isinstance(value, dict):
        return []
    return [prefix] + [p for key, child in value.items() for p in _tables(child, (*prefix, key))]


def _at(document: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = document
    for key in path:
        node = node[key]
    return node


def _loads(document: dict[str, Any]) -> bool:
    with load_text(to_toml(document)) as (_, run):
        try:
            run()
        except BudgetFileError:
            return False
    return True


@st.composite
def near_misses(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A schema-valid document with one thing wrong, and the key path of the wrong thing."""
    document = draw(DOCUMENTS)
    assume(_loads(document))  # start from a file the loader takes: then the fault is ours
    action = draw(st.sampled_from(["value", "unknown key", "delete", "wrap"]))
    paths = _paths(document)
    if action == "unknown key" or not paths:
        where = draw(st.sampled_from(_tables(document)))
        key = draw(ODD_KEYS)
        _at(document, where)[key] = draw(ODD_VALUES)
        return document, (*where, key)
    path = draw(st.sampled_from(paths))
    parent, key = _at(document, path[:-1]), path[-1]
    if action == "delete":
        del parent[key]
    elif action == "wrap":  # a table where a value is expected, and the reverse
        parent[key] = [parent[key]] if isinstance(parent[key], dict) else {"value": parent[key]}
    else:
        parent[key] = draw(ODD_VALUES)
    return document, path


def check_near_miss_is_a_budget_error(case: tuple[dict[str, Any], tuple[str, ...]]) -> None:
    document, path = case
    text = to_toml(document)
    with load_text(text) as (file, run):
        try:
            run()
        except BudgetFileError as exc:
            message = str(exc)
            assert str(file) in message, message
            locations = error_locations(message, file)
            wrong = key_path(path)
            assert any(loc == "(top level)" or wrong.startswith(loc) or loc.startswith(wrong)
                       for loc in locations), f"no key path near {wrong!r} in:\n{message}"
    # Any other exception propagates and fails the property.


CORRUPTIONS = ["= 1", "[unclosed", 'x = "unterminated', 'x = "\\q"', "x = 1979-13-45",
               "x = 0x", "x = nan ms", "x = { y = 1", "[[]]", "x = \x01", "x.= 1"]


@st.composite
def broken_toml(draw: st.DrawFn) -> tuple[str, int]:
    lines = to_toml(draw(DOCUMENTS)).split("\n")  # not splitlines: keys may hold U+2028
    where = draw(st.integers(0, len(lines)))
    lines.insert(where, draw(st.sampled_from(CORRUPTIONS)))
    return "\n".join(lines), where + 1


def check_broken_toml_names_file_and_line(case: tuple[str, int]) -> None:
    text, line = case
    with load_text(text) as (file, run), pytest.raises(BudgetFileError) as caught:
        run()
    message = str(caught.value)
    assert str(file) in message and "invalid TOML" in message, message
    assert f"line {line}," in message or "end of document" in message, message


# --- the properties, shared with bench/hardening_hypothesis.py ---------------------------------

PROPERTIES: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], None]]] = {
    "valid_document_loads": (DOCUMENTS, check_valid_document_loads),
    "near_miss_is_a_budget_error": (near_misses(), check_near_miss_is_a_budget_error),
    "broken_toml_names_file_and_line": (broken_toml(), check_broken_toml_names_file_and_line),
}


def hypothesis_settings(max_examples: int) -> settings:
    # derandomize: CI draws the same examples every run; no database, so nothing is left behind.
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


SUITE = hypothesis_settings(settings.default.max_examples)  # the profile's: tests/conftest.py


@SUITE
@given(DOCUMENTS)
def test_valid_document_loads(document: dict[str, Any]) -> None:
    check_valid_document_loads(document)


# Found by hand and by the properties (each was an OverflowError, ValueError or RecursionError, a
# nan/inf limit that loaded and could never fail, or pydantic's own text leaking into the message).
REGRESSIONS = [
    {"variants": {"a": {"latency": {"xnnpack": {"median": 10**400}}}}},
    {"regression": {"accuracy": 10**400}},
    {"variants": {"a": {"fidelity": {"max_abs_error": 10**400}}}},
    {"regression": {"size": "9" * 400 + "%"}},
    {"variants": {"a": {"accuracy": {"min": math.nan}}}},
    {"variants": {"a": {"fidelity": {"min_snr_db": math.inf}}}},
    {"variants": {"a": {"size": {"max": 1}, "runtime": {"timing": {"min_seconds": math.inf}}}}},
    {"variants": {"a": {"size": {"max": 2**64}, "runtime": {"seed": -1, "threads": 2**40}}}},
    {"regression": {"planned_arena": "\x1f0B"}},  # Python's \s, not ByteSize's
    {"regression": {"size": "\u0663 KB"}},  # Python's \d matched an Arabic-Indic three
]


@SUITE
@given(near_misses())
@example(({"variants": {"a": {"latency": {"xnnpack": {"median": 10**400}}}}},
          ("variants", "a", "latency", "xnnpack", "median")))
@example(({"regression": {"accuracy": 10**400}}, ("regression", "accuracy")))
@example(({"variants": {"a": {"accuracy": {"metric": "top" + "1" * 5000, "min": 0.5}}}},
          ("variants", "a", "accuracy", "metric")))
def test_near_miss_is_a_budget_error(case: tuple[dict[str, Any], tuple[str, ...]]) -> None:
    check_near_miss_is_a_budget_error(case)


@SUITE
@given(broken_toml())
def test_broken_toml_names_file_and_line(case: tuple[str, int]) -> None:
    check_broken_toml_names_file_and_line(case)


@pytest.mark.parametrize("document", REGRESSIONS)
def test_regression_examples_are_budget_errors(document: dict[str, Any]) -> None:
    with (load_text(to_toml(document)) as (file, run),
          pytest.raises(BudgetFileError, match=re.escape(str(file)))):
        run()


@pytest.mark.parametrize("text", [
    "x = " + "9" * 5000,                    # past Python's int-from-string limit: ValueError
    "x = " + "[" * 5000 + "]" * 5000,       # tomllib recurses: RecursionError
    "x = " + "{y = " * 3000 + "1" + "}" * 3000,
])
def test_unreadable_numbers_and_nesting_are_budget_errors(text: str) -> None:
    with load_text(text) as (_, run), pytest.raises(BudgetFileError, match="invalid TOML"):
        run()


# --- every key the schema lists is drawn --------------------------------------------------------


def test_generator_reaches_every_key_kind() -> None:
    listed = {key for keys in KEY_KINDS.values() for key in keys}
    assert listed <= REACHABLE, f"the generator cannot emit {sorted(listed - REACHABLE)}"


def test_generator_draws_every_key_kind() -> None:
    DRAWN.clear()

    # 200: the variant's own [regression] table made the schema larger; 150 no longer reached
    # memory.<delegate>.peak_rss (the draws are derandomized, so this is the same every run).
    @hypothesis_settings(200)
    @given(DOCUMENTS)
    def draw_only(document: dict[str, Any]) -> None:
        pass

    draw_only()
    listed = {key for keys in KEY_KINDS.values() for key in keys}
    assert listed <= DRAWN, f"200 documents never held {sorted(listed - DRAWN)}"


def test_a_refusal_after_validation_names_its_key_for_the_near_miss_property() -> None:
    """Found by bench/hardening_hypothesis.py: a control character in allow_outside_rootdir is
    refused after validation, on one line ("FILE: allow_outside_rootdir: the value ..."); the
    property reads that key path too."""
    document = {"unsafe_source": True, "allow_outside_rootdir": "\x9e\x9dB", "variants": {}}
    check_near_miss_is_a_budget_error((document, ("allow_outside_rootdir",)))
