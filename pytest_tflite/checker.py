"""The object behind the ``tflite_budget`` fixture: measure a model, judge it, record, assert."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BudgetExceeded, DelegateSkippedWarning, TFLiteError

ENTRY_PROPERTY = "tflite_entry"


@dataclass(frozen=True)
class RunOptions:
    """Run-wide runtime options from the command line and ini file (budgets add their own)."""

    runtime_off: str | None = None  # why runtime budgets are skipped, e.g. --tflite-no-runtime
    delegate_filter: tuple[str, ...] | None = None  # --tflite-delegates limits what is measured
    require_delegates: bool = False
    ini_settings: dict[str, Any] = field(default_factory=dict)
    cli_settings: dict[str, Any] = field(default_factory=dict)
    lock_file: Path | None = None


class BudgetChecker:
    """Bound to one test and the budget file its ``tflite_budget`` marker names."""

    def __init__(
        self,
        budget: Any,  # budget.Budget, typed loosely so importing this module stays light
        test: str,
        record: Callable[[str, object], None],
        options: RunOptions | None = None,
        add_section: Callable[[str, str], None] | None = None,
    ) -> None:
        self._add_section = add_section
        self.options = options or RunOptions()
        self.budget = budget
        self.test = test
        self._record = record
        self.entries: list[dict[str, Any]] = []

    @property
    def path(self) -> Path:
        path: Path = self.budget.path
        return path

    def check(
        self,
        model: Any,
        eval_data: Any = None,
        reference: Any = None,
        *,
        variant: str | None = None,
        sample: Any = None,
        metric: Callable[[Any, Any], float] | None = None,
        output: str | int | None = None,
    ) -> dict[str, Any]:
        """Measure ``model`` and assert the budgets of its variant's section.

        ``model``: what ``tflite_convert`` returned, or a ``.tflite`` path or bytes. ``variant``
        overrides the model's own. ``sample``: the input to time with (an array with the batch
        dimension, or a list with one per input) instead of seeded random data. ``eval_data``:
        ``(x, y)``, ``x`` alone (fidelity only) or an iterable of batches; ``reference``: the
        float model (Keras, SavedModel or float ``.tflite``) for the accuracy drop and fidelity;
        ``metric``: the callable ``(y_true, y_pred) -> float`` of a ``custom`` metric;
        ``output``: which output to score (name or index) when the model has several. Returns the
        report entry (the JSON contract's keys); raises ``BudgetExceeded`` listing every check
        when one fails.
        """
        __tracebackhide__ = True
        from . import check as checks
        from .measure.static import measure_static
        from .model import TFLiteModel
        from .report import failure_message

        if not isinstance(model, TFLiteModel):
            model = _as_model(model)
        name = variant or model.variant
        try:
            budget = self.budget.variant(name)
            measurement = measure_static(model)
        except TFLiteError as exc:
            raise type(exc)(str(exc)).with_traceback(None) from None
        if budget.sparsity is not None and budget.sparsity.pattern is not None:
            from .measure.sparsity import check_pattern

            n, m = (int(part) for part in budget.sparsity.pattern.split(":"))
            measurement["sparsity_pattern"] = check_pattern(model.view, n, m)
        if eval_data is not None:
            self._evaluate(model, budget, measurement, eval_data, reference, metric, output)
        self._measure_runtime(model, budget, measurement, sample)
        results = checks.evaluate(measurement, budget, runtime_off=self.options.runtime_off,
                                  require_delegates=self.options.require_delegates)
        self._warn_skipped(measurement)
        entry = {
            "test": self.test,
            "model": self.budget.model,
            "variant": name,
            "recipe": model.recipe,
            **measurement,
            "checks": [c.to_json() for c in results],
            "verdict": checks.overall(results),
        }
        self.entries.append(entry)
        self._record(ENTRY_PROPERTY, json.dumps(entry))
        if entry["verdict"] in ("fail", "error"):
            message = failure_message(entry, str(self.path))
            if self._explains_quality(results) and reference is not None:
                message += self._layer_section(model, reference, eval_data)
            raise BudgetExceeded(message)
        return entry


    def _evaluate(self, model: Any, variant: Any, measurement: dict[str, Any], data: Any,
                  reference: Any, metric: Any, output: str | int | None) -> None:
        """Accuracy (with labels) and fidelity (with a reference), from one pass over the data."""
        __tracebackhide__ = True
        from .measure import accuracy
        from .measure.lock import shared

        try:
            prepared = accuracy.eval_data(data)
            with shared(self.options.lock_file):
                candidate, batched = accuracy.run_candidate(model.path, prepared, output)
                expected = (accuracy.run_reference(reference, prepared, output)
                            if reference is not None else None)
            budget = variant.accuracy
            name = budget.metric if budget else ("custom" if callable(metric) else "top1")
            higher = name not in accuracy.ERROR_METRICS and not (
                name == "custom" and budget is not None and budget.max is not None)
            if prepared.labels is not None:
                found = accuracy.score(name, prepared.labels, candidate, metric)
                base = (accuracy.score(name, prepared.labels, expected, metric)
                        if expected is not None else None)
                measurement["accuracy"] = {
                    "metric": name, "candidate": found, "reference": base,
                    "drop": accuracy.drop(name, found, base, higher) if base is not None else None,
                    "samples": prepared.samples, "batched": batched,
                }
            if expected is not None:
                measurement["fidelity"] = accuracy.fidelity(candidate, expected)
        except TFLiteError as exc:
            raise type(exc)(str(exc)).with_traceback(None) from None

    @staticmethod
    def _explains_quality(results: list[Any]) -> bool:
        return any(c.verdict == "fail" and c.metric.startswith(("accuracy", "fidelity"))
                   for c in results)

    def _layer_section(self, model: Any, reference: Any, data: Any) -> str:
        """Which layers lost the accuracy: a report section, and a pointer in the message."""
        from .measure import accuracy
        from .measure.isolated import layer_errors
        from .report import layer_table

        try:
            prepared = accuracy.eval_data(data)
            float_model = accuracy.float_reference_model(reference)
            rows = layer_errors(model.path, float_model.path, prepared.inputs, prepared.names)
        except TFLiteError as exc:
            return f"\n\n(per-layer quantization error not available: {exc})"
        if not rows:
            return "\n\n(per-layer quantization error: no quantized activation matched the reference)"
        text = "\n".join(layer_table(rows))
        if self._add_section is not None:
            self._add_section("tflite per-layer quantization error", text)
        return "\n\nPer-layer quantization error, worst first:\n" + text

    def _warn_skipped(self, measurement: dict[str, Any]) -> None:
        if self.options.require_delegates:
            return
        for name, found in (measurement.get("delegates") or {}).items():
            if found["status"] == "unavailable":
                warnings.warn(DelegateSkippedWarning(
                    f"{self.budget.model}: {name} budgets skipped, the delegate is unavailable "
                    f"here ({found['reason'][:200]}); --tflite-require-delegates makes this fail"
                ), stacklevel=3)

    def _measure_runtime(self, model: Any, variant: Any, measurement: dict[str, Any],
                         sample: Any) -> None:
        """Measure the delegates the budgets name (plus runtime.delegates), each in a worker."""
        from .check import delegates_named
        from .measure.runtime import measure_delegates, resolve_settings

        settings = resolve_settings(
            self.options.ini_settings,
            _settings_dict(self.budget.spec.defaults.runtime),
            _settings_dict(variant.runtime),
            self.options.cli_settings,
        )
        wanted = list(dict.fromkeys([*settings["delegates"], *delegates_named(variant)]))
        if self.options.delegate_filter is not None:
            wanted = [d for d in wanted if d in self.options.delegate_filter]
        if not wanted or self.options.runtime_off:
            return
        measurement["delegates"] = measure_delegates(model.path, wanted, settings,
                                                     lock_file=self.options.lock_file,
                                                     sample=sample)


def _settings_dict(settings: Any) -> dict[str, Any]:
    return settings.model_dump(exclude_none=True) if settings is not None else {}


def _as_model(value: Any) -> Any:
    from .conversion import convert

    return convert(value)
