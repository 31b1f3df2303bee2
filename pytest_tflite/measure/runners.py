"""Run a declared runner on a model and read its latency: ``delegates["runner:NAME"]``.

A runner is a command (benchmark_model over adb, a device farm's upload script, LiteRT's own
benchmark) whose output comes in one of ``runner_config.FORMATS``. Its process is bounded like
the measurement worker: its own process group, killed whole on a timeout or any exception, and
only the tails of its output kept. A runner that cannot start here (command not found, probe
failing: no phone attached) is ``unavailable``, so its checks skip, or fail under
``--tflite-require-delegates``; one that fails, hangs or prints what cannot be read is ``error``
with its own stderr.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..results import DelegateResult, Latency
from ..runner_config import PLACEHOLDERS, Runner, Runners, runner_name
from ..settings import RuntimeSettings
from . import lock
from .isolated import STDOUT_TAIL, last_json_line, run_bounded

# benchmark_model's summary line (tensorflow/lite/tools/benchmark/benchmark_model.cc,
# BenchmarkLoggingListener::OnBenchmarkEnd), in microseconds; averages are C++ stream doubles
# ("63743.2", "1.23457e+06").
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
TEXT_LINE = re.compile(
    rf"Inference timings in us: Init: (?P<init>{_NUMBER}), First inference: (?P<first>{_NUMBER}), "
    rf"Warmup \(avg\): (?P<warmup>{_NUMBER}), Inference \(avg\): (?P<mean>{_NUMBER})")
# Lines of a runner's stderr kept in a message: enough to see why, short enough for a table.
MESSAGE_LINES = 8
MESSAGE_CHARS = 1500
# What ``{model}`` names: the model copied into the runner's scratch folder under this name.
MODEL_NAME = "model.tflite"
PLACEHOLDER = re.compile("|".join(re.escape(name) for name in PLACEHOLDERS))


class Unparsable(ValueError):
    """The runner's output is not in its declared format."""


def command_line(template: str, model: Path, threads: int, result: Path) -> list[str]:
    """``template`` with its placeholders substituted shell-quoted in one pass (a value that
    holds ``{result}`` is never substituted again), split as a shell would (no shell runs unless
    the template itself says ``sh -c``). ``model`` is the scratch copy (``MODEL_NAME``), never a
    repository file name: a shell inside the template cannot be handed a name to parse."""
    values = {"model": str(model), "result": str(result), "threads": str(threads),
              "python": sys.executable}
    text = PLACEHOLDER.sub(lambda found: shlex.quote(values[found.group(0)[1:-1]]), template)
    return shlex.split(text)


def scratch_model(model: Path, scratch: Path) -> Path:
    """``model`` copied into the runner's scratch folder as ``MODEL_NAME``: the runner sees a
    fixed, plain name, whatever the repository calls the file (a pull request chooses it). A copy,
    not a link: a runner that writes to its input cannot change the repository's file."""
    target = scratch / MODEL_NAME
    shutil.copyfile(model, target)
    return target


def measure_runners(model: Path, delegates: Iterable[str], runners: Runners,
                    settings: RuntimeSettings, *, lock_file: Path | None = None,
                    ) -> dict[str, DelegateResult]:
    """``delegates["runner:NAME"]`` for each runner named; ``settings``: the resolved runtime
    settings (threads; the timeout, the default of a runner that declares none). A local
    runner times on this machine, so it holds the timing lock as a worker does."""
    names = list(delegates)
    found: dict[str, DelegateResult] = {}
    threads, timeout_s = settings.threads, settings.timeout
    for delegate in names:
        name = runner_name(delegate) or delegate
        runner = runners.declared.get(name)
        if runner is None:
            found[delegate] = DelegateResult(
                "error", f"{runners.undeclared(name)} (refused at check time: the budget file "
                         f"was loaded without knowing the project's pyproject.toml)",
                threads=threads)
            continue
        limit = runner.timeout_s or timeout_s
        with lock.exclusive(lock_file, lock.wait_limit(limit, len(names))):
            found[delegate] = measure_runner(runner, model, threads, limit)
    return found


def measure_runner(runner: Runner, model: Path, threads: int, timeout_s: float) -> DelegateResult:
    """The runner's figures for ``model``, or why there are none, whatever the process does.

    ``timeout_s``: the run's worker timeout, used when the runner declares none.
    """
    limit = runner.timeout_s or timeout_s
    with tempfile.TemporaryDirectory(prefix="pytest-tflite-runner-") as scratch:
        result = Path(scratch, "result.json")
        try:
            copied = scratch_model(model, Path(scratch))
        except OSError as exc:
            return _result(runner, threads, "error", f"cannot copy {model} for the runner: "
                                                     f"{exc.strerror or exc}")
        try:
            argv = command_line(runner.command, copied, threads, result)
            probe = command_line(runner.probe, copied, threads, result) if runner.probe else None
        except ValueError as exc:  # shlex: an unclosed quote
            return _result(runner, threads, "error", f"command or probe: {exc}")
        if probe is not None:
            probed = _run(probe, limit)
            if probed.returncode != 0:
                why = probed.failure or f"exited {probed.returncode}"
                return _result(runner, threads, "unavailable",
                               f"probe `{runner.probe}` failed ({why}){_said(probed.stderr)}")
        done = _run(argv, limit)
        if done.unstartable or done.returncode == 127:  # 127: a shell's "command not found"
            return _result(runner, threads, "unavailable",
                           f"cannot start `{argv[0]}`: {done.failure or 'command not found'}"
                           f"{_said(done.stderr)}")
        if done.failure:
            return _result(runner, threads, "error",
                           f"{done.failure} (set timeout in [tool.pytest-tflite.runners."
                           f"{runner.name}] to allow longer){_said(done.stderr)}")
        if done.returncode != 0:
            return _result(runner, threads, "error",
                           f"`{argv[0]}` exited {done.returncode}{_said(done.stderr)}")
        try:
            found = parse(runner.format, done.stdout, done.stderr, _written(result))
        except Unparsable as exc:
            return _result(runner, threads, "error",
                           f"unparsable {runner.format} output: {exc}{_said(done.stderr)}")
    found.threads = found.threads or threads
    found.runner_format = runner.format
    return found


def _written(result: Path) -> str | None:
    """What the runner wrote to ``{result}`` (None: nothing), bounded like its stdout."""
    if not result.is_file():
        return None
    with result.open("rb") as stream:
        text = stream.read(STDOUT_TAIL + 1)
    if len(text) > STDOUT_TAIL:
        raise Unparsable(f"{result.name} is larger than {STDOUT_TAIL // 2**20} MiB")
    return text.decode("utf-8", "replace")


def parse(output_format: str, stdout: str, stderr: str, result_file: str | None) -> DelegateResult:
    """The figures of one run in ``output_format``; raises Unparsable with what was wrong."""
    if output_format == "litert-json":
        return _litert_json(_json_object(result_file, "the --result_json file"))
    if output_format == "benchmark-model-text":
        return _benchmark_model_text(stdout + "\n" + stderr)
    if output_format == "pytest-tflite-json":
        if result_file is not None:
            data = _json_object(result_file, "the {result} file")
        else:
            data = last_json_line(stdout)
            if not data:
                raise Unparsable("no JSON object line on stdout (DelegateResult.to_json())")
        return _plugin_json(data)
    raise Unparsable(f"unknown format {output_format!r}")


def _json_object(text: str | None, what: str) -> dict[str, Any]:
    if text is None:
        raise Unparsable(f"{what} was not written")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise Unparsable(f"{what} is not JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(data, dict):
        raise Unparsable(f"{what} holds {type(data).__name__}, not a JSON object")
    return data


def _number(value: object, what: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise Unparsable(f"{what}: expected a number >= 0, got {value!r}")
    return float(value)


def _litert_json(data: dict[str, Any]) -> DelegateResult:
    """``benchmark_litert_model --result_json``: ``latency`` holds ``*_ms`` figures rounded to
    0.01 ms, and p5/p95 rather than p90/p99."""
    latency = data.get("latency")
    if not isinstance(latency, dict):
        raise Unparsable("no \"latency\" object (benchmark_litert_model's --result_json)")

    def read(key: str, optional: bool = True) -> float | None:
        return _number(latency.get(key), f"latency.{key}", optional=optional)

    mean = read("avg_ms", optional=False)
    assert mean is not None
    runs = latency.get("num_runs")
    threads = data.get("num_threads")
    return DelegateResult(
        "ok", threads=threads if isinstance(threads, int) and not isinstance(threads, bool) else None,
        latency_ms=Latency(median=read("median_ms", optional=False), p90=None, p99=None,
                           min=read("min_ms"), mean=mean, std=read("std_ms"),
                           n=runs if isinstance(runs, int) and not isinstance(runs, bool) else None),
        init_ms=read("init_ms"), first_invoke_ms=read("warmup_first_ms"),
        fully_accelerated=data.get("fully_accelerated")
        if isinstance(data.get("fully_accelerated"), bool) else None)


def _benchmark_model_text(text: str) -> DelegateResult:
    """benchmark_model's ``Inference timings in us`` line: averages only, no median."""
    matches = list(TEXT_LINE.finditer(text))
    if not matches:
        raise Unparsable("no \"Inference timings in us: Init: ..., First inference: ..., "
                         "Warmup (avg): ..., Inference (avg): ...\" line")
    line = matches[-1]

    def ms(group: str) -> float:
        value = _number(float(line.group(group)), f"Inference timings {group}")
        assert value is not None
        return value / 1000

    return DelegateResult("ok", latency_ms=Latency(median=None, p90=None, p99=None, min=None,
                                                   mean=ms("mean"), std=None, n=None),
                          init_ms=ms("init"), first_invoke_ms=ms("first"))


def _plugin_json(data: dict[str, Any]) -> DelegateResult:
    """This plugin's own ``DelegateResult.to_json()``, measured elsewhere."""
    if data.get("status") not in ("ok", "unsupported", "unavailable", "error"):
        raise Unparsable(f"\"status\" must be ok, unsupported, unavailable or error, "
                         f"got {data.get('status')!r}")
    try:
        return DelegateResult.from_json(data)
    except (TypeError, ValueError) as exc:
        raise Unparsable(f"not a delegate result: {exc}") from None


def _result(runner: Runner, threads: int, status: Any, reason: str) -> DelegateResult:
    return DelegateResult(status, f"{runner.delegate}: {reason}", threads=threads,
                          runner_format=runner.format)


class _Done:
    def __init__(self, returncode: int, stdout: str, stderr: str, failure: str = "",
                 unstartable: bool = False) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.failure = failure  # "timed out after N s", or why it could not start
        self.unstartable = unstartable


def _run(argv: list[str], timeout_s: float) -> _Done:
    """Run ``argv`` in its own process group; the group is killed on a timeout or any
    exception (Ctrl-C included) before this returns."""
    if not argv:
        return _Done(-1, "", "", "is an empty command", unstartable=True)
    try:
        done = run_bounded(argv, timeout_s)
    except OSError as exc:  # not found, not executable
        return _Done(-1, "", "", exc.strerror or str(exc), unstartable=True)
    return _Done(done.returncode, done.stdout, done.stderr,
                 f"timed out after {timeout_s:g} s" if done.timed_out else "")


def _said(stderr: str) -> str:
    """The end of the runner's stderr, for the message."""
    lines = [line.rstrip() for line in stderr.strip().splitlines() if line.strip()]
    text = "\n".join(lines[-MESSAGE_LINES:])
    if len(text) > MESSAGE_CHARS:
        text = "..." + text[-MESSAGE_CHARS:]
    return f"; stderr: {text}" if text else ""
