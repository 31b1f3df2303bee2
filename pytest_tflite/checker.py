"""The object behind the ``tflite_budget`` fixture: call the engine, record the entry, raise.

It measures and judges nothing itself (that is ``engine.run``); it only turns the entry into a
recorded property, a warning for skipped delegates and, on a failed budget, an assertion.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import (
    BaselineMismatchWarning,
    BudgetExceeded,
    DelegateSkippedWarning,
    LiteRTMissingError,
    ModelError,
    TFLiteError,
)

if TYPE_CHECKING:
    from .budget import Budget
    from .engine import Settings
    from .nodes import LayerError
    from .results import Entry

ENTRY_PROPERTY = "tflite_entry"


class BudgetChecker:
    """Bound to one test and the budget file its ``tflite_budget`` marker names."""

    def __init__(
        self,
        budget: Budget,
        test: str,
        record: Callable[[str, object], None],
        settings: Settings | None = None,
        add_section: Callable[[str, str], None] | None = None,
    ) -> None:
        from .engine import Settings

        self.budget = budget
        self.test = test
        self.settings = settings or Settings()
        self._record = record
        self._add_section = add_section
        self.entries: list[Entry] = []

    @property
    def path(self) -> Path:
        return self.budget.path

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
        ``output``: which output to score (the signature's output name, or an index in the
        source model's order) when the model has several. Returns the report entry (the JSON
        contract's keys); raises ``BudgetExceeded`` listing every check when one fails. When
        every check was skipped, the test is reported as skipped with the reasons.
        """
        __tracebackhide__ = True
        from . import engine
        from .reports.tables import failure_message

        evaluation = engine.Evaluation(eval_data, reference, metric, output)
        candidate = None
        try:
            candidate = engine.as_model(model, variant,
                                        unsafe_source=self.budget.spec.unsafe_source)
            entry = engine.run(candidate, self.budget, variant or candidate.variant, self.settings,
                               test=self.test, evaluation=evaluation, sample=sample)
        except ModelError as exc:
            # Unreadable or unrunnable: the reports still get this test's row, every key an error.
            name = variant or (candidate.variant if candidate is not None else None)
            if name is not None and name in self.budget.spec.variants:
                self._keep(engine.unmeasured_entry(candidate or model, self.budget, name,
                                                   self.settings, self.test, str(exc)))
            raise type(exc)(str(exc)).with_traceback(None) from None
        except TFLiteError as exc:
            raise type(exc)(str(exc)).with_traceback(None) from None
        except ImportError as exc:
            # LiteRT read in this process (the flatbuffer schema): the environment, no verdict.
            missing = LiteRTMissingError.caused(exc)
            if missing is None:
                raise
            raise missing.with_traceback(None) from None
        document = self._keep(entry)
        self._warn_skipped(entry)
        for warning in entry.warnings:
            warnings.warn(BaselineMismatchWarning(f"{self.budget.model} [{entry.variant}]: "
                                                  f"{warning}"), stacklevel=2)
        if entry.verdict in ("fail", "error"):
            message = failure_message(entry, str(self.path))
            if reference is not None and engine.explains_quality(entry):
                runtime = engine.runtime_settings(self.budget, self.budget.variant(entry.variant),
                                                  self.settings)
                message += self._layer_section(candidate, reference, eval_data, runtime.timeout,
                                               entry.measurement.layers)
            raise BudgetExceeded(message)
        return document

    def _keep(self, entry: Entry) -> dict[str, Any]:
        """Record ``entry`` for the run's reports (and this test's JUnit properties)."""
        self.entries.append(entry)
        document = entry.to_json()
        self._record(ENTRY_PROPERTY, json.dumps(document))
        return document

    def _layer_section(self, model: Any, reference: Any, data: Any, timeout: float,
                       measured: list[LayerError] | None) -> str:
        """Which layers lost the accuracy: a report section, and a pointer in the message.
        ``measured``: the entry's own (--tflite-node-data), not measured twice."""
        from .engine import layer_errors
        from .reports.tables import layer_table

        try:
            rows = measured if measured is not None else layer_errors(model, reference, data,
                                                                      timeout)
        except TFLiteError as exc:
            return f"\n\n(per-layer quantization error not available: {exc})"
        if not rows:
            return "\n\n(per-layer quantization error: no quantized activation matched the reference)"
        text = "\n".join(layer_table(rows))
        if self._add_section is not None:
            self._add_section("tflite per-layer quantization error", text)
        return ("\n\nPer-layer quantization error, worst first (added: the error an op adds to the "
                "worst error among the activations it reads):\n" + text)

    def _warn_skipped(self, entry: Entry) -> None:
        if self.settings.require_delegates:
            return
        for name, found in entry.measurement.delegates.items():
            if found.status == "unavailable":
                warnings.warn(DelegateSkippedWarning(
                    f"{self.budget.model}: {name} budgets skipped, the delegate is unavailable "
                    f"here ({found.reason[:200]}); --tflite-require-delegates makes this fail"
                ), stacklevel=3)
        for name, run in entry.measurement.evaluation_runs.items():
            if run.status == "unavailable":
                warnings.warn(DelegateSkippedWarning(
                    f"{self.budget.model}: {name} accuracy/fidelity skipped, the delegate is "
                    f"unavailable here ({run.reason[:200]}); --tflite-require-delegates makes "
                    f"this fail"), stacklevel=3)

    def skip_reason(self) -> str | None:
        """When every check of every ``check()`` call was skipped: why, for the skipped test."""
        if not self.entries or any(e.verdict != "skip" for e in self.entries):
            return None
        reasons = [r for entry in self.entries for r in entry.skip_reasons()]
        return "no budget was checked: " + ("; ".join(dict.fromkeys(reasons)) or "nothing to check")
