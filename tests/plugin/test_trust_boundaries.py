"""Trust boundaries through the plugin, as a pull request would try them: a budget file's
``source`` outside the project is refused before a byte of it is read, and names that hold
control characters or look like GitHub Actions workflow commands reach the job log as data."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tests.helpers.models import chain_model


def test_a_source_outside_the_project_is_refused_before_anything_reads_it(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    # A FIFO nobody writes to: opening it to read would block, and the run would time out.
    outside = tmp_path / "outside"
    outside.mkdir()
    os.mkfifo(outside / "secret.tflite")
    (pytester.path / "pyproject.toml").write_text("")
    (pytester.path / "models").mkdir()
    (pytester.path / "models" / "link.tflite").symlink_to(outside / "secret.tflite")
    (pytester.path / "budgets").mkdir()
    for name, source in (("direct", str(outside / "secret.tflite")),
                         ("linked", "../models/link.tflite")):
        (pytester.path / "budgets" / f"{name}.toml").write_text(
            f'source = "{source}"\n[variants.v]\nsize = {{ max = "1 MiB" }}\n')
    result = pytester.runpytest_subprocess("budgets", "-p", "no:randomly", "-p", "no:xdist",
                                           timeout=120)
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    assert text.count(f"resolves to {outside / 'secret.tflite'}, outside the project's root") >= 2
    assert "allow_outside_rootdir" in text
    assert "tflite budgets" not in text  # no entry: no size, no gzip size was ever measured


def test_hostile_names_reach_the_terminal_as_data(pytester: pytest.Pytester) -> None:
    (pytester.path / "pyproject.toml").write_text("")
    (pytester.path / "models").mkdir()
    (pytester.path / "models" / "m.tflite").write_bytes(chain_model([4, 4]))
    (pytester.path / "budgets").mkdir()
    (pytester.path / "budgets" / "colon.toml").write_text(textwrap.dedent("""
        model = "::error::PWNED"
        source = "../models/m.tflite"
        [variants.v]
        size = { max = 1 }
        """))
    (pytester.path / "budgets" / "control.toml").write_text(textwrap.dedent("""
        model = "x\\n::warning::PWNED"
        source = "../models/m.tflite"
        [variants."v\\u001b[31m"]
        size = { max = 1 }
        """))
    result = pytester.runpytest_subprocess("budgets", "-p", "no:randomly", "-p", "no:xdist")
    result.assert_outcomes(failed=2)
    lines = result.stdout.lines
    assert not [line for line in lines if line.lstrip().startswith("::")]
    assert not [line for line in lines if "\x1b" in line]
    text = result.stdout.str()
    assert "\\x3a:error::PWNED" in text  # the table and the failure, escaped
    assert 'control.toml: model: the value "x\\n::warning::PWNED" holds a control character' \
        in text
