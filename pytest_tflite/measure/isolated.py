"""Run a model in the worker subprocess and turn a crash or a hang into a readable error."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LiteRTMissingError, ModelError
from .worker.lifetime import CAP_VARIABLE, PARENT_VARIABLE
from .worker.protocol import DEFAULT_TIMEOUT_S


def worker_environment() -> dict[str, str]:
    # tfmot sets TF_USE_LEGACY_KERAS in os.environ when imported; the worker must not inherit it.
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The worker imports this package: make sure it finds the same copy as its parent.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env


@dataclass(frozen=True)
class Outputs:
    arrays: list[Any]  # one float array per chosen output, samples along axis 0
    batched: bool  # True when the model ran in batches, False one sample at a time
    names: list[str] = field(default_factory=list)  # the chosen outputs' names
    available: list[str] = field(default_factory=list)  # every output's name, signature order
    signature: bool = True  # False: no SignatureDef; names are tensor names, order tensor order
    kernels: str = ""  # what ran: the delegate named, else "xnnpack" or its "builtin" fallback
    delegated_nodes: int | None = None  # with a delegate named: nodes it took (coverage)
    total_nodes: int | None = None

    def by_name(self) -> dict[str, Any]:
        """The chosen outputs by name, in signature order (tensor order without a signature)."""
        return dict(zip(self.names, self.arrays))


class DelegateRefused(ModelError):
    """A delegate named for an evaluation could not run it: ``status`` is "unavailable" (the
    machine lacks it) or "unsupported" (it refused the model), ``reason`` in its own words."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RunRefused(ModelError):
    """The model runs, but not with this data or ``output=``: ``what`` is "inputs" or "output"."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(reason)
        self.what = what
        self.reason = reason


def run_model(
    model_path: Path,
    inputs: list[Any],
    names: list[str] | None = None,
    *,
    output: str | int | None = None,
    batch: int | None = None,
    timeout: float | None = None,
    delegate: str | None = None,
) -> Outputs:
    """The model's outputs (float, dequantized) on ``inputs`` (one array per model input).

    ``names``: the inputs' names (a dict's keys), matched to the model's signature input names;
    empty for inputs in the model's order. ``output``: a signature output name or an index into
    the signature order (see worker/inference.py); None for all. ``timeout`` in seconds (None: the
    default of DEFAULT_TIMEOUT_S). Names or ``output=`` that do not fit raise RunRefused.
    ``delegate``: run under that one alone (xnnpack, builtin, reference, gpu, npu,
    external:PATH), with no fallback: a delegate that cannot run it raises DelegateRefused.
    None: XNNPACK, falling back to the built-in kernels where XNNPACK refuses the model.
    """
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="pytest-tflite-") as scratch:
        inputs_path = _save_inputs(Path(scratch), inputs, names)
        outputs_path = Path(scratch, "outputs.npz")
        options = json.dumps({"output": output, "batch": batch, "delegate": delegate})
        result = _worker(["run", str(model_path), str(inputs_path), str(outputs_path), options],
                         model_path, _seconds(timeout))
        if result.get("status") in ("unavailable", "unsupported"):
            raise DelegateRefused(str(result["status"]), str(result.get("reason")))
        if result.get("status") == "error":
            raise RunRefused(str(result.get("refused") or "inputs"), str(result.get("reason")))
        with np.load(outputs_path) as data:
            found = [data[f"output_{k}"] for k in range(len(data.files))]
        names_found = [str(n) for n in result.get("names") or []]
        return Outputs(found, bool(result.get("batched")),
                       names_found or [f"output_{k}" for k in range(len(found))],
                       [str(n) for n in result.get("outputs") or names_found],
                       bool(result.get("signature", True)), str(result.get("kernels") or ""),
                       result.get("delegated_nodes"), result.get("total_nodes"))


def _seconds(timeout: float | None) -> float:
    return DEFAULT_TIMEOUT_S if timeout is None else float(timeout)


def layer_errors(
    candidate_path: Path, reference_path: Path, inputs: list[Any], names: list[str] | None = None,
    *, timeout: float | None = None,
) -> list[dict[str, Any]]:
    """Per quantized activation of the candidate, its error against the float reference.

    ``timeout`` in seconds (None: the default of DEFAULT_TIMEOUT_S).
    """
    with tempfile.TemporaryDirectory(prefix="pytest-tflite-") as scratch:
        inputs_path = _save_inputs(Path(scratch), inputs, names)
        result = _worker(["layers", str(candidate_path), str(reference_path), str(inputs_path)],
                         candidate_path, _seconds(timeout))
    rows: list[dict[str, Any]] = result.get("layers", [])
    return rows


def _save_inputs(folder: Path, inputs: list[Any], names: list[str] | None) -> Path:
    import numpy as np

    path = folder / "inputs.npz"
    arrays: dict[str, Any] = {f"input_{i}": np.asarray(a) for i, a in enumerate(inputs)}
    arrays["count"] = len(inputs)
    arrays["names"] = np.array(names or [""] * len(inputs))
    np.savez(path, **arrays)
    return path


class WorkerFailed(ModelError):
    """The worker crashed, hung or raised; ``reason`` says which, in the worker's own words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Worker output kept for messages: the last part only, so a model that floods native stderr
# cannot fill the parent's memory. stdout carries the one JSON result line, last.
STDOUT_TAIL = 16 * 2**20
STDERR_TAIL = 64 * 2**10
# What a native allocation failure under the cap leaves on stderr or in the error.
_OUT_OF_MEMORY = ("MemoryError", "bad_alloc", "Cannot allocate memory", "Failed to allocate",
                  "out of memory", "failed to map segment")  # the last: dlopen under the cap


def worker_command() -> list[str]:
    return [sys.executable, "-m", "pytest_tflite.measure.worker"]


def call_worker(arguments: list[str], timeout: float,
                memory_cap: int | None = None, *, module: str | None = None,
                wrapper: list[str] | None = None,
                environment: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one worker command and return its result; anything else raises WorkerFailed, except
    LiteRT failing to import in the worker: LiteRTMissingError, an environment error.

    The worker runs in its own process group, under ``memory_cap`` bytes of address space (None:
    ``memory_cap.default_cap()``), and dies with this process (worker/lifetime.py). On a
    timeout, Ctrl-C or any other exception here, the whole group is killed before this returns.
    ``module``: another worker-like entry run as ``python -m MODULE`` (None: the measurement
    worker); it must call ``lifetime.bind_to_parent`` and ``apply_memory_cap`` first and print
    the same one JSON line last. ``wrapper``: a command the worker runs under (valgrind, for
    measure/cost.py), in the same process group and under the same cap; ``environment``:
    variables added to the worker's.
    """
    from .memory_cap import gib, resolve

    cap = resolve(memory_cap)
    entry = worker_command() if module is None else [sys.executable, "-m", module]
    command = [*(wrapper or []), *entry, *arguments]
    env = {**worker_environment(), **(environment or {})}
    env[PARENT_VARIABLE] = str(os.getpid())
    if cap is not None:
        env[CAP_VARIABLE] = str(cap)
    done = run_bounded(command, timeout, env)
    if done.timed_out:
        raise WorkerFailed(f"timed out after {timeout:g} s")
    returncode, stderr = done.returncode, done.stderr
    status = last_json_line(done.stdout)
    over_cap = cap is not None and (bool(status.get("memory")) or any(
        sign in text for sign in _OUT_OF_MEMORY for text in (stderr, str(status.get("error")))))
    if over_cap:
        assert cap is not None
        raise WorkerFailed(f"exceeded the memory cap of {gib(cap)} (runtime.max_memory)"
                           f"{_last_words(stderr)}")
    if status.get("litert_missing"):  # after the cap: a library that could not map is the cap
        raise LiteRTMissingError.because(f"in the worker process: {status.get('error')}")
    if returncode < 0:
        name = signal.Signals(-returncode).name
        raise WorkerFailed(f"crashed the interpreter ({name}){_last_words(stderr)}")
    if not status.get("ok"):
        reason = status.get("error") or f"worker exited {returncode}"
        raise WorkerFailed(f"the interpreter could not run the model: {reason}"
                           f"{_last_words(stderr)}")
    result: dict[str, Any] = status.get("result") or {}
    return result


@dataclass(frozen=True)
class Finished:
    """A bounded run's end: the tails of its output, decoded leniently."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


def run_bounded(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> Finished:
    """Run ``argv`` in its own process group with its output in temporary files (a flood
    cannot fill this process's memory), keeping only the tails. On a timeout, Ctrl-C or any
    other exception here the whole group is killed before this returns. OSError when it
    cannot start. Every process this package starts runs through here: the measurement and
    quantizer workers, and runners (measure/runners.py)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            stop(process)
        return Finished(process.returncode, tail(out, STDOUT_TAIL), tail(err, STDERR_TAIL),
                        timed_out)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the process group of a process started with ``start_new_session=True`` if it is
    still running, and reap the process."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def tail(stream: Any, limit: int) -> str:
    """The last ``limit`` bytes written to ``stream``, decoded leniently (native output may not
    be UTF-8)."""
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - limit))
    text: str = stream.read().decode("utf-8", errors="replace")
    return text


def explained(failure: WorkerFailed) -> str:
    """The worker's failure, with what to do when it was the time limit."""
    if failure.reason.startswith("timed out"):
        return failure.reason + " (set runtime.timeout or --tflite-timeout to allow longer)"
    return failure.reason


def _worker(arguments: list[str], model_path: Path, timeout: float) -> dict[str, Any]:
    try:
        return call_worker(arguments, timeout)
    except WorkerFailed as exc:
        raise ModelError(f"{model_path}: {exc.reason}") from None


def _last_words(stderr: str) -> str:
    """The last native stderr lines that are not LiteRT's INFO chatter."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    interesting = [line for line in lines if "INFO:" not in line][-3:]
    return f"; native stderr: {' | '.join(interesting)}" if interesting else ""


def last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}
