"""Budget-file hardening: the properties of the suite's test_budget_hypothesis.py, with many more examples.

    python bench/hardening_hypothesis.py [EXAMPLES]     # 5000 per property by default

The suite draws a sample (the "suite" profile of tests/conftest.py: 30 per property); this is the
full budget, to run before finishing a change to the budget schema or its loading.

Prints, and ``main()`` returns, {property: {"examples": calls of the check, "failures": 0 or 1,
"falsifying": the error's first line}}. Timing is not the point: a failure here is a bug.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import given

from tests.unit.budget.test_budget_hypothesis import PROPERTIES, hypothesis_settings


def _counted(check: Callable[[Any], None], tried: list[int]) -> Callable[[Any], None]:
    def counted(case: Any) -> None:
        tried[0] += 1
        check(case)

    return counted


def main(examples: int = 5000) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    for name, (strategy, check) in PROPERTIES.items():
        tried = [0]
        run = hypothesis_settings(examples)(given(strategy)(_counted(check, tried)))
        try:
            run()
            figures[name] = {"examples": tried[0], "failures": 0}
        except Exception as exc:  # a failure is a figure here, not a crash
            figures[name] = {"examples": tried[0], "failures": 1,
                             "falsifying": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        print(name, figures[name], flush=True)
    return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
