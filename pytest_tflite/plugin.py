"""pytest glue: the ``tflite_budget`` marker, fixtures, collection and report hooks; the options
and ini keys are declared and read in ``options``.

Importing this module must stay cheap: no TensorFlow, LiteRT, numpy or pydantic here. Those load
when a test converts, measures or reads a budget; a suite that does none of it resolves no
settings at all (``TFLitePlugin.settings``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .errors import BudgetFileError, TFLiteError
from .options import add_options, asks_for_settings, invocation_path, run_settings

if TYPE_CHECKING:
    from .checker import BudgetChecker
    from .conversion.cache.storage import CacheStats
    from .engine import Settings
    from .results import Entry

MARKER = "tflite_budget"
CACHE_PROPERTY = "tflite_cache"
PLUGIN_KEY = pytest.StashKey["TFLitePlugin"]()
BUDGET_KEY = pytest.StashKey["Any"]()
CHECKER_KEY = pytest.StashKey["BudgetChecker"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name_or_path): check this test's TFLite models against a budget file: a "
        f"name in the budget directory (budgets/NAME.toml), or a path relative to the rootdir "
        f"when it contains '/' or ends in '.toml'. Use with the tflite_budget fixture.",
    )
    modifiers = [f"--tflite-{name.replace('_', '-')}" for name in ("headroom", "ratchet_timing",
                                                                     "loosen")
                 if config.getoption(f"tflite_{name}") is not None]
    if modifiers and not config.getoption("tflite_update_budgets"):
        raise pytest.UsageError(f"{', '.join(modifiers)} only shape --tflite-update-budgets: "
                                f"add it, or drop them")
    if hasattr(config, "workerinput"):  # an xdist worker: do not outlive the controller
        from .controller_watch import follow_controller

        follow_controller()
    plugin = TFLitePlugin(config)
    config.stash[PLUGIN_KEY] = plugin
    config.pluginmanager.register(plugin, "tflite-plugin")
    if asks_for_settings(config):
        plugin.settings()  # a bad value or a missing baseline stops the run now, named


class TFLitePlugin:
    """Run-wide state: settings, loaded budgets, collected report entries and cache counts."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.budgets: dict[Path, Any] = {}
        self.entries: list[Entry] = []
        self.written: list[str] = []  # the report files this run wrote, for the summary
        self.cache_hits = 0
        self.cache_misses = 0
        self.verbose = bool(config.getoption("tflite_verbose")) or config.get_verbosity() >= 2
        self._settings: Settings | None = None
        # Budget files without source, and those the collected markers name: the difference
        # checks nothing in this run (warned at the end of collection).
        self.sourceless: list[Path] = []
        self.named: set[Path] = set()

    # ------------------------------------------------------------ settings

    def _ini_path(self, name: str) -> Path | None:
        value = self.config.getini(name)
        if not value:
            return None
        base = self.config.inipath.parent if self.config.inipath else self.config.rootpath
        return (base / str(value)).resolve()

    def budget_dir(self) -> Path:
        option = self.config.getoption("tflite_budget_dir")
        if option:
            return (Path(self.config.invocation_params.dir) / str(option)).resolve()
        return self._ini_path("tflite_budget_dir") or self.config.rootpath / "budgets"

    def budget_path(self, name_or_path: str) -> Path:
        if "/" in name_or_path or name_or_path.endswith(".toml"):
            return (self.config.rootpath / name_or_path).resolve()
        return self.budget_dir() / f"{name_or_path}.toml"

    def cache(self) -> Any:
        if self.config.getoption("tflite_no_cache"):
            return None
        from .conversion.cache.storage import ConversionCache, default_dir

        directory = self._ini_path("tflite_cache_dir")
        if directory is None:
            cache = getattr(self.config, "cache", None)  # absent under -p no:cacheprovider
            directory = Path(cache.mkdir("tflite")) if cache is not None else default_dir()
        return ConversionCache(directory)

    def settings(self) -> Settings:
        """Resolved the first time a budget, a marker, a fixture or a tflite option needs them,
        so a suite that uses none of them never loads the engine (nor pydantic). A method, not
        a property: pytest 8.0 reads every attribute of a registered plugin, looking for
        fixtures."""
        if self._settings is None:
            self._settings = run_settings(self.config)
        return self._settings

    def baseline_entries(self) -> dict[tuple[str, str], Any]:
        """The baseline's entry of each checked variant, for reports that draw base beside head."""
        # Asked only with entries and the option: a run that checked nothing resolves nothing.
        baseline = (self.settings().baseline
                    if self.entries and self.config.getoption("tflite_baseline") else None)
        if baseline is None:
            return {}
        found = {}
        for entry in self.entries:
            try:
                saved = baseline.lookup(entry.model, entry.variant)
            except TFLiteError:
                continue  # a corrupt entry already failed its test with the reason
            if saved is not None:
                found[(entry.model, entry.variant)] = saved.entry
        return found

    def save_baseline(self, session: pytest.Session) -> None:
        directory = invocation_path(self.config, "tflite_baseline_save")
        if directory is None:
            return
        from .baseline import BaselineError, save
        from .environment import environment_fingerprint

        try:
            lines = save(directory, self.entries,
                         environment_fingerprint(self.settings().runtime().threads))
        except BaselineError as exc:
            self.written.append(f"tflite baseline NOT saved: {exc}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        self.written += [f"tflite baseline saved: {directory} ({len(lines)} model variant(s))",
                         *lines]

    # ------------------------------------------------------------ budgets

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> Any:
        if file_path.suffix != ".toml" or not file_path.is_relative_to(self.budget_dir()):
            return None
        from .collector import BudgetSourceFile, checks_nothing_alone, names_a_source

        try:
            text = file_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        if not names_a_source(text):
            if checks_nothing_alone(file_path, text):
                self.sourceless.append(file_path)
            return None
        return BudgetSourceFile.from_parent(parent, path=file_path, plugin=self)

    @pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: a deselected test still uses it
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if not self.sourceless:  # nothing to warn about: spare a suite that uses no budget
            return
        for item in items:
            marker = item.get_closest_marker(MARKER)
            if marker is not None and len(marker.args) == 1 and isinstance(marker.args[0], str):
                self.named.add(self.budget_path(marker.args[0]).resolve())

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Warn of budget files that check nothing, once: under xdist every worker collects
        the same files, so the first worker alone speaks (the controller collects nothing)."""
        workerinput = getattr(self.config, "workerinput", None)
        if not self.sourceless or (workerinput is not None
                                   and workerinput.get("workerid") != "gw0"):
            return
        from .collector import warn_unused_budgets

        warn_unused_budgets(session.config, self.sourceless, self.named, MARKER)

    def load_budget(self, path: Path) -> Any:
        if path not in self.budgets:
            from .budget import load

            try:
                self.budgets[path] = load(path, self.settings().runners,
                                          root=self.config.rootpath)
            except BudgetFileError as exc:
                self.budgets[path] = exc
        found = self.budgets[path]
        if isinstance(found, BudgetFileError):
            raise found
        return found

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            return
        if len(marker.args) != 1 or not isinstance(marker.args[0], str) or marker.kwargs:
            pytest.fail(f"@pytest.mark.{MARKER} takes one argument, the budget name or path, "
                        f"e.g. @pytest.mark.{MARKER}('digits_cnn')", pytrace=False)
        try:
            item.stash[BUDGET_KEY] = self.load_budget(self.budget_path(marker.args[0]))
            return
        except (BudgetFileError, pytest.UsageError) as exc:  # a bad file, or runner table
            problem = str(exc)
        # Outside the except block: failing inside it would print the message twice, chained.
        pytest.fail(problem, pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed and call.excinfo is not None:
            from .failures import short_failure

            report.longrepr = short_failure(item, call.excinfo) or report.longrepr
        if report.sections and (item.get_closest_marker(MARKER)
                                or "tflite_convert" in getattr(item, "fixturenames", ())):
            from .failures import without_start_up_noise

            report.sections = without_start_up_noise(report.sections)
        if report.when == "call" and report.passed and item.get_closest_marker(MARKER):
            checker = item.stash.get(CHECKER_KEY, None)
            if checker is None or not checker.entries:
                report.outcome = "failed"
                report.longrepr = (
                    f"{item.nodeid} is marked @pytest.mark.{MARKER} but never checked a model: "
                    f"call tflite_budget.check(model) in the test, or remove the marker"
                )
            elif (reason := checker.skip_reason()) is not None:
                # Nothing was measured against a budget: that is a skip, never a pass.
                line = item.location[1]
                report.outcome = "skipped"
                report.longrepr = (str(item.path), (line or 0) + 1, f"Skipped: {reason}")
        return report

    # ------------------------------------------------------------ reports

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Teardown reports carry every property the test recorded; with xdist they arrive here
        # on the controller, so one code path serves both.
        if report.when != "teardown" or not report.user_properties:
            return
        from .checker import ENTRY_PROPERTY

        for name, value in report.user_properties:
            if name == ENTRY_PROPERTY:
                from .results import Entry

                self.entries.append(Entry.from_json(json.loads(str(value))))
            elif name == CACHE_PROPERTY:
                counts = json.loads(str(value))
                self.cache_hits += counts["hits"]
                self.cache_misses += counts["misses"]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not (self.entries or self.written or self.cache_hits or self.cache_misses):
            return  # nothing to say: spare a suite that never checked a model the import
        from .printable import log_line
        from .reports.tables import summary_lines

        lines = summary_lines(self.entries, self.cache_hits, self.cache_misses)
        if not lines and not self.written:
            return
        terminalreporter.write_sep("-", "tflite budgets")
        for line in [*lines, *self.written]:
            terminalreporter.write_line(log_line(line))  # names are data: no ESC, no ::command

    def report_options(self) -> Any:
        """Where this run's reports go (paths relative to the invocation directory)."""
        from .reports.publish import ReportOptions

        def path(option: str) -> Path | None:
            value = self.config.getoption(option)
            return Path(self.config.invocation_params.dir) / str(value) if value else None

        import os

        # GitHub Actions names the job summary file; every run of the job appends to it.
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        return ReportOptions(json_path=path("tflite_report"),
                             markdown_path=path("tflite_markdown"),
                             comment_id=str(self.config.getoption("tflite_comment_id")),
                             html_path=path("tflite_html"),
                             node_data_dir=path("tflite_node_data"),
                             step_summary=Path(summary) if summary else None)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Reports are written once, by the controller: xdist workers' entries reach it.
        if hasattr(self.config, "workerinput"):
            return
        if self.entries or any(self.config.getoption(f"tflite_{name}")
                               for name in ("report", "markdown", "html", "node_data")):
            from .reports.publish import publish

            self.written += publish(self.entries, self.report_options(), self.baseline_entries())
        self.save_baseline(session)
        if self.config.getoption("tflite_update_budgets"):
            self.written += self.update_budgets()

    def update_budgets(self) -> list[str]:
        """--tflite-update-budgets: tighten the budget files this run's entries were judged
        against; the lines returned list each file's old -> new values for the summary."""
        from .ratchet import DEFAULT_HEADROOM, RatchetOptions, summary_lines, update_budget_files

        headroom = self.config.getoption("tflite_headroom")
        options = RatchetOptions(
            headroom=DEFAULT_HEADROOM if headroom is None else headroom,
            timing=bool(self.config.getoption("tflite_ratchet_timing")),
            loosen=bool(self.config.getoption("tflite_loosen")),
        )
        return summary_lines(update_budget_files(self.entries, options), options,
                             self.config.rootpath)


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def tflite_budget(request: pytest.FixtureRequest) -> BudgetChecker:
    """Check models against the budget file named by the test's ``tflite_budget`` marker."""
    item = request.node
    if item.get_closest_marker(MARKER) is None:
        pytest.fail(f"the tflite_budget fixture needs @pytest.mark.{MARKER}('NAME') on the test "
                    f"to know which budget file to use", pytrace=False)
    plugin = request.config.stash[PLUGIN_KEY]
    from .checker import BudgetChecker

    checker = BudgetChecker(item.stash[BUDGET_KEY], item.nodeid,
                            lambda name, value: item.user_properties.append((name, value)),
                            plugin.settings(),
                            lambda title, text: item.add_report_section("call", title, text))
    item.stash[CHECKER_KEY] = checker
    return checker


def _heavy_work(plugin: TFLitePlugin, work: Callable[[], Any]) -> Any:
    """Conversion and fine-tuning: side by side with each other, never while a worker times a
    model; a TFLiteError surfaces as its message, without the converter's frames around it.
    A function, not a context manager: re-raised from a generator, the error would carry
    ``contextlib.__exit__``'s frame into the user's report."""
    __tracebackhide__ = True
    from .measure.lock import shared, wait_limit

    try:
        with shared(plugin.settings().lock_file, wait_limit(plugin.settings().runtime().timeout)):
            return work()
    except TFLiteError as exc:
        raise type(exc)(str(exc)).with_traceback(None) from None


def _record_cache_use(request: pytest.FixtureRequest, stats: CacheStats) -> None:
    if stats.hits or stats.misses:
        request.node.user_properties.append(
            (CACHE_PROPERTY, json.dumps({"hits": stats.hits, "misses": stats.misses}))
        )


@pytest.fixture
def tflite_convert(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Generator[Callable[..., Any], None, None]:
    """``tflite_convert(source, recipe=..., representative_data=..., variant=...)``: a TFLiteModel.

    Same arguments as ``pytest_tflite.convert``; conversions are cached (docs/cache.md).
    """
    from .conversion.cache.storage import CacheStats

    plugin = request.config.stash[PLUGIN_KEY]
    stats = CacheStats()
    cache = plugin.cache()
    output_dir = None if cache is not None else tmp_path_factory.mktemp("tflite")

    def convert(source: Any, recipe: str | None = None, representative_data: Any = None,
                **kwargs: Any) -> Any:
        __tracebackhide__ = True
        from .conversion.recipes import convert as run_conversion
        from .measure.memory_cap import limit

        runtime = plugin.settings().runtime()
        kwargs.setdefault("timeout", runtime.timeout)

        def work() -> Any:
            with limit(runtime.max_memory):
                return run_conversion(source, recipe, representative_data, cache=cache,
                                      stats=stats, output_dir=output_dir,
                                      quiet=not plugin.verbose, **kwargs)

        return _heavy_work(plugin, work)

    yield convert
    _record_cache_use(request, stats)


@pytest.fixture
def tflite_prune(request: pytest.FixtureRequest) -> Generator[Callable[..., Any], None, None]:
    """``tflite_prune(model, target_sparsity, fine_tune=(x, y), **options)``: a pruned copy.

    ``pytest_tflite.optimize.prune`` with its result cached like conversions (the pruned weights,
    keyed by model, target, options and data), so a rerun skips the fine-tune.
    """
    from .conversion.cache.storage import CacheStats

    plugin = request.config.stash[PLUGIN_KEY]
    stats = CacheStats()
    cache = plugin.cache()

    def prune(model: Any, target_sparsity: float, fine_tune: Any = None, **options: Any) -> Any:
        __tracebackhide__ = True
        from .optimize.cached import cached_prune

        return _heavy_work(plugin, lambda: cached_prune(cache, model, target_sparsity, fine_tune,
                                                        stats=stats, **options))

    yield prune
    _record_cache_use(request, stats)
