"""Pure verdicts: (measurement, variant budget, regression) -> one Check per budget key.

No I/O, no pytest, no TensorFlow. Every key a budget file can hold is judged here against a
measured value, or reported as ``skip``/``error`` with the reason it could not be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from .budget import (
    AccuracyBudget,
    DelegationBudget,
    FidelityBounds,
    PerSampleBudget,
    Regression,
    Variant,
)
from .keys import (
    COST_LIMITS,
    FIDELITY_LIMITS,
    LATENCY_LIMITS,
    MEMORY_LIMITS,
    STATIC_LIMITS,
    figure,
)
from .op_names import builtin_op_names
from .regressions import NO_BASELINE, NO_COUNT, regression_checks, uncounted
from .results import (
    Accuracy,
    Check,
    CrossFidelity,
    DelegateResult,
    Fidelity,
    Measurement,
    Verdict,
)

# The simple keys, from the registry (keys.py): a leaf of the delegate's table -> its figure.
LATENCY_KEYS: dict[str, Callable[[DelegateResult], float | None]] = {
    key.leaf: partial(figure, key) for key in LATENCY_LIMITS}
MEMORY_KEYS: dict[str, Callable[[DelegateResult], float | None]] = {
    key.leaf: partial(figure, key) for key in MEMORY_LIMITS}
COST_KEYS: dict[str, Callable[[DelegateResult], float | None]] = {
    key.leaf: partial(figure, key) for key in COST_LIMITS}
# budget key -> (measured field of Fidelity/CrossFidelity, higher is better)
FIDELITY_KEYS = {key.leaf: (key.reads.rsplit(".", 1)[-1], key.direction == "lower")
                 for key in FIDELITY_LIMITS}


@dataclass(frozen=True)
class Context:
    """Why some budgets could not be measured in this run, and how strict to be about it."""

    runtime_off: str | None = None  # e.g. "runtime measurement off (--tflite-no-runtime)"
    require_delegates: bool = False  # a delegate the machine lacks fails instead of skipping
    without_data: Verdict = "error"  # accuracy/fidelity without data: error in a test, skip in the CLI
    strict: bool = False  # an inconclusive latency comparison fails instead of skipping
    no_baseline: str = NO_BASELINE  # why [regression] was not compared, when it was not


def delegates_named(variant: Variant) -> list[str]:
    """Delegates the variant's budgets need measured, in a stable order."""
    memory = variant.memory.delegates if variant.memory else {}
    # cost.<delegate> is counted under valgrind, not timed: engine.cost_delegates names those.
    return list(dict.fromkeys([*variant.latency, *memory, *variant.delegation]))


def judge(measurement: Measurement, variant: Variant, regression: Regression | None = None,
          context: Context = Context(), baseline: Measurement | None = None) -> list[Check]:
    """Every budget key of ``variant`` against ``measurement``, and the file's ``[regression]``
    (``regression``; the variant's own ``[variants.NAME.regression]`` replaces it key by key)
    against ``baseline`` (the base branch's measurement of the same variant, if any)."""
    checks: list[Check] = []
    for static in STATIC_LIMITS:  # size.max, memory.planned_arena ...: figures of the file itself
        table, leaf = static.path.split(".")
        if (budget := getattr(variant, table)) is not None:
            checks += _at_most(static.path, figure(static, measurement), getattr(budget, leaf),
                               static.check_unit)
    delegates = _DelegateJudge(measurement.delegates, context)
    for delegate, latency in variant.latency.items():
        for key, read in LATENCY_KEYS.items():
            limit = getattr(latency, key)
            if limit is not None:
                checks.append(delegates.at_most(f"latency.{delegate}.{key}", delegate, read,
                                                limit, "ms"))
        if latency.per_sample is not None:
            checks.append(delegates.per_sample(delegate, latency.per_sample))
    for delegate, memory in (variant.memory.delegates if variant.memory else {}).items():
        for key, read in MEMORY_KEYS.items():
            limit = getattr(memory, key)
            if limit is not None:
                checks.append(delegates.at_most(f"memory.{delegate}.{key}", delegate, read,
                                                limit, "bytes"))
    for delegate, delegation in variant.delegation.items():
        checks += delegates.delegation(delegate, delegation)
    for delegate, cost in variant.cost.items():
        for key, read in COST_KEYS.items():
            limit = getattr(cost, key)
            if limit is not None:
                checks.append(delegates.counted(f"cost.{delegate}.{key}", delegate, read, limit))
    quality: list[Check] = []
    if variant.accuracy is not None:
        quality += _accuracy_by_delegate(measurement, variant.accuracy, context)
    quality += _fidelity_by_delegate(measurement, variant, context)
    if measurement.refused:  # never run: what needed running is an error, for that reason
        quality = [replace(c, verdict="error", reason=measurement.refused)
                   if c.measured is None else c for c in quality]
    checks += quality
    checks += _sparsity_checks(measurement, variant)
    higher = variant.accuracy.higher_is_better if variant.accuracy is not None else True
    checks += regression_checks(measurement, regression, baseline, own=variant.regression,
                                higher_is_better=higher, strict=context.strict,
                                without_data=context.without_data, missing=context.no_baseline,
                                require_count=context.require_delegates)
    return checks


def _sparsity_checks(measurement: Measurement, variant: Variant) -> list[Check]:
    budget = variant.sparsity
    if budget is None:
        return []
    checks = []
    if budget.min is not None:
        found = measurement.sparsity
        checks.append(Check("sparsity.min", found, budget.min,
                            "pass" if found >= budget.min else "fail"))
    layers = measurement.sparsity_layers
    for name, layer in budget.layers.items():
        metric = f"sparsity.layers.{name}.min"
        matched = measurement.layer_sparsity(name)
        if matched is None:
            known = ", ".join(sorted({entry["name"] for entry in layers})) or "none"
            checks.append(Check(metric, None, layer.min, "error",
                                reason=f"no weight tensor of layer {name!r} (layers: {known})"))
        else:
            checks.append(Check(metric, matched, layer.min,
                                "pass" if matched >= layer.min else "fail"))
    if budget.pattern is not None:
        checks.append(_pattern_check(measurement, budget.pattern))
    return checks


def _pattern_check(measurement: Measurement, pattern: str) -> Check:
    found = measurement.sparsity_pattern
    if found is None or found["pattern"] != pattern:
        return Check("sparsity.pattern", None, None, "error", reason=f"{pattern} not measured")
    if found["groups"] == 0:
        skipped = "; ".join(f"{s['name']}: {s.get('reason', '')}" for s in found["skipped"])
        return Check("sparsity.pattern", None, 0.0, "error",
                     reason=f"no weights to check {pattern} on"
                            + (f" (skipped {skipped})" if skipped else " (the model has none)"))
    bad = found["violating_groups"]
    layers = ", ".join(found["violating_layers"])
    return Check("sparsity.pattern", float(bad), 0.0, "fail" if bad else "pass",
                 reason=f"{bad} of {found['groups']} groups break {pattern}"
                        + (f" in {layers}" if layers else ""))


def _accuracy_by_delegate(measurement: Measurement, budget: AccuracyBudget,
                          context: Context) -> list[Check]:
    """``accuracy.min`` ... for the default run; ``accuracy.<delegate>.min`` ... for each of
    ``accuracy.delegates``."""
    if not budget.delegates:
        return _accuracy_checks(measurement.accuracy, budget, context.without_data)
    checks = []
    for delegate in dict.fromkeys(budget.delegates):
        found = measurement.accuracy_by_delegate.get(delegate)
        checks += _unevaluated(_accuracy_checks(found, budget, context.without_data,
                                                f"accuracy.{delegate}"),
                               measurement, [delegate], context)
    return checks


def _fidelity_by_delegate(measurement: Measurement, variant: Variant,
                          context: Context) -> list[Check]:
    """``fidelity.min_cosine`` ... for the default run, ``fidelity.<delegate>.min_cosine`` ...
    for each of ``fidelity.delegates``, and ``fidelity.cross.min_cosine`` ... between the two
    delegates of ``fidelity.cross``."""
    budget = variant.fidelity
    if budget is None:
        return []
    needs = ("not checked: needs eval_data and reference=" if context.without_data == "error"
             else "not checked (needs data)")
    if not budget.delegates:
        checks = _fidelity_checks(measurement.fidelity, budget, context.without_data, "fidelity",
                                  needs)
    else:
        checks = []
        for delegate in dict.fromkeys(budget.delegates):
            found = measurement.fidelity_by_delegate.get(delegate)
            checks += _unevaluated(_fidelity_checks(found, budget, context.without_data,
                                                    f"fidelity.{delegate}", needs),
                                   measurement, [delegate], context)
    cross = budget.cross
    if cross is not None:
        needs = ("not checked: needs eval_data" if context.without_data == "error"
                 else "not checked (needs data)")
        checks += _unevaluated(_fidelity_checks(measurement.fidelity_cross, cross,
                                                context.without_data, "fidelity.cross", needs),
                               measurement, [cross.delegate, cross.against], context)
    return checks


def _unevaluated(checks: list[Check], measurement: Measurement, delegates: list[str],
                 context: Context) -> list[Check]:
    """Unmeasured checks of a delegate's evaluation, with that delegate's reason: a machine
    without it skips (fails with require_delegates), a model it refuses fails."""
    for delegate in delegates:
        run = measurement.evaluation_runs.get(delegate)
        if run is None or run.status == "ok":
            continue
        if run.status == "unavailable":
            verdict: Verdict = "fail" if context.require_delegates else "skip"
            reason = f"{delegate} unavailable on this machine: {run.reason}"
        elif run.status == "unsupported":
            verdict, reason = "fail", f"the model cannot run under {delegate}: {run.reason}"
        else:
            verdict, reason = "error", f"{delegate}: {run.reason}"
        return [replace(c, verdict=verdict, reason=reason) if c.measured is None else c
                for c in checks]
    return checks


def _accuracy_checks(found: Accuracy | None, budget: AccuracyBudget,
                     without_data: Verdict, prefix: str = "accuracy") -> list[Check]:
    wanted = [(f"{prefix}.{key}", getattr(budget, key)) for key in ("min", "max", "max_drop")]
    wanted = [(metric, limit) for metric, limit in wanted if limit is not None]
    if found is None:
        reason = ("not checked: needs eval_data=(x, y)" if without_data == "error"
                  else "not checked (needs data)")
        return [Check(metric, None, None, without_data, reason=reason) for metric, _ in wanted]
    checks = []
    candidate = found.candidate
    for metric, limit in wanted:
        if metric.endswith(".min"):
            checks.append(Check(metric, candidate, limit, "pass" if candidate >= limit else "fail"))
        elif metric.endswith(".max"):
            checks.append(Check(metric, candidate, limit, "pass" if candidate <= limit else "fail"))
        elif found.reference is None or found.drop is None:
            checks.append(Check(metric, None, None, "error",
                                reason="max_drop needs the float reference: pass reference="))
        else:
            allowed = (limit.fraction * abs(found.reference) if hasattr(limit, "fraction")
                       else float(limit))
            checks.append(Check(metric, found.drop, allowed,
                                "pass" if found.drop <= allowed else "fail",
                                reason=f"{found.metric} {candidate:.4g} vs reference "
                                       f"{found.reference:.4g}"))
    return checks


def _fidelity_checks(found: Fidelity | CrossFidelity | None, budget: FidelityBounds,
                     without_data: Verdict, prefix: str, needs: str) -> list[Check]:
    checks = []
    for key, (measured_key, higher) in FIDELITY_KEYS.items():
        limit = getattr(budget, key)
        if limit is None:
            continue
        metric = f"{prefix}.{key}"
        if found is None:
            checks.append(Check(metric, None, limit, without_data, reason=needs))
            continue
        value = getattr(found, measured_key)
        if value is None:
            checks.append(Check(metric, None, limit, "error",
                                reason=f"{measured_key} needs outputs with two or more classes"))
            continue
        ok = value >= limit if higher else value <= limit
        checks.append(Check(metric, value, limit, "pass" if ok else "fail"))
    return checks


class _DelegateJudge:
    """Turns a delegate's status (unavailable, unsupported, error) into the right verdict."""

    def __init__(self, delegates: dict[str, DelegateResult], context: Context) -> None:
        self.delegates = delegates
        self.context = context

    def _unusable(self, metric: str, delegate: str, budget: float | None, unit: str) -> Check | None:
        if self.context.runtime_off:
            return Check(metric, None, budget, "skip", unit, reason=self.context.runtime_off)
        found = self.delegates.get(delegate)
        if found is None:
            return Check(metric, None, budget, "skip", unit,
                         reason=f"{delegate} not measured in this run (--tflite-delegates)")
        if found.status == "unavailable":
            verdict: Verdict = "fail" if self.context.require_delegates else "skip"
            return Check(metric, None, budget, verdict, unit,
                         reason=f"{delegate} unavailable on this machine: {found.reason}")
        if found.status == "unsupported":
            return Check(metric, None, budget, "fail", unit,
                         reason=f"the model cannot run under {delegate}: {found.reason}")
        if found.status != "ok":
            return Check(metric, None, budget, "error", unit, reason=f"{delegate}: {found.reason}")
        return None

    def at_most(self, metric: str, delegate: str, read: Callable[[DelegateResult], float | None],
                budget: float, unit: str) -> Check:
        unusable = self._unusable(metric, delegate, budget, unit)
        if unusable is not None:
            return unusable
        measured = read(self.delegates[delegate])
        if measured is None and metric.endswith(".peak_rss"):
            return Check(metric, None, budget, "skip", unit,
                         reason="peak RSS is read from /proc/self/status: Linux only")
        if measured is None and self.delegates[delegate].runner_format is not None:
            given = [key for key, figure in LATENCY_KEYS.items()
                     if figure(self.delegates[delegate]) is not None]
            return Check(metric, None, budget, "error", unit,
                         reason=f"{delegate}'s format {self.delegates[delegate].runner_format} "
                                f"gives no {metric.rsplit('.', 1)[-1]}: budget one of "
                                f"{', '.join(given) or 'nothing'} instead")
        if measured is None:
            return Check(metric, None, budget, "error", unit,
                         reason=f"not measurable under {delegate}")
        return Check(metric, measured, budget, "pass" if measured <= budget else "fail", unit)

    def counted(self, metric: str, delegate: str, read: Callable[[DelegateResult], float | None],
                budget: int) -> Check:
        """An upper limit on a count made under valgrind: no count is a skip with the reason
        (a failure under require_delegates, as a missing delegate is); a count of 0 is an
        error, never a pass (collection never toggled on: another LiteRT's symbol)."""
        unusable = self._unusable(metric, delegate, budget, "")
        if unusable is not None:
            return unusable
        found = self.delegates[delegate]
        measured = read(found) if found.cost is not None else None
        if measured is None:
            return Check(metric, None, budget, uncounted(found, self.context.require_delegates),
                         reason=found.cost_error or NO_COUNT)
        if measured <= 0:
            symbol = found.cost.symbol if found.cost and found.cost.symbol else "the invoke"
            return Check(metric, measured, budget, "error",
                         reason=f"a count of {measured:.0f} is never a pass: collection toggled "
                                f"on {symbol} counted nothing (another LiteRT build?)")
        return Check(metric, measured, budget, "pass" if measured <= budget else "fail")

    def per_sample(self, delegate: str, budget: PerSampleBudget) -> Check:
        """The median per sample at ``budget.batch`` (runtime.batch_sizes) against the limit."""
        metric = f"latency.{delegate}.per_sample.median"
        unusable = self._unusable(metric, delegate, budget.median, "ms")
        if unusable is not None:
            return unusable
        found = self.delegates[delegate].batch(budget.batch)
        if found is None:
            return Check(metric, None, budget.median, "error", "ms",
                         reason=f"batch {budget.batch} not measured (runtime.batch_sizes)")
        if found.status != "ok" or found.per_sample_ms is None:
            return Check(metric, None, budget.median, "error", "ms",
                         reason=found.reason or f"batch {budget.batch}: not measured")
        measured = found.per_sample_ms
        return Check(metric, measured, budget.median, "pass" if measured <= budget.median else "fail",
                     "ms", reason=f"at batch {budget.batch}")

    def delegation(self, delegate: str, budget: DelegationBudget) -> list[Check]:
        prefix = f"delegation.{delegate}"
        checks = []
        if budget.min_fraction is not None:
            checks.append(self._judged(f"{prefix}.min_fraction", delegate, budget.min_fraction,
                                       self._fraction))
        if budget.max_partitions is not None:
            checks.append(self._judged(f"{prefix}.max_partitions", delegate,
                                       float(budget.max_partitions), self._partitions))
        if budget.forbid_fallback:
            forbidden = budget.forbid_fallback
            checks.append(self._judged(f"{prefix}.forbid_fallback", delegate, 0.0,
                                       lambda metric, found, _: _fallback(metric, found, forbidden)))
        return checks

    def _judged(self, metric: str, delegate: str, limit: float,
                rule: Callable[[str, DelegateResult, float], Check]) -> Check:
        unusable = self._unusable(metric, delegate, limit, "")
        if unusable is not None:
            return unusable
        return rule(metric, self.delegates[delegate], limit)

    @staticmethod
    def _fraction(metric: str, found: DelegateResult, limit: float) -> Check:
        if found.fully_accelerated is not None:  # gpu/npu: the CompiledModel says all or not
            measured = 1.0 if found.fully_accelerated else None
            reason = "" if found.fully_accelerated else "the accelerator did not take the whole model"
            return Check(metric, measured, limit, "pass" if found.fully_accelerated else "fail",
                         reason=reason)
        if found.total_nodes is None or found.delegated_nodes is None:
            return Check(metric, None, limit, "error",
                         reason=found.reason or "delegation not measurable")
        fraction = found.delegated_nodes / found.total_nodes if found.total_nodes else 1.0
        return Check(metric, fraction, limit, "pass" if fraction >= limit else "fail")

    @staticmethod
    def _partitions(metric: str, found: DelegateResult, limit: float) -> Check:
        if found.partitions is None:
            return Check(metric, None, limit, "error",
                         reason=found.reason or "delegation not measurable")
        return Check(metric, float(found.partitions), limit,
                     "pass" if found.partitions <= limit else "fail")


def _fallback(metric: str, found: DelegateResult, forbidden: list[str]) -> Check:
    """Forbidden ops left to CPU kernels. The runtime names a custom op by its own name, so
    ``CUSTOM`` matches every op that is not a builtin one and ``CUSTOM:Name`` matches ``Name``."""
    if found.fallback_ops is None:
        return Check(metric, None, 0.0, "error", reason=found.reason or "delegation not measurable")
    builtin = builtin_op_names()
    hit: dict[str, int] = {}
    for op, count in found.fallback_ops.items():
        custom = op not in builtin
        name = op.removeprefix("CUSTOM:")
        if op in forbidden or (custom and ("CUSTOM" in forbidden or f"CUSTOM:{name}" in forbidden)):
            hit[op] = count
    return Check(metric, float(sum(hit.values())), 0.0, "fail" if hit else "pass",
                 reason=f"left to CPU kernels: {', '.join(sorted(hit))}" if hit else "")


def _at_most(metric: str, measured: float | None, budget: float | None, unit: str) -> list[Check]:
    if budget is None:
        return []
    if measured is None:
        return [Check(metric, None, budget, "error", unit, reason="not measured")]
    verdict: Verdict = "pass" if measured <= budget else "fail"
    return [Check(metric, measured, budget, verdict, unit)]
