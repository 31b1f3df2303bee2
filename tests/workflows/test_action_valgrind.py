"""The action's ``valgrind`` input, its step run as GitHub would (``tests/workflows/test_workflows.py``
emulates the runner): ``auto`` installs valgrind when a budget file under the test arguments has
a cost key, ``true`` always, ``false`` never; the install is ``sudo apt-get install -y valgrind``
(a fake ``sudo`` records it here), skipped when valgrind is on PATH already."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.workflows.test_workflows import (
    ACTION,
    Context,
    RunStep,
    action_steps,
    base_env,
    execute,
    load_action,
    read_file_command,
)

COST = '[variants.int8.cost.xnnpack]\ninstructions = "16M"\n'
REGRESSION = '[variants.int8]\nsize = { max = "1 MiB" }\n[regression]\ninstructions = "0.5%"\n'
PLAIN = '[variants.int8]\nsize = { max = "1 MiB" }\n[regression]\nsize = "1%"\n'


def _run(tmp: Path, checkout: Path, valgrind: str, test_args: str = "",
         has_valgrind: bool = False) -> tuple[int, str, dict[str, str], list[str]]:
    """The step with these inputs: (exit status, output, its outputs, the sudo commands run).
    PATH holds bash, this venv's python3 and a fake sudo, and valgrind only if asked."""
    (step,) = [s for s in action_steps(ACTION) if isinstance(s, RunStep) and s.id == "valgrind"]
    context = Context({}, "", inputs={"valgrind": valgrind, "test-args": test_args,
                                      "working-directory": "."})
    step = replace(step, script=context.substitute(step.script),
                   env={k: context.substitute(v) for k, v in step.env.items()})
    fake = tmp / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "bash").unlink(missing_ok=True)
    (fake / "bash").symlink_to("/bin/bash")
    python = fake / "python3"
    python.unlink(missing_ok=True)
    python.symlink_to(sys.executable)
    log = tmp / "sudo.log"
    (fake / "sudo").write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
    (fake / "sudo").chmod(0o755)
    if has_valgrind:
        (fake / "valgrind").write_text("#!/bin/sh\n")
        (fake / "valgrind").chmod(0o755)
    env = {**base_env(tmp), "PATH": str(fake), "GITHUB_OUTPUT": str(tmp / "output")}
    proc = execute(step, checkout, env, tmp)
    outputs = read_file_command(tmp / "output") if (tmp / "output").exists() else {}
    sudo = log.read_text().splitlines() if log.exists() else []
    for path in (tmp / "output", log, fake / "valgrind"):
        path.unlink(missing_ok=True)
    return proc.returncode, proc.stdout + proc.stderr, outputs, sudo


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    folder = tmp_path / "checkout"
    (folder / "budgets").mkdir(parents=True)
    (folder / "tests" / "models").mkdir(parents=True)
    (folder / "budgets" / "plain.toml").write_text(PLAIN)
    return folder


def test_auto_installs_valgrind_when_a_budget_file_has_a_cost_key(tmp_path: Path,
                                                                  checkout: Path) -> None:
    status, output, outputs, sudo = _run(tmp_path, checkout, "auto", "tests -n auto")
    assert (status, outputs, sudo) == (0, {"wanted": "false"}, []), output
    (checkout / "tests" / "models" / "detector.toml").write_text(COST)
    status, output, outputs, sudo = _run(tmp_path, checkout, "auto", "tests -n auto")
    assert (status, outputs["wanted"]) == (0, "true"), output
    assert sudo == ["apt-get update -q", "apt-get install -y valgrind"]
    # Already on PATH: nothing to install.
    assert _run(tmp_path, checkout, "auto", "tests", has_valgrind=True)[3] == []


def test_auto_reads_only_the_paths_given_and_the_budget_folder(tmp_path: Path,
                                                               checkout: Path) -> None:
    (checkout / "other").mkdir()
    (checkout / "other" / "detector.toml").write_text(COST)
    assert _run(tmp_path, checkout, "auto", "tests")[2] == {"wanted": "false"}
    assert _run(tmp_path, checkout, "auto", "other/detector.toml::test_x")[2] == {"wanted": "true"}
    # No paths among the arguments: the whole folder, as pytest's testpaths may be anywhere.
    assert _run(tmp_path, checkout, "auto", "-k detector")[2] == {"wanted": "true"}
    (checkout / "other" / "detector.toml").unlink()
    (checkout / "budgets" / "regressions.toml").write_text(REGRESSION)
    assert _run(tmp_path, checkout, "auto", "tests")[2] == {"wanted": "true"}


def test_true_and_false_decide_alone_and_other_values_are_refused(tmp_path: Path,
                                                                  checkout: Path) -> None:
    status, _, outputs, sudo = _run(tmp_path, checkout, "true")
    assert (status, outputs, sudo[-1:]) == (0, {"wanted": "true"}, ["apt-get install -y valgrind"])
    (checkout / "budgets" / "detector.toml").write_text(COST)
    status, _, outputs, sudo = _run(tmp_path, checkout, "false")
    assert (status, outputs, sudo) == (0, {"wanted": "false"}, [])
    status, output, _, sudo = _run(tmp_path, checkout, "yes")
    assert status == 1 and "takes auto, true or false" in output and sudo == []


def test_the_input_is_documented_and_defaults_to_auto() -> None:
    spec = load_action(ACTION)["inputs"]["valgrind"]
    assert spec["default"] == "auto"
    assert "sudo apt-get" in spec["description"] and "cost" in spec["description"]
