"""Messages a user can act on, as a real run prints them: no plugin or ``contextlib`` frames, one
message once, the nearest right name, an environment error for LiteRT, and a failed budget shown
as its table without fixture values or TensorFlow's start-up lines."""

from __future__ import annotations

import re
import textwrap

import pytest

from pytest_tflite.failures import START_UP_LINE
from tests.helpers.litert_shadow import NATIVE_ERROR, broken_litert
from tests.helpers.models import dense_model

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

MLP = "[variants.float32]\nsize = { max = 100 }\n"
INSTALL = "`pip install ai-edge-litert`"


def _block(output: str, test: str) -> str:
    """One test's failure block: from its header to the next header or the summary."""
    start = re.search(rf"_{{3,}} {test} _{{3,}}", output)
    assert start is not None, output
    end = re.search(r"\n(_{3,} \S.* _{3,}|=+ .* =+)\n", output[start.end():])
    return output[start.end():start.end() + end.start()] if end else output[start.end():]


@pytest.mark.parametrize("style", [[], ["--tb=long"]], ids=["default", "tb-long"])
def test_a_failed_conversion_shows_the_users_line_and_the_message(project, style):
    p = project(test_convert_fails="""
        def test_missing_path(tflite_convert):
            tflite_convert("models/nope.keras")

        def test_never_built(tflite_convert):
            import keras
            tflite_convert(keras.Sequential([keras.layers.Dense(3)]))

        import pytest

        @pytest.fixture
        def converted(tflite_convert):
            return tflite_convert("models/gone.keras")

        def test_converts_in_a_fixture(converted):
            pass
    """)
    result = p.runpytest("-p", "no:randomly", *style)
    result.assert_outcomes(failed=2, errors=1)
    output = result.stdout.str()
    assert "contextlib" not in output
    # No frame of the plugin, nor of the pytest machinery that called the fixture.
    assert "pytest_tflite/" not in output and "_pytest/" not in output and "pluggy/" not in output
    if style:
        return
    result.stdout.fnmatch_lines([
        "test_convert_fails.py:12: in converted",
        '    return tflite_convert("models/gone.keras")',
        "E   pytest_tflite.errors.ModelError: model path models/gone.keras does not exist",
    ])
    result.stdout.fnmatch_lines([
        "test_convert_fails.py:2: in test_missing_path",
        '    tflite_convert("models/nope.keras")',
        "E   pytest_tflite.errors.ModelError: model path models/nope.keras does not exist",
    ])
    result.stdout.fnmatch_lines(["test_convert_fails.py:6: in test_never_built",
                                 "E   pytest_tflite.errors.ConversionError: *never built*"])
    assert "tflite_convert = <function" not in output  # the fixture values stay out


def test_a_marker_naming_a_missing_budget_fails_once_with_the_nearest_name(project):
    p = project({"digits_cnn": MLP, "speech": MLP}, test_missing="""
        import pytest

        @pytest.mark.tflite_budget("digit_cnn")
        def test_misspelled(tflite_budget):
            pass
    """)
    result = p.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    result.stdout.fnmatch_lines([
        "budget file */budgets/digit_cnn.toml does not exist (did you mean 'digits_cnn'?) "
        "(budget files there: digits_cnn.toml, speech.toml). Create it*"])
    assert _block(output, "ERROR at setup of test_misspelled").count("does not exist") == 1
    assert "During handling of the above exception" not in output


def test_a_failed_budget_shows_its_table_not_fixture_values_nor_tensorflow_start_up(
        project, monkeypatch):
    # TensorFlow prints its start-up lines whatever this says; unset, as in a user's shell.
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    p = project({"mlp": MLP}, test_budget_table="""
        import dataclasses, subprocess, sys
        import numpy as np
        import pytest

        @dataclasses.dataclass
        class Digits:
            x_train: np.ndarray

        @pytest.fixture
        def digits():
            print("loading digits from the user's fixture", file=sys.stderr)
            return Digits(np.zeros((64, 8), "float32"))

        @pytest.mark.tflite_budget("mlp")
        def test_too_big(tflite_convert, tflite_budget, mlp, digits):
            tflite_budget.check(tflite_convert(mlp))

        def test_plain():
            # A test of the user's, not the plugin's: its captured stderr is left as it is.
            subprocess.run([sys.executable, "-c", "import tensorflow"], check=True)
            assert False
    """)
    # In a fresh interpreter: TensorFlow prints its start-up lines only on its first import.
    result = p.runpytest_subprocess("-p", "no:randomly", "--tflite-no-cache")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    plain, marked = _block(output, "test_plain"), _block(output, "test_too_big")
    # This TensorFlow does print start-up lines: the plain test's report still has them.
    assert any(START_UP_LINE.fullmatch(line) for line in plain.splitlines()), plain
    assert not [line for line in marked.splitlines() if START_UP_LINE.fullmatch(line)], marked
    assert "loading digits from the user's fixture" in marked  # the user's own stderr stays
    assert "Digits(" not in marked and "x_train" not in marked
    assert "mlp = <" not in marked and "tflite_budget = <" not in marked
    assert re.search(r"\nE   pytest_tflite\.errors\.BudgetExceeded: mlp \[float32\] broke 1 of 1 "
                     r"budget\(s\) in .*budgets/mlp\.toml:\nE   \nE   metric .*\nE   -+.*\n"
                     r"E   size\.max .* 100 B .* fail\n", marked), marked
    assert "test_budget_table.py:16: in test_too_big" in marked


def _shipped_model(pytester: pytest.Pytester) -> None:
    (pytester.path / "models").mkdir()
    (pytester.path / "models" / "tiny.tflite").write_bytes(dense_model(4))
    (pytester.path / "budgets").mkdir()
    (pytester.path / "budgets" / "tiny.toml").write_text(textwrap.dedent("""
        source = "../models/tiny.tflite"
        [variants.a]
        size = { max = "64 KiB" }
        [variants.a.latency.xnnpack]
        median = "1 s"
    """))


def test_a_broken_litert_is_an_environment_error_not_a_verdict(pytester, monkeypatch):
    """The package is found, its interpreter's native library is not: the worker says so."""
    _shipped_model(pytester)
    monkeypatch.setenv("PYTHONPATH", str(broken_litert(pytester.path / "shadow")))
    result = pytester.runpytest_subprocess("budgets", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "_* tiny.toml [[]a[]] _*",  # the header names the budget file and variant, not "session"
        "the LiteRT runtime (package ai_edge_litert) cannot be imported: in the worker process: "
        f"ImportError: {NATIVE_ERROR}. This is the Python environment, not the model: install "
        f"it with {INSTALL} *"])
    output = result.stdout.str()
    assert "could not run the model" not in output and "Traceback" not in output
    assert "tflite budgets" not in output  # no verdict row for the model


def test_a_missing_litert_is_an_environment_error_not_a_corrupt_model(pytester):
    _shipped_model(pytester)
    pytester.makeconftest("""
        import sys
        sys.modules["ai_edge_litert"] = None  # as if not installed: importing it fails
    """)
    pytester.makepyfile(test_shipped="""
        import pytest

        @pytest.mark.tflite_budget("tiny")
        def test_shipped(tflite_budget):
            tflite_budget.check("models/tiny.tflite", variant="a")
    """)
    result = pytester.runpytest_subprocess("test_shipped.py", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E   pytest_tflite.errors.LiteRTMissingError: the LiteRT runtime (package ai_edge_litert)"
        " cannot be imported: ModuleNotFoundError: *. This is the Python environment, not the "
        f"model: install it with {INSTALL} *"])
    output = result.stdout.str()
    assert "corrupt TFLite model" not in output and "pytest_tflite/" not in output
