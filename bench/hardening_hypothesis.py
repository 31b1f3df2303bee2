"""Budget-file hardening: the properties of tests/test_budget_hypothesis.py with many more examples.

    python bench/hardening_hypothesis.py [EXAMPLES]     # 5000 per property by default

Prints, and ``main()`` returns, {property: {"examples": calls of the check, "failures": 0 or 1,
"falsifying": the error's first line}}. Timing is not the point: a failure here is a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import given

from tests.test_budget_hypothesis import PROPERTIES, hypothesis_settings


def main(examples: int = 5000) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    for name, (strategy, check) in PROPERTIES.items():
        tried = 0

        def counted(case: Any, check: Any = check) -> None:
            nonlocal tried
            tried += 1
            check(case)

        run = hypothesis_settings(examples)(given(strategy)(counted))
        try:
            run()
            figures[name] = {"examples": tried, "failures": 0}
        except Exception as exc:
            figures[name] = {"examples": tried, "failures": 1,
                             "falsifying": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        print(name, figures[name], flush=True)
    return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
