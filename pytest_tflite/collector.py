"""The budget-file collector: budget files that name a ``source`` model become tests by
themselves, one per variant.

A team that ships a ready ``.tflite`` needs no test code: ``source = "models/digits.tflite"``
(relative to the budget file) and ``pytest budgets/`` checks every variant section against it.
The plugin hands itself to the files it collects (as a ``Plugin``), so this module never
imports ``plugin.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from .checker import BudgetChecker
from .errors import BudgetExceeded, TFLiteError

if TYPE_CHECKING:
    from .budget import Budget
    from .engine import Settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


class Plugin(Protocol):
    """What the items need of the plugin that collected them: settings and loaded budgets."""

    def settings(self) -> Settings: ...

    def load_budget(self, path: Path) -> Budget: ...


class BudgetSourceFile(pytest.File):
    def __init__(self, *, plugin: Plugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plugin = plugin

    def collect(self) -> Iterator[pytest.Item]:
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            data = {"source": "?", "variants": {}}  # the item reports the file's real error
        variants = data.get("variants")
        names = list(variants) if isinstance(variants, dict) and variants else ["(budget file)"]
        for name in names:
            yield BudgetSourceItem.from_parent(self, name=name, plugin=self.plugin)


class BudgetSourceItem(pytest.Item):
    """Checks the budget file's ``source`` model against one ``[variants.NAME]`` section."""

    def __init__(self, *, plugin: Plugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plugin = plugin

    def runtest(self) -> None:
        budget = self.plugin.load_budget(self.path)
        if budget.source is None:
            raise TFLiteError(f"{self.path}: no source model to check")
        checker = BudgetChecker(
            budget, self.nodeid,
            lambda name, value: self.user_properties.append((name, value)),
            self.plugin.settings(),
            lambda title, text: self.add_report_section("call", title, text),
        )
        checker.check(_as_shown(budget.source), variant=self.name)
        reason = checker.skip_reason()
        if reason is not None:
            pytest.skip(reason)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        if isinstance(excinfo.value, (BudgetExceeded, TFLiteError, pytest.UsageError)):
            return str(excinfo.value)  # the table or the named problem; no plugin traceback
        return super().repr_failure(excinfo)


def _as_shown(path: Path) -> Path:
    """The source as pytest shows paths: relative to the current directory when below it, so
    messages read ``models/m.tflite: ...`` rather than the absolute path."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def names_a_source(text: str) -> bool:
    """Cheap pre-check at collection: only budget files that name a model become tests."""
    try:
        return "source" in tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "source" in text  # a broken file that meant to: its test reports the error
