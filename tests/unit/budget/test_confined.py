"""A budget file's ``source`` and ``external:PATH`` delegates stay inside the project's root,
symlinks resolved, unless the file says why they may not (``allow_outside_rootdir``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_tflite.budget import load
from pytest_tflite.budget.confined import project_root
from pytest_tflite.errors import BudgetFileError

SIZE = '[variants.v]\nsize = { max = "1 MiB" }\n'


def _budget(root: Path, text: str) -> Path:
    path = root / "budgets" / "m.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_an_absolute_source_outside_the_root_is_refused_naming_key_and_way_out(
        tmp_path: Path) -> None:
    root = tmp_path / "project"
    path = _budget(root, f'source = "/etc/passwd"\n{SIZE}')
    with pytest.raises(BudgetFileError) as refused:
        load(path, root=root)
    message = str(refused.value)
    assert message.startswith(f"{path}: source = '/etc/passwd' resolves to /etc/passwd, outside")
    assert str(root) in message and 'allow_outside_rootdir = "why"' in message


def test_a_symlink_inside_the_root_is_followed_to_where_it_leads(tmp_path: Path) -> None:
    root = tmp_path / "project"
    secret = tmp_path / "secret.tflite"
    secret.write_bytes(b"not yours")
    (root / "models").mkdir(parents=True)
    (root / "models" / "m.tflite").symlink_to(secret)
    path = _budget(root, f'source = "../models/m.tflite"\n{SIZE}')
    with pytest.raises(BudgetFileError) as refused:
        load(path, root=root)
    assert f"resolves to {secret}, outside" in str(refused.value)
    escape = _budget(root, f'source = "../../secret.tflite"\n{SIZE}')  # .. out of the root
    with pytest.raises(BudgetFileError, match=r"source = '\.\./\.\./secret\.tflite'"):
        load(escape, root=root)


def test_a_source_inside_the_root_loads(tmp_path: Path) -> None:
    root = tmp_path / "project"
    path = _budget(root, f'source = "../models/m.tflite"\n{SIZE}')
    assert load(path, root=root).source == (root / "models" / "m.tflite").resolve()


@pytest.mark.parametrize(("text", "key"), [
    ('[variants.v.latency."external:/opt/evil/lib.so"]\nmedian = "1 s"\n',
     'variants.v.latency."external:/opt/evil/lib.so"'),
    ('[defaults.runtime]\ndelegates = ["xnnpack", "external:../lib.so"]\n' + SIZE,
     "defaults.runtime.delegates"),
    ('[variants.v]\naccuracy = { min = 0.5, delegates = ["external:/tmp/x/lib.so"] }\n',
     "variants.v.accuracy.delegates"),
])
def test_an_external_delegate_outside_the_root_is_refused_by_its_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str) -> None:
    root = tmp_path / "project"
    path = _budget(root, text)
    monkeypatch.chdir(root)  # external paths are relative to the working directory
    with pytest.raises(BudgetFileError) as refused:
        load(path, root=root)
    assert f"{path}: {key} = 'external:" in str(refused.value)
    assert "outside the project's root" in str(refused.value)


def test_external_delegates_inside_the_root_or_by_library_name_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    path = _budget(root, '[variants.v.latency."external:delegates/lib.so"]\nmedian = "1 s"\n'
                         '[variants.v.latency."external:libedgetpu.so.1"]\nmedian = "1 s"\n')
    monkeypatch.chdir(root)
    assert set(load(path, root=root).variant("v").latency) == {"external:delegates/lib.so",
                                                               "external:libedgetpu.so.1"}


def test_allow_outside_rootdir_opts_out_and_must_say_why(tmp_path: Path) -> None:
    root = tmp_path / "project"
    path = _budget(root, f'allow_outside_rootdir = "the lab\'s shared models"\n'
                         f'source = "/srv/models/m.tflite"\n{SIZE}')
    assert load(path, root=root).source == Path("/srv/models/m.tflite")
    blank = _budget(root, f'allow_outside_rootdir = " "\nsource = "/srv/m.tflite"\n{SIZE}')
    with pytest.raises(BudgetFileError, match="allow_outside_rootdir: say why"):
        load(blank, root=root)


def test_without_a_root_given_the_project_above_the_file_is_the_root(tmp_path: Path) -> None:
    root = tmp_path / "project"
    path = _budget(root, f'source = "/etc/passwd"\n{SIZE}')
    assert project_root(path) is None  # no marker: a scratch folder, nothing to hold it to
    assert load(path).source == Path("/etc/passwd")
    (root / ".git").mkdir()  # a checkout: `tflite-budget check` and scripts find it
    assert project_root(path) == root.resolve()
    with pytest.raises(BudgetFileError, match="outside the project's root"):
        load(path)


def test_unsafe_source_is_off_unless_the_file_says_so(tmp_path: Path) -> None:
    # Its effect (a Lambda .h5 loads, or is refused): tests/unit/conversion/test_safe_mode.py.
    root = tmp_path / "project"
    assert not load(_budget(root, f'source = "../m.h5"\n{SIZE}'), root=root).spec.unsafe_source
    assert load(_budget(root, f'unsafe_source = true\nsource = "../m.h5"\n{SIZE}'),
                root=root).spec.unsafe_source


def test_a_rootdir_inside_the_project_widens_to_the_project(tmp_path: Path) -> None:
    # `pytest budgets/` without an ini file: pytest's rootdir is budgets/, the project is above.
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    path = _budget(root, f'source = "../models/m.tflite"\n{SIZE}')
    assert load(path, root=root / "budgets").source == (root / "models" / "m.tflite").resolve()
    with pytest.raises(BudgetFileError, match="outside the project's root"):
        load(_budget(root, f'source = "../../elsewhere.tflite"\n{SIZE}'), root=root / "budgets")
