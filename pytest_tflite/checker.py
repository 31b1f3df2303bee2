"""The object behind the ``tflite_budget`` fixture: measure a model, judge it, record, assert."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import BudgetExceeded, TFLiteError

ENTRY_PROPERTY = "tflite_entry"


class BudgetChecker:
    """Bound to one test and the budget file its ``tflite_budget`` marker names."""

    def __init__(
        self,
        budget: Any,  # budget.Budget, typed loosely so importing this module stays light
        test: str,
        record: Callable[[str, object], None],
    ) -> None:
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
    ) -> dict[str, Any]:
        """Measure ``model`` and assert the budgets of its variant's section.

        ``model``: what ``tflite_convert`` returned, or a ``.tflite`` path or bytes. ``variant``
        overrides the model's own. Returns the report entry (the JSON contract's keys); raises
        ``BudgetExceeded`` listing every check when one fails.
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
        results = checks.evaluate(measurement, budget)
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
            raise BudgetExceeded(failure_message(entry, str(self.path)))
        return entry


def _as_model(value: Any) -> Any:
    from .convert import convert

    return convert(value)
