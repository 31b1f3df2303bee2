"""The README's ``.tflite`` quickstart, followed exactly in a new venv, timed.

Reads the first ``bash`` block under the README's "## Quickstart" heading and runs its commands
one by one in a fresh project directory, with a new venv's ``bin`` first on ``PATH``: so the
bench breaks when the README's commands stop working. The one substitution: the install's git
URL becomes this checkout's path (no network here but the package index pip is configured
with). Before the commands run, the model the ``init`` command names is written as a small
``.tflite`` built without TensorFlow (``tests/helpers/models.py``). After them, the bench
asserts that the budget file ``init -o`` wrote exists, that ``pytest`` passed at least one
test, that the section's ``tflite-budget check --budget FILE`` (in its prose) exits 0, and that
``import tensorflow`` fails in the venv.

Prints each step's wall time and the total, venv creation and installs included.
Target: under 5 minutes in all.

Run: python bench/tflite_quickstart.py [--keep]   (--keep leaves the temporary directory)
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TARGET_S = 300.0


def quickstart(readme: str) -> str:
    """The README's "## Quickstart" section."""
    _, found, rest = readme.partition("\n## Quickstart")
    if not found:
        raise SystemExit(f"{README}: no '## Quickstart' section")
    return rest.split("\n## ", 1)[0]


def quickstart_commands(section: str) -> list[list[str]]:
    """The commands of the section's first ``bash`` block, each split as a shell would
    (comments dropped)."""
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    if block is None:
        raise SystemExit(f"{README}: no ```bash block in the Quickstart section")
    commands = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    return [command for command in commands if command]


def check_command(section: str) -> list[str]:
    """The ``tflite-budget check --budget FILE`` the section's prose shows."""
    found = re.search(r"`(tflite-budget check --budget [^`]+)`", section)
    if found is None:
        raise SystemExit(f"{README}: the Quickstart section shows no `tflite-budget check --budget`")
    return shlex.split(found.group(1))


def local_install(command: list[str]) -> list[str]:
    """The install command with its git URL (``git+https://...`` or ``NAME @ git+https://...``)
    replaced by this checkout: the same install, from the repository, without the network."""
    replaced = [str(ROOT) if re.search(r"(^|@ ?)git\+", word) else word for word in command]
    if replaced == command:
        raise SystemExit(f"the README's install command has no git URL to replace: {command}")
    return replaced


def step(name: str, argv: list[str], cwd: Path, env: dict[str, str],
         times: list[tuple[str, float]], expect_ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one command, record its wall time, and stop with its output if it fails."""
    print(f"$ {shlex.join(argv)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    times.append((name, time.perf_counter() - started))
    if expect_ok and done.returncode != 0:
        print(done.stdout[-6000:], done.stderr[-6000:], sep="\n")
        raise SystemExit(f"step {name!r} failed with exit status {done.returncode}")
    return done


def build_model(path: Path) -> None:
    """A small float model, one FULLY_CONNECTED layer of 64x32 weights, with no TensorFlow."""
    sys.path.insert(0, str(ROOT))
    from tests.helpers.models import dense_model

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dense_model(64, inputs=32))


def main(argv: list[str]) -> int:
    keep = argv == ["--keep"]
    if argv and not keep:
        print(__doc__)
        return 2
    section = quickstart(README.read_text(encoding="utf-8"))
    commands = quickstart_commands(section)
    programs = [" ".join(command[:2]) for command in commands]
    if len(commands) != 3 or programs[0] != "pip install" or programs[1] != "tflite-budget init" \
            or commands[2][0] != "pytest":
        raise SystemExit(f"the README's quickstart is not 'pip install', 'tflite-budget init', "
                         f"'pytest': {programs}; update this bench with it")
    install, init, test = local_install(commands[0]), commands[1], commands[2]
    model = next((Path(word) for word in init[2:] if word.endswith(".tflite")), None)
    output = next((Path(init[i + 1]) for i, word in enumerate(init[:-1]) if word in ("-o", "--output")), None)
    if model is None or output is None:
        raise SystemExit(f"the README's init command names no .tflite model or no -o FILE: {init}")

    scratch = Path(tempfile.mkdtemp(prefix="tflite-quickstart-"))
    venv, project = scratch / "venv", scratch / "project"
    project.mkdir()
    build_model(project / model)
    # The venv's bin first on PATH, as `. venv/bin/activate` would; nothing of this checkout's
    # own environment (PYTHONPATH, a pytest option) leaks into it.
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTHONHOME")}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    times: list[tuple[str, float]] = []
    total_started = time.perf_counter()
    try:
        base_python = getattr(sys, "_base_executable", sys.executable)
        step("python -m venv", [base_python, "-m", "venv", str(venv)], scratch, env, times)
        step("pip install (the repository)", install, project, env, times)
        step("tflite-budget init -o", init, project, env, times)
        if not (project / output).is_file():
            raise SystemExit(f"init wrote no {output}")
        budget_text = (project / output).read_text(encoding="utf-8")
        tested = step("pytest budgets/", test, project, env, times)
        summary = tested.stdout.strip().splitlines()[-1].strip("= ") if tested.stdout.strip() else ""
        if " passed" not in summary or "failed" in summary or "error" in summary:
            print(tested.stdout[-6000:])
            raise SystemExit(f"pytest did not pass: {summary!r}")
        total = time.perf_counter() - total_started
        step("tflite-budget check --budget", check_command(section), project, env, times)
        no_tf = step("import tensorflow (must fail)", ["python", "-c", "import tensorflow"],
                     project, env, times, expect_ok=False)
        if no_tf.returncode == 0:
            raise SystemExit("TensorFlow is importable in the quickstart's venv")
    finally:
        if keep:
            print(f"kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nThe README's .tflite quickstart in a new venv (Python {sys.version.split()[0]}):")
    for name, seconds in times:
        print(f"  {name:<32} {seconds:7.1f} s")
    print(f"  pytest budgets/ said: {summary}")
    verdict = "within" if total < TARGET_S else "OVER"
    print(f"total, venv and installs included: {total:.1f} s ({verdict} the {TARGET_S:.0f} s target)")
    print(f"\n{output}, as init wrote it:\n{budget_text}")
    return 0 if total < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
