"""Names are data: control characters in a budget file are refused when it loads, naming the
key; what the terminal and a CI job's log get is escaped and never a workflow command."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_tflite.budget import load
from pytest_tflite.conversion.recipes import convert
from pytest_tflite.errors import BudgetFileError, ConversionError
from pytest_tflite.printable import log_line, printable
from pytest_tflite.reports.tables import failure_message, summary_lines
from pytest_tflite.results import Check
from tests.helpers.entries import entry as make_entry
from tests.helpers.models import chain_model


@pytest.mark.parametrize(("text", "shown"), [
    ("plain name", "plain name"),
    ("a\nb", "a\\nb"),
    ("\x1b[2J", "\\x1b[2J"),
    ("del\x7f", "del\\x7f"),
    ("nul\x00", "nul\\x00"),
    ("c1\x9b31m", "c1\\x9b31m"),  # CSI as one character
    ("tab\there", "tab\\there"),
    ("\u00e9t\u00e9 \u2192 \u4e2d", "\u00e9t\u00e9 \u2192 \u4e2d"),  # printable, kept
])
def test_printable_escapes_control_characters_only(text: str, shown: str) -> None:
    assert printable(text) == shown


@pytest.mark.parametrize(("line", "shown"), [
    ("::warning::x", "\\x3a:warning::x"),
    ("   ::add-mask::x", "   \\x3a:add-mask::x"),
    ("model\n::error::x [v]", "model\\n::error::x [v]"),  # one line: nothing starts a command
    ("m [v]: a::b", "m [v]: a::b"),
])
def test_a_log_line_is_never_a_workflow_command(line: str, shown: str) -> None:
    assert log_line(line) == shown
    assert "\n" not in log_line(line) and not log_line(line).lstrip().startswith("::")


@pytest.mark.parametrize(("text", "key"), [
    ('model = "x\\n::warning::y"\n[variants.v]\nsize = { max = 1 }\n',
     'model: the value "x\\n::warning::y"'),
    ('[variants."v\\u001b[31m"]\nsize = { max = 1 }\n', 'variants."v\\u001B[31m": the key'),
    ('[variants.v]\nsize = { max = 1 }\nsparsity = { min = 0.1, layers = { "c\\u007f" = '
     '{ min = 0.5 } } }\n', 'variants.v.sparsity.layers."c\\u007F": the key'),
    ('[variants.v]\nsize = { max = 1 }\n[variants.v.runtime]\ninput_shapes = { "in\\r" = [1] }\n',
     'variants.v.runtime.input_shapes."in\\r": the key'),
])
def test_a_name_with_a_control_character_is_refused_naming_the_key(
        tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(BudgetFileError) as refused:
        load(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: {key} holds a control character")
    assert "printable characters only" in message and "\n" not in message


def test_a_budget_file_name_with_a_control_character_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m\x1b[2J.toml"
    path.write_text("[variants.v]\nsize = { max = 1 }\n")
    with pytest.raises(BudgetFileError, match=r'the file name "m\\x1b\[2J\.toml"'):
        load(path)


def test_a_variant_argument_with_a_control_character_is_refused() -> None:
    with pytest.raises(ConversionError, match=r"variant='v\\\\n::warning::x' holds a control"):
        convert(chain_model([4, 4]), variant="v\n::warning::x")


def test_tables_print_hostile_names_escaped_on_their_own_lines() -> None:
    # An entry as a baseline or a model's own names could bring them (load refuses them in
    # budget files): the summary and the failure message still print each on one line.
    size = Check("size.max", 24_000, 1, "fail", "bytes", reason="layer \x1b[2J\n::warning::x")
    hostile = make_entry(model="::error::m\x1b[31m", variant="v\n::add-mask::x", checks=[size])
    lines = [log_line(line) for line in summary_lines([hostile], 0, 0)]
    text = "\n".join([*lines, failure_message(hostile, "b.toml")])
    assert "\x1b" not in text
    assert not [line for line in text.splitlines() if line.lstrip().startswith("::")]
    assert "\\x3a:error::m\\x1b[31m" in text


def test_every_table_escapes_its_cells_and_lines() -> None:
    # A layer name comes from the model file, which a pull request may bring: the CLI's and
    # the summary's tables print it as data.
    from pytest_tflite.reports.tables import table

    lines = table(["layer", "sparsity"], [["::warning::conv\x1b[2J\nx", "0.5"], ["dense", "0.1"]])
    assert lines[2] == "\\x3a:warning::conv\\x1b[2J\\nx  0.5"
    assert not [line for line in lines if line.lstrip().startswith("::") or "\x1b" in line]
