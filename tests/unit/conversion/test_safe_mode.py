"""Model files are code: a ``.h5``/``.keras`` whose Lambda layer carries Python bytecode loads
in Keras's safe mode, so the bytecode never runs, unless the budget (or the caller) says
``unsafe_source``. The Lambda here touches a file when it runs: the file tells whether it ran.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite import engine
from pytest_tflite.budget import load
from pytest_tflite.checker import BudgetChecker
from pytest_tflite.conversion.recipes import convert
from pytest_tflite.errors import ModelError

pytestmark = pytest.mark.filterwarnings("ignore")


def _lambda_model(keras: Any, ran: Path) -> Any:
    # The default argument travels with the marshalled bytecode into the file.
    touch = eval(f"lambda x, ran={str(ran)!r}: (__import__('pathlib').Path(ran).touch(), x)[1]")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(touch),
                              keras.layers.Dense(2)])
    return model


@pytest.fixture(scope="module")
def tf_keras_h5(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import tf_keras

    folder = tmp_path_factory.mktemp("h5")
    ran = folder / "RAN"
    path = folder / "evil.h5"
    _lambda_model(tf_keras, ran).save(path)
    ran.unlink()  # building the model ran it here, in the test: not what is checked
    return path, ran


def test_a_tf_keras_h5_lambda_is_refused_in_safe_mode_and_never_runs(
        tf_keras_h5: tuple[Path, Path]) -> None:
    path, ran = tf_keras_h5
    with pytest.raises(ModelError) as refused:
        convert(path, sanity=False)
    message = str(refused.value)
    assert message.startswith(f"{path}: loading it would run Python code stored in the file")
    assert "unsafe_source = true" in message and "unsafe_source=True" in message
    assert not ran.exists()


def test_unsafe_source_in_the_budget_lets_a_reviewed_h5_load(
        tf_keras_h5: tuple[Path, Path], tmp_path: Path) -> None:
    path, ran = tf_keras_h5
    budget_path = tmp_path / "b.toml"
    for unsafe in ("false", "true"):
        budget_path.write_text(textwrap.dedent(f"""
            unsafe_source = {unsafe}
            [variants.float32]
            size = {{ max = "1 MiB" }}
            """))
        checker = BudgetChecker(load(budget_path), "t", lambda *_: None,
                                engine.Settings(runtime_off="off"), lambda *_: None)
        if unsafe == "false":
            with pytest.raises(ModelError, match="unsafe_source = true"):
                checker.check(path)
            assert not ran.exists()
        else:
            entry = checker.check(path)
            assert entry["variant"] == "float32" and ran.exists()  # the reviewed code ran


def test_a_keras3_lambda_is_refused_too(tmp_path: Path) -> None:
    import keras

    ran = tmp_path / "RAN"
    path = tmp_path / "evil.keras"
    _lambda_model(keras, ran).save(path)
    ran.unlink(missing_ok=True)
    with pytest.raises(ModelError, match="loading it would run Python code"):
        convert(path, sanity=False)
    assert not ran.exists()
