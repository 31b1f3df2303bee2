"""The reports people read, from typed entries: the terminal tables, the pull-request comment,
the job summary, and the JSON/JUnit transport of baselines, deltas and comparisons.

Most tests build ``Entry`` objects directly, with the baseline fields filled, so they do not
wait on a baseline run; the plugin tests then run real models, and typed entries recorded by
inner tests, through pytest with and without xdist.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from pytest_tflite import comment_marker
from pytest_tflite.reports import markdown
from pytest_tflite.reports.publish import ReportOptions, publish
from pytest_tflite.reports.tables import (
    BASELINE_HEADER,
    CHECK_HEADER,
    check_table,
    format_delta,
    summary_lines,
)
from pytest_tflite.results import (
    Check,
    Entry,
)
from tests.helpers.entries import compared_entry, entry, many_entries

# ---------------------------------------------------------------- terminal


def test_check_table_without_baselines_keeps_its_columns():
    lines = check_table([Check("size.max", 2000, 1000, "fail", "bytes")])
    assert lines[0].split() == " ".join(CHECK_HEADER).split()
    assert "baseline" not in lines[0]
    assert re.match(r"size\.max\s+2\.0 KiB \(2000 B\)\s+1000 B\s+\+1,000 B \(\+100\.0%\)\s+fail$",
                    lines[2])


def test_check_table_shows_baseline_and_delta_when_compared():
    lines = check_table(compared_entry().checks)
    assert lines[0].split() == " ".join(BASELINE_HEADER).split()
    rows = {line.split()[0]: line for line in lines[2:] if line}
    assert re.search(r"24\.4 KiB \(25000 B\)\s+24\.0 KiB \(24576 B\)\s+19\.5 KiB \(20000 B\)\s+"
                     r"\+5,000 B \(\+25\.0%\)\s+\+424 B \(\+1\.7%\)\s+fail", rows["size.max"])
    assert re.search(r"460 us\s+\+40 us \(\+8\.7%\)\s+pass", rows["latency.xnnpack.median"])
    assert re.search(r"0\.98\s+-0\.01 \(-1\.0%\)\s+pass", rows["accuracy.min"])
    # Not compared: dashes, and the reason stays in its column.
    assert re.search(r"-\s+-\s+not compared: no baseline\s+skip", rows["latency.builtin.median"])


def test_delta_is_computed_when_only_the_baseline_is_given():
    assert format_delta(Check("latency.xnnpack.p90", 0.9, 1.0, "pass", "ms", baseline=1.2)) \
        == "-300 us (-25.0%)"
    assert format_delta(Check("size.max", 10, 20, "pass", "bytes")) == "-"
    assert format_delta(Check("sparsity.min", 0.5, 0.4, "pass", baseline=0.0)) == "+0.5"


def test_ratios_read_as_ratios():
    check = Check("regression.latency.xnnpack", 1.021, 1.05, "pass", "ratio")
    assert re.search(r"x1\.021\s+x1\.050\s+pass", check_table([check])[2])
    assert markdown.base_to_head(check) == "x1.021"


def test_summary_lists_latency_comparisons_and_each_warning_once():
    shared = "the baseline was measured on another CPU"
    entries = [compared_entry(), entry(variant="float32", warnings=[shared, "odd float"])]
    lines = summary_lines(entries, 0, 0)
    text = "\n".join(lines)
    # The comparison has no medians (a report written before they were kept): a dash.
    assert re.search(r"digits_cnn\s+int8\s+xnnpack\s+\+8\.0% \[\+5\.0, \+11\.0\]\s+-\s+"
                     r"40 pairs\s+regressed", text)
    assert lines.count(f"warning: {shared}") == 1
    assert "warning: digits_cnn [float32]: odd float" in lines
    # Without comparisons or warnings the summary is the table alone.
    assert not [line for line in summary_lines([entry()], 0, 0) if "warning" in line
                or "baseline" in line]


# ---------------------------------------------------------------- the pull-request comment


def test_comment_starts_with_the_marker_and_shows_base_to_head():
    body = markdown.comment_body([compared_entry(), entry(variant="float32", checks=[
        Check("size.max", 90_000, 100_000, "pass", "bytes")])])
    assert body.splitlines()[0] == "<!-- pytest-tflite:budgets -->"
    assert comment_marker.read_marker(body) == "<!-- pytest-tflite:budgets -->"
    assert "2 model variants, 5 checks: ❌ 1 failed · ✅ 3 passed · ⏭️ 1 skipped" in body
    assert "> ⚠️ digits\\_cnn \\[int8\\]: the baseline was measured on another CPU" in body
    changed = body.index("**What changed**")
    failed = body.index("**Failed checks**")
    latency_table = body.index("**Latency, head vs base**")
    details = body.index("<details>")
    assert changed < failed < latency_table < details < body.index("</details>")
    # 20,000 -> 25,000 B: 19.5 -> 24.4 KiB, +25.0%; the comparison 1.08 [1.05, 1.11].
    assert ("- ❌ **int8**: 19.5 → 24.4 KiB (+25.0%) · accuracy 0.980 → 0.970 (\u22120.010) · "
            "xnnpack +8.0% \\[+5.0, +11.0\\] · 1 limit broken") in body[changed:failed]
    # base -> head with one delta, the limit it broke, where to change it: above the fold.
    assert ("| int8 | file size | 19.5 → 24.4 KiB (+4.9 KiB, +25.0%) | size.max 24.0 KiB | "
            "❌ fail | `[variants.int8] size.max`; the ratchet raises size.max: "
            "`pytest \"test_m.py::test_digits_cnn[int8]\" --tflite-update-budgets --tflite-loosen` |"
            ) in body[failed:latency_table]
    assert ("| int8 | xnnpack | +8.0% \\[+5.0, +11.0\\] | - | 40 pairs | ±5.0% | "
            "❌ regressed |") in body[latency_table:details]
    rest = body[details:]
    assert "<summary>4 other figures (3 passed, 1 skipped)</summary>" in rest
    assert "| int8 | xnnpack median latency | 460 µs → 500 µs (+8.7%) |" in rest
    assert "| float32 | file size | 87.9 KiB |" in rest  # no baseline: the head alone
    assert "latency.builtin.median: not compared: no baseline" in rest  # a skip says why
    assert "rows left out" not in body


def test_comment_id_and_its_validation():
    body = markdown.comment_body([], identifier="nightly.models-2")
    assert body.startswith("<!-- pytest-tflite:nightly.models-2 -->\n")
    assert "No model variant was checked." in body
    for bad in ("", "-x", "a--b", "a -->", "<b>", "a b"):
        with pytest.raises(Exception, match="invalid comment id"):
            comment_marker.comment_id(bad)
    # Only a body that starts with the marker is ours.
    assert comment_marker.read_marker("see <!-- pytest-tflite:budgets --> here") is None
    assert comment_marker.read_marker("<!-- other-tool -->\nhi") is None


def test_comment_escapes_what_comes_from_test_ids_and_budget_files():
    hostile = entry(model="m|<script>alert(1)</script>", variant="*bold*_x_",
                    checks=[Check("size.max", 2, 1, "fail", "bytes",
                                  reason="a\nmultiline | reason </details>")])
    body = markdown.comment_body([hostile])
    assert "<script>" not in body and "&lt;script&gt;" in body
    assert "m\\|&lt;script&gt;" in body and "\\*bold\\*\\_x\\_" in body
    row = next(line for line in body.splitlines() if "size.max" in line)
    assert row.count(" | ") == len(markdown.FINDING_COLUMNS) - 1  # no stray cell separators
    assert body.count("</details>") == 0  # the only check failed: no fold, and none injected


def test_two_thousand_entries_fit_under_githubs_limit_failures_first():
    entries = many_entries(2000)
    body = markdown.comment_body(entries)
    size = comment_marker.utf16_length(body)
    print(f"comment for 2,000 entries: {size:,} UTF-16 units, {len(body):,} characters, "
          f"{len(body.encode()):,} bytes")
    assert size <= comment_marker.COMMENT_LIMIT - markdown.COMMENT_MARGIN
    assert body.startswith("<!-- pytest-tflite:budgets -->\n")
    lines = body.splitlines()
    failures = [e for e in entries if e.verdict == "fail"]
    # Every failure is shown, before anything else.
    for failed in failures:
        name = failed.model.replace("_", "\\_")
        assert f"| {name} \\[int8\\] | file size | 19.5 → 29.3 KiB (+9.8 KiB, +50.0%) |" in body
    first_rows = [line for line in lines if line.startswith("| model\\_")][:len(failures)]
    assert all("| size.max 24.0 KiB | ❌ fail | `[variants.int8] size.max`" in line
               for line in first_rows)
    # One headline per failed variant first, up to the cap, then a count of the others.
    headlines = [line for line in lines if line.startswith("- ❌ **model")]
    assert len(headlines) == markdown.MAX_HEADLINES
    assert "- … and 1,970 more changed model variants" in body
    # Then every regressed latency, still above the fold; unchanged ones only inside it.
    above_fold = body[:body.index("<details>")]
    assert above_fold.count("❌ regressed") == 40
    assert "✅ unchanged" not in above_fold
    # Headlines (the cap and its count line), a figure per check, a comparison per entry.
    total_rows = markdown.MAX_HEADLINES + 1 + 2000 * 3 + 2000
    shown = sum(1 for line in lines if line.startswith(("| model\\_", "- ")))
    note = re.search(r"_([\d,]+) of ([\d,]+) rows left out to stay under GitHub's 65,536-character "
                     r"comment limit", body)
    assert note, body[-500:]
    assert int(note.group(2).replace(",", "")) == total_rows
    assert int(note.group(1).replace(",", "")) == total_rows - shown
    assert body.count("<details>") == body.count("</details>")


def test_the_limit_counts_emoji_as_github_does():
    # An emoji is one character in Python and two UTF-16 code units in JavaScript.
    assert comment_marker.utf16_length("❌") == 1 and comment_marker.utf16_length("🚀") == 2
    body = markdown.comment_body(many_entries(200), limit=5_000)
    assert comment_marker.utf16_length(body) <= 5_000


# ---------------------------------------------------------------- job summary and publish


def test_publish_writes_each_report_and_appends_to_the_job_summary(tmp_path):
    summary = tmp_path / "step_summary.md"
    summary.write_text("# An earlier step\n")
    options = ReportOptions(json_path=tmp_path / "r.json", markdown_path=tmp_path / "c/body.md",
                            comment_id="gate", html_path=tmp_path / "h/report.html",
                            step_summary=summary)
    entries = [compared_entry()]
    written = publish(entries, options)
    assert written == [f"tflite report: {tmp_path / 'r.json'}",
                       f"tflite comment body: {tmp_path / 'c/body.md'}",
                       f"tflite html report: {tmp_path / 'h/report.html'}",
                       f"tflite job summary: {summary}"]
    assert (tmp_path / "c/body.md").read_text().startswith("<!-- pytest-tflite:gate -->\n")
    assert (tmp_path / "h/report.html").read_text().startswith("<!DOCTYPE html>")
    publish(entries, options)  # a second run in the same job appends again
    text = summary.read_text()
    assert text.startswith("# An earlier step\n")
    assert text.count("pytest-tflite: model budgets") == 2
    assert "<!-- pytest-tflite" not in text  # no marker: it is not a comment
    first = text.index("**Failed checks**")
    assert first < text.index("<details>")
    assert "| 19.5 → 24.4 KiB (+4.9 KiB, +25.0%) |" in text
    assert not list(tmp_path.rglob("*.tmp"))


def test_job_summary_is_skipped_without_entries_and_respects_what_is_left(tmp_path):
    summary = tmp_path / "summary.md"
    assert publish([], ReportOptions(step_summary=summary)) == []
    assert not summary.exists()
    summary.write_text("x" * (markdown.SUMMARY_LIMIT - 50_000))
    publish(many_entries(2000), ReportOptions(step_summary=summary))
    assert summary.stat().st_size <= markdown.SUMMARY_LIMIT
    assert "rows left out to stay under the job summary's 1 MiB limit" in summary.read_text()


def test_json_and_its_round_trip_keep_baseline_delta_comparison_and_samples(tmp_path):
    original = compared_entry()
    publish([original], ReportOptions(json_path=tmp_path / "r.json"))
    found = json.loads((tmp_path / "r.json").read_text())["entries"][0]
    assert found["checks"][0] == {"metric": "size.max", "measured": 25_000, "budget": 24_576,
                                  "verdict": "fail", "unit": "bytes", "reason": "",
                                  "baseline": 20_000, "delta": 5_000,
                                  "tolerance_from": ""}
    xnnpack = found["delegates"]["xnnpack"]
    assert xnnpack["comparison"] == {"ratio": 1.08, "low": 1.05, "high": 1.11, "pairs": 40,
                                     "verdict": "regressed", "tolerance": 0.05,
                                     "remeasured": False, "base_median_ms": None,
                                     "head_median_ms": None, "clock": "", "ratios": None}
    assert xnnpack["latency_ms"]["samples"] == original.measurement.delegates[
        "xnnpack"].latency_ms.samples
    assert found["delegates"]["builtin"]["comparison"] is None
    assert found["warnings"] == ["the baseline was measured on another CPU"]
    assert Entry.from_json(found) == original


# ---------------------------------------------------------------- through pytest


RECORDED_TESTS = """
    import json
    import pytest
    from pytest_tflite.results import Check, Comparison, DelegateResult, Entry, Latency, Measurement

    def typed(variant, size, verdict):
        samples = [0.4 + 0.001 * i for i in range(20)]
        latency = Latency(0.41, 0.42, 0.42, 0.4, 0.41, 0.005, 20, samples)
        measurement = Measurement(size, size // 2, {}, [], 0, [], [], 0.0, [], delegates={
            "xnnpack": DelegateResult("ok", latency_ms=latency,
                                      comparison=Comparison(1.02, 1.0, 1.04, 30, "unchanged", 0.05))})
        check = Check("size.max", size, 24576, verdict, "bytes", baseline=20000, delta=size - 20000)
        return Entry(f"test_recorded.py::test_{variant}", "digits", variant, variant,
                     measurement, [check], ["baseline from another machine"])

    @pytest.mark.parametrize("variant,size,verdict", [("int8", 25000, "fail"),
                                                      ("float16", 22000, "pass")])
    def test_recorded(record_property, variant, size, verdict):
        # What the tflite_budget fixture records, with the baseline fields a baseline run fills.
        record_property("tflite_entry", json.dumps(typed(variant, size, verdict).to_json()))
"""


@pytest.mark.parametrize("mode", [["-p", "no:xdist"], ["-n", "0"], ["-n", "2"]],
                         ids=["no-xdist", "n0", "n2"])
def test_reports_are_written_once_by_the_controller(pytester, monkeypatch, mode):
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(test_recorded=textwrap.dedent(RECORDED_TESTS))
    args = [*mode, "-p", "no:randomly", "--tflite-report=out/r.json", "--junitxml=out/junit.xml",
            "--tflite-markdown=out/comment.md", "--tflite-comment-id=pr-gate",
            "--tflite-html=out/report.html"]
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2)
    out = pytester.path / "out"
    entries = json.loads((out / "r.json").read_text())["entries"]
    assert sorted(e["variant"] for e in entries) == ["float16", "int8"]
    assert {e["checks"][0]["baseline"] for e in entries} == {20000}
    assert all(e["delegates"]["xnnpack"]["comparison"]["pairs"] == 30 for e in entries)
    comment = (out / "comment.md").read_text()
    assert comment.startswith("<!-- pytest-tflite:pr-gate -->\n")
    assert "| int8 | file size | 19.5 → 24.4 KiB (+4.9 KiB, +25.0%) | size.max" in comment
    # Written once: one section in the summary, one entry per test in each report.
    assert summary.read_text().count("pytest-tflite: model budgets") == 1
    assert summary.read_text().count("| int8 | file size |") == 1
    page = (out / "report.html").read_text()
    # Compared with the base: the paired interval, not this run's samples (html's own tests).
    assert page.count('class="mark lat-interval c-unchanged"') == 2
    assert page.count('class="mark size-bar"') == 2
    result.stdout.fnmatch_lines(["*tflite comment body: *out/comment.md",
                                 "*tflite html report: *out/report.html",
                                 f"*tflite job summary: {summary}"])
    result.stdout.fnmatch_lines(["*digits*int8*xnnpack*+2.0% [[]+0.0, +4.0[]]*30 pairs*unchanged",
                                 "warning: baseline from another machine"])


def test_a_bad_comment_id_is_a_usage_error(pytester):
    result = pytester.runpytest("--tflite-comment-id=a-->b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid comment id*"])


def test_real_models_reach_every_report(project, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    p = project({"mlp": """
        [variants.float32]
        size = { max = "1 MiB" }
        [variants.float32.latency.xnnpack]
        median = "1 s"
        [variants.tight]
        size = { max = 100 }
    """}, test_real="""
        import pytest

        @pytest.mark.tflite_budget("mlp")
        @pytest.mark.parametrize("variant", ["float32", "tight"])
        def test_model(tflite_convert, tflite_budget, mlp, variant):
            tflite_budget.check(tflite_convert(mlp, variant=variant))
    """)
    result = p.runpytest("-p", "no:randomly", "--tflite-markdown=comment.md",
                         "--tflite-html=report.html")
    result.assert_outcomes(passed=1, failed=1)
    comment = (p.path / "comment.md").read_text()
    assert comment.startswith("<!-- pytest-tflite:budgets -->\n")
    failed = comment[comment.index("**Failed checks**"):comment.index("<details>")]
    assert "| tight | file size |" in failed and "| size.max 100 B | ❌ fail |" in failed
    assert "| float32 | xnnpack median latency |" in comment[comment.index("<details>"):]
    page = (p.path / "report.html").read_text()
    assert page.count('class="mark size-bar"') == 2
    assert page.count('class="mark budget-dot v-fail"') == 1
    assert page.count('class="mark budget-dot v-pass"') == 2
    assert page.count('class="mark lat-head"') >= 1  # the worker keeps samples, or a summary
