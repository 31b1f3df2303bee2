"""One cause, one line (issue 16, part 4): the example's Dense layer grew 64 -> 96 units, and the
PR comment, the job summary and the terminal summary show it as one headline per variant and
one failed row per variant and figure, each with where to change it.

The expected figures are computed by hand from the scenario's numbers (``dense_growth``):
e.g. int8's file went from 45,670 B (44.6 KiB) to 63,250 B (61.8 KiB), +17,580 B = +38.5%.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from pytest_tflite import comment_marker
from pytest_tflite.budget import Regression
from pytest_tflite.regressions import regression_checks
from pytest_tflite.reports import markdown
from pytest_tflite.reports.document import write_json
from pytest_tflite.reports.findings import figure_of, findings, headline, place, ratchet_flags
from pytest_tflite.reports.tables import summary_lines
from pytest_tflite.results import Check, Entry
from tests.helpers.entries import entry, measurement
from tests.unit.reports.dense_growth import BUDGET, dense_growth_entries, int8_entry

CHECKS = 39  # float32 7, float16 8 (with max_gzip), int8 24
RATCHET = "--tflite-update-budgets --tflite-loosen"


def _failed_rows(body: str) -> list[list[str]]:
    table = body[body.index("**Failed checks**"):]
    end = table.find("\n\n", table.index("| ---"))
    table = table if end < 0 else table[:end]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in rows[1:]]


def test_the_headline_names_each_changed_variant_with_its_figures():
    body = markdown.comment_body(dense_growth_entries())
    what = body[body.index("**What changed**"):body.index("**Failed checks**")]
    # float32: 158,292 -> 223,667 B is 154.6 -> 218.4 KiB, +65,375 B = +41.3%; 4 broken:
    # size.max, regression.size, regression.gzip, regression.latency.xnnpack.
    assert ("- ❌ **float32**: 154.6 → 218.4 KiB (+41.3%) · xnnpack +30.0% \\[+27.0, +33.0\\] · "
            "4 limits broken") in what
    assert ("- ❌ **float16**: 79.5 → 111.6 KiB (+40.3%) · xnnpack +28.0% \\[+25.0, +31.0\\] · "
            "5 limits broken") in what
    # int8: top-1 0.972 -> 0.962 is -1.0 point (a minus sign, U+2212).
    assert ("- ❌ **int8**: 44.6 → 61.8 KiB (+38.5%) · top-1 0.972 → 0.962 (\u22121.0 pt) · "
            "xnnpack +5.5% \\[+5.0, +6.0\\] · builtin +22.0% \\[+19.0, +25.0\\] · "
            "8 limits broken") in what


def test_at_most_one_failed_row_per_variant_and_figure():
    entries = dense_growth_entries()
    after = markdown.comment_body(entries)
    rows = _failed_rows(after)
    keys = [(r[0], r[1]) for r in rows]
    assert len(keys) == len(set(keys))
    # 17 failed checks; 12 figures: size, gzip and latency per variant, and int8's accuracy,
    # top-1 agreement and builtin latency.
    assert sum(c.verdict == "fail" for e in entries for c in e.checks) == 17
    assert keys == [("float32", "file size"), ("float32", "gzip size"),
                    ("float32", "xnnpack latency vs base"),
                    ("float16", "file size"), ("float16", "gzip size"),
                    ("float16", "xnnpack latency vs base"),
                    ("int8", "file size"), ("int8", "gzip size"), ("int8", "accuracy (top1)"),
                    ("int8", "fidelity: top-1 agreement"), ("int8", "xnnpack latency vs base"),
                    ("int8", "builtin latency vs base")]
    # One delta in the figure's unit, every limit the figure broke: 48 KiB and 45,670 B x 1.05.
    size = rows[6]
    assert size[2] == "44.6 → 61.8 KiB (+17.2 KiB, +38.5%)"
    assert size[3] == "size.max 48.0 KiB · regression.size ≤ 46.8 KiB"
    assert "vs baseline" not in after and "e-05" not in after  # no second delta, no bare float


def test_latency_rows_show_both_medians_on_the_ratios_clock():
    rows = {(r[0], r[1]): r for r in _failed_rows(markdown.comment_body(dense_growth_entries()))}
    xnnpack = rows[("int8", "xnnpack latency vs base")]
    assert xnnpack[2] == ("+5.5% \\[+5.0, +6.0\\] · 210 µs → 222 µs "
                          "(CPU time, 1 thread, 120 pairs)")
    assert xnnpack[3] == "regression.latency ±5.0%"
    assert rows[("int8", "builtin latency vs base")][2].startswith(
        "+22.0% \\[+19.0, +25.0\\] · 912 µs → 1.11 ms (CPU time")


def test_fidelity_reads_as_agreeing_samples():
    rows = {(r[0], r[1]): r for r in _failed_rows(markdown.comment_body(dense_growth_entries()))}
    agreement = rows[("int8", "fidelity: top-1 agreement")]
    # 397 of 397 agreed on the base, 393 on the head: (393 - 397) / 397 = -1.0 point.
    assert agreement[2] == "397 → 393 of 397 samples (\u22121.0 pt)"
    assert agreement[3] == "regression.fidelity.top1\\_agreement ≥ 0.995"
    # A cosine that moved in the 5th place reads in enough digits, with a real delta.
    body = markdown.comment_body(dense_growth_entries())
    assert "0.999910 → 0.999834 (\u22120.000076)" in body


def test_each_failed_row_ends_with_where_to_change_it():
    rows = {(r[0], r[1]): r for r in _failed_rows(markdown.comment_body(dense_growth_entries()))}
    assert rows[("int8", "file size")][5] == (
        f"`{BUDGET} [variants.int8] size.max`, `[regression] size`; the ratchet raises size.max: "
        f"`pytest \"test_digits.py::test_digits_budget[int8]\" {RATCHET}`")
    # Only [regression] keys broke: the tolerance line, and never the ratchet.
    assert rows[("float32", "gzip size")][5] == f"`{BUDGET} [regression] gzip`"
    assert rows[("int8", "xnnpack latency vs base")][5] == f"`{BUDGET} [regression] latency`"
    assert rows[("int8", "fidelity: top-1 agreement")][5] == f"`{BUDGET} [regression] fidelity`"


def test_a_variants_own_regression_table_is_where_to_change():
    """Where the tolerance was written is the check's own record (``tolerance_from``, set by
    ``regression_checks``: tests/unit/verdicts/test_variant_regression.py runs it on a real
    budget file)."""
    own = Check("regression.size", 2.0, 1.0, "fail", "bytes", baseline=1.0, delta=1.0,
                tolerance_from="variant")
    assert place(int8_entry(), own) == "[variants.int8.regression] size"
    assert place(int8_entry(), replace(own, tolerance_from="file")) == "[regression] size"
    assert place(int8_entry(), Check("size.max", 2.0, 1.0, "fail", "bytes")) \
        == "[variants.int8] size.max"


def test_timing_limits_get_the_timing_flag_and_regressions_no_ratchet():
    slow = Check("latency.builtin.median", 1.2, 1.0, "fail", "ms")
    assert ratchet_flags([slow]) == f"{RATCHET} --tflite-ratchet-timing"
    assert ratchet_flags([Check("size.max", 2, 1, "fail", "bytes")]) == RATCHET
    assert ratchet_flags([Check("regression.size", 2, 1, "fail", "bytes")]) == ""
    # A key the ratchet never moves (a list of ops), and an error with nothing measured.
    assert ratchet_flags([Check("delegation.xnnpack.forbid_fallback", 1, 0, "fail")]) == ""
    assert ratchet_flags([Check("size.max", None, 1, "error", "bytes")]) == ""
    body = markdown.comment_body([entry(checks=[slow])])
    assert f"{RATCHET} --tflite-ratchet-timing`" in body
    assert "| int8 | builtin median latency | 1.2 ms | latency.builtin.median 1 ms |" in body


def test_op_counts_show_the_types_that_changed():
    base = measurement()
    head = replace(base, ops={"CONV_2D": 3, "FULLY_CONNECTED": 2})
    base = replace(base, ops={"CONV_2D": 2, "FULLY_CONNECTED": 2, "RESHAPE": 1})
    checks = regression_checks(head, Regression(ops="exact"), base)
    changed = Entry("t::ops[int8]", "m", "int8", "int8", head, checks)
    body = markdown.comment_body([changed])
    (row,) = _failed_rows(body)
    assert row[:3] == ["int8", "op counts", "CONV\\_2D 2 → 3, RESHAPE 1 → 0"]
    assert headline(changed) == "ops CONV_2D 2 → 3, RESHAPE 1 → 0 · 1 limit broken"
    same = regression_checks(base, Regression(ops="exact"), base)
    body = markdown.comment_body([Entry("t::ops[int8]", "m", "int8", "int8", base, same)])
    assert "| int8 | op counts | unchanged |" in body and "0 → 0" not in body


def test_keys_group_by_the_figure_they_read():
    assert figure_of("size.max").reads == figure_of("regression.size").reads \
        == "Measurement.size_bytes"
    assert figure_of("size.max_gzip").reads == "Measurement.gzip_bytes"
    assert figure_of("regression.fidelity.top1_agreement") == \
        figure_of("fidelity.min_top1_agreement")
    per_sample = figure_of("latency.xnnpack.per_sample.median")
    assert (per_sample.reads, per_sample.name) == ("BatchResult.per_sample_ms", "xnnpack")
    external = figure_of("latency.external:/opt/lib.so.median")
    assert external.name == "external:/opt/lib.so"
    assert figure_of("accuracy.xnnpack.min").name == "xnnpack"
    assert figure_of("regression.latency.gpu").name == "gpu"
    # The int8 variant: 22 checks, fewer figures, and the failed ones hold every key on them.
    groups = {f.label: f for f in findings(int8_entry())}
    assert [c.metric for c in groups["file size"].checks] == ["size.max", "regression.size"]
    assert [c.metric for c in groups["accuracy (top1)"].checks] == \
        ["accuracy.min", "regression.accuracy"]


def test_passing_rows_stay_folded_and_the_json_keeps_every_check(tmp_path: Path):
    entries = dense_growth_entries()
    body = markdown.comment_body(entries)
    fold = body.index("<details>")
    assert "<summary>19 other figures (15 passed, 4 skipped)</summary>" in body
    assert body.index("| int8 | fidelity: cosine similarity |") > fold
    assert body.index("| int8 | xnnpack median latency | 224 µs |") > fold
    # The failed comparisons are on their rows: no second latency table above the fold.
    assert "**Latency, head vs base**" not in body
    path = tmp_path / "report.json"
    write_json(path, entries)
    saved = json.loads(path.read_text())["entries"]
    assert sum(len(e["checks"]) for e in saved) == CHECKS == sum(len(e.checks) for e in entries)
    comparison = saved[2]["delegates"]["xnnpack"]["comparison"]
    assert comparison["base_median_ms"] == 0.2104 and comparison["head_median_ms"] == 0.2220
    assert comparison["clock"] == "CPU time, 1 thread" and len(comparison["ratios"]) == 120
    assert saved[2]["fidelity"]["samples"] == 397 and saved[2]["fidelity"]["top1_agreeing"] == 393
    loaded = Entry.from_json(saved[2])
    assert loaded.measurement.delegates["xnnpack"].comparison == \
        entries[2].measurement.delegates["xnnpack"].comparison


def test_before_and_after_for_the_same_change():
    """The comment before this change (saved when it was made) against today's: 17 failed rows
    became 12, each with its place to change."""
    before = Path(__file__).with_name("comment_before.md").read_text(encoding="utf-8")
    after = markdown.comment_body(dense_growth_entries())
    before_rows = [r for r in before.splitlines() if "❌ fail" in r]
    assert len(before_rows) == 17
    assert len(_failed_rows(after)) == 12
    assert "+0.005 (+0.5%)" in before and "+0.005 (+0.5%)" not in after
    # Every failed row of the new comment says where to change it; none of the old did.
    assert all("`budgets/digits_cnn.toml" in r[5] for r in _failed_rows(after))
    assert "budgets/digits_cnn.toml" not in before
    assert comment_marker.read_marker(after) == comment_marker.read_marker(before)


def test_the_terminal_summary_says_it_once_per_figure():
    lines = summary_lines(dense_growth_entries(), 0, 0)
    assert ("  digits_cnn [int8]: 44.6 -> 61.8 KiB (+38.5%) · top-1 0.972 -> 0.962 (-1.0 pt) · "
            "xnnpack +5.5% [+5.0, +6.0] · builtin +22.0% [+19.0, +25.0] · 8 limits broken") in lines
    at = lines.index("  digits_cnn [int8] file size: 44.6 -> 61.8 KiB (+17.2 KiB, +38.5%); "
                     "fail: size.max 48.0 KiB, regression.size <= 46.8 KiB")
    assert lines[at + 1] == f"      change: {BUDGET} [variants.int8] size.max, [regression] size"
    assert lines[at + 2] == ("      the ratchet raises size.max: "
                             f'pytest "test_digits.py::test_digits_budget[int8]" '
                             f"{RATCHET}")
    assert sum("latency vs base" in line for line in lines) == 4  # once each, not in a table too


def test_errors_lead_with_their_reason_and_unchanged_variants_have_no_headline(tmp_path: Path,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "budgets").mkdir()
    budget = tmp_path / "budgets" / "m.toml"
    budget.write_text("[variants.int8.regression]\naccuracy = 0.01\n")
    reason = ("not compared: this run measured no accuracy, which the variant's own "
              "[regression] table asks for: pass eval_data=(x, y)")
    broken = replace(entry(checks=[Check("regression.accuracy", None, None, "error",
                                         reason=reason, tolerance_from="variant")]),
                     budget_path=str(budget))
    calm = entry(variant="float32", checks=[Check("size.max", 1_000, 2_000, "pass", "bytes",
                                                  baseline=1_000, delta=0)])
    body = markdown.comment_body([broken, calm])
    (row,) = _failed_rows(body)
    assert row[:2] == ["int8", "accuracy"] and row[4] == "💥 error"
    assert "regression.accuracy: not compared: this run measured no accuracy" in row[3]
    # Relative to where the run started, in the variant's own regression table; no ratchet.
    assert row[5] == "`budgets/m.toml [variants.int8.regression] accuracy`"
    assert headline(calm) is None and "**float32**" not in body
    assert "- 💥 **int8**: 1 error" in body


def test_the_job_summary_says_the_same_without_the_marker():
    summary = markdown.job_summary(dense_growth_entries())
    assert "<!-- pytest-tflite" not in summary
    assert summary.index("**What changed**") < summary.index("**Failed checks**")
    assert _failed_rows(summary) == _failed_rows(markdown.comment_body(dense_growth_entries()))
