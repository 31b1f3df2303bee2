"""Pure verdicts: (measurement, variant budget) -> one Check per budget key. No I/O, no pytest."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from .budget import Variant

Verdict = Literal["pass", "fail", "skip", "error"]

# Budget sections whose measurement is not built yet: checking them must fail loudly, never pass.
NOT_MEASURED_YET = ("accuracy", "fidelity", "sparsity", "latency", "memory", "delegation")


@dataclass(frozen=True)
class Check:
    metric: str  # the budget's key path, e.g. "size.max"
    measured: float | None
    budget: float | None
    verdict: Verdict
    unit: str = ""  # "bytes" | "ms" | "" (fractions, counts)
    reason: str = ""

    @property
    def over_by(self) -> float | None:
        """How far past the budget a failed upper-bound check went, as a fraction of the budget."""
        if self.verdict != "fail" or self.measured is None or not self.budget:
            return None
        return (self.measured - self.budget) / self.budget

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(measurement: dict[str, Any], variant: Variant) -> list[Check]:
    checks: list[Check] = []
    if variant.size is not None:
        checks += _at_most("size.max", measurement.get("size_bytes"), variant.size.max, "bytes")
        checks += _at_most("size.max_gzip", measurement.get("gzip_bytes"), variant.size.max_gzip,
                           "bytes")
    for section in NOT_MEASURED_YET:
        if getattr(variant, section):
            checks.append(Check(
                section, None, None, "error",
                reason=f"{section} budgets are not measured yet by this version of pytest-tflite; "
                       f"remove the [{section}] section or upgrade",
            ))
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
