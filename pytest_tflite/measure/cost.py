"""Instructions per invoke, counted under valgrind's callgrind: ``delegates[d].cost``.

Timing a model on a shared CI runner cannot see a 1% change; counting instructions can, because
the count does not depend on the machine's load. The worker (``count``) runs under
``valgrind --tool=callgrind`` with collection toggled on the interpreter's invoke call only
(whole-process counts drift by millions from start-up and threads), one thread, one warm-up
invoke and a fixed number of counted ones (never a time: an invoke runs ~1,700x slower under
valgrind). callgrind writes a dump before each invoke, so each invoke's count is read on its own
and the warm-up's is left out. Cache sizes are pinned (``CACHE``), not the host's, so
``estimated_cycles`` is comparable across CI hosts.

What the count is not: valgrind hides AVX-512, so XNNPACK runs its AVX2/FMA kernels; a relative
measure of the work a model does on x86, not phone time.
"""

from __future__ import annotations

import contextlib
import functools
import json
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CostUnavailable, ModelError, TFLiteError
from ..results import Cost, CostFunction
from ..settings import RuntimeSettings
from . import lock
from .isolated import WorkerFailed, call_worker, explained

# The C++ function behind ``Interpreter.invoke()`` in ai_edge_litert 2.x, as callgrind names it
# (``tflite::interpreter_wrapper::InterpreterWrapper::Invoke(int)``).
SYMBOL = "*InterpreterWrapper::Invoke*"
COUNTABLE = ("xnnpack", "builtin", "reference")  # the Interpreter's own CPU kernels
# Pinned cache geometry (size in bytes, associativity, line size): a common x86 desktop's, so
# that the simulated misses do not depend on the host CI happens to give.
CACHE = {"I1": "32768,8,64", "D1": "32768,8,64", "LL": "8388608,16,64"}
# KCachegrind's cycle estimate without branch simulation: an L1 miss costs ~10 cycles, a
# last-level miss ~100.
FORMULA = "Ir + 10 * (I1mr + D1mr + D1mw) + 100 * (ILmr + DLmr + DLmw)"
WARMUP = 1  # XNNPACK packs weights on the first invoke: never counted
DEFAULT_INVOKES = 1  # the count is exact: more invokes only repeat it
TOP_FUNCTIONS = 10
_L1 = ("I1mr", "D1mr", "D1mw")
_LL = ("ILmr", "DLmr", "DLmw")
# The worker's own threads (numpy's OpenBLAS pool) would be counted if they ran while
# collection is on; LiteRT's pool is held at one thread by the worker.
_ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def split_symbol(symbol: str) -> str:
    """The pattern callgrind dumps before, matching the same calls as ``symbol``: a different
    string, since callgrind keeps one setting per pattern and the toggle would replace the
    dump (seen with valgrind 3.19)."""
    return "*::" + symbol[1:] if symbol.startswith("*") else "*" + symbol


def refusal(delegate: str) -> str | None:
    """Why ``delegate`` has no instruction count, None when it has one."""
    if delegate in COUNTABLE:
        return None
    return (f"{delegate} has no instruction count: instructions are counted under valgrind for "
            f"the Interpreter's own CPU kernels ({', '.join(COUNTABLE)}); an accelerator, an "
            f"external delegate's library or a runner does its work where valgrind cannot see")


def valgrind_path() -> str:
    found = shutil.which("valgrind")
    if found is None:
        raise CostUnavailable.missing()
    return found


@functools.lru_cache(maxsize=4)
def valgrind_version(executable: str) -> str:
    done = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30,
                          check=False)
    return done.stdout.strip() or "unknown"


def measure_cost(model_path: Path, delegate: str, settings: RuntimeSettings, *,
                 sample_path: Path | None = None, invokes: int = DEFAULT_INVOKES,
                 lock_file: Path | None = None, runs: int = 1, symbol: str = SYMBOL) -> Cost:
    """``model_path`` counted under ``delegate``: per invoke, over ``invokes`` counted invokes
    after one warm-up, with the seed (or ``sample_path``, an ``.npz`` of ``input_0``...) and
    input shapes of ``settings``, its timeout and memory cap; one thread always.

    CostUnavailable: valgrind is missing, or the delegate has no count (``refusal``).
    ModelError: the worker crashed, hung past the timeout (its process group is killed), or
    collection on ``symbol`` counted nothing (another LiteRT build): never a count of 0.
    ``runs``: the counts made in turn, for how long another run may hold the timing lock.
    """
    why = refusal(delegate)
    if why is not None:
        raise CostUnavailable(why)
    if invokes < 1:
        raise ValueError(f"invokes must be at least 1, got {invokes}")
    valgrind = valgrind_path()
    wire = settings.worker_json()
    worker_settings = {"input_shapes": wire["input_shapes"], "seed": wire["seed"],
                       "sample_path": str(sample_path) if sample_path else None,
                       "warmup": WARMUP, "invokes": invokes}
    with tempfile.TemporaryDirectory(prefix="pytest-tflite-cost-") as scratch:
        out = Path(scratch, "callgrind.out")
        wrapper = [valgrind, "--tool=callgrind", "--collect-atstart=no",
                   f"--toggle-collect={symbol}", f"--dump-before={split_symbol(symbol)}",
                   "--cache-sim=yes", *(f"--{level}={geometry}" for level, geometry in CACHE.items()),
                   f"--callgrind-out-file={out}"]
        arguments = ["count", str(model_path), delegate, json.dumps(worker_settings)]
        # A count is deterministic, but the timing lock keeps it from slowing a latency
        # measurement beside it under xdist.
        with lock.exclusive(lock_file, lock.wait_limit(settings.timeout, runs)):
            try:
                found = call_worker(arguments, settings.timeout, settings.max_memory,
                                    wrapper=wrapper, environment=_ONE_THREAD)
            except WorkerFailed as exc:
                raise ModelError(f"{model_path}: counting instructions under valgrind "
                                 f"({delegate}): {explained(exc)}") from None
        if found.get("status") == "unavailable":
            raise CostUnavailable(f"{delegate}: {found.get('reason')}")
        if found.get("status") != "ok":
            raise ModelError(f"{model_path}: {delegate} could not run the model under valgrind: "
                             f"{found.get('reason')}")
        profiles = [parse_callgrind(path.read_text(encoding="utf-8", errors="replace"))
                    for path in out.parent.glob(out.name + "*")]
    counted = counted_invokes(profiles, symbol, WARMUP, invokes)
    return _cost(counted, symbol, _fingerprint(valgrind, found, sample_path is not None))


@dataclass
class Profile:
    """One callgrind dump: its part number, event totals and each function's self Ir."""

    part: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    self_instructions: dict[str, int] = field(default_factory=dict)


_NAME = re.compile(r"\((\d+)\)(?: (.*))?")


def parse_callgrind(text: str) -> Profile:
    """A callgrind output file (format version 1): ``totals:`` (else ``summary:``) by event, and
    the self (exclusive) instructions of each function by name: the cost lines under ``fn=``,
    leaving out the line after each ``calls=``, which is the inclusive cost of the call."""
    profile = Profile()
    events: list[str] = []
    positions = 1
    names: dict[str, str] = {}
    function = ""
    call_cost = False
    summary: list[int] = []
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        if line[0].isdigit() or line[0] in "+-*":
            if call_cost:
                call_cost = False
            elif function:
                values = line.split()[positions:positions + 1]
                ir = int(values[0]) if values else 0
                profile.self_instructions[function] = profile.self_instructions.get(function, 0) + ir
            continue
        key, _, value = line.partition("=")
        if key == "fn":
            function = _name(value, names)
        elif key == "cfn":
            _name(value, names)  # a called function may be named here first
        elif key == "calls":
            call_cost = True
        elif line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("positions:"):
            positions = len(line.split()) - 1
        elif line.startswith("part:"):
            profile.part = int(line.split()[1])
        elif line.startswith(("totals:", "summary:")):
            counts = [int(v) for v in line.split()[1:]]
            if line.startswith("totals:") or not summary:
                summary = counts
    if events[:1] != ["Ir"] and events:
        raise ValueError(f"callgrind events {events}: Ir is not first")
    profile.totals = {e: (summary[i] if i < len(summary) else 0) for i, e in enumerate(events)}
    return profile


def _name(value: str, names: dict[str, str]) -> str:
    """A function name, with callgrind's compression: ``(id) name`` defines, ``(id)`` reuses."""
    matched = _NAME.fullmatch(value.strip())
    if matched is None:
        return value.strip()
    number, name = matched.groups()
    if name is not None:
        names[number] = name
    return names.get(number, f"({number})")


def counted_invokes(profiles: Iterable[Profile], symbol: str, warmup: int,
                    invokes: int) -> list[Profile]:
    """The dumps of the counted invokes: callgrind dumps before each invoke (the first dump
    holds the time before any), and at exit (the last invoke); the warm-up's are left out.
    ModelError when collection on ``symbol`` counted nothing, or split the run otherwise."""
    ordered = sorted(profiles, key=lambda p: p.part)
    if not any(p.totals.get("Ir") for p in ordered):
        raise ModelError(
            f"callgrind counted 0 instructions with collection toggled on {symbol!r}: this "
            f"LiteRT build has no function of that name (another build or version of "
            f"ai_edge_litert?), so there is no count; a count of 0 is never a pass")
    per_invoke = ordered[1:]
    if len(per_invoke) != warmup + invokes:
        raise ModelError(
            f"callgrind split the run into {len(per_invoke)} invoke(s) on "
            f"{split_symbol(symbol)!r}, expected {warmup + invokes} ({warmup} warm-up, "
            f"{invokes} counted): the split pattern does not match the toggled function once "
            f"per invoke in this LiteRT build")
    counted = per_invoke[warmup:]
    if any(not p.totals.get("Ir") for p in counted):
        raise ModelError(f"callgrind counted 0 instructions in an invoke toggled on {symbol!r}: "
                         f"a count of 0 is never a pass")
    return counted


def _cost(counted: list[Profile], symbol: str, fingerprint: dict[str, Any]) -> Cost:
    n = len(counted)

    def per_invoke(*events: str) -> int:
        return round(sum(p.totals.get(e, 0) for p in counted for e in events) / n)

    instructions = per_invoke("Ir")
    l1, ll = per_invoke(*_L1), per_invoke(*_LL)
    cycles = round(sum(p.totals.get("Ir", 0) + 10 * sum(p.totals.get(e, 0) for e in _L1)
                       + 100 * sum(p.totals.get(e, 0) for e in _LL) for p in counted) / n)
    functions: dict[str, int] = {}
    for profile in counted:
        for name, count in profile.self_instructions.items():
            functions[name] = functions.get(name, 0) + count
    top = sorted(functions.items(), key=lambda item: (-item[1], item[0]))[:TOP_FUNCTIONS]
    total = sum(p.totals.get("Ir", 0) for p in counted)
    return Cost(instructions=instructions, estimated_cycles=cycles, l1_misses=l1, ll_misses=ll,
                invokes=n,
                top_functions=[CostFunction(name=name, instructions=round(count / n),
                                            share=count / total if total else 0.0)
                               for name, count in top if count],
                cache=dict(CACHE), formula=FORMULA, fingerprint=fingerprint, symbol=symbol)


def _fingerprint(valgrind: str, found: dict[str, Any], sample: bool) -> dict[str, Any]:
    """What must match for two counts to be compared directly (else the baseline is counted
    again): the tools' versions, the ISA valgrind exposed to the worker, the pinned caches,
    one thread, and the inputs."""
    inputs = (f"sample sha256:{found.get('inputs_sha256')}" if sample
              else str(found.get("inputs")))
    return {"valgrind": valgrind_version(valgrind), "litert": found.get("litert"),
            "glibc": found.get("glibc"), "machine": platform.machine(),
            "isa": list(found.get("isa") or []), "cache": dict(CACHE), "threads": 1,
            "inputs": inputs}


@contextlib.contextmanager
def sample_file(sample: Any) -> Iterator[Path | None]:
    """``sample`` (an array, or one per input) as an ``.npz`` the worker reads; None without."""
    if sample is None:
        yield None
        return
    import numpy as np

    arrays = list(sample) if isinstance(sample, (list, tuple)) else [sample]
    with tempfile.TemporaryDirectory(prefix="pytest-tflite-") as scratch:
        path = Path(scratch, "sample.npz")
        named: dict[str, Any] = {f"input_{i}": np.asarray(a) for i, a in enumerate(arrays)}
        np.savez(path, **named)
        yield path


def measure_costs(model_path: Path, delegates: Iterable[str], settings: RuntimeSettings, *,
                  lock_file: Path | None = None, sample: Any = None) -> dict[str, Cost | str]:
    """Each delegate counted in turn: its Cost, or why there is none (``CostUnavailable``'s or
    ``ModelError``'s message; ``CostUnavailable.is_missing`` tells valgrind missing apart)."""
    delegates = list(delegates)
    found: dict[str, Cost | str] = {}
    with sample_file(sample) as sample_path:
        for delegate in delegates:
            try:
                found[delegate] = measure_cost(model_path, delegate, settings,
                                               sample_path=sample_path, lock_file=lock_file,
                                               runs=len(delegates))
            except TFLiteError as exc:
                found[delegate] = str(exc)
    return found
