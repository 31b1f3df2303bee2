"""The budget-file collector: budget files that name a ``source`` model become tests by
themselves, one per variant.

A team that ships a ready ``.tflite`` needs no test code: ``source = "models/digits.tflite"``
(relative to the budget file) and ``pytest budgets/`` checks every variant section against it.
The plugin hands itself to the files it collects (as a ``Plugin``), so this module never
imports ``plugin.py``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from .checker import BudgetChecker
from .errors import BudgetExceeded, TFLiteError, UnusedBudgetWarning
from .printable import printable

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
            # The test id is printed before the file loads: a variant key with a control
            # character shows escaped here, and loading refuses it (budget/names.py).
            yield BudgetSourceItem.from_parent(self, name=printable(name), plugin=self.plugin)


class BudgetSourceItem(pytest.Item):
    """Checks the budget file's ``source`` model against one ``[variants.NAME]`` section."""

    def __init__(self, *, plugin: Plugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plugin = plugin

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # The failure's header: "m.toml [int8]", not pytest's default "test session". Not the
        # node id: pytest turns the dots of a domain that ends it into "::" on -v lines.
        return self.path, None, f"{self.path.name} [{self.name}]"

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


def checks_nothing_alone(path: Path, text: str) -> bool:
    """A budget file that is no test by itself: valid TOML with a budget file's keys but no
    ``source``. Other TOML (a ``pyproject.toml`` in the directory, say) is not a budget file."""
    if path.name == "pyproject.toml":
        return False
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False  # a marker test that names it reports the error; unnamed, it is not ours
    return "source" not in data and bool({"model", "variants", "regression", "defaults"} & set(data))


def warn_unused_budgets(config: pytest.Config, sourceless: list[Path], named: set[Path],
                        marker: str) -> None:
    """An ``UnusedBudgetWarning`` for each budget file without ``source`` that no collected
    marker names (``named``: resolved paths), placed at the file so the summary shows it."""
    worker = hasattr(config, "workerinput")
    for path in dict.fromkeys(sourceless):
        if path.resolve() in named:
            continue
        shown = path.relative_to(config.rootpath) if path.is_relative_to(config.rootpath) else path
        message = (f"{shown}: this budget file checks nothing in this run: it has no `source` "
                   f"key and no collected test names it in @pytest.mark.{marker}(...). Add "
                   f"source = \"path/to/model.tflite\" (relative to this file) to make it a "
                   f"test by itself (tflite-budget init MODEL -o FILE writes it), or mark a "
                   f"test with @pytest.mark.{marker}({path.stem!r})")
        if worker:
            # An xdist worker that raises here (-W error) hangs the run: it is recorded as
            # pytest records warnings, and xdist hands it to the controller, never escalated.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UnusedBudgetWarning)
                warnings.warn_explicit(UnusedBudgetWarning(message), UnusedBudgetWarning,
                                       str(shown), 1)
            for found in caught:
                config.hook.pytest_warning_recorded.call_historic(kwargs={
                    "warning_message": found, "when": "collect", "nodeid": "",
                    "location": None})
            continue
        try:
            warnings.warn_explicit(UnusedBudgetWarning(message), UnusedBudgetWarning,
                                   str(shown), 1)
        except UnusedBudgetWarning:  # -W error: a usage error, not pytest's INTERNALERROR
            raise pytest.UsageError(message) from None
