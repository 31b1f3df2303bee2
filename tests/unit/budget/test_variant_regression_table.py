"""``[variants.NAME.regression]`` is validated when the file loads, as ``[regression]`` is: a bad
key or value fails the load with the file and the key path, never at judging time."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_tflite.budget import Relative, load
from pytest_tflite.errors import BudgetFileError


@pytest.mark.parametrize(("table", "where", "what"), [
    ('[variants.int8.regression]\nsise = "1%"\n', "variants.int8.regression.sise", "unknown key"),
    ("[variants.int8.regression]\nlatency = 0.05\n", "variants.int8.regression.latency",
     'a percentage such as "5%"'),
    ("[variants.int8.regression]\n", "variants.int8.regression", "empty budget table"),
    ('[variants.int8.regression]\nops = "strict"\n', "variants.int8.regression.ops",
     "'exact' or 'report'"),
    ('[variants.int8.regression]\nsize = "0 KiB"\n', "variants.int8.regression.size", "0"),
])
def test_a_bad_variant_table_names_the_file_and_the_key_path(tmp_path: Path, table: str,
                                                              where: str, what: str) -> None:
    path = tmp_path / "digits.toml"
    path.write_text('[variants.int8]\nsize = { max = "1 MiB" }\n' + table)
    with pytest.raises(BudgetFileError) as raised:
        load(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: invalid budget file:"), message
    (line,) = [line for line in message.splitlines() if line.strip().startswith(f"{where}:")]
    assert what in line, message


def test_the_inline_and_the_table_form_load_the_same(tmp_path: Path) -> None:
    inline, table = tmp_path / "inline.toml", tmp_path / "table.toml"
    inline.write_text('[variants.int8]\nregression = { size = "4%", ops = "exact" }\n')
    table.write_text('[variants.int8.regression]\nsize = "4%"\nops = "exact"\n')
    for path in (inline, table):
        own = load(path).variant("int8").regression
        assert own is not None and (own.size, own.ops) == (Relative(percent=4), "exact"), path


def test_a_variant_with_neither_budgets_nor_tolerances_is_still_refused(tmp_path: Path) -> None:
    # int8 checks its own tolerances; float32 checks nothing at all, so the file is refused,
    # and the message offers the variant's table among the fixes.
    path = tmp_path / "digits.toml"
    path.write_text('[variants.int8.regression]\nsize = "4%"\n[variants.float32]\n')
    with pytest.raises(BudgetFileError) as raised:
        load(path)
    message = str(raised.value)
    assert "[variants.float32] has no budgets, so it would pass without checking anything" in message
    assert "[variants.float32.regression] table" in message
    path.write_text('[variants.int8.regression]\nsize = "4%"\n')
    assert load(path).spec.regression is None
