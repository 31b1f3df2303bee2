"""The ratchet (--tflite-update-budgets): limits follow the model down, and the file keeps its
comments, layout and units; only the xdist controller writes."""

from __future__ import annotations

import json
import random
import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_tflite import budget as budget_module
from pytest_tflite.ratchet import (
    LEFT_ALONE,
    RULES,
    Change,
    Outcome,
    RatchetOptions,
    plan,
    rewrite,
    rule_for,
    summary_lines,
    update_budget_files,
)
from pytest_tflite.results import Check, Entry, Measurement, Verdict
from pytest_tflite.units import parse_size, parse_time
from tests.helpers.paths import REPOSITORY
from tests.helpers.sessions import INNER_CONFTEST

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLE = REPOSITORY / "example_project" / "budgets" / "digits_cnn.toml"
DEFAULTS = RatchetOptions()
TIMING = RatchetOptions(timing=True)
KIB, MIB = 1024, 1024**2


def _measurement() -> Measurement:
    return Measurement(size_bytes=100, gzip_bytes=90, ops={}, subgraphs=[], planned_arena_bytes=0,
                       inputs=[], outputs=[], sparsity=0.0, sparsity_layers=[])


def check(metric: str, measured: float | None, verdict: Verdict = "pass") -> Check:
    unit = "bytes" if metric.startswith(("size.", "memory.")) else "ms" if "latency" in metric else ""
    return Check(metric, measured, None, verdict, unit)


def entry(path: str | Path, variant: str, *checks: Check, test: str = "t") -> Entry:
    return Entry(test, "m", variant, "float32", _measurement(), list(checks),
                 budget_path=str(path))


def ratchet(text: str, *entries: Entry, options: RatchetOptions = DEFAULTS) -> str:
    """``text`` as the ratchet rewrites it; the entries' budget_path must be "b.toml"."""
    return rewrite(text, plan(entries, {"b.toml": text}, options))


def at(text: str, dotted: str) -> object:
    node: object = tomllib.loads(text)
    for name in dotted.split("/"):
        assert isinstance(node, dict), dotted
        node = node[name]
    return node


# --- (a) the commented example file: only values change --------------------------------------------


def example_entries(path: Path) -> list[Entry]:
    int8 = [
        check("size.max", 40_000), check("size.max_gzip", 30_000),
        check("accuracy.min", 0.97), check("accuracy.max_drop", 0.003),
        check("fidelity.min_top1_agreement", 0.99), check("fidelity.min_cosine", 0.995),
        check("memory.planned_arena", 1_500), check("memory.builtin.arena", 9_000),
        check("memory.builtin.peak_rss", 20 * MIB),
        check("latency.xnnpack.median", 0.0032), check("latency.xnnpack.p90", 0.0051),
        check("latency.xnnpack.init", 2.345),
        check("latency.builtin.median", None, "skip"),  # the delegate was filtered out
        check("delegation.xnnpack.min_fraction", 0.75), check("delegation.xnnpack.max_partitions", 1),
        check("delegation.xnnpack.forbid_fallback", 0),
    ]
    return [
        entry(path, "int8", *int8, test="test_int8"),
        # A second test of the same variant, a little bigger: it sets the size limit.
        entry(path, "int8", check("size.max", 41_000), test="test_int8_again"),
        entry(path, "float16", check("size.max", 70_000), check("size.max_gzip", 60_000)),
        entry(path, "pruned_int8", check("size.max", 45_000), check("size.max_gzip", 15_000),
              check("sparsity.min", 0.75), check("sparsity.layers.hidden.min", 0.76),
              check("accuracy.min", 0.95), check("accuracy.max_drop", 0.02)),
    ]


_VALUE = re.compile(r'"[^"]*"|\'[^\']*\'|(?<![\w.])-?\d+(\.\d+)?([eE][-+]?\d+)?(?![\w.])')


def skeleton(line: str) -> str:
    """A line with every value blanked: keys, spacing, braces and comments are what is left."""
    return _VALUE.sub("V", line)


def assert_only_values_changed(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new)
    changed = []
    for was, now in zip(old, new):
        if was == now:
            continue
        stripped = was.strip()
        assert stripped and not stripped.startswith(("#", "[")), (was, now)
        assert re.match(r"^[\w.\"-]+\s*=", stripped), was
        assert skeleton(was) == skeleton(now), (was, now)  # same keys, spacing and comment
        changed.append((was.rstrip("\n"), now.rstrip("\n")))
    return changed


def test_rewriting_the_commented_example_changes_only_value_lines(tmp_path: Path) -> None:
    path = tmp_path / "digits_cnn.toml"
    shutil.copy(EXAMPLE, path)
    before = path.read_text()
    outcome = update_budget_files(example_entries(path), RatchetOptions())
    after = path.read_text()
    changed = assert_only_values_changed(before, after)
    assert [line for _, line in changed] == [
        'size = { max = "76 KiB", max_gzip = "65 KiB" }',
        'size = { max = "45 KiB", max_gzip = "33 KiB" }',
        'accuracy = { metric = "top1", min = 0.95, max_drop = 0.0033 }',
        'memory = { planned_arena = "1650 B", builtin = { arena = "10 KiB", peak_rss = "64 MiB" } }',
        "min_fraction = 0.75",
        "max_partitions = 1",
        'size = { max = "48 KiB", max_gzip = "17 KiB" }   # dense zeros shrink under gzip only',
        'accuracy = { metric = "top1", min = 0.93, max_drop = 0.022 }',
    ]
    assert len(outcome.changes) == 11 and not outcome.problems
    # Timing limits could tighten, and the summary says why they did not.
    assert outcome.timing_left_alone == 4
    budget_module.load(path)  # still a valid budget file
    # The same entries again: nothing left to change, the file is untouched.
    assert update_budget_files(example_entries(path), RatchetOptions()).changes == []
    assert path.read_text() == after


def test_with_ratchet_timing_the_example_latency_and_rss_lines_change_too(tmp_path: Path) -> None:
    path = tmp_path / "digits_cnn.toml"
    shutil.copy(EXAMPLE, path)
    before = path.read_text()
    update_budget_files(example_entries(path), TIMING)
    after = path.read_text()
    changed = dict(assert_only_values_changed(before, after))
    assert changed['median = "1 ms"'] == 'median = "3.52 us"'
    assert changed['p90 = "2 ms"'] == 'p90 = "5.61 us"'  # 5.61 exactly: no rounding
    assert changed['init = "100 ms"'] == 'init = "2.58 ms"'
    assert 'peak_rss = "22 MiB"' in after
    assert after.count('median = "1 ms"') == 1  # builtin's median was skipped: untouched
    budget_module.load(path)


# --- (b) the rules -----------------------------------------------------------------------------------


SIZES = """\
[variants.a]
size = { max = "64 KiB", max_gzip = 50000 }   # a comment
memory = { planned_arena = "1 MB" }
"""


def test_tightens_to_measured_plus_headroom_in_the_files_units() -> None:
    after = ratchet(SIZES, entry("b.toml", "a", check("size.max", 40_000), check("size.max_gzip", 30_000),
                                 check("memory.planned_arena", 500_000)))
    assert at(after, "variants/a/size") == {"max": "43 KiB", "max_gzip": 33000}
    # 0.55 MB would round up to a whole "1 MB": the next smaller unit keeps it close.
    assert at(after, "variants/a/memory/planned_arena") == "550 KB"
    assert "# a comment" in after


def test_small_sizes_step_down_to_a_unit_that_keeps_the_headroom_close() -> None:
    text = '[variants.a]\nsize = { max = "4 KiB", max_gzip = "4 KiB" }\n'
    after = ratchet(text, entry("b.toml", "a", check("size.max", 1500), check("size.max_gzip", 9 * KIB)))
    # 1650 B is under 10 KiB: written in bytes; 9.9 KiB rounds up to a whole 10 KiB.
    assert at(after, "variants/a/size") == {"max": "1650 B", "max_gzip": "4 KiB"}
    text = '[variants.a]\nsize = { max = "64 KiB" }\n'
    assert at(ratchet(text, entry("b.toml", "a", check("size.max", 9 * KIB))),
              "variants/a/size/max") == "10 KiB"


def test_a_limit_within_the_headroom_stays() -> None:
    # 46 KiB + 10% is above 48 KiB: the model does not beat the limit by more than the headroom.
    text = '[variants.a]\nsize = { max = "48 KiB" }\n'
    assert ratchet(text, entry("b.toml", "a", check("size.max", 46 * KIB))) == text


def test_never_loosens_unless_asked() -> None:
    text = '[variants.a]\nsize = { max = "32 KiB", max_gzip = "48 KiB" }\n'
    over = entry("b.toml", "a", check("size.max", 40_000, "fail"), check("size.max_gzip", 46 * KIB))
    assert ratchet(text, over) == text
    loosened = ratchet(text, over, options=RatchetOptions(loosen=True))
    # Only the broken limit rises; the passing one within its headroom stays where it was.
    assert at(loosened, "variants/a/size") == {"max": "43 KiB", "max_gzip": "48 KiB"}
    (change,) = plan([over], {"b.toml": text}, RatchetOptions(loosen=True))
    assert change.loosened and "(loosened)" in change.describe()


def test_a_failing_test_holds_its_limit_where_a_passing_one_would_tighten_it() -> None:
    text = '[variants.a]\nsize = { max = 50000 }\n'
    passing = entry("b.toml", "a", check("size.max", 30_000), test="small")
    failing = entry("b.toml", "a", check("size.max", 60_000, "fail"), test="big")
    assert ratchet(text, passing, failing) == text
    assert at(ratchet(text, passing, failing, options=RatchetOptions(loosen=True)),
              "variants/a/size/max") == 66000


def test_the_most_demanding_measurement_sets_the_limit() -> None:
    text = '[variants.a]\nsize = { max = 50000 }\naccuracy = { min = 0.5 }\n'
    first = entry("b.toml", "a", check("size.max", 30_000), check("accuracy.min", 0.9), test="one")
    second = entry("b.toml", "a", check("size.max", 32_000), check("accuracy.min", 0.8), test="two")
    other = entry("b.toml", "b", check("size.max", 10_000), test="other variant")
    after = ratchet(text, first, second, other)
    assert at(after, "variants/a/size/max") == 35200  # the larger size
    assert at(after, "variants/a/accuracy/min") == 0.72  # the lower accuracy, -10%


def test_timing_limits_move_only_with_ratchet_timing() -> None:
    text = textwrap.dedent("""\
        [variants.a.latency.xnnpack]
        median = "1 ms"
        p99 = 2
        cpu = "3 s"
        first_invoke = "50 ms"

        [variants.a.memory]
        builtin = { arena = "64 KiB", peak_rss = "64 MiB" }
    """)
    found = entry("b.toml", "a", check("latency.xnnpack.median", 0.0032),
                  check("latency.xnnpack.p99", 0.5), check("latency.xnnpack.cpu", 1500),
                  check("latency.xnnpack.first_invoke", 0.909),
                  check("memory.builtin.arena", 20 * KIB), check("memory.builtin.peak_rss", 20 * MIB))
    untimed = ratchet(text, found)
    assert at(untimed, "variants/a/latency/xnnpack") == tomllib.loads(text)["variants"]["a"]["latency"][
        "xnnpack"]
    assert at(untimed, "variants/a/memory/builtin") == {"arena": "22 KiB", "peak_rss": "64 MiB"}
    timed = ratchet(text, found, options=TIMING)
    # Three significant digits, rounded up; the unit follows the magnitude; a bare number of
    # milliseconds stays a bare number. 0.909 ms + 10% (999.9 us) rounds up to 1 ms, not "1000 us".
    assert at(timed, "variants/a/latency/xnnpack") == {
        "median": "3.52 us", "p99": 0.55, "cpu": "1.65 s", "first_invoke": "1 ms"}
    assert at(timed, "variants/a/memory/builtin") == {"arena": "22 KiB", "peak_rss": "22 MiB"}


def test_skipped_and_errored_checks_change_nothing() -> None:
    text = '[variants.a]\nsize = { max = "64 KiB" }\naccuracy = { min = 0.1 }\n'
    found = entry("b.toml", "a", check("size.max", None, "error"), check("accuracy.min", 0.9, "skip"))
    assert ratchet(text, found) == text
    assert ratchet(text, found, options=RatchetOptions(loosen=True, timing=True)) == text


def test_lower_limits_tighten_up_to_measured_minus_headroom() -> None:
    text = textwrap.dedent("""\
        [variants.a]
        accuracy = { metric = "top1", min = 0.5 }
        fidelity = { min_top1_agreement = 0.5, min_cosine = 0.5, min_snr_db = 10 }
        sparsity = { min = 0.1, layers = { "conv2d_1" = { min = 0.1 } } }
    """)
    found = entry("b.toml", "a", check("accuracy.min", 0.97), check("fidelity.min_top1_agreement", 1.0),
                  check("fidelity.min_cosine", 0.9999), check("fidelity.min_snr_db", 40.0),
                  check("sparsity.min", 0.7512), check("sparsity.layers.conv2d_1.min", 0.5))
    after = ratchet(text, found)
    assert at(after, "variants/a/accuracy/min") == 0.873
    assert at(after, "variants/a/fidelity") == {"min_top1_agreement": 0.9, "min_cosine": 0.899,
                                                "min_snr_db": 36}  # an integer stays an integer
    assert at(after, "variants/a/sparsity/min") == 0.676  # 0.67608 rounded down
    assert at(after, "variants/a/sparsity/layers/conv2d_1/min") == 0.45


def test_upper_quality_limits_and_the_error_metrics() -> None:
    text = ('[variants.a]\naccuracy = { metric = "mae", max = 1.0, max_drop = 0.5 }\n'
            "fidelity = { max_abs_error = 0.5 }\n")
    found = entry("b.toml", "a", check("accuracy.max", 0.1234), check("accuracy.max_drop", 0.01),
                  check("fidelity.max_abs_error", 0.02))
    after = ratchet(text, found)
    assert at(after, "variants/a/accuracy") == {"metric": "mae", "max": 0.136, "max_drop": 0.011}
    assert at(after, "variants/a/fidelity/max_abs_error") == 0.022


def test_delegation_figures_are_counts_without_headroom() -> None:
    text = "[variants.a.delegation.xnnpack]\nmin_fraction = 0.5\nmax_partitions = 3\n" \
           'forbid_fallback = ["CONV_2D"]\n'
    found = entry("b.toml", "a", check("delegation.xnnpack.min_fraction", 7 / 8),
                  check("delegation.xnnpack.max_partitions", 1.0),
                  check("delegation.xnnpack.forbid_fallback", 0.0))
    after = ratchet(text, found)
    assert at(after, "variants/a/delegation/xnnpack") == {
        "min_fraction": 0.87, "max_partitions": 1, "forbid_fallback": ["CONV_2D"]}
    # 0 partitions (nothing delegated) would be an invalid limit: left as it is.
    none = entry("b.toml", "a", check("delegation.xnnpack.max_partitions", 0.0))
    assert ratchet(text, none) == text


def test_percentages_patterns_zero_limits_and_other_tables_are_left_alone() -> None:
    text = textwrap.dedent("""\
        [defaults.runtime]
        threads = 1

        [variants.a]
        accuracy = { metric = "top1", max_drop = "1%" }
        sparsity = { pattern = "2:4" }
        fidelity = { max_abs_error = 0.5 }

        [regression]
        size = "1%"
        accuracy = 0.005
    """)
    found = entry("b.toml", "a", check("accuracy.max_drop", 0.0001), check("sparsity.pattern", 0.0),
                  # float32 against its own reference: an error of 0 would leave no headroom
                  check("fidelity.max_abs_error", 0.0),
                  check("regression.accuracy", 0.0001), check("regression.size", 10.0))
    assert ratchet(text, found, options=RatchetOptions(timing=True, loosen=True)) == text


def test_dotted_keys_out_of_order_tables_and_literal_strings_keep_their_form() -> None:
    text = textwrap.dedent("""\
        [variants.a]
        size.max = '64 KiB'   # literal
        latency.xnnpack.median = "5 ms"

        [variants.b]
        size = { max = 90000 }

        [variants.a.memory.builtin]   # a later table of variant a
        arena = "64 KiB"
    """)
    found = entry("b.toml", "a", check("size.max", 40_000), check("latency.xnnpack.median", 1.0),
                  check("memory.builtin.arena", 30 * KIB))
    after = ratchet(text, found, options=TIMING)
    assert after == textwrap.dedent("""\
        [variants.a]
        size.max = '43 KiB'   # literal
        latency.xnnpack.median = "1.1 ms"

        [variants.b]
        size = { max = 90000 }

        [variants.a.memory.builtin]   # a later table of variant a
        arena = "33 KiB"
    """)


def test_an_external_delegate_name_with_dots_is_one_key() -> None:
    text = '[variants.a.latency."external:/opt/lib.so"]\nmedian = "10 ms"\n'
    found = entry("b.toml", "a", check("latency.external:/opt/lib.so.median", 2.0))
    assert rule_for("latency.external:/opt/lib.so.median")[1] == (
        "latency", "external:/opt/lib.so", "median")
    after = ratchet(text, found, options=TIMING)
    assert tomllib.loads(after)["variants"]["a"]["latency"]["external:/opt/lib.so"] == {
        "median": "2.2 ms"}


def test_headroom_is_settable() -> None:
    text = '[variants.a]\nsize = { max = 50000 }\naccuracy = { min = 0.5 }\n'
    found = entry("b.toml", "a", check("size.max", 40_000), check("accuracy.min", 0.9))
    after = ratchet(text, found, options=RatchetOptions(headroom=0.15))
    assert at(after, "variants/a/size/max") == 46000
    assert at(after, "variants/a/accuracy/min") == 0.765
    exact = ratchet(text, found, options=RatchetOptions(headroom=0.0))
    assert at(exact, "variants/a/size/max") == 40000 and at(exact, "variants/a/accuracy/min") == 0.9


def test_a_second_run_with_the_same_entries_changes_nothing() -> None:
    text = textwrap.dedent("""\
        [variants.a]
        size = { max = "1 MiB", max_gzip = "1 MB" }
        accuracy = { min = 0.1 }
        [variants.a.latency.builtin]
        median = "1 s"
        p90 = 10
    """)
    found = entry("b.toml", "a", check("size.max", 123_457), check("size.max_gzip", 98_765),
                  check("accuracy.min", 0.912345), check("latency.builtin.median", 0.0123456),
                  check("latency.builtin.p90", 1.23456))
    once = ratchet(text, found, options=TIMING)
    assert once != text
    assert plan([found], {"b.toml": once}, TIMING) == []
    assert ratchet(once, found, options=TIMING) == once


def test_the_measured_value_always_stays_inside_the_new_limit() -> None:
    rng = random.Random(0)
    styles = {"size.max": ['"1 MiB"', '"1 MB"', '"900 KiB"', "10000000", '"9999 B"'],
              "latency.builtin.median": ['"10 s"', "10000", '"9999 us"'],
              "accuracy.max": ["1000.0", "1000"], "accuracy.min": ["0.0", "0"]}
    for _ in range(400):
        metric = rng.choice(list(styles))
        style = rng.choice(styles[metric])
        headroom = rng.choice([0.0, 0.01, 0.1, 0.15, 0.333])
        magnitude = 10 ** rng.uniform(-3, 6)
        measured = float(round(magnitude)) if metric == "size.max" else magnitude
        if metric == "accuracy.min":
            measured = rng.uniform(0, 1)
        measured = max(measured, 1.0) if metric == "size.max" else measured
        *tables, key = rule_for(metric)[1]
        text = f"[variants.a.{'.'.join(tables)}]\n{key} = {style}\n"
        found = entry("b.toml", "a", check(metric, measured))
        changes = plan([found], {"b.toml": text}, RatchetOptions(headroom=headroom, timing=True))
        for change in changes:
            limit = (parse_size(change.new) if metric == "size.max"
                     else parse_time(change.new) if "latency" in metric else float(change.new))
            if metric == "accuracy.min":
                assert limit <= measured, (change, measured)
            else:
                assert measured <= limit <= measured * (1 + headroom) * 1.11 + 1, (change, measured)
        assert plan([found], {"b.toml": ratchet(text, found, options=RatchetOptions(
            headroom=headroom, timing=True))}, RatchetOptions(headroom=headroom, timing=True)) == []


def test_every_budget_key_has_a_ratchet_rule_or_a_reason_to_stay() -> None:
    keys = set(budget_module.KEY_KINDS["budget"])
    assert set(RULES) | set(LEFT_ALONE) == keys
    assert not set(RULES) & set(LEFT_ALONE)
    timing = {key for key, rule in RULES.items() if rule.timing}
    assert timing == {key for key in keys if key.startswith("latency.")} | {
        "memory.<delegate>.peak_rss"}


def test_entries_without_a_budget_path_or_file_change_nothing(tmp_path: Path) -> None:
    text = '[variants.a]\nsize = { max = 50000 }\n'
    data = entry("b.toml", "a", check("size.max", 100)).to_json()
    del data["budget_path"]  # a report written before entries named their budget file
    assert plan([Entry.from_json(data)], {"b.toml": text}) == []
    gone = entry(tmp_path / "missing.toml", "a", check("size.max", 100))
    outcome = update_budget_files([gone], RatchetOptions())
    assert outcome.changes == [] and "cannot read" in outcome.problems[0]


def test_budget_path_travels_in_the_entry_json() -> None:
    found = entry("/x/budgets/m.toml", "a", check("size.max", 1))
    data = found.to_json()
    assert data["budget_path"] == "/x/budgets/m.toml"
    assert Entry.from_json(json.loads(json.dumps(data))).budget_path == "/x/budgets/m.toml"
    del data["budget_path"]
    assert Entry.from_json(data).budget_path == ""


def test_summary_lists_each_file_with_old_and_new_values(tmp_path: Path) -> None:
    changes = [Change(str(tmp_path / "budgets" / "m.toml"), "int8", "size.max", "48 KiB", "43 KiB",
                      40_000.0),
               Change(str(tmp_path / "budgets" / "m.toml"), "int8", "accuracy.min", 0.5, 0.873, 0.97)]
    lines = summary_lines(Outcome(changes, [], 2), RatchetOptions(), tmp_path)
    assert lines == [
        "tflite budgets rewritten: budgets/m.toml (10% headroom)",
        '  [variants.int8] size.max: "48 KiB" -> "43 KiB", measured 39.1 KiB',
        "  [variants.int8] accuracy.min: 0.5 -> 0.873, measured 0.97",
        "  2 latency/peak_rss limit(s) could tighten: left alone without --tflite-ratchet-timing",
    ]
    assert summary_lines(Outcome(), RatchetOptions(headroom=0.15)) == [
        "tflite budgets: no limit to change (15% headroom)"]


# --- (c, d) through pytest ---------------------------------------------------------------------------

RATCHET_BUDGET = """\
# The MLP's budgets: the ratchet keeps this comment.
[variants.float32]               # plain conversion
size = { max = "64 KiB", max_gzip = "64 KiB" }   # generous on purpose
memory = { planned_arena = "8 KiB" }

[variants.float32.latency.xnnpack]
median = "100 ms"                # not measured with --tflite-no-runtime: left alone

[variants.wide]
size = { max = 100000 }
"""

RATCHET_TESTS = """
    import pytest

    @pytest.mark.tflite_budget("mlp")
    @pytest.mark.parametrize("variant", ["float32", "wide"])
    def test_mlp(tflite_convert, tflite_budget, mlp, variant):
        tflite_budget.check(tflite_convert(mlp, variant=variant))
"""

# Records which process rewrites budget files: under xdist only the controller may.
WRITER_LOG = """

def pytest_configure(config):
    from pytest_tflite import ratchet

    real = ratchet.update_budget_files

    def logged(entries, options):
        # workerinput, not PYTEST_XDIST_WORKER: this run may itself sit in an outer xdist worker.
        worker = getattr(config, "workerinput", {}).get("workerid")
        with open("writers.log", "a") as log:
            log.write((worker or "controller") + "\\n")
        return real(entries, options)

    ratchet.update_budget_files = logged
"""


def _expected_size(size: int) -> object:
    """size + 10%, as the ratchet writes it over a "64 KiB" limit (bytes below 10 KiB)."""
    bytes_up = -(-size * 11 // 10)
    kib = -(-bytes_up // KIB)
    return f"{kib} KiB" if kib >= 10 else f"{bytes_up} B"


def _sizes(report: Path) -> dict[str, tuple[int, int, int]]:
    entries = json.loads(report.read_text())["entries"]
    return {e["variant"]: (e["size_bytes"], e["gzip_bytes"], e["planned_arena_bytes"])
            for e in entries}


def test_update_budgets_rewrites_the_file_and_a_rerun_passes_against_it(project) -> None:
    p = project({"mlp": RATCHET_BUDGET}, test_ratchet=RATCHET_TESTS)
    budget = p.path / "budgets" / "mlp.toml"
    first = p.runpytest("-p", "no:randomly", "--tflite-no-runtime", "--tflite-update-budgets",
                        "--tflite-report=report.json")
    first.assert_outcomes(passed=2)
    sizes = _sizes(p.path / "report.json")
    size, gzip, arena = sizes["float32"]
    after = budget.read_text()
    assert_only_values_changed(RATCHET_BUDGET, after)
    assert at(after, "variants/float32/size") == {"max": _expected_size(size),
                                                  "max_gzip": _expected_size(gzip)}
    assert at(after, "variants/float32/memory/planned_arena") == _expected_size(arena)
    assert at(after, "variants/float32/latency/xnnpack/median") == "100 ms"  # skipped: untouched
    assert at(after, "variants/wide/size/max") == -(-sizes["wide"][0] * 11 // 10)
    first.stdout.fnmatch_lines([
        "*tflite budgets rewritten: budgets/mlp.toml (10% headroom)",
        f'*[[]variants.float32[]] size.max: "64 KiB" -> "{_expected_size(size)}", measured *',
        f'*[[]variants.float32[]] memory.planned_arena: "8 KiB" -> "{_expected_size(arena)}"*',
        f"*[[]variants.wide[]] size.max: 100000 -> {-(-sizes['wide'][0] * 11 // 10)}, measured *",
    ])
    # The same tests against the tightened file pass, and a second ratchet has nothing to do.
    p.runpytest("-p", "no:randomly", "--tflite-no-runtime").assert_outcomes(passed=2)
    again = p.runpytest("-p", "no:randomly", "--tflite-no-runtime", "--tflite-update-budgets")
    again.assert_outcomes(passed=2)
    again.stdout.fnmatch_lines(["tflite budgets: no limit to change (10% headroom)"])
    assert budget.read_text() == after


def test_a_bad_headroom_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--tflite-headroom=ten")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--tflite-headroom*expected a percentage such as 20%*"])


def test_under_xdist_only_the_controller_rewrites_once(project) -> None:
    p = project({"mlp": RATCHET_BUDGET}, test_ratchet=RATCHET_TESTS)
    p.makeconftest(INNER_CONFTEST + WRITER_LOG)
    result = p.runpytest_subprocess("-n", "2", "-p", "no:randomly", "--tflite-no-runtime",
                                    "--tflite-update-budgets", "--tflite-report=report.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*2 workers*"])
    assert (p.path / "writers.log").read_text() == "controller\n"
    sizes = _sizes(p.path / "report.json")
    after = (p.path / "budgets" / "mlp.toml").read_text()
    assert_only_values_changed(RATCHET_BUDGET, after)
    # Both workers' variants are in the one rewrite.
    assert at(after, "variants/float32/size/max") == _expected_size(sizes["float32"][0])
    assert at(after, "variants/wide/size/max") == -(-sizes["wide"][0] * 11 // 10)
    assert result.stdout.str().count("tflite budgets rewritten: budgets/mlp.toml") == 1
    assert not list((p.path / "budgets").glob(".*.tmp"))  # no temporary file left behind


def test_ratchet_modifiers_without_update_budgets_are_refused(project):
    p = project({"mlp": '[variants.float32]\nsize = { max = "1 MiB" }\n'},
                test_nothing="def test_nothing():\n    pass\n")
    result = p.runpytest("--tflite-loosen", "--tflite-headroom=5%")
    assert result.ret == 4  # usage error
    result.stderr.fnmatch_lines(["*--tflite-headroom, --tflite-loosen only shape "
                                 "--tflite-update-budgets*"])
