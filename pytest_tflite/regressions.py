"""Pure: a measurement against its baseline under ``[regression]``'s tolerances -> checks.

Deterministic figures (sizes, planned arena, sparsity, accuracy, fidelity, op counts) compare
value to value; latency compares by the paired timing of both models in one worker
(``DelegateResult.comparison``), never against a stored number. No I/O, no pytest.

Where a tolerance comes from decides what an unmeasured figure means. The file-wide
``[regression]`` is written once for variants that measure different things (float variants
tested without evaluation data, say), so a key there whose figure this variant does not measure
is a skip with the reason. A key in the variant's own ``[variants.NAME.regression]`` was asked
for this variant alone: unmeasured, it is an error (a skip in the CLI, as accuracy budgets are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .budget import Regression, Relative
from .errors import CostUnavailable
from .keys import COST_REGRESSIONS, SIMPLE_REGRESSIONS, Key, figure
from .results import Check, Comparison, Cost, DelegateResult, Measurement, Verdict, function_changes
from .units import format_count

NO_BASELINE = "not compared: no baseline"
# A cost key without a count, when the measurement says nothing of why.
NO_COUNT = "not counted: this run made no instruction count"
RECOUNT = "fingerprint differs: re-count needed"


def tolerances(file_wide: Regression | None, own: Regression | None) -> Regression | None:
    """The tolerances one variant is judged under: each key of its own table, and the
    file-wide key of every name its own table does not give."""
    if own is None or file_wide is None:
        return own or file_wide
    given = {key: getattr(own, key) for key in type(own).model_fields
             if getattr(own, key) is not None}
    return file_wide.model_copy(update=given)


def regression_checks(measurement: Measurement, regression: Regression | None,
                      baseline: Measurement | None, *, own: Regression | None = None,
                      higher_is_better: bool = True, strict: bool = False,
                      without_data: Verdict = "error", missing: str = NO_BASELINE,
                      require_count: bool = False) -> list[Check]:
    """One check per ``[regression]`` key (per figure or delegate where a key covers several).

    ``regression``: the file-wide table; ``own``: the variant's ``[variants.NAME.regression]``,
    which replaces it key by key; ``baseline``: the base branch's measurement of the same model
    variant, None without one (each key is then a skip saying ``missing``);
    ``higher_is_better``: the accuracy metric's direction; ``strict``: an inconclusive latency
    comparison fails instead of skipping; ``without_data``: the verdict of an own key whose
    figure was not measured (a file-wide one is a skip); ``require_count``: a cost key with
    no count (valgrind missing) fails instead of skipping (--tflite-require-delegates).
    """
    merged = tolerances(regression, own)
    if merged is None:
        return []
    keys = [key for key in type(merged).model_fields if getattr(merged, key) is not None]
    asked = {key for key in keys if own is not None and getattr(own, key) is not None}
    if baseline is None:
        return [Check(f"regression.{key}", None, None, "skip", reason=missing,
                      tolerance_from="variant" if key in asked else "file") for key in keys]
    checks: list[Check] = []
    for key in SIMPLE_REGRESSIONS:  # size, planned_arena, sparsity ...: value to value
        tolerance = getattr(merged, key.leaf)
        if tolerance is None:
            continue
        found, base = figure(key, measurement), figure(key, baseline)
        if key.direction == "upper":
            checks.append(_grew(key.path, found, base, tolerance, key.check_unit))
        else:
            checks.append(_fell(key.path, found, base, tolerance))
    if merged.accuracy is not None:
        unmeasured = _Unmeasured(measurement.refused, "accuracy" in asked, without_data)
        checks.append(_accuracy(measurement, baseline, merged.accuracy, higher_is_better,
                                unmeasured))
    if merged.fidelity is not None:
        unmeasured = _Unmeasured(measurement.refused, "fidelity" in asked, without_data)
        checks += _fidelity(measurement, baseline, merged.fidelity, unmeasured)
    if merged.ops is not None:
        checks.append(_ops(measurement.ops, baseline.ops, merged.ops))
    if merged.latency is not None:
        checks += _latency(measurement, merged.latency, strict)
    for key in COST_REGRESSIONS:  # instructions, estimated_cycles: count to count, per delegate
        tolerance = getattr(merged, key.leaf)
        if tolerance is not None:
            checks += _counts(key, measurement, baseline, tolerance, require_count)
    return [replace(c, tolerance_from="variant" if c.metric.split(".")[1] in asked else "file")
            for c in checks]


@dataclass(frozen=True)
class _Unmeasured:
    """The check of a tolerance whose figure this run did not measure: an error (the CLI's
    skip) when the variant's own table asks for it, a skip when only the file-wide table does,
    and an error with the reason when the model never ran at all."""

    refused: str | None  # why the model never ran (Measurement.refused)
    own: bool  # the key is in [variants.NAME.regression]
    without_data: Verdict

    def check(self, metric: str, figure: str, needs: str) -> Check:
        if self.refused:
            return Check(metric, None, None, "error", reason=self.refused)
        if self.own and self.without_data != "error":  # the CLI, which takes no data
            return Check(metric, None, None, self.without_data, reason="not compared (needs data)")
        if self.own:
            return Check(metric, None, None, self.without_data,
                         reason=f"not compared: this run measured no {figure}, which the "
                                f"variant's own [regression] table asks for: pass {needs}")
        return Check(metric, None, None, "skip",
                     reason=f"not compared: this variant measures no {figure}; the file-wide "
                            f"[regression] {figure} is judged where a test passes {needs}")


def _allowed(tolerance: float | Relative, base: float) -> float:
    return tolerance.fraction * abs(base) if isinstance(tolerance, Relative) else float(tolerance)


def _grew(metric: str, measured: float, base: float, tolerance: float | Relative,
          unit: str = "") -> Check:
    """Lower is better: fails when the figure grew past the baseline by more than allowed."""
    allowed = _allowed(tolerance, base)
    delta = measured - base
    return Check(metric, measured, base + allowed, "fail" if delta > allowed else "pass", unit,
                 reason=f"{_signed(delta, unit)} vs baseline, {_signed(allowed, unit, '')} allowed",
                 baseline=base, delta=delta)


def _fell(metric: str, measured: float, base: float, tolerance: float | Relative) -> Check:
    """Higher is better: fails when the figure fell below the baseline by more than allowed."""
    allowed = _allowed(tolerance, base)
    delta = measured - base
    return Check(metric, measured, base - allowed, "fail" if -delta > allowed else "pass",
                 reason=f"{delta:+.4g} vs baseline, -{allowed:.4g} allowed",
                 baseline=base, delta=delta)


def _signed(value: float, unit: str, sign: str = "+") -> str:
    text = f"{value:{sign},.0f} B" if unit == "bytes" else f"{value:{sign}.4g}"
    return text


def _accuracy(measurement: Measurement, baseline: Measurement, tolerance: float | Relative,
              higher_is_better: bool, unmeasured: _Unmeasured) -> Check:
    found, base = measurement.accuracy, baseline.accuracy
    if found is None:
        return unmeasured.check("regression.accuracy", "accuracy", "eval_data=(x, y)")
    if base is None:
        return Check("regression.accuracy", found.candidate, None, "skip",
                     reason="not compared: the baseline has no accuracy for this variant")
    if found.metric != base.metric:
        return Check("regression.accuracy", found.candidate, None, "error",
                     reason=f"the metric changed ({base.metric} in the baseline, {found.metric} "
                            f"now): save a new baseline")
    check = (_fell if higher_is_better else _grew)("regression.accuracy", found.candidate,
                                                   base.candidate, tolerance)
    return check


def _fidelity(measurement: Measurement, baseline: Measurement, tolerance: float | Relative,
              unmeasured: _Unmeasured) -> list[Check]:
    found, base = measurement.fidelity, baseline.fidelity
    if found is None:
        return [unmeasured.check("regression.fidelity", "fidelity",
                                 "eval_data and reference=")]
    if base is None:
        return [Check("regression.fidelity", None, None, "skip",
                      reason="not compared: the baseline has no fidelity for this variant")]
    checks = [_fell("regression.fidelity.cosine", found.cosine, base.cosine, tolerance)]
    if found.top1_agreement is not None and base.top1_agreement is not None:
        checks.append(_fell("regression.fidelity.top1_agreement", found.top1_agreement,
                            base.top1_agreement, tolerance))
    return checks


def _ops(found: dict[str, int], base: dict[str, int], mode: str) -> Check:
    changes = [f"{op} {base.get(op, 0)} -> {found.get(op, 0)}"
               for op in sorted(set(found) | set(base)) if found.get(op, 0) != base.get(op, 0)]
    verdict: Verdict = "fail" if changes and mode == "exact" else "pass"
    reason = ("op counts changed: " + ", ".join(changes) if changes else "op counts unchanged")
    if changes and mode == "report":
        reason += ' (ops = "report": shown, not failed)'
    return Check("regression.ops", float(len(changes)), 0.0, verdict, reason=reason,
                 baseline=0.0, delta=float(len(changes)))


def _latency(measurement: Measurement, tolerance: Relative, strict: bool) -> list[Check]:
    checks = []
    for name, found in measurement.delegates.items():
        metric = f"regression.latency.{name}"
        comparison = found.comparison
        if comparison is None and found.comparison_error:
            checks.append(Check(metric, None, None, "error",
                                reason=f"comparison failed: {found.comparison_error}"))
            continue
        if comparison is None:
            why = found.reason if found.status != "ok" else "the baseline has no model file"
            checks.append(Check(metric, None, None, "skip", reason=f"not compared: {why}"))
            continue
        # A ratio against the baseline: the baseline is 1 by definition, the delta the change.
        checks.append(Check(
            metric, comparison.ratio, 1 + tolerance.fraction,
            _latency_verdict(comparison, strict), "ratio",
            reason=_interval(comparison), baseline=1.0, delta=comparison.ratio - 1))
    if not checks:
        checks.append(Check("regression.latency", None, None, "skip",
                            reason="not compared: no delegate was measured in this run"))
    return checks


def _latency_verdict(comparison: Comparison, strict: bool) -> Verdict:
    if comparison.verdict == "regressed":
        return "fail"
    if comparison.verdict == "inconclusive":
        return "fail" if strict else "skip"
    return "pass"


def _interval(comparison: Comparison) -> str:
    text = (f"{comparison.verdict}: candidate/baseline {comparison.ratio:.3f} "
            f"[{comparison.low:.3f}, {comparison.high:.3f}] over {comparison.pairs} pairs, "
            f"tolerance {comparison.tolerance:.1%}")
    if comparison.verdict == "inconclusive":
        text += " (still after a re-measure; --tflite-strict fails it)"
    return text


def uncounted(found: DelegateResult, require: bool) -> Verdict:
    """A cost key with no count: valgrind missing (or no count made) is the machine's lack, a
    skip (a failure under --tflite-require-delegates); a count that failed (a crash, a missing
    symbol, a count of 0) is an error."""
    if found.cost_error and not CostUnavailable.is_missing(found.cost_error):
        return "error"
    return "fail" if require else "skip"


def keep_baseline_costs(measurement: Measurement, baseline: Measurement) -> None:
    """Each delegate's ``baseline_cost``: the baseline's stored count, unless the engine has
    counted the baseline's .tflite again in this job already; the reports show its functions."""
    for name, found in measurement.delegates.items():
        stored = baseline.delegates.get(name)
        if found.cost is not None and found.baseline_cost is None and stored is not None:
            found.baseline_cost = stored.cost


def _counts(key: Key, measurement: Measurement, baseline: Measurement,
            tolerance: int | Relative, require_count: bool) -> list[Check]:
    """``regression.instructions.<delegate>``: counts are exact, so the head's count is
    compared with the baseline's directly, when both were counted alike (the same
    ``Cost.fingerprint``); otherwise the baseline's model must be counted again in this job."""
    checks = []
    for name, found in measurement.delegates.items():
        if found.cost is None and not found.cost_error:
            continue  # a delegate with no count asked of it (another table's delegate)
        checks.append(_count(key, name, found, baseline.delegates.get(name), tolerance,
                             require_count))
    if not checks:
        checks.append(Check(key.path, None, None, "skip", reason=f"not compared: {NO_COUNT}"))
    return checks


def _count(key: Key, name: str, found: DelegateResult, stored: DelegateResult | None,
           tolerance: int | Relative, require_count: bool) -> Check:
    metric = f"{key.path}.{name}"
    head = found.cost
    if head is None:
        return Check(metric, None, None, uncounted(found, require_count),
                     reason=f"not compared: {found.cost_error or NO_COUNT}")
    # A re-count of the baseline's .tflite in this job wins over the stored count.
    base = found.baseline_cost or (stored.cost if stored is not None else None)
    if base is None:
        return Check(metric, None, None, "skip",
                     reason="not compared: the baseline has no count for this delegate "
                            "(save a baseline from a run with a cost key)")
    if head.fingerprint != base.fingerprint:
        differ = sorted(k for k in {*head.fingerprint, *base.fingerprint}
                        if head.fingerprint.get(k) != base.fingerprint.get(k))
        return Check(metric, None, None, "skip",
                     reason=f"not compared: {RECOUNT} ({', '.join(differ)} changed; the "
                            f"baseline's .tflite must be counted again in this job)")
    leaf = key.leaf
    now, then = getattr(head, leaf), getattr(base, leaf)
    if now <= 0 or then <= 0:
        return Check(metric, float(now), None, "error",
                     reason=f"a count of 0 ({'head' if now <= 0 else 'baseline'}) is never a "
                            f"pass: collection toggled on {head.symbol or 'the invoke'} counted "
                            f"nothing")
    allowed = tolerance.fraction * then if isinstance(tolerance, Relative) else tolerance
    delta = now - then
    # A whole count for a limit: past then + allowed is past its floor, for whole counts.
    return Check(metric, float(now), float(math.floor(then + allowed)),
                 "fail" if delta > allowed else "pass",
                 reason=count_change(leaf, then, now, base, head)
                 + f"; {_tolerance_text(tolerance, allowed)} allowed",
                 baseline=float(then), delta=float(delta))


def _tolerance_text(tolerance: int | Relative, allowed: float) -> str:
    if isinstance(tolerance, Relative):
        return f"{tolerance.percent:g}% ({format_count(allowed, sign=True)})"
    return format_count(allowed, sign=True)


def count_change(leaf: str, then: int, now: int, base: Cost, head: Cost, functions: int = 3) -> str:
    """``instructions +0.52% (+81k per invoke): xnn_f32_gemm_… +80k``: the change and the
    functions whose own counts changed most (instructions only: cycles have no per-function
    figure)."""
    delta = now - then
    text = (f"{leaf.replace('_', ' ')} {delta / then:+.2%} "
            f"({format_count(delta, sign=True)} per invoke)").replace("-", "\u2212")
    changed = function_changes(base, head)[:functions] if leaf == "instructions" else []
    if changed:
        text += ": " + ", ".join(f"{fn} {format_count(d, sign=True)}" for fn, d in changed)
    return text
