"""Counted cost as budgets: ``cost.<delegate>.instructions`` / ``estimated_cycles`` limits,
``[regression] instructions = "0.5%"`` count to count, the ratchet's exact-count kind, and what
the reports say caused a change. Every figure is written out by hand below; no model runs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite.budget import Budget, load
from pytest_tflite.errors import BudgetFileError, CostUnavailable
from pytest_tflite.ratchet import RatchetOptions, plan, rewrite, rule_for
from pytest_tflite.regressions import RECOUNT, keep_baseline_costs
from pytest_tflite.reports import findings
from pytest_tflite.reports.html import render
from pytest_tflite.reports.markdown import comment_body
from pytest_tflite.results import Check, DelegateResult, Entry, Measurement, function_changes
from pytest_tflite.units import format_count, parse_count
from pytest_tflite.verdicts import Context, delegates_named, judge
from tests.helpers.entries import FINGERPRINT, cost, measurement

# The face detector of issue 18 under xnnpack: 171,273,659 instructions for 11 invokes less
# 93,426,384 for 6 is 15,569,455 per invoke.
BASE = 15_569_455
GEMM = "xnn_f32_gemm_minmax_ukernel_1x16__asm_amd64_fma3_broadcast"
VADD = "xnn_f32_vadd_minmax_ukernel__avx_u16"
BASE_FUNCTIONS = {GEMM: 14_000_000, VADD: 500_000}
# +0.52%: 15,569,455 x 1.0052 = 15,650,416.2 -> 15,650,416 (+80,961 = GEMM +80,000, VADD +961).
UP_052 = 15_650_416
UP_052_FUNCTIONS = {GEMM: 14_080_000, VADD: 500_961}
# +0.4%: 15,569,455 x 1.004 = 15,631,732.8 -> 15,631,733 (+62,278), all in GEMM.
UP_04 = 15_631_733
UP_04_FUNCTIONS = {GEMM: 14_062_278, VADD: 500_000}


def _load(tmp_path: Path, text: str) -> Budget:
    path = tmp_path / "m.toml"
    path.write_text(textwrap.dedent(text))
    return load(path)


def _counted(instructions: int | None, error: str = "", **kwargs: object) -> Measurement:
    found = DelegateResult("ok", cost=cost(instructions, **kwargs)  # type: ignore[arg-type]
                           if instructions is not None else None, cost_error=error)
    return measurement(delegates={"xnnpack": found})


def _judge(tmp_path: Path, text: str, found: Measurement, context: Context | None = None,
           baseline: Measurement | None = None) -> list[Check]:
    budget = _load(tmp_path, text)
    return judge(found, budget.variant("v"), budget.spec.regression, context or Context(),
                 baseline=baseline)


# --- k, M, G: decimal ---------------------------------------------------------------------------


def test_counts_take_decimal_k_m_g_and_refuse_binary_units(tmp_path: Path) -> None:
    assert parse_count("1.5M") == 1_500_000
    assert parse_count("2k") == 2_000 and parse_count("1G") == 10**9
    assert parse_count(15_569_455) == 15_569_455
    with pytest.raises(ValueError, match="decimal"):
        parse_count("1MiB")
    with pytest.raises(ValueError, match="whole number"):
        parse_count("1.0000005M")
    budget = _load(tmp_path, '[variants.v.cost.xnnpack]\ninstructions = "1.5M"\n')
    assert budget.variant("v").cost["xnnpack"].instructions == 1_500_000
    with pytest.raises(BudgetFileError) as refused:
        _load(tmp_path, '[variants.v.cost.xnnpack]\ninstructions = "1MiB"\n')
    message = str(refused.value)
    assert "cost.xnnpack.instructions" in message and "decimal" in message and "m.toml" in message


def test_format_count_is_three_significant_figures() -> None:
    assert format_count(80_961, sign=True) == "+81k"
    assert format_count(15_569_455) == "15.6M"
    assert format_count(-961, sign=True) == "\u2212961"


# --- limits ---------------------------------------------------------------------------------------


LIMIT = '[variants.v.cost.xnnpack]\ninstructions = "1M"\n'


def test_an_instruction_limit_fails_one_past_it_and_passes_at_it(tmp_path: Path) -> None:
    (over,) = _judge(tmp_path, LIMIT, _counted(1_000_001))
    (at,) = _judge(tmp_path, LIMIT, _counted(1_000_000))
    assert (over.metric, over.measured, over.budget, over.verdict) == (
        "cost.xnnpack.instructions", 1_000_001, 1_000_000, "fail")
    assert (at.measured, at.verdict) == (1_000_000, "pass")


def test_estimated_cycles_are_judged_on_their_own_figure(tmp_path: Path) -> None:
    text = '[variants.v.cost.xnnpack]\nestimated_cycles = "3M"\n'
    (check,) = _judge(tmp_path, text, _counted(1_000_000, cycles=3_000_001))
    assert (check.measured, check.verdict) == (3_000_001, "fail")


def test_a_count_of_zero_is_an_error_never_a_pass(tmp_path: Path) -> None:
    (check,) = _judge(tmp_path, LIMIT, _counted(0))
    assert check.verdict == "error" and check.reason.startswith("a count of 0 is never a pass")
    assert "*InterpreterWrapper::Invoke*" in check.reason


def test_without_valgrind_the_limit_skips_naming_the_package_and_fails_when_required(
        tmp_path: Path) -> None:
    missing = str(CostUnavailable.missing())
    (skipped,) = _judge(tmp_path, LIMIT, _counted(None, missing))
    assert skipped.verdict == "skip"
    assert "valgrind" in skipped.reason and "apt-get install valgrind" in skipped.reason
    (required,) = _judge(tmp_path, LIMIT, _counted(None, missing), Context(require_delegates=True))
    assert required.verdict == "fail" and required.reason == skipped.reason
    # A count that failed (another LiteRT build without the symbol) is the model's run: an error.
    (failed,) = _judge(tmp_path, LIMIT, _counted(None, "no function matched "
                                                        "'*InterpreterWrapper::Invoke*'"))
    assert failed.verdict == "error" and "InterpreterWrapper" in failed.reason


def test_a_cost_only_delegate_is_judged_without_being_timed(tmp_path: Path) -> None:
    # engine.cost_delegates counts it; no latency run is asked for it.
    budget = _load(tmp_path, '[variants.v.cost.reference]\ninstructions = 5\n')
    assert delegates_named(budget.variant("v")) == []
    (check,) = _judge(tmp_path, '[variants.v.cost.reference]\ninstructions = 5\n',
                      measurement(delegates={"reference": DelegateResult("ok", cost=cost(6))}))
    assert (check.metric, check.measured, check.verdict) == ("cost.reference.instructions", 6, "fail")
    (unmeasured,) = _judge(tmp_path, '[variants.v.cost.reference]\ninstructions = 5\n',
                           measurement())
    assert unmeasured.verdict == "skip" and "not measured in this run" in unmeasured.reason


@pytest.mark.parametrize(("delegate", "why"), [
    ("gpu", "accelerator valgrind cannot see"), ("npu", "accelerator valgrind cannot see"),
    ('"external:/opt/d.so"', "external delegate"), ('"runner:farm"', "latency only")])
def test_cost_keys_for_delegates_without_a_cpu_count_are_refused(tmp_path: Path, delegate: str,
                                                                 why: str) -> None:
    with pytest.raises(BudgetFileError, match=why):
        _load(tmp_path, f"[variants.v.cost.{delegate}]\ninstructions = 5\n")


# --- [regression] instructions: count to count ------------------------------------------------------


REGRESSION = '[variants.v]\nsize = { max = "1 MiB" }\n[regression]\ninstructions = "0.5%"\n'


def _regression(tmp_path: Path, head: Measurement, base: Measurement,
                text: str = REGRESSION) -> Check:
    (check,) = [c for c in _judge(tmp_path, text, head, baseline=base)
                if c.metric.startswith("regression.")]
    return check


def test_half_a_percent_catches_plus_0_52_and_passes_plus_0_4(tmp_path: Path) -> None:
    base = _counted(BASE, functions=BASE_FUNCTIONS)
    failed = _regression(tmp_path, _counted(UP_052, functions=UP_052_FUNCTIONS), base)
    passed = _regression(tmp_path, _counted(UP_04, functions=UP_04_FUNCTIONS), base)
    # allowed: 0.5% of 15,569,455 = 77,847.3 instructions
    assert (failed.metric, failed.verdict, failed.delta) == (
        "regression.instructions.xnnpack", "fail", 80_961)
    assert failed.baseline == BASE and failed.budget == 15_647_302  # BASE + 77,847.275, floored
    assert failed.reason == (f"instructions +0.52% (+81k per invoke): {GEMM} +80k, {VADD} +961; "
                             f"0.5% (+77.8k) allowed")
    assert (passed.verdict, passed.delta) == ("pass", 62_278)
    assert passed.reason.startswith(f"instructions +0.40% (+62.3k per invoke): {GEMM} +62.3k;")


def test_an_absolute_tolerance_is_a_count(tmp_path: Path) -> None:
    text = REGRESSION.replace('"0.5%"', '"80k"')
    base = _counted(BASE)
    assert _regression(tmp_path, _counted(BASE + 80_001), base, text).verdict == "fail"
    assert _regression(tmp_path, _counted(BASE + 80_000), base, text).verdict == "pass"


def test_estimated_cycles_regression_names_no_functions(tmp_path: Path) -> None:
    text = REGRESSION.replace("instructions", "estimated_cycles")
    check = _regression(tmp_path, _counted(BASE, cycles=20_100_000),
                        _counted(BASE, cycles=20_000_000), text)
    # +100,000 of 20,000,000 = +0.50%: exactly at the tolerance, so a pass.
    assert (check.metric, check.verdict) == ("regression.estimated_cycles.xnnpack", "pass")
    assert check.reason == "estimated cycles +0.50% (+100k per invoke); 0.5% (+100k) allowed"


def test_a_fingerprint_that_differs_needs_a_recount(tmp_path: Path) -> None:
    other = {**FINGERPRINT, "valgrind": "valgrind-3.22.0"}
    head = _counted(UP_052)
    check = _regression(tmp_path, head, _counted(BASE, fingerprint=other))
    assert check.verdict == "skip" and RECOUNT in check.reason and "valgrind changed" in check.reason
    # The baseline's .tflite counted again in this job (DelegateResult.baseline_cost) wins.
    head.delegates["xnnpack"].baseline_cost = cost(BASE)
    recounted = _regression(tmp_path, head, _counted(BASE, fingerprint=other))
    assert (recounted.verdict, recounted.baseline) == ("fail", BASE)


def test_no_count_in_the_head_or_the_base(tmp_path: Path) -> None:
    missing = str(CostUnavailable.missing())
    check = _regression(tmp_path, _counted(None, missing), _counted(BASE))
    assert check.verdict == "skip" and "apt-get install valgrind" in check.reason
    budget = _load(tmp_path, REGRESSION)
    (required,) = [c for c in judge(_counted(None, missing), budget.variant("v"),
                                    budget.spec.regression, Context(require_delegates=True),
                                    baseline=_counted(BASE)) if c.metric.startswith("regression")]
    assert required.verdict == "fail"
    uncounted_base = measurement(delegates={"xnnpack": DelegateResult("ok")})
    check = _regression(tmp_path, _counted(BASE), uncounted_base)
    assert check.verdict == "skip" and "baseline has no count" in check.reason
    zero = _regression(tmp_path, _counted(0), _counted(BASE))
    assert zero.verdict == "error" and "a count of 0 (head) is never a pass" in zero.reason


def test_functions_below_the_other_sides_cut_are_left_out() -> None:
    """Measured on this machine (Dense 64->128->10 widened to 136 units, xnnpack): XNNPACK moved
    the first layer from its 1x16 GEMM kernel to its 1x8 one. The lists hold top functions only;
    one missing on a side counts as 0 there only when it outgrew that side's smallest entry."""
    small, large = ("xnn_f32_gemm_minmax_ukernel_1x16__asm_amd64_fma3_broadcast",
                    "xnn_f32_gemm_minmax_ukernel_1x8__fma3_broadcast")
    base = cost(8_141, {small: 4_760, large: 1_590, "take_gil": 95})
    head = cost(10_294, {large: 8_500, "take_gil": 95, "__pthread_mutex_unlock_usercnt": 84})
    # small left head's list entirely (4,760 > head's cut of 84): gone, -4,760. The mutex (84 <=
    # base's cut of 95) may sit just below base's list: unknown, left out.
    assert function_changes(base, head) == [(large, 6_910), (small, -4_760)]


# --- the ratchet: exact counts with headroom ----------------------------------------------------------


def _ratchet(text: str, measured: float, verdict: str = "pass") -> str:
    entry = Entry("t", "m", "v", "float32", measurement(), [
        Check("cost.xnnpack.instructions", measured, None, verdict)], budget_path="b.toml")  # type: ignore[arg-type]
    changes = plan([entry], {"b.toml": text}, RatchetOptions())
    for change in changes:
        assert change.describe().endswith(f"measured {measured:,.0f}")
    return rewrite(text, changes)


def test_the_ratchet_tightens_counts_to_count_plus_headroom_rounded_up() -> None:
    rule, keys = rule_for("cost.xnnpack.instructions")
    assert rule is not None and (rule.kind, rule.timing) == ("counted", False)
    assert keys == ("cost", "xnnpack", "instructions")
    # 15,569,455 x 1.1 = 17,126,400.5: up to 17,126,401, or to 17.2M in the file's suffix.
    assert _ratchet("[variants.v.cost.xnnpack]\ninstructions = 20000000\n", BASE) == \
        "[variants.v.cost.xnnpack]\ninstructions = 17126401\n"
    assert _ratchet('[variants.v.cost.xnnpack]\ninstructions = "20M"\n', BASE) == \
        '[variants.v.cost.xnnpack]\ninstructions = "17.2M"\n'
    # Within the headroom already: left alone; broken: left alone unless --tflite-loosen.
    assert _ratchet('[variants.v.cost.xnnpack]\ninstructions = "17M"\n', BASE) == \
        '[variants.v.cost.xnnpack]\ninstructions = "17M"\n'
    assert _ratchet('[variants.v.cost.xnnpack]\ninstructions = "15M"\n', BASE, "fail") == \
        '[variants.v.cost.xnnpack]\ninstructions = "15M"\n'


# --- what caused it: the reports ------------------------------------------------------------------


def _regressed_entry(tmp_path: Path) -> Entry:
    head = _counted(UP_052, functions=UP_052_FUNCTIONS)
    base = _counted(BASE, functions=BASE_FUNCTIONS)
    keep_baseline_costs(head, base)  # what the engine does with a saved baseline
    checks = _judge(tmp_path, REGRESSION, head, baseline=base)
    return Entry("test_m.py::test_detector[v]", "detector", "v", "float32", head, checks,
                 budget_path=str(tmp_path / "m.toml"))


def test_the_regression_row_names_the_functions_that_changed(tmp_path: Path) -> None:
    entry = _regressed_entry(tmp_path)
    (finding,) = [f for f in findings.findings(entry) if f.figure.name == "xnnpack"]
    assert finding.label == "xnnpack instructions per invoke"
    assert findings.change_text(finding) == (
        f"15.6M → 15.7M (+0.52%, +81k per invoke): {GEMM} +80k, {VADD} +961")
    assert findings.place(entry, finding.broken[0]) == "[regression] instructions"
    assert "xnnpack instructions +0.52%" in (findings.headline(entry) or "")
    comment = comment_body([entry])  # markdown escapes the names' underscores
    assert GEMM.replace("_", "\\_") + " +80k" in comment
    assert "xnnpack instructions +0.52%" in comment
    assert "regression.instructions.xnnpack ≤ 15,647,302" in comment  # 15,569,455 + 77,847


def test_the_html_shows_base_and_head_functions_side_by_side(tmp_path: Path) -> None:
    page = render([_regressed_entry(tmp_path)])
    section = page[page.index("Instructions per invoke: what did the work"):]
    table = section[section.index('<table class="cost">'):section.index("</table>")]
    rows = table.split("<tr>")[2:]  # after the header row
    assert len(rows) == 2
    # base function, its count and share, then the head's: 14,000,000 of 15,569,455 = 89.9%
    assert rows[0].count(GEMM) == 2 and "14M" in rows[0] and "14.1M" in rows[0]
    assert "89.9%" in rows[0] and "90.0%" in rows[0]  # 14,080,000 of 15,650,416
    assert "detector [v] xnnpack, instructions per invoke: 15.6M → 15.7M (+0.52%, +81k)" in table


def test_the_json_keeps_both_counts_and_their_functions(tmp_path: Path) -> None:
    entry = _regressed_entry(tmp_path)
    data = entry.to_json()["delegates"]["xnnpack"]
    assert data["cost"]["top_functions"][0] == {"name": GEMM, "instructions": 14_080_000,
                                                "share": 14_080_000 / UP_052}
    assert data["baseline_cost"]["instructions"] == BASE
    again = Entry.from_json(entry.to_json()).measurement.delegates["xnnpack"]
    assert again.baseline_cost == entry.measurement.delegates["xnnpack"].baseline_cost



def test_a_baseline_counted_elsewhere_is_counted_again_in_this_job(tmp_path: Path,
                                                                    monkeypatch: Any) -> None:
    """The stored count has another fingerprint (another valgrind, say): the engine counts the
    baseline's .tflite again, with the head's inputs, and the regression compares those two
    counts: 15,569,455 -> 15,650,416 is +0.52%, past "0.5%"."""
    from pytest_tflite import engine
    from pytest_tflite.baseline import BaselineEntry
    from pytest_tflite.budget import load
    from pytest_tflite.measure import cost as cost_module
    from pytest_tflite.results import DelegateResult, Entry, Measurement
    from pytest_tflite.verdicts import Context, judge
    from tests.helpers.entries import cost

    path = tmp_path / "m.toml"
    path.write_text('[regression]\ninstructions = "0.5%"\n\n[variants.default.cost.xnnpack]\n'
                    'instructions = "20M"\n')
    budget = load(path)
    variant = budget.variant("default")
    elsewhere = cost(15_000_000, fingerprint={"valgrind": "valgrind-3.22.0"})
    head = Measurement(size_bytes=1, gzip_bytes=1, ops={}, subgraphs=[], planned_arena_bytes=0,
                       inputs=[], outputs=[], sparsity=0.0, sparsity_layers=[],
                       delegates={"xnnpack": DelegateResult("ok", cost=cost(15_650_416))})
    stored = Measurement(size_bytes=1, gzip_bytes=1, ops={}, subgraphs=[], planned_arena_bytes=0,
                         inputs=[], outputs=[], sparsity=0.0, sparsity_layers=[],
                         delegates={"xnnpack": DelegateResult("ok", cost=elsewhere)})
    saved = BaselineEntry(Entry("t", "m", "default", "default", stored, []),
                          tmp_path / "base.tflite")
    asked: list[tuple[Path, list[str], object]] = []

    def recount(model_path: Path, delegates: list[str], settings: object, *,
                lock_file: object = None, sample: object = None) -> dict[str, object]:
        asked.append((model_path, list(delegates), sample))
        return {"xnnpack": cost(15_569_455)}

    monkeypatch.setattr(cost_module, "measure_costs", recount)
    engine._recount_baseline(saved, budget, variant, head, engine.Settings(), sample="the sample")
    assert asked == [(tmp_path / "base.tflite", ["xnnpack"], "the sample")]
    checks: dict[str, Check] = {c.metric: c for c in judge(head, variant, budget.spec.regression,
                                                            Context(), baseline=stored)}
    found = checks["regression.instructions.xnnpack"]
    assert (found.verdict, found.baseline, found.delta) == ("fail", 15_569_455, 80_961)

    # With the stored count already comparable, nothing is counted again.
    asked.clear()
    head.delegates["xnnpack"].baseline_cost = None
    stored.delegates["xnnpack"].cost = cost(15_569_455)
    engine._recount_baseline(saved, budget, variant, head, engine.Settings(), sample=None)
    assert asked == []
