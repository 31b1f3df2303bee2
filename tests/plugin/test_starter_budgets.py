"""Budget files in the budget directory that check nothing are warned of; ``init -o`` files are
collected as tests by themselves.

Inner sessions use ready ``.tflite`` files (``tests/helpers/models.dense_model``), so they never
import TensorFlow.
"""

from __future__ import annotations

import textwrap

import pytest

from pytest_tflite import cli
from tests.helpers.models import dense_model

UNUSED = ("budgets/{name}.toml:1: UnusedBudgetWarning: budgets/{name}.toml: this budget file "
          "checks nothing in this run: it has no `source` key and no collected test names it")
SIZE_ONLY = '[variants.default]\nsize = { max = "1 MiB" }\n'
MARKED = """
import pytest

@pytest.mark.tflite_budget("used")
def test_uses_it(tflite_budget):
    pass
"""


def _files(pytester: pytest.Pytester, **budgets: str) -> None:
    (pytester.path / "budgets").mkdir()
    for name, text in budgets.items():
        (pytester.path / "budgets" / name).write_text(textwrap.dedent(text))


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_a_budget_without_source_or_marker_is_warned_and_exit_5_stays(
        pytester: pytest.Pytester, workers: list[str]) -> None:
    _files(pytester, **{"m.toml": f'model = "m"\n{SIZE_ONLY}'})
    result = pytester.runpytest_subprocess("budgets/", "-p", "no:randomly", *workers)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    out = result.stdout.str()
    assert out.count("UnusedBudgetWarning") == 1, out  # once, also with two xdist workers
    assert UNUSED.format(name="m") in out
    assert "@pytest.mark.tflite_budget('m')" in out
    result.stdout.fnmatch_lines(["*1 warning*"])


def test_only_the_unused_file_is_warned(pytester: pytest.Pytester) -> None:
    """A file a marker names (even of a test -k deselects) or one with source is in use; other
    TOML in the directory (not a budget file) is not ours to warn of."""
    pytester.path.joinpath("models").mkdir()
    pytester.path.joinpath("models", "d.tflite").write_bytes(dense_model(8))
    _files(pytester, **{"used.toml": SIZE_ONLY, "unused.toml": SIZE_ONLY,
                        "with_source.toml": f'source = "../models/d.tflite"\n{SIZE_ONLY}',
                        "taplo.toml": 'include = ["*.toml"]\n',
                        "broken.toml": "variants = [\n"})
    pytester.makepyfile(test_marked=MARKED)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-n", "0", "-k", "source")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    assert out.count("UnusedBudgetWarning") == 1, out
    assert UNUSED.format(name="unused") in out
    result.assert_outcomes(passed=1, deselected=1, warnings=1)


def test_init_o_then_pytest_budgets_runs_the_model(pytester: pytest.Pytester,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The `.tflite` path: init -o writes a file the collector runs against its source."""
    pytester.path.joinpath("models").mkdir()
    pytester.path.joinpath("models", "d.tflite").write_bytes(dense_model(16))
    monkeypatch.chdir(pytester.path)
    assert cli.main(["init", "models/d.tflite", "-o", "budgets/d.toml", "--no-runtime"]) == 0
    result = pytester.runpytest_subprocess("budgets/", "-p", "no:randomly", "-n", "0", "-v")
    out = result.stdout.str()
    assert "UnusedBudgetWarning" not in out
    result.stdout.fnmatch_lines(["*budgets/d.toml::default PASSED*"])
    assert result.ret == pytest.ExitCode.OK


def test_w_error_makes_it_a_usage_error_and_never_hangs_xdist(pytester: pytest.Pytester) -> None:
    _files(pytester, **{"m.toml": SIZE_ONLY})
    result = pytester.runpytest_subprocess("budgets/", "-p", "no:randomly", "-n", "0",
                                           "-W", "error", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: budgets/m.toml: this budget file checks nothing" in result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    # An xdist worker that raised would hang the run: there it stays a warning.
    result = pytester.runpytest_subprocess("budgets/", "-p", "no:randomly", "-n", "2",
                                           "-W", "error", timeout=120)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert UNUSED.format(name="m") in result.stdout.str()
