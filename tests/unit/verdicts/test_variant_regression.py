"""``[variants.NAME.regression]``: a variant's own tolerances replace the file-wide ``[regression]``
key by key, and where a tolerance comes from decides what an unmeasured figure is.

The figures are stated by hand: a baseline of 1,000 B and a head of 1,050 B grew by 50 B, 5%
of the baseline, so "5%" allows it exactly (1,050.0) and "4%" allows 40 B (1,040.0).
Budgets go through the real loader and ``verdicts.judge``, as a run does.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite import engine
from pytest_tflite.budget import Relative, load
from pytest_tflite.model import TFLiteModel
from pytest_tflite.ratchet import RatchetOptions, plan, rewrite
from pytest_tflite.regressions import tolerances
from pytest_tflite.results import (
    Accuracy,
    Check,
    Comparison,
    DelegateResult,
    Entry,
    Fidelity,
    Measurement,
    overall,
)
from pytest_tflite.verdicts import Context, judge


def budget_of(tmp_path: Path, text: str, name: str = "digits.toml") -> Any:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load(path)


def figures(size: int = 1_000, gzip: int = 900, **more: Any) -> Measurement:
    return Measurement(size_bytes=size, gzip_bytes=gzip, ops={"FULLY_CONNECTED": 1}, subgraphs=[],
                       planned_arena_bytes=4096, inputs=[], outputs=[], sparsity=0.0,
                       sparsity_layers=[], **more)


def top1(value: float) -> Accuracy:
    return Accuracy(metric="top1", candidate=value, reference=0.97, drop=0.97 - value,
                    samples=400, batched=True)


def regressions(budget: Any, variant: str, head: Measurement, base: Measurement | None,
                context: Context | None = None) -> dict[str, Check]:
    checks = judge(head, budget.variant(variant), budget.spec.regression, context or Context(),
                   baseline=base)
    return {c.metric: c for c in checks if c.metric.startswith("regression.")}


# --- the variant's own table replaces the file-wide one, key by key ----------------------------

OVERRIDE = """
    [variants.int8]
    size = { max = "1 MiB" }

    [variants.int8.regression]
    size = "10%"

    [variants.float32]
    size = { max = "1 MiB" }

    [regression]
    size = "1%"
    gzip = "1%"
"""


def test_a_variant_key_replaces_the_file_wide_key_and_leaves_the_others(tmp_path: Path) -> None:
    budget = budget_of(tmp_path, OVERRIDE)
    head, base = figures(size=1_050, gzip=950), figures(size=1_000, gzip=900)
    int8 = regressions(budget, "int8", head, base)
    # size: +50 B against the variant's 10% (100 B allowed), not the file's 1% (10 B).
    assert (int8["regression.size"].verdict, int8["regression.size"].budget) == ("pass", 1_100.0)
    assert int8["regression.size"].reason == "+50 B vs baseline, 100 B allowed"
    # gzip: the variant gives none, so the file-wide 1% of 900 B (9 B) judges the +50 B.
    assert (int8["regression.gzip"].verdict, int8["regression.gzip"].budget) == ("fail", 909.0)
    # The other variant has no table of its own: the file-wide 1% fails the same +50 B.
    float32 = regressions(budget, "float32", head, base)
    assert (float32["regression.size"].verdict, float32["regression.size"].budget) == \
        ("fail", 1_010.0)
    assert sorted(int8) == sorted(float32) == ["regression.gzip", "regression.size"]


@pytest.mark.parametrize(("own", "file_wide", "verdict", "allowed"), [
    ('"5%"', '"4%"', "pass", 1_050.0),  # +50 B is exactly the variant's 5%
    ('"4%"', '"5%"', "fail", 1_040.0),  # the variant is stricter than the file: 40 B allowed
    ("50", '"4%"', "pass", 1_050.0),  # an absolute tolerance in bytes replaces a relative one
])
def test_the_variant_tolerance_wins_whichever_is_stricter(tmp_path: Path, own: str, file_wide: str,
                                                          verdict: str, allowed: float) -> None:
    budget = budget_of(tmp_path, f"""
        [variants.int8]
        size = {{ max = "1 MiB" }}
        regression = {{ size = {own} }}
        [regression]
        size = {file_wide}
    """)
    check = regressions(budget, "int8", figures(size=1_050), figures(size=1_000))["regression.size"]
    assert (check.verdict, check.budget, check.measured, check.baseline) == \
        (verdict, allowed, 1_050, 1_000)


def test_a_variant_table_alone_is_judged_without_a_file_wide_one(tmp_path: Path) -> None:
    # A variant with no budgets but its own tolerances checks something: the file loads.
    budget = budget_of(tmp_path, """
        [variants.int8.regression]
        size = "4%"
    """)
    assert budget.spec.regression is None
    checks = judge(figures(size=1_050), budget.variant("int8"), budget.spec.regression,
                   baseline=figures(size=1_000))
    assert [(c.metric, c.verdict, c.budget) for c in checks] == [("regression.size", "fail", 1_040.0)]


def test_tolerances_merges_key_by_key(tmp_path: Path) -> None:
    budget = budget_of(tmp_path, """
        [variants.int8.regression]
        latency = "10%"
        ops = "report"
        [variants.float32]
        size = { max = "1 MiB" }
        [regression]
        size = "1%"
        latency = "5%"
        ops = "exact"
    """)
    merged = tolerances(budget.spec.regression, budget.variant("int8").regression)
    assert merged is not None
    assert (merged.size, merged.latency, merged.ops) == \
        (Relative(percent=1), Relative(percent=10), "report")
    assert tolerances(budget.spec.regression, None) is budget.spec.regression
    assert tolerances(None, budget.variant("int8").regression) is budget.variant("int8").regression
    assert tolerances(None, None) is None


def test_without_a_baseline_every_merged_key_is_a_skip(tmp_path: Path) -> None:
    budget = budget_of(tmp_path, OVERRIDE)
    checks = regressions(budget, "int8", figures(), None)
    assert {m: (c.verdict, c.reason) for m, c in checks.items()} == {
        "regression.size": ("skip", "not compared: no baseline"),
        "regression.gzip": ("skip", "not compared: no baseline")}


# --- an unmeasured figure: a skip from the file-wide table, an error from the variant's own -----

QUALITY = """
    [variants.float32]
    size = { max = "1 MiB" }

    [variants.int8]
    size = { max = "1 MiB" }
    accuracy = { metric = "top1", min = 0.9 }

    [variants.int8_own]
    size = { max = "1 MiB" }
    regression = { accuracy = 0.01, fidelity = 0.01 }

    [regression]
    accuracy = 0.01
    fidelity = 0.01
"""


def test_a_file_wide_quality_key_on_a_variant_without_data_is_a_skip(tmp_path: Path) -> None:
    budget = budget_of(tmp_path, QUALITY)
    checks = regressions(budget, "float32", figures(), figures())  # no eval_data: no accuracy
    assert {m: c.verdict for m, c in checks.items()} == {
        "regression.accuracy": "skip", "regression.fidelity": "skip"}
    assert checks["regression.accuracy"].reason == (
        "not compared: this variant measures no accuracy; the file-wide [regression] accuracy "
        "is judged where a test passes eval_data=(x, y)")
    assert checks["regression.fidelity"].reason == (
        "not compared: this variant measures no fidelity; the file-wide [regression] fidelity "
        "is judged where a test passes eval_data and reference=")


def test_a_variant_whose_every_check_skipped_is_a_skip(tmp_path: Path) -> None:
    # float32 has no budgets of its own and no eval data: every file-wide quality key skips,
    # so the entry is a skip (the plugin turns it into a skipped test), not a pass or an error.
    budget = budget_of(tmp_path, """
        [variants.float32]
        [variants.float16]
        size = { max = "1 MiB" }
        [regression]
        accuracy = 0.01
        fidelity = 0.01
    """)
    float32 = judge(figures(), budget.variant("float32"), budget.spec.regression,
                    baseline=figures())
    assert [(c.metric, c.verdict) for c in float32] == [
        ("regression.accuracy", "skip"), ("regression.fidelity", "skip")]
    assert overall(float32) == "skip"
    # Where one check could be judged, the skips stay beside it and the entry passes.
    float16 = judge(figures(), budget.variant("float16"), budget.spec.regression,
                    baseline=figures())
    assert overall(float16) == "pass" and len(float16) == 3


def test_the_same_quality_key_in_the_variant_table_is_an_error(tmp_path: Path) -> None:
    budget = budget_of(tmp_path, QUALITY)
    checks = regressions(budget, "int8_own", figures(), figures())
    assert {m: c.verdict for m, c in checks.items()} == {
        "regression.accuracy": "error", "regression.fidelity": "error"}
    assert checks["regression.accuracy"].reason == (
        "not compared: this run measured no accuracy, which the variant's own [regression] "
        "table asks for: pass eval_data=(x, y)")
    # The CLI has no way to pass data: there it is "not checked", as accuracy budgets are.
    cli = regressions(budget, "int8_own", figures(), figures(), Context(without_data="skip"))
    assert {(c.verdict, c.reason) for c in cli.values()} == {("skip", "not compared (needs data)")}


def test_a_quality_key_is_judged_where_the_figure_is_measured(tmp_path: Path) -> None:
    # The same file-wide key that skipped on float32 judges int8: 0.97 -> 0.95 is -0.02, over
    # the 0.01 allowed.
    budget = budget_of(tmp_path, QUALITY)
    fidelity = Fidelity(top1_agreement=0.99, cosine=0.999, max_abs_error=0.1, snr_db=30.0)
    checks = regressions(budget, "int8", figures(accuracy=top1(0.95), fidelity=fidelity),
                         figures(accuracy=top1(0.97), fidelity=fidelity))
    accuracy = checks["regression.accuracy"]
    assert (accuracy.verdict, accuracy.measured, accuracy.baseline) == ("fail", 0.95, 0.97)
    assert accuracy.budget == pytest.approx(0.96)
    assert checks["regression.fidelity.cosine"].verdict == "pass"


def test_a_model_that_never_ran_is_an_error_whichever_table_asks(tmp_path: Path) -> None:
    budget = budget_of(tmp_path, QUALITY)
    refused = figures(refused="the planned arena (2 GiB) exceeds the memory cap (512 MiB)")
    for variant in ("float32", "int8_own"):
        checks = regressions(budget, variant, refused, figures())
        assert {c.verdict for c in checks.values()} == {"error"}, variant
        assert checks["regression.accuracy"].reason == refused.refused


# --- what reads the tolerances: the paired latency comparison and the ratchet --------------------


def test_the_latency_comparison_runs_at_the_variant_tolerance(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_tflite.measure import paired_latency

    asked: list[float] = []

    def compare(candidate: Path, base: Path, delegate: str, runtime: Any, tolerance: float,
                **_: Any) -> Comparison:
        asked.append(tolerance)
        return Comparison(1.0, 0.99, 1.01, 40, "unchanged", tolerance)

    monkeypatch.setattr(paired_latency, "compare_latency", compare)
    budget = budget_of(tmp_path, """
        [variants.int8]
        size = { max = "1 MiB" }
        regression = { latency = "10%" }
        [variants.float32]
        size = { max = "1 MiB" }
    """)
    saved = type("Saved", (), {"tflite": tmp_path / "base.tflite"})()
    model = TFLiteModel(b"", tmp_path / "head.tflite", "int8", "int8", "test")
    for name in ("int8", "float32"):
        measurement = figures(delegates={"xnnpack": DelegateResult("ok")})
        engine._compare_latency(model, saved, budget, budget.variant(name), measurement,
                                engine.Settings())
        found = measurement.delegates["xnnpack"].comparison
        assert (found is not None) == (name == "int8"), name
    # Only int8 asked for a comparison, at its own 10%; float32 has no latency tolerance at all.
    assert asked == [pytest.approx(0.10)]


def test_the_ratchet_leaves_a_variant_regression_table_as_written(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        [variants.int8]
        size = { max = "2 KiB" }   # the shipped variant

        [variants.int8.regression]
        size = "5%"   # per variant: a team's own tolerance
    """)
    path = tmp_path / "digits.toml"
    path.write_text(text)
    checks = [Check("size.max", 1_050, 2_048, "pass", "bytes"),
              Check("regression.size", 1_050, 1_050.0, "pass", "bytes", baseline=1_000, delta=50)]
    entry = Entry("test_int8", "digits", "int8", "int8", figures(size=1_050), checks,
                  budget_path=str(path))
    changes = plan([entry], {str(path): text}, RatchetOptions())
    assert [(c.metric, c.old, c.new) for c in changes] == [("size.max", "2 KiB", "1155 B")]
    after = rewrite(text, changes)
    assert after == text.replace('max = "2 KiB"', 'max = "1155 B"')
    assert load(path).variant("int8").regression is not None


def test_each_regression_check_says_which_table_its_tolerance_came_from(tmp_path: Path) -> None:
    """The PR comment names the line to change from this: int8's size comes from its own
    table, its gzip from the file-wide one, and float32's from the file-wide one."""
    from pytest_tflite.reports.findings import place

    budget = budget_of(tmp_path, OVERRIDE)
    head, base = figures(size=1_050, gzip=950), figures(size=1_000, gzip=900)
    int8 = regressions(budget, "int8", head, base)
    float32 = regressions(budget, "float32", head, base)
    assert int8["regression.size"].tolerance_from == "variant"
    assert int8["regression.gzip"].tolerance_from == "file"
    assert float32["regression.size"].tolerance_from == "file"
    entry = Entry("t", "digits", "int8", "int8", head, list(int8.values()),
                  budget_path=str(tmp_path / "digits.toml"))
    assert place(entry, int8["regression.size"]) == "[variants.int8.regression] size"
    assert place(entry, int8["regression.gzip"]) == "[regression] gzip"
    no_baseline = regressions(budget, "int8", head, None)
    assert {m: c.tolerance_from for m, c in no_baseline.items()} == {
        "regression.size": "variant", "regression.gzip": "file"}
