"""Runners: latency from a command declared in pyproject.toml (LiteRT's own benchmark here; a
phone over adb or a device farm in a lab), judged like a delegate's.

Real commands throughout: LiteRT's ``benchmark_litert_model``, and small Python scripts that
print benchmark_model's text format, fail, print garbage or hang. Parsing cases go through the
engine; skip and require cases through the plugin (pytester).
"""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite import engine, runner_config
from pytest_tflite.budget import load
from pytest_tflite.errors import BudgetFileError
from pytest_tflite.measure.runners import parse
from pytest_tflite.model import TFLiteModel
from pytest_tflite.results import Check, Entry
from pytest_tflite.runner_config import RunnerConfigError
from tests.helpers.models import chain_model

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

PYTHON = sys.executable
TEXT_LINE = ("INFO: Inference timings in us: Init: 1500, First inference: 2500, "
             "Warmup (avg): 2100.5, Inference (avg): 1.2345e+03")


def _project(folder: Path, runners: str, budget: str) -> tuple[Path, Path]:
    """A model, a pyproject declaring ``runners`` and a budget file holding ``budget``."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "m.tflite"
    model.write_bytes(chain_model([64, 64, 64]))
    (folder / "pyproject.toml").write_text(textwrap.dedent(runners))
    path = folder / "budgets" / "m.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(budget))
    return model, path


def _script(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return shlex.join([PYTHON, str(path)])


def _check(model: Path, budget_path: Path, *, known: bool = True, threads: int = 1,
           require: bool = False) -> Entry:
    runners = (runner_config.load(runner_config.find_pyproject(budget_path.parent))
               if known else None)
    budget = load(budget_path, runners)
    settings = engine.Settings(runners=runners, require_delegates=require,
                               command_line={"threads": threads})
    return engine.run(TFLiteModel.from_path(model, variant="v"), budget, "v", settings)


def _by_metric(entry: Entry) -> dict[str, Check]:
    return {c.metric: c for c in entry.checks}


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper (PID 1 in a container may never reap)."""
    return _state(pid) not in ("gone", "Z", "X")


# --- formats, through the engine ------------------------------------------------------------


def test_litert_benchmark_as_a_runner_reads_its_json_with_model_and_threads_substituted(
        tmp_path: Path) -> None:
    folder = tmp_path / "with space"  # substituted paths are quoted
    folder.mkdir()
    wrapper = _script(folder, "record.py", f"""
        import json, runpy, sys
        json.dump(sys.argv[1:], open({str(folder / 'argv.json')!r}, "w"))
        sys.argv = ["benchmark_litert_model", *sys.argv[1:]]
        runpy.run_module("ai_edge_litert.tools.benchmark_litert_model", run_name="__main__")
        """)
    # {python} is this interpreter; the wrapper records its argv, then runs LiteRT's benchmark.
    command = (f"{{python}} {shlex.quote(str(folder / 'record.py'))} --model={{model}} "
               f"--num_threads={{threads}} --num_runs=5 --warmup_runs=1 --result_json={{result}}")
    assert wrapper.endswith(shlex.quote(str(folder / "record.py")))
    model, budget_path = _project(folder, f"""
        [tool.pytest-tflite.runners.litert]
        command = "{command}"
        format = "litert-json"
        """, """
        [variants.v.latency."runner:litert"]
        median = "10 s"
        mean = "10 s"
        init = "1 us"
        p90 = "10 s"
        """)
    entry = _check(model, budget_path, threads=2)
    argv = json.loads((folder / "argv.json").read_text())
    # {model}: the model copied into the runner's scratch folder under a fixed name.
    given = next(a for a in argv if a.startswith("--model=")).removeprefix("--model=")
    assert Path(given).name == "model.tflite" and Path(given).parent != model.parent
    assert "--num_threads=2" in argv
    found = entry.measurement.delegates["runner:litert"]
    assert found.status == "ok", found.reason
    assert found.runner_format == "litert-json" and found.threads == 2  # num_threads in its JSON
    assert found.latency_ms is not None and found.latency_ms.n == 5
    assert found.latency_ms.median is not None and found.latency_ms.p90 is None
    # LiteRT's CompiledModel creation: read from its JSON (0.8 ms on a quiet machine, so no
    # fixed floor above 0)
    assert found.init_ms is not None and found.init_ms > 0.0
    checks = _by_metric(entry)
    assert checks['latency.runner:litert.median'].verdict == "pass"
    assert checks['latency.runner:litert.mean'].verdict == "pass"
    assert checks['latency.runner:litert.init'].verdict == "fail"
    p90 = checks['latency.runner:litert.p90']
    assert p90.verdict == "error" and "p90" in p90.reason and "litert-json" in p90.reason


def test_benchmark_model_text_judges_the_mean_and_refuses_the_median(tmp_path: Path) -> None:
    printer = _script(tmp_path, "phone.py", f"""
        import sys
        print("INFO: Initialized session in 1.5ms.", file=sys.stderr)
        print({TEXT_LINE!r}, file=sys.stderr)  # benchmark_model logs to stderr
        """)
    model, budget_path = _project(tmp_path, f"""
        [tool.pytest-tflite.runners.phone]
        command = "{printer} --graph={{model}}"
        format = "benchmark-model-text"
        """, """
        [variants.v.latency."runner:phone"]
        mean = "2 ms"
        init = "1 ms"
        first_invoke = "3 ms"
        median = "1 s"
        """)
    entry = _check(model, budget_path)
    found = entry.measurement.delegates["runner:phone"]
    assert found.latency_ms is not None and found.latency_ms.mean == pytest.approx(1.2345)
    assert found.latency_ms.median is None and found.init_ms == pytest.approx(1.5)
    checks = _by_metric(entry)
    assert checks["latency.runner:phone.mean"].verdict == "pass"
    assert checks["latency.runner:phone.mean"].measured == pytest.approx(1.2345)
    assert checks["latency.runner:phone.init"].verdict == "fail"
    assert checks["latency.runner:phone.first_invoke"].verdict == "pass"
    median = checks["latency.runner:phone.median"]
    assert median.verdict == "error"
    assert "median" in median.reason and "benchmark-model-text" in median.reason
    assert "mean" in median.reason  # what to budget instead


def test_text_format_takes_the_last_summary_line_and_refuses_output_without_one() -> None:
    earlier = TEXT_LINE.replace("1.2345e+03", "9999")
    found = parse("benchmark-model-text", f"{earlier}\n", f"noise\n{TEXT_LINE}\n", None)
    assert found.latency_ms is not None and found.latency_ms.mean == pytest.approx(1.2345)
    with pytest.raises(ValueError, match="Inference timings in us"):
        parse("benchmark-model-text", "Average inference timings in us: Warmup: 1, Init: 2", "",
              None)


def test_plugin_json_runner_gives_every_statistic(tmp_path: Path) -> None:
    printer = _script(tmp_path, "farm.py", """
        import json
        from pytest_tflite.results import DelegateResult, Latency
        latency = Latency(median=2.0, p90=3.0, p99=4.0, min=1.0, mean=2.2, std=0.5, n=50)
        print("uploading...")
        print(json.dumps(DelegateResult("ok", latency_ms=latency, cpu_ms=2.5).to_json()))
        """)
    model, budget_path = _project(tmp_path, f"""
        [tool.pytest-tflite.runners.farm]
        command = "{printer}"
        format = "pytest-tflite-json"
        """, """
        [variants.v.latency."runner:farm"]
        median = "2.5 ms"
        p99 = "3 ms"
        cpu = "3 ms"
        """)
    checks = _by_metric(_check(model, budget_path))
    assert checks["latency.runner:farm.median"].verdict == "pass"
    assert checks["latency.runner:farm.p99"].verdict == "fail"
    assert checks["latency.runner:farm.cpu"].verdict == "pass"


# --- failures: errors with the runner's own stderr, and nothing left running ----------------


@pytest.mark.parametrize(("body", "words"), [
    ("import sys\nprint('device offline: boom', file=sys.stderr)\nsys.exit(1)",
     ["exited 1", "device offline: boom"]),
    ("import sys\nprint('hello, not a benchmark')\nprint('warn: \\udcff', file=sys.stderr)",
     ["unparsable benchmark-model-text output", "Inference timings in us", "warn:"]),
])
def test_a_failing_or_garbled_runner_is_an_error_with_its_stderr(
        tmp_path: Path, body: str, words: list[str]) -> None:
    printer = _script(tmp_path, "bad.py", body)
    model, budget_path = _project(tmp_path, f"""
        [tool.pytest-tflite.runners.bad]
        command = "{printer}"
        format = "benchmark-model-text"
        """, """
        [variants.v.latency."runner:bad"]
        mean = "1 s"
        """)
    check = _by_metric(_check(model, budget_path))["latency.runner:bad.mean"]
    assert check.verdict == "error"
    for word in words:
        assert word in check.reason, check.reason


def test_a_hanging_runner_times_out_and_its_whole_process_group_is_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hanger = _script(tmp_path, "hang.py", f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        print("waiting for the device...", file=sys.stderr, flush=True)
        time.sleep(60)
        """)
    model, budget_path = _project(tmp_path, f"""
        [tool.pytest-tflite.runners.slow]
        command = "{hanger}"
        format = "benchmark-model-text"
        timeout = "2 s"
        """, """
        [variants.v.latency."runner:slow"]
        mean = "1 s"
        """)
    check = _by_metric(_check(model, budget_path))["latency.runner:slow.mean"]
    assert check.verdict == "error"
    assert "timed out after 2 s" in check.reason and "waiting for the device" in check.reason
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2
    # SIGKILL lands asynchronously on the reparented child: give the kernel a moment.
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [(pid, _state(pid)) for pid in started if _alive(pid)]


# --- declarations and refusals ---------------------------------------------------------------


@pytest.mark.parametrize(("table", "words"), [
    ('[variants.v.memory."runner:phone"]\narena = "1 MiB"', ["memory.runner:phone.arena", "latency only"]),
    ('[variants.v.delegation."runner:phone"]\nmin_fraction = 1.0',
     ["delegation.runner:phone.min_fraction", "latency only"]),
])
def test_memory_and_delegation_budgets_on_a_runner_are_refused_at_load(
        tmp_path: Path, table: str, words: list[str]) -> None:
    _, budget_path = _project(tmp_path, """
        [tool.pytest-tflite.runners.phone]
        command = "benchmark_model --graph={model}"
        format = "benchmark-model-text"
        """, table)
    with pytest.raises(BudgetFileError) as refused:
        load(budget_path, runner_config.load(tmp_path / "pyproject.toml"))
    for word in words:
        assert word in str(refused.value)


def test_an_undeclared_runner_is_refused_at_load_or_at_check_time(tmp_path: Path) -> None:
    model, budget_path = _project(tmp_path, "[tool.other]\nx = 1\n", """
        [variants.v.latency."runner:phone"]
        mean = "5 ms"
        """)
    with pytest.raises(BudgetFileError) as refused:
        load(budget_path, runner_config.load(tmp_path / "pyproject.toml"))
    message = str(refused.value)
    assert 'variants.v.latency."runner:phone"' in message
    assert "[tool.pytest-tflite.runners.phone]" in message and str(tmp_path / "pyproject.toml") in message
    assert "refused when the budget file loaded" in message
    # Loaded without the pyproject (budget.load(path)): the engine finds it and refuses then.
    check = _by_metric(_check(model, budget_path, known=False))["latency.runner:phone.mean"]
    assert check.verdict == "error"
    assert "[tool.pytest-tflite.runners.phone]" in check.reason and "at check time" in check.reason


@pytest.mark.parametrize(("table", "words"), [
    ('command = "x {model}"\nformat = "json"', ["format must be one of", "litert-json"]),
    ('command = "x --model={model}"\nformat = "litert-json"', ["{result}"]),
    ('command = "x"\nformat = "benchmark-model-text"\nretries = 2', ["unknown key 'retries'"]),
    ('command = "x"\nformat = "benchmark-model-text"\ntimeout = 2', ["timeout", "unit"]),
])
def test_a_bad_runner_declaration_names_its_table(tmp_path: Path, table: str,
                                                  words: list[str]) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f"[tool.pytest-tflite.runners.phone]\n{table}\n")
    with pytest.raises(RunnerConfigError) as refused:
        runner_config.load(pyproject)
    assert "[tool.pytest-tflite.runners.phone]" in str(refused.value)
    for word in words:
        assert word in str(refused.value)


# --- through the plugin: a runner that cannot start here skips, or fails when required --------


RUNNER_TEST = """
    from pathlib import Path
    import pytest

    @pytest.mark.tflite_budget("m")
    def test_model(tflite_budget):
        tflite_budget.check(Path(__file__).parent / "m.tflite")
"""


def _plugin_project(pytester: pytest.Pytester, runner: str) -> pytest.Pytester:
    pytester.path.joinpath("m.tflite").write_bytes(chain_model([16, 16]))
    pytester.path.joinpath("pyproject.toml").write_text(
        f"[tool.pytest-tflite.runners.phone]\n{textwrap.dedent(runner)}")
    budgets = pytester.path / "budgets"
    budgets.mkdir()
    budgets.joinpath("m.toml").write_text('[variants.default.latency."runner:phone"]\nmean = "5 ms"\n')
    pytester.makepyfile(test_runner=textwrap.dedent(RUNNER_TEST))
    return pytester


def _report(pytester: pytest.Pytester) -> dict[str, Any]:
    entries = json.loads((pytester.path / "report.json").read_text())["entries"]
    assert len(entries) == 1
    found: dict[str, Any] = entries[0]
    return found


def test_a_runner_whose_command_is_missing_skips_or_fails_when_required(
        pytester: pytest.Pytester) -> None:
    p = _plugin_project(pytester, """
        command = "adb-not-installed-here shell benchmark_model --graph={model}"
        format = "benchmark-model-text"
        """)
    result = p.runpytest("-p", "no:randomly", "-rs", "--tflite-report=report.json")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*runner:phone*adb-not-installed-here*No such file or directory*"])
    check = _report(p)["checks"][0]
    assert check["metric"] == "latency.runner:phone.mean" and check["verdict"] == "skip"
    result = p.runpytest("-p", "no:randomly", "--tflite-require-delegates",
                         "--tflite-report=report.json")
    result.assert_outcomes(failed=1)
    assert _report(p)["checks"][0]["verdict"] == "fail"


def test_a_runner_whose_probe_fails_skips_with_the_probe_stderr(pytester: pytest.Pytester) -> None:
    marker = pytester.path / "ran"
    p = _plugin_project(pytester, f"""
        command = "{PYTHON} -c 'open(\\"{marker}\\", \\"w\\")'"
        format = "benchmark-model-text"
        probe = "{PYTHON} -c 'import sys; sys.exit(\\"error: no devices/emulators found\\")'"
        """)
    result = p.runpytest("-p", "no:randomly", "-rs", "--tflite-report=report.json")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*probe*failed*no devices/emulators found*"])
    assert not marker.exists()  # the command never ran


def test_an_undeclared_runner_fails_the_test_at_setup(pytester: pytest.Pytester) -> None:
    p = _plugin_project(pytester, 'command = "x"\nformat = "benchmark-model-text"\n')
    p.path.joinpath("budgets", "m.toml").write_text(
        '[variants.default.latency."runner:tablet"]\nmean = "5 ms"\n')
    result = p.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*runner 'tablet' is not declared*[[]tool.pytest-tflite.runners.tablet[]]*"])
