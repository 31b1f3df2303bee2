"""A model file name chosen by a pull request runs nothing: every runner template that
docs/runners.md shows is run on hostile names, with fake ``adb`` and farm scripts standing in for
the phone and the farm, and LiteRT's real benchmark for the local runner.

The templates are read from the docs' TOML blocks, so a recipe added there is tested here (a
command without a fake below comes back ``unavailable`` and fails the test: add its fake).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from pytest_tflite import runner_config
from pytest_tflite.measure.runners import MODEL_NAME, command_line, measure_runner
from tests.helpers.models import chain_model

DOCS = Path(__file__).resolve().parents[3] / "docs" / "runners.md"
HOSTILE = ["x'$(id>PWNED)'y.tflite", "x{result}'$(touch PWNED)'y.tflite",
           'x"$(id>PWNED)"`id>PWNED`;id>PWNED;y.tflite']
TEXT_LINE = ("INFO: Inference timings in us: Init: 1500, First inference: 2500, "
             "Warmup (avg): 2100.5, Inference (avg): 1234.5")
# Each fake records the bytes of the model it was handed (``seen``) and the name it had.
FAKE_ADB = f"""\
    import pathlib, shutil, sys
    seen = pathlib.Path(SEEN)
    args = sys.argv[1:]
    if args == ["get-state"]:
        print("device")
    elif args[0] == "push":
        (seen / "name").write_text(pathlib.Path(args[1]).name)
        shutil.copyfile(args[1], seen / "bytes")
    elif args[0] == "shell":
        print({TEXT_LINE!r})
    else:
        sys.exit(f"fake adb: unexpected {{args}}")
    """
FAKE_FARM = f"""\
    import pathlib, shutil, sys
    seen = pathlib.Path(SEEN)
    args = sys.argv[1:]
    if "--check-credentials" not in args:
        model = pathlib.Path(args[args.index("--model") + 1])
        (seen / "name").write_text(model.name)
        shutil.copyfile(model, seen / "bytes")
        print({TEXT_LINE!r})
    """


def documented_runners() -> dict[str, runner_config.Runner]:
    """Every runner declared in a TOML block of docs/runners.md, read as a project would."""
    found: dict[str, runner_config.Runner] = {}
    for block in re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S):
        if "[tool.pytest-tflite.runners." in block:
            found.update(_declared(block))
    return found


def _declared(block: str) -> dict[str, runner_config.Runner]:
    """The runners ``block`` declares, read by the plugin's own loader from a pyproject.toml."""
    with tempfile.TemporaryDirectory() as folder:
        pyproject = Path(folder, "pyproject.toml")
        pyproject.write_text(block, encoding="utf-8")
        return dict(runner_config.load(pyproject).declared)


def test_the_docs_show_the_three_runner_templates() -> None:
    # The adb recipe (sh -c), LiteRT's benchmark ({python}, {result}), a farm script.
    runners = documented_runners()
    assert set(runners) == {"pixel", "litert", "farm"}
    assert runners["pixel"].command.startswith("sh -c '")


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder as the runner's working directory, with fake ``adb`` and ``python`` on
    PATH and the farm's script in ``ci/``; ``seen/`` receives what a fake was handed."""
    (tmp_path / "seen").mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text(f"#!{sys.executable}\n" + textwrap.dedent(
        FAKE_ADB.replace("SEEN", repr(str(tmp_path / "seen")))))
    adb.chmod(0o755)
    (bindir / "python").symlink_to(sys.executable)
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "farm_benchmark.py").write_text(textwrap.dedent(
        FAKE_FARM.replace("SEEN", repr(str(tmp_path / "seen")))))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("runner", sorted(documented_runners()))
def test_a_hostile_model_name_runs_nothing_under_any_documented_template(
        lab: Path, runner: str, hostile: str) -> None:
    content = chain_model([4, 4])
    model = lab / "models" / hostile
    model.parent.mkdir()
    model.write_bytes(content)
    found = measure_runner(documented_runners()[runner], model, 1, 120.0)
    assert not [str(p) for p in lab.rglob("PWNED")]  # anywhere: cwd, models/, the fakes' dirs
    assert not (Path.cwd() / "PWNED").exists()
    assert found.status == "ok", found.reason
    assert found.latency_ms is not None and found.latency_ms.mean is not None
    if runner == "litert":  # LiteRT read the model: its own figures came back
        assert found.latency_ms.n is not None and found.latency_ms.n > 0
    else:  # the fake was handed a readable copy, under the fixed name
        assert (lab / "seen" / "name").read_text() == MODEL_NAME
        assert (lab / "seen" / "bytes").read_bytes() == content
        assert found.latency_ms.mean == pytest.approx(1.2345)


def test_placeholders_are_substituted_in_one_pass(tmp_path: Path) -> None:
    # A value holding another placeholder stays what it was, one argv item.
    model = tmp_path / "{result}{threads}" / MODEL_NAME
    result = tmp_path / "r.json"
    argv = command_line("tool --model={model} --out {result} -t {threads} {python}", model, 3,
                        result)
    assert argv == ["tool", f"--model={model}", "--out", str(result), "-t", "3", sys.executable]


def test_the_old_double_quoted_recipe_is_safe_now_that_model_names_are_fixed(lab: Path) -> None:
    # The recipe the docs used to show (the model inside the sh -c script): still what users
    # may have copied. The name the shell parses is the scratch copy's, so nothing runs.
    script = ("adb push {model} /data/local/tmp/m.tflite >/dev/null && adb shell "
              "/data/local/tmp/benchmark_model --graph=/data/local/tmp/m.tflite "
              "--num_threads={threads}")
    old = runner_config.Runner("old", f'sh -c "{script}"', "benchmark-model-text")
    model = lab / "models" / HOSTILE[0]
    model.parent.mkdir()
    model.write_bytes(chain_model([4, 4]))
    found = measure_runner(old, model, 1, 60.0)
    assert not list(lab.rglob("PWNED"))
    assert found.status == "ok", found.reason
    assert (lab / "seen" / "name").read_text() == MODEL_NAME


def test_the_copy_is_all_the_runner_sees(lab: Path) -> None:
    # A runner that writes to its input changes the scratch copy, not the repository's file.
    model = lab / "m.tflite"
    model.write_bytes(chain_model([4, 4]))
    before = model.read_bytes()
    script = lab / "clobber.py"
    script.write_text("import sys\nopen(sys.argv[1], 'wb').write(b'gone')\n"
                      f"print({TEXT_LINE!r})\n")
    runner = runner_config.Runner("clobber", shlex.join([sys.executable, str(script)]) +
                                  " {model}", "benchmark-model-text")
    found = measure_runner(runner, model, 1, 60.0)
    assert found.status == "ok", found.reason
    assert model.read_bytes() == before
