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

from dataclasses import dataclass, replace

from .budget import Regression, Relative
from .keys import SIMPLE_REGRESSIONS, figure
from .results import Check, Comparison, Measurement, Verdict

NO_BASELINE = "not compared: no baseline"


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
                      without_data: Verdict = "error", missing: str = NO_BASELINE) -> list[Check]:
    """One check per ``[regression]`` key (per figure or delegate where a key covers several).

    ``regression``: the file-wide table; ``own``: the variant's ``[variants.NAME.regression]``,
    which replaces it key by key; ``baseline``: the base branch's measurement of the same model
    variant, None without one (each key is then a skip saying ``missing``);
    ``higher_is_better``: the accuracy metric's direction; ``strict``: an inconclusive latency
    comparison fails instead of skipping; ``without_data``: the verdict of an own key whose
    figure was not measured (a file-wide one is a skip).
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
