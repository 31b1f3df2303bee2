"""Pure verdicts: (measurement, variant budget) -> one Check per budget key. No I/O, no pytest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .budget import Variant

Verdict = Literal["pass", "fail", "skip", "error"]

LATENCY_KEYS = {
    "median": lambda d: d["latency_ms"]["median"] if d.get("latency_ms") else None,
    "p90": lambda d: d["latency_ms"]["p90"] if d.get("latency_ms") else None,
    "p99": lambda d: d["latency_ms"]["p99"] if d.get("latency_ms") else None,
    "cpu": lambda d: d.get("cpu_ms"),
    "init": lambda d: d.get("init_ms"),
    "first_invoke": lambda d: d.get("first_invoke_ms"),
}


@dataclass(frozen=True)
class Check:
    metric: str  # the budget's key path, e.g. "size.max"
    measured: float | None
    budget: float | None
    verdict: Verdict
    unit: str = ""  # "bytes" | "ms" | "" (fractions, counts)
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def delegates_named(variant: Variant) -> list[str]:
    """Delegates the variant's budgets need measured, in a stable order."""
    memory = variant.memory.delegates if variant.memory else {}
    return list(dict.fromkeys([*variant.latency, *memory, *variant.delegation]))


def evaluate(
    measurement: dict[str, Any],
    variant: Variant,
    *,
    runtime_off: str | None = None,
    require_delegates: bool = False,
    without_data: Verdict = "error",
) -> list[Check]:
    """Every budget key of ``variant`` judged against ``measurement``.

    ``runtime_off`` is the reason runtime budgets were not measured (they become ``skip``);
    ``require_delegates`` turns a delegate the machine lacks from ``skip`` into ``fail``;
    ``without_data`` is the verdict of accuracy and fidelity budgets that got no evaluation data
    (an error in a test, a skip in the CLI, which has no data to give).
    """
    checks: list[Check] = []
    if variant.size is not None:
        checks += _at_most("size.max", measurement.get("size_bytes"), variant.size.max, "bytes")
        checks += _at_most("size.max_gzip", measurement.get("gzip_bytes"), variant.size.max_gzip,
                           "bytes")
    if variant.memory is not None:
        checks += _at_most("memory.planned_arena", measurement.get("planned_arena_bytes"),
                           variant.memory.planned_arena, "bytes")
    judge = _DelegateJudge(measurement.get("delegates") or {}, runtime_off, require_delegates)
    for delegate, latency in variant.latency.items():
        for key, read in LATENCY_KEYS.items():
            budget = getattr(latency, key)
            if budget is not None:
                checks.append(judge.at_most(f"latency.{delegate}.{key}", delegate, read, budget, "ms"))
    for delegate, memory in (variant.memory.delegates if variant.memory else {}).items():
        for key, field in (("arena", "arena_bytes"), ("peak_rss", "peak_rss_bytes")):
            budget = getattr(memory, key)
            if budget is not None:
                checks.append(judge.at_most(f"memory.{delegate}.{key}", delegate,
                                            _reader(field), budget, "bytes"))
    for delegate, delegation in variant.delegation.items():
        checks += judge.delegation(delegate, delegation)
    checks += _accuracy_checks(measurement.get("accuracy"), variant, without_data)
    checks += _fidelity_checks(measurement.get("fidelity"), variant, without_data)
    checks += _sparsity_checks(measurement, variant)
    return checks


def _sparsity_checks(measurement: dict[str, Any], variant: Variant) -> list[Check]:
    from .measure.sparsity import named_layer_sparsity

    budget = variant.sparsity
    if budget is None:
        return []
    checks = []
    if budget.min is not None:
        found = measurement.get("sparsity")
        checks.append(Check("sparsity.min", found, budget.min,
                            "error" if found is None else "pass" if found >= budget.min else "fail",
                            reason="" if found is not None else "not measured"))
    layers = measurement.get("sparsity_layers") or []
    for name, layer in budget.layers.items():
        metric = f"sparsity.layers.{name}.min"
        found = named_layer_sparsity(layers, name)
        if found is None:
            known = ", ".join(sorted({entry["name"] for entry in layers})) or "none"
            checks.append(Check(metric, None, layer.min, "error",
                                reason=f"no weight tensor of layer {name!r} (layers: {known})"))
        else:
            checks.append(Check(metric, found, layer.min,
                                "pass" if found >= layer.min else "fail"))
    if budget.pattern is not None:
        pattern = measurement.get("sparsity_pattern") or {}
        groups, bad = pattern.get("groups"), pattern.get("violating_groups")
        if groups is None:
            checks.append(Check("sparsity.pattern", None, None, "error", reason="not measured"))
        else:
            layers_hit = ", ".join(pattern.get("violating_layers") or [])
            checks.append(Check(
                "sparsity.pattern", float(bad or 0), 0.0, "fail" if bad else "pass",
                reason=f"{bad} of {groups} groups break {budget.pattern}"
                       + (f" in {layers_hit}" if layers_hit else "")))
    return checks


def _accuracy_checks(found: dict[str, Any] | None, variant: Variant,
                     without_data: Verdict) -> list[Check]:
    budget = variant.accuracy
    if budget is None:
        return []
    wanted = [(f"accuracy.{key}", getattr(budget, key)) for key in ("min", "max", "max_drop")]
    wanted = [(metric, limit) for metric, limit in wanted if limit is not None]
    if found is None:
        reason = "not checked: needs eval_data=(x, y)" if without_data == "error" \
            else "not checked (needs data)"
        return [Check(metric, None, None, without_data, reason=reason) for metric, _ in wanted]
    checks = []
    candidate = found["candidate"]
    for metric, limit in wanted:
        if metric == "accuracy.min":
            checks.append(Check(metric, candidate, limit, "pass" if candidate >= limit else "fail"))
        elif metric == "accuracy.max":
            checks.append(Check(metric, candidate, limit, "pass" if candidate <= limit else "fail"))
        elif found.get("reference") is None:
            checks.append(Check(metric, None, None, "error",
                                reason="max_drop needs the float reference: pass reference="))
        else:
            allowed = limit.fraction * abs(found["reference"]) if hasattr(limit, "fraction") \
                else float(limit)
            checks.append(Check(metric, found["drop"], allowed,
                                "pass" if found["drop"] <= allowed else "fail",
                                reason=f"{found['metric']} {candidate:.4g} vs reference "
                                       f"{found['reference']:.4g}"))
    return checks


FIDELITY_KEYS = {  # budget key -> (measured key, higher is better)
    "min_top1_agreement": ("top1_agreement", True),
    "min_cosine": ("cosine", True),
    "max_abs_error": ("max_abs_error", False),
    "min_snr_db": ("snr_db", True),
}


def _fidelity_checks(found: dict[str, Any] | None, variant: Variant,
                     without_data: Verdict) -> list[Check]:
    budget = variant.fidelity
    if budget is None:
        return []
    checks = []
    for key, (measured_key, higher) in FIDELITY_KEYS.items():
        limit = getattr(budget, key)
        if limit is None:
            continue
        metric = f"fidelity.{key}"
        if found is None:
            checks.append(Check(metric, None, limit, without_data,
                                reason="not checked: needs eval_data and reference="
                                if without_data == "error" else "not checked (needs data)"))
            continue
        value = found.get(measured_key)
        if value is None:
            checks.append(Check(metric, None, limit, "error",
                                reason=f"{measured_key} needs outputs with two or more classes"))
            continue
        ok = value >= limit if higher else value <= limit
        checks.append(Check(metric, value, limit, "pass" if ok else "fail"))
    return checks


def _reader(field: str) -> Callable[[dict[str, Any]], Any]:
    return lambda found: found.get(field)


class _DelegateJudge:
    """Turns a delegate's status (unavailable, unsupported, error) into the right verdict."""

    def __init__(self, delegates: dict[str, Any], runtime_off: str | None, required: bool) -> None:
        self.delegates = delegates
        self.runtime_off = runtime_off
        self.required = required

    def _unusable(self, metric: str, delegate: str, budget: float | None, unit: str) -> Check | None:
        if self.runtime_off:
            return Check(metric, None, budget, "skip", unit, reason=self.runtime_off)
        found = self.delegates.get(delegate)
        if found is None:
            return Check(metric, None, budget, "skip", unit,
                         reason=f"{delegate} not measured in this run (--tflite-delegates)")
        status, reason = found.get("status"), found.get("reason") or ""
        if status == "unavailable":
            verdict: Verdict = "fail" if self.required else "skip"
            return Check(metric, None, budget, verdict, unit,
                         reason=f"{delegate} unavailable on this machine: {reason}")
        if status == "unsupported":
            return Check(metric, None, budget, "fail", unit,
                         reason=f"the model cannot run under {delegate}: {reason}")
        if status != "ok":
            return Check(metric, None, budget, "error", unit, reason=f"{delegate}: {reason}")
        return None

    def at_most(self, metric: str, delegate: str, read: Callable[[dict[str, Any]], Any],
                budget: float, unit: str) -> Check:
        unusable = self._unusable(metric, delegate, budget, unit)
        if unusable is not None:
            return unusable
        measured = read(self.delegates[delegate])
        if measured is None:
            return Check(metric, None, budget, "error", unit,
                         reason=f"not measurable under {delegate}")
        return Check(metric, measured, budget, "pass" if measured <= budget else "fail", unit)

    def delegation(self, delegate: str, budget: Any) -> list[Check]:
        prefix = f"delegation.{delegate}"
        wanted = [(f"{prefix}.min_fraction", budget.min_fraction),
                  (f"{prefix}.max_partitions", budget.max_partitions),
                  (f"{prefix}.forbid_fallback", budget.forbid_fallback or None)]
        checks = []
        for metric, limit in wanted:
            if limit is None:
                continue
            numeric = None if isinstance(limit, list) else float(limit)
            unusable = self._unusable(metric, delegate, numeric, "")
            if unusable is not None:
                checks.append(unusable)
                continue
            found = self.delegates[delegate]
            if found.get("total_nodes") is None:
                checks.append(Check(metric, None, numeric, "error",
                                    reason=found.get("reason") or "delegation not measurable"))
            elif metric.endswith("min_fraction"):
                fraction = found["delegated_nodes"] / found["total_nodes"] if found["total_nodes"] else 1.0
                checks.append(Check(metric, fraction, numeric,
                                    "pass" if fraction >= limit else "fail"))
            elif metric.endswith("max_partitions"):
                checks.append(Check(metric, found["partitions"], numeric,
                                    "pass" if found["partitions"] <= limit else "fail"))
            else:
                fallback = found.get("fallback_ops") or {}
                hit = sorted(op for op in limit if op in fallback)
                checks.append(Check(metric, float(sum(fallback[op] for op in hit)), 0.0,
                                    "fail" if hit else "pass",
                                    reason=f"left to CPU kernels: {', '.join(hit)}" if hit else ""))
        return checks


def _at_most(metric: str, measured: float | None, budget: float | None, unit: str) -> list[Check]:
    if budget is None:
        return []
    if measured is None:
        return [Check(metric, None, budget, "error", unit, reason="not measured")]
    verdict: Verdict = "pass" if measured <= budget else "fail"
    return [Check(metric, measured, budget, verdict, unit)]


def overall(checks: list[Check]) -> Verdict:
    verdicts = {c.verdict for c in checks}
    for worst in ("error", "fail"):
        if worst in verdicts:
            return "error" if worst == "error" else "fail"
    return "pass" if "pass" in verdicts or not verdicts else "skip"
