"""A misspelled key, delegate or budget name is refused at load with the nearest right one."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_tflite.budget import load
from pytest_tflite.budget.loading import known_keys
from pytest_tflite.errors import BudgetFileError

SPELLING = "unknown key (check the spelling; `tflite-budget schema` lists the keys)"


def _refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "model.toml"
    path.write_text(text)
    with pytest.raises(BudgetFileError) as refused:
        load(path)
    return str(refused.value)


@pytest.mark.parametrize(("text", "says"), [
    ("[variants.v]\nsise = { max = 100 }\n",
     "variants.v.sise: unknown key (did you mean 'size'?)"),
    ("[variants.v]\nsize = { maxx = 100 }\n",
     "variants.v.size.maxx: unknown key (did you mean 'max'?) (got 100)"),
    ("[variants.v.latency.xnnpack]\nmedain = 1\n",
     "variants.v.latency.xnnpack.medain: unknown key (did you mean 'median'?) (got 1)"),
    ("[variants.v.memory.builtin]\narean = 1\n",
     "variants.v.memory.builtin.arean: unknown key (did you mean 'arena'?) (got 1)"),
    ("[variants.v.fidelity.cross]\nagainst = \"builtin\"\nmin_cosin = 0.5\n",
     "variants.v.fidelity.cross.min_cosin: unknown key (did you mean 'min_cosine'?) (got 0.5)"),
    ("[defaults.runtime]\ntreads = 2\n",
     "defaults.runtime.treads: unknown key (did you mean 'threads'?) (got 2)"),
    ("[regresion]\nsize = \"5%\"\n", "regresion: unknown key (did you mean 'regression'?)"),
    ("modle = \"x\"\n", "modle: unknown key (did you mean 'model'?) (got 'x')"),
    ("[variants.v]\nzzzzzz = 1\n", f"variants.v.zzzzzz: {SPELLING} (got 1)"),
])
def test_an_unknown_key_names_the_nearest_key_of_its_table(tmp_path, text, says):
    assert _refused(tmp_path, text).splitlines()[1:] == [f"  {says}"]


DELEGATE_HINT = "(did you mean 'xnnpack'?); expected one of xnnpack, builtin, reference, gpu, npu"


@pytest.mark.parametrize(("text", "says"), [
    ("[variants.v.latency.xnnpak]\nmedian = 1\n",
     f"variants.v.latency.xnnpak: unknown delegate 'xnnpak' {DELEGATE_HINT}"),
    ("[variants.v.runtime]\ndelegates = [\"xnnpak\"]\n",
     f"variants.v.runtime.delegates.0: unknown delegate 'xnnpak' {DELEGATE_HINT}"),
    ("[variants.v.memory.xnnpak]\narena = 1\n",
     f"variants.v.memory.xnnpak: unknown delegate 'xnnpak' {DELEGATE_HINT}"),
    ("[variants.v.delegation.buildin]\nmin_fraction = 0.5\n",
     "variants.v.delegation.buildin: unknown delegate 'buildin' (did you mean 'builtin'?); "),
    ("[variants.v.latency.tpu9000]\nmedian = 1\n",
     "variants.v.latency.tpu9000: unknown delegate 'tpu9000'; expected one of"),
])
def test_an_unknown_delegate_names_the_nearest_delegate(tmp_path, text, says):
    assert f"  {says}" in _refused(tmp_path, text)


def test_the_keys_a_table_takes_are_read_off_the_schema():
    assert known_keys(["variants", "v", "size"]) == ["max", "max_gzip"]
    assert {"size", "latency", "memory", "runtime"} <= set(known_keys(["variants", "v"]))
    assert {"median", "p90"} <= set(known_keys(["variants", "v", "latency", "xnnpack"]))


def test_a_missing_budget_file_names_the_nearest_one_beside_it(tmp_path):
    for name in ("digits_cnn", "digits_mlp", "speech"):
        (tmp_path / f"{name}.toml").write_text("[variants.v]\n")
    with pytest.raises(BudgetFileError) as missing:
        load(tmp_path / "digit_cnn.toml")
    assert str(missing.value).startswith(
        f"budget file {tmp_path / 'digit_cnn.toml'} does not exist (did you mean 'digits_cnn'?) "
        f"(budget files there: digits_cnn.toml, digits_mlp.toml, speech.toml). Create it")
    with pytest.raises(BudgetFileError) as far:
        load(tmp_path / "vision.toml")
    assert "does not exist (budget files there: digits_cnn.toml" in str(far.value)
    with pytest.raises(BudgetFileError) as empty:
        load(tmp_path / "none" / "speech.toml")
    assert f"does not exist (no budget files in {tmp_path / 'none'})" in str(empty.value)


def test_a_misspelled_delegate_option_names_the_nearest():
    """--tflite-delegates and `tflite-budget init --delegates` share this argument type."""
    import argparse

    from pytest_tflite.arguments import delegate_list

    with pytest.raises(argparse.ArgumentTypeError) as refused:
        delegate_list("xnnpack,buitin")
    assert str(refused.value).startswith(
        "unknown delegate(s) buitin (did you mean 'builtin'?); expected a comma-separated list")
