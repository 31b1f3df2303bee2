"""The GitHub workflows, run as GitHub would: a gate that is green on an over-budget model is no gate.

Each ``run:`` step gets the shell GitHub would give it (step ``shell:`` > job ``defaults.run.shell``
> workflow ``defaults.run.shell`` > unset, which is ``bash -e {0}``: no pipefail). The gate
workflow's pytest step then runs as written on the example project, made over budget through
``PYTEST_ADDOPTS``, and must exit non-zero; with the real budgets it must exit 0.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
GATE_WORKFLOW = ROOT / ".github" / "workflows" / "tflite-gate.yml"
EXAMPLE = ROOT / "example_project"

# GitHub's shells on Linux runners:
# https://docs.github.com/actions/reference/workflows-and-actions/workflow-syntax#jobsjob_idstepsshell
SHELLS = {
    None: "bash -e {0}",  # unset (bash is on the runner)
    "bash": "bash --noprofile --norc -eo pipefail {0}",
    "sh": "sh -e {0}",
    "python": "python {0}",
}
SUFFIXES = {"python": ".py"}


@dataclass
class RunStep:
    name: str
    script: str
    shell: str | None  # as written (None: unset)
    command: str  # the template GitHub runs, with {0}
    condition: str | None
    env: dict[str, str] = field(default_factory=dict)
    working_directory: str | None = None

    @property
    def pipefail(self) -> bool:
        argv = shlex.split(self.command)
        return argv[0] in ("bash", "sh") and any(
            a == "pipefail" and argv[i - 1] in ("-o", "-eo") for i, a in enumerate(argv)
        )


def github_shell(shell: str | None) -> str:
    """The command template GitHub runs a step with (``{0}`` is the script file)."""
    if shell in SHELLS:
        return SHELLS[shell]
    if shell is not None and "{0}" in shell:  # a custom shell, e.g. "bash -x {0}"
        return shell
    raise AssertionError(f"shell {shell!r} is not one a Linux runner has (pwsh, cmd: not emulated)")


def load_workflow(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and isinstance(data.get("jobs"), dict), f"{path}: not a workflow"
    return data


def run_steps(path: Path) -> dict[str, list[RunStep | str]]:
    """Every job's steps: a RunStep for each ``run:``, the action name for each ``uses:``."""
    wf = load_workflow(path)
    wf_run = (wf.get("defaults") or {}).get("run") or {}
    jobs: dict[str, list[RunStep | str]] = {}
    for job_id, job in wf["jobs"].items():
        job_run = (job.get("defaults") or {}).get("run") or {}
        steps: list[RunStep | str] = []
        for i, step in enumerate(job.get("steps", [])):
            if "uses" in step:
                steps.append(step["uses"])
                continue
            assert "run" in step, f"{path}:{job_id} step {i}: neither run nor uses"
            shell = step.get("shell", job_run.get("shell", wf_run.get("shell")))
            steps.append(RunStep(
                name=step.get("name") or step["run"].splitlines()[0],
                script=step["run"],
                shell=shell,
                command=github_shell(shell),
                condition=step.get("if"),
                env={**(wf.get("env") or {}), **(job.get("env") or {}), **(step.get("env") or {})},
                working_directory=step.get("working-directory",
                                           job_run.get("working-directory", wf_run.get("working-directory"))),
            ))
        jobs[job_id] = steps
    return jobs


def execute(step: RunStep, workspace: Path, env: dict[str, str],
            tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run one step as the runner would: script written to a file, ``{0}`` replaced by its path."""
    assert "${{" not in step.script, f"step {step.name!r}: expressions are not emulated"
    fd, name = tempfile.mkstemp(suffix=SUFFIXES.get(step.shell or "", ".sh"), dir=tmp)
    with os.fdopen(fd, "w") as f:
        f.write(step.script)
    script = Path(name)
    argv = [str(script) if a == "{0}" else a for a in shlex.split(step.command)]
    cwd = workspace / step.working_directory if step.working_directory else workspace
    return subprocess.run(argv, cwd=cwd, env={**env, **step.env}, capture_output=True, text=True,
                          timeout=300)


def base_env(tmp: Path) -> dict[str, str]:
    """This venv first on PATH (what setup-python + the install step give), no outer pytest state."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "GITHUB_")) and k != "TF_USE_LEGACY_KERAS"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["GITHUB_STEP_SUMMARY"] = str(tmp / "step_summary.md")
    env["CI"] = "true"
    return env


# --- the shell emulation itself, on tiny scripts (fast) ---------------------------------------

STEPS_YAML = """
name: t
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - run: false | tee out.txt
      - run: false | tee out.txt
        shell: bash
"""


def test_default_shell_has_no_pipefail_and_bash_has(tmp_path: Path) -> None:
    """The fact the gate relies on: unset shell is green on a failing pipe, ``shell: bash`` is red."""
    wf = tmp_path / "t.yml"
    wf.write_text(STEPS_YAML)
    default, bash = run_steps(wf)["j"]
    assert isinstance(default, RunStep) and isinstance(bash, RunStep)
    assert (default.command, default.pipefail) == ("bash -e {0}", False)
    assert (bash.command, bash.pipefail) == ("bash --noprofile --norc -eo pipefail {0}", True)
    env = base_env(tmp_path)
    assert execute(default, tmp_path, env, tmp_path).returncode == 0
    assert execute(bash, tmp_path, env, tmp_path).returncode == 1


def test_shell_precedence(tmp_path: Path) -> None:
    wf = tmp_path / "t.yml"
    wf.write_text("""
name: t
on: push
defaults: {run: {shell: sh}}
jobs:
  a:
    runs-on: ubuntu-latest
    defaults: {run: {shell: bash}}
    steps:
      - run: echo job
      - run: echo step
        shell: python
  b:
    runs-on: ubuntu-latest
    steps:
      - run: echo workflow
""")
    jobs = run_steps(wf)
    assert [s.command for s in jobs["a"] if isinstance(s, RunStep)] == [SHELLS["bash"], SHELLS["python"]]
    assert [s.command for s in jobs["b"] if isinstance(s, RunStep)] == [SHELLS["sh"]]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_no_pipe_without_pipefail(workflow: Path) -> None:
    """A ``run:`` that pipes must get pipefail, or its status is that of the pipe's last command."""
    for job_id, steps in run_steps(workflow).items():
        for step in steps:
            if isinstance(step, RunStep) and step.command.split()[0] in ("bash", "sh"):
                pipes = re.search(r"(?<![|>])\|(?!\|)", step.script)
                assert not pipes or step.pipefail, (
                    f"{workflow.name}:{job_id} step {step.name!r} pipes under `{step.command}`, "
                    "which has no pipefail: add `shell: bash`")


def test_workflows_found() -> None:
    assert GATE_WORKFLOW in WORKFLOWS


# --- the gate workflow, run as written on the example project -------------------------------

GATE_STEP = re.compile(r"\bpytest\b")
INSTALL_STEP = re.compile(r"^pip install -e '\.\[example\]'$")


@dataclass
class GateRun:
    name: str  # the pytest step's name
    status: int  # its exit status
    output: str  # its stdout and stderr
    failed: list[str]  # names of the job's steps that failed
    summary: str  # what the steps wrote to $GITHUB_STEP_SUMMARY
    checks: list[dict[str, Any]]  # the checks in the gate's --tflite-report file


def run_gate_job(workflow: Path, tmp: Path, addopts: str) -> GateRun:
    """The gate job's steps in order on a copy of the example project.

    ``uses:`` steps (checkout, setup-python, upload-artifact) are the runner's business; the
    install step is what this venv already is. Every other step is run, as written.
    """
    (job,) = run_steps(workflow).values()
    workspace = tmp / "workspace"
    shutil.copytree(EXAMPLE, workspace / "example_project",
                    ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__", "*.pyc"))
    env = base_env(tmp)
    env["PYTEST_ADDOPTS"] = addopts
    gate: subprocess.CompletedProcess[str] | None = None
    gate_name = ""
    failed: list[str] = []
    for step in job:
        if isinstance(step, str):
            continue
        if INSTALL_STEP.match(step.script.strip()):
            assert find_spec("pytest_tflite") and find_spec("sklearn"), "the example extra is not installed"
            continue
        if step.condition is None:
            if failed:
                continue  # success(): GitHub skips the step after a failure
        else:
            assert step.condition == "always()", f"condition {step.condition!r} is not emulated"
        proc = execute(step, workspace, env, tmp)
        if proc.returncode:
            failed.append(step.name)
        if GATE_STEP.search(step.script):
            assert gate is None, "two pytest steps in the gate job"
            gate, gate_name = proc, step.name
    assert gate is not None, f"{workflow.name}: no pytest step"
    summary = Path(env["GITHUB_STEP_SUMMARY"])
    report = workspace / "tflite-report.json"
    checks = [c for e in json.loads(report.read_text())["entries"] for c in e["checks"]] \
        if report.exists() else []
    return GateRun(gate_name, gate.returncode, gate.stdout + gate.stderr, failed,
                   summary.read_text() if summary.exists() else "", checks)


def over_budget_dir(tmp: Path) -> Path:
    """The example's budgets, but float32 must fit in 100 bytes."""
    budgets = tmp / "over_budgets"
    budgets.mkdir()
    text = (EXAMPLE / "budgets" / "digits_cnn.toml").read_text()
    text, n = re.subn(r'(\[variants\.float32\]\s*\nsize = \{ max = )"[^"]+"', r'\1"100 B"', text)
    assert n == 1, "digits_cnn.toml's float32 size budget moved: update this test"
    (budgets / "digits_cnn.toml").write_text(text)
    return budgets


TABLE_ROW = re.compile(r"^digits_cnn\s+float32\s", re.MULTILINE)


def verdicts(run: GateRun) -> list[tuple[str, str]]:
    return [(c["metric"], c["verdict"]) for c in run.checks]


def test_gate_fails_on_an_over_budget_model(tmp_path: Path) -> None:
    run = run_gate_job(GATE_WORKFLOW, tmp_path, f"--tflite-budget-dir={over_budget_dir(tmp_path)} -k float32")
    # Red for the right reason: pytest ran the model, and its size check failed.
    assert ("size.max", "fail") in verdicts(run), run.output[-3000:]
    assert run.status != 0, f"the gate step is green on an over-budget model:\n{run.output[-3000:]}"
    assert run.name in run.failed
    # The job summary step (`if: always()`) still shows the table.
    assert "tflite budgets" in run.summary and TABLE_ROW.search(run.summary), run.summary


def test_gate_passes_within_budget(tmp_path: Path) -> None:
    """The control: a gate that is always red is no better than one always green."""
    run = run_gate_job(GATE_WORKFLOW, tmp_path, "-k float32")
    assert run.status == 0, run.output[-3000:]
    assert ("size.max", "pass") in verdicts(run)
    assert all(verdict != "fail" for _, verdict in verdicts(run)), verdicts(run)
    assert run.failed == []
    assert run.summary.startswith("```\n") and run.summary.rstrip().endswith("```"), run.summary
    assert "tflite budgets" in run.summary and TABLE_ROW.search(run.summary), run.summary
