"""Pure: a measurement against its baseline under ``[regression]``'s tolerances -> checks.

Deterministic figures (sizes, planned arena, sparsity, accuracy, fidelity, op counts) compare
value to value; latency compares by the paired timing of both models in one worker
(``DelegateResult.comparison``), never against a stored number. No I/O, no pytest.
"""

from __future__ import annotations

from .budget import Regression, Relative
from .keys import SIMPLE_REGRESSIONS, figure
from .results import Check, Comparison, Measurement, Verdict

NO_BASELINE = "not compared: no baseline"


def regression_checks(measurement: Measurement, regression: Regression | None,
                      baseline: Measurement | None, *, higher_is_better: bool = True,
                      strict: bool = False, without_data: Verdict = "error",
                      missing: str = NO_BASELINE) -> list[Check]:
    """One check per ``[regression]`` key (per figure or delegate where a key covers several).

    ``baseline``: the base branch's measurement of the same model variant, None without one
    (each key is then a skip saying ``missing``); ``higher_is_better``: the accuracy metric's
    direction; ``strict``: an inconclusive latency comparison fails instead of skipping.
    """
    if regression is None:
        return []
    keys = [key for key in type(regression).model_fields if getattr(regression, key) is not None]
    if baseline is None:
        return [Check(f"regression.{key}", None, None, "skip", reason=missing) for key in keys]
    checks: list[Check] = []
    for key in SIMPLE_REGRESSIONS:  # size, planned_arena, sparsity ...: value to value
        tolerance = getattr(regression, key.leaf)
        if tolerance is None:
            continue
        found, base = figure(key, measurement), figure(key, baseline)
        if key.direction == "upper":
            checks.append(_grew(key.path, found, base, tolerance, key.check_unit))
        else:
            checks.append(_fell(key.path, found, base, tolerance))
    if regression.accuracy is not None:
        checks.append(_accuracy(measurement, baseline, regression.accuracy, higher_is_better,
                                without_data))
    if regression.fidelity is not None:
        checks += _fidelity(measurement, baseline, regression.fidelity, without_data)
    if regression.ops is not None:
        checks.append(_ops(measurement.ops, baseline.ops, regression.ops))
    if regression.latency is not None:
        checks += _latency(measurement, regression.latency, strict)
    return checks


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
              higher_is_better: bool, without_data: Verdict) -> Check:
    found, base = measurement.accuracy, baseline.accuracy
    if found is None:
        return Check("regression.accuracy", None, None, without_data,
                     reason="not compared: this run measured no accuracy (pass eval_data=(x, y))")
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
              without_data: Verdict) -> list[Check]:
    found, base = measurement.fidelity, baseline.fidelity
    if found is None:
        return [Check("regression.fidelity", None, None, without_data,
                      reason="not compared: this run measured no fidelity (pass eval_data and "
                             "reference=)")]
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
