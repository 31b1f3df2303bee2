"""Subprocess entry for running a model: imports only ai_edge_litert and numpy.

``run MODEL INPUTS.npz OUTPUTS.npz [OPTIONS_JSON]`` runs the model over whole arrays (batched
where the model allows, see inference.py) and writes the outputs, dequantized to float. With
``"delegate"`` in the options it runs under that delegate alone (no fallback: a refusal is that
delegate's result) and reports the delegated node count it ran with.

``layers CANDIDATE REFERENCE INPUTS.npz`` compares each quantized activation of the candidate
with the float reference's (see layers.py).

``measure MODEL DELEGATE SETTINGS_JSON`` measures one delegate in this fresh process: init, first
invoke, latency, CPU time, arena, peak RSS, delegation coverage; then, with ``batch_sizes`` in
the settings, the latency at each batch size (one runner each, after every batch-1 figure).

``count MODEL DELEGATE SETTINGS_JSON`` invokes the model a fixed number of times, one thread,
for callgrind to count the instructions (run under valgrind by measure/cost.py).

``compare CANDIDATE BASELINE DELEGATE SETTINGS_JSON`` times both models in this one process, in
alternating blocks, and reports the latency ratio candidate/baseline with its interval (see
compare.py).

Each prints one JSON line last. Running in a subprocess means a model that crashes the
interpreter takes only this process down, and TensorFlow's memory never pollutes the figures.
"""

from __future__ import annotations

import json
from typing import Any


def run(model_path: str, inputs_path: str, outputs_path: str, options_json: str = "{}") -> dict[str, Any]:
    """Outputs by name (the SignatureDef's, in signature order; see inference.py)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from .inference import DEFAULT_BATCH, Run, SelectionError, run_named

    options = json.loads(options_json)
    with np.load(inputs_path, allow_pickle=False) as data:
        count = int(data["count"])
        arrays = [data[f"input_{i}"] for i in range(count)]
        names = [str(n) for n in data["names"]] if "names" in data else [""] * count

    def outputs(resolver: Any) -> Run:
        interpreter = Interpreter(model_path=model_path, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
        return run_named(interpreter, arrays, names, options.get("output"),
                         int(options.get("batch") or DEFAULT_BATCH))

    kernels = "xnnpack"
    coverage: dict[str, Any] = {}
    try:
        if options.get("delegate"):  # named: that delegate or its refusal, never a fallback
            kernels = str(options["delegate"])
            found, coverage = _run_under(kernels, model_path, arrays, names, options)
        else:
            found, kernels = _run_default(outputs, OpResolverType)
    except SelectionError as exc:  # the caller's names or output= do not fit: say so, no crash
        return {"status": "error", "refused": exc.what, "reason": str(exc)}
    # Arrays by position in the file (npz keys are not for arbitrary names), names alongside.
    np.savez(outputs_path, **{f"output_{k}": r for k, r in enumerate(found.arrays)})
    return {"batched": found.batched, "kernels": kernels, "names": found.names,
            "outputs": found.available, "signature": found.signature,
            "delegated_nodes": coverage.get("delegated_nodes"),
            "total_nodes": coverage.get("total_nodes")}


def _run_default(outputs: Any, resolvers: Any) -> tuple[Any, str]:
    """XNNPACK, else the built-in kernels when XNNPACK refuses the model (no delegate named);
    and which of the two ran."""
    try:
        return outputs(resolvers.AUTO), "xnnpack"
    except RuntimeError as exc:
        # XNNPACK refuses some models (sparse int8 weights behind DENSIFY): what the model
        # computes is still checkable with the built-in kernels.
        if "delegate" not in str(exc).lower():
            raise
        return outputs(resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES), "builtin"


def _run_under(delegate: str, model_path: str, arrays: list[Any], names: list[str],
               options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The outputs under ``delegate`` (accuracy.delegates, fidelity.delegates, fidelity.cross)
    and the coverage it ran with. A machine without it raises DelegateUnavailable; a delegate
    that refuses the model raises ModelUnsupported, in the interpreter's words."""
    import tempfile

    from ai_edge_litert.interpreter import Interpreter, OpResolverType, load_delegate

    from .delegates import (
        ACCELERATORS,
        DelegateUnavailable,
        InterpreterRunner,
        ModelUnsupported,
        probe_accelerator,
    )
    from .inference import DEFAULT_BATCH, SelectionError, run_named
    from .trivial import trivial_model

    if delegate in ACCELERATORS:
        with tempfile.NamedTemporaryFile(suffix=".tflite") as trivial:
            trivial.write(trivial_model())
            trivial.flush()
            probe_accelerator(delegate, trivial.name)  # DelegateUnavailable without the device
        raise DelegateUnavailable(f"evaluation on {delegate} is not supported yet (the {delegate} "
                                  f"accelerator is present; latency and delegation are measured)")
    resolver = {"xnnpack": OpResolverType.AUTO, "reference": OpResolverType.BUILTIN_REF}.get(
        delegate, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    loaded = []
    if delegate.startswith("external:"):
        try:
            loaded = [load_delegate(delegate.removeprefix("external:"))]
        except (ValueError, RuntimeError, OSError) as exc:
            raise DelegateUnavailable(str(exc).strip()) from None
    try:
        interpreter = Interpreter(model_path=model_path, experimental_op_resolver_type=resolver,
                                  experimental_delegates=loaded)
        interpreter.allocate_tensors()
        found = run_named(interpreter, arrays, names, options.get("output"),
                          int(options.get("batch") or DEFAULT_BATCH))
    except SelectionError:
        raise
    except (RuntimeError, ValueError) as exc:
        words = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise ModelUnsupported(f"{delegate} refused the model: {words[:500]}") from None
    return found, InterpreterRunner.around(interpreter, delegate).coverage()


def layers(candidate_path: str, reference_path: str, inputs_path: str) -> dict[str, Any]:
    import numpy as np

    from .layers import layer_errors

    with np.load(inputs_path, allow_pickle=False) as data:
        count = int(data["count"])
        arrays = [data[f"input_{i}"] for i in range(count)]
        names = [str(n) for n in data["names"]]
    return {"layers": layer_errors(candidate_path, reference_path, arrays, names)}


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` figure in bytes; None off Linux, where there is no /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _sample_inputs(path: str, details: list[dict[str, Any]]) -> list[Any]:
    """The sample the test passed, one array per input, quantized where the input is integer."""
    import numpy as np

    from .delegates import UsageError
    from .inference import quantize

    with np.load(path, allow_pickle=False) as data:
        arrays = [data[f"input_{i}"] for i in range(len(data.files))]
    if len(arrays) != len(details):
        raise UsageError(f"sample has {len(arrays)} array(s), the model has {len(details)} inputs")
    inputs = []
    for array, detail in zip(arrays, details):
        if list(array.shape) != [int(d) for d in detail["shape"]]:
            raise UsageError(f"sample for input {detail['name']!r} has shape {list(array.shape)}, "
                             f"the model runs it at {[int(d) for d in detail['shape']]}")
        inputs.append(quantize(array, detail))
    return inputs


def measure(model_path: str, delegate: str, settings_json: str) -> dict[str, Any]:
    import tempfile
    import time

    from ...stored_tensors import constant_tensors
    from .delegates import ACCELERATORS, ModelRejected, open_runner, probe_accelerator
    from .protocol import DEFAULT_TIMING, DEFAULT_WARMUP, Runs, random_inputs, time_invokes
    from .trivial import trivial_model

    settings = json.loads(settings_json)
    threads = int(settings.get("threads") or 1)
    result: dict[str, Any] = {"status": "ok", "reason": "", "threads": threads}
    # The runtime loads and initialises itself on a one-op model first (for gpu and npu this is
    # also the probe): peak_rss then counts what this model costs, not the library.
    with tempfile.NamedTemporaryFile(suffix=".tflite") as trivial:
        trivial.write(trivial_model())
        trivial.flush()
        if delegate in ACCELERATORS:
            probe_accelerator(delegate, trivial.name)
        else:
            warm = open_runner(trivial.name, delegate, threads, {})
            warm.invoke()
            del warm
    rss_tracked = _reset_peak_rss()
    rss_before = _status_kib("VmRSS") if rss_tracked else None
    start = time.perf_counter_ns()
    runner = open_runner(model_path, delegate, threads, settings.get("input_shapes") or {})
    result["init_ms"] = (time.perf_counter_ns() - start) / 1e6
    if settings.get("sample_path"):
        inputs = _sample_inputs(settings["sample_path"], runner.inputs)
        result["inputs"] = "sample"
    else:
        seed = int(settings.get("seed") or 0)
        inputs = random_inputs(runner.inputs, seed)
        result["inputs"] = f"random (seed {seed})"
    try:
        runner.set_inputs(inputs)
        result.update(time_invokes(
            runner.invoke,
            Runs.from_settings(settings.get("warmup"), DEFAULT_WARMUP),
            Runs.from_settings(settings.get("timing"), DEFAULT_TIMING),
        ))
    except (RuntimeError, ValueError) as exc:
        raise ModelRejected(f"the interpreter failed running the model (corrupt or invalid): "
                            f"{' '.join(str(exc).split())[:500]}") from None
    peak = _status_kib("VmHWM")
    result["peak_rss_bytes"] = peak - rss_before if peak is not None and rss_before is not None \
        else None
    with open(model_path, "rb") as stream:
        result["arena_bytes"] = runner.arena_bytes(constant_tensors(stream.read()))
    result.update(runner.coverage())
    if settings.get("batch_sizes"):
        del runner  # the batch runners come after every batch-1 figure, peak RSS included
        result["batches"] = [_measure_batch(model_path, delegate, threads, settings, inputs, batch)
                             for batch in settings["batch_sizes"]]
    return result


def count(model_path: str, delegate: str, settings_json: str) -> dict[str, Any]:
    """Invoke the model a fixed number of times for callgrind to count (measure/cost.py runs
    this process under valgrind): ``warmup`` invokes, then ``invokes`` counted ones, one thread,
    never for a time (an invoke runs ~1,700x slower under valgrind). The parent tells the
    invokes apart by the dump callgrind writes before each. Also reports what makes two counts
    comparable, seen from inside valgrind: the ISA its CPU emulation exposes (numpy reads it
    with cpuid at import), LiteRT's and glibc's versions and the inputs fed."""
    import hashlib
    import os
    from importlib.metadata import PackageNotFoundError, version

    import numpy as np

    from .delegates import ModelRejected, open_runner
    from .protocol import random_inputs

    settings = json.loads(settings_json)
    runner = open_runner(model_path, delegate, 1, settings.get("input_shapes") or {})
    if settings.get("sample_path"):
        inputs = _sample_inputs(settings["sample_path"], runner.inputs)
        fed = "sample"
    else:
        seed = int(settings.get("seed") or 0)
        inputs = random_inputs(runner.inputs, seed)
        fed = f"random (seed {seed})"
    digest = hashlib.sha256()
    for array in inputs:
        digest.update(np.ascontiguousarray(array).tobytes())
    try:
        runner.set_inputs(inputs)
        for _ in range(int(settings["warmup"]) + int(settings["invokes"])):
            runner.invoke()
    except (RuntimeError, ValueError) as exc:
        raise ModelRejected(f"the interpreter failed running the model (corrupt or invalid): "
                            f"{' '.join(str(exc).split())[:500]}") from None
    try:
        litert = version("ai-edge-litert")
    except PackageNotFoundError:
        litert = "unknown"
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or "unknown"
    except (ValueError, OSError, AttributeError):
        glibc = "unknown"
    return {"status": "ok", "reason": "", "inputs": fed, "inputs_sha256": digest.hexdigest()[:16],
            "warmup": int(settings["warmup"]), "invokes": int(settings["invokes"]),
            "litert": litert, "glibc": glibc, "isa": _cpu_features()}


def _cpu_features() -> list[str]:
    """The CPU features numpy found with cpuid in this process: under valgrind, what its
    emulated CPU exposes (no AVX-512), not the host's /proc/cpuinfo."""
    import importlib

    try:
        umath = importlib.import_module("numpy._core._multiarray_umath")
    except ImportError:  # numpy 1.x
        umath = importlib.import_module("numpy.core._multiarray_umath")
    features: dict[str, bool] = getattr(umath, "__cpu_features__", {})
    return sorted(name for name, present in features.items() if present)


def _measure_batch(model_path: str, delegate: str, threads: int, settings: dict[str, Any],
                   batch_one: list[Any], batch: int) -> dict[str, Any]:
    """``delegates[d].batches[i]``: the model with dimension 0 of every input resized to
    ``batch``, in a runner of its own, timed as the batch-1 run was. Random inputs are drawn
    again at the new shape with the same seed; a sample is repeated along dimension 0. A batch
    the model refuses, or whose outputs do not follow it (a model fixed at batch 1 whose graph
    reshapes to 1: delegates.InterpreterRunner), is that entry's status, with the reason."""
    import numpy as np

    from .delegates import ModelRejected, ModelUnsupported, UsageError, open_runner
    from .protocol import DEFAULT_TIMING, DEFAULT_WARMUP, Runs, random_inputs, time_invokes

    found: dict[str, Any] = {"batch": batch, "status": "ok", "reason": "", "latency_ms": None,
                             "per_sample_ms": None, "input_shapes": None}
    try:
        runner = open_runner(model_path, delegate, threads, settings.get("input_shapes") or {},
                             batch)
        found["input_shapes"] = [[int(d) for d in detail["shape"]] for detail in runner.inputs]
        if settings.get("sample_path"):
            inputs = [np.take(a, np.arange(batch) % a.shape[0], axis=0) if a.ndim else a
                      for a in batch_one]
        else:
            inputs = random_inputs(runner.inputs, int(settings.get("seed") or 0))
        runner.set_inputs(inputs)
        timed = time_invokes(runner.invoke,
                             Runs.from_settings(settings.get("warmup"), DEFAULT_WARMUP),
                             Runs.from_settings(settings.get("timing"), DEFAULT_TIMING))
    except ModelUnsupported as exc:
        return {**found, "status": "unsupported", "reason": str(exc)}
    except (ModelRejected, UsageError, RuntimeError, ValueError, MemoryError) as exc:
        words = " ".join(str(exc).split())[:500] or type(exc).__name__
        return {**found, "status": "error", "reason": f"batch {batch}: {words}"}
    found["latency_ms"] = timed["latency_ms"]
    found["per_sample_ms"] = timed["latency_ms"]["median"] / batch
    return found


LITERT = "ai_edge_litert"


def _litert_failed(exc: ImportError) -> bool:
    """LiteRT is what failed to import: by name, or a frame of the package in the traceback (its
    native library could not load)."""
    if (exc.name or "").split(".")[0] == LITERT:
        return True
    frame = exc.__traceback__
    while frame is not None:
        if LITERT in frame.tb_frame.f_code.co_filename.replace("\\", "/").split("/"):
            return True
        frame = frame.tb_next
    return False


def main(argv: list[str]) -> int:
    from .delegates import DelegateUnavailable, ModelRejected, ModelUnsupported, UsageError
    from .lifetime import out_of_memory

    try:
        if argv[:1] == ["run"] and len(argv) in (4, 5):
            outcome: dict[str, Any] = {"ok": True, "result": run(*argv[1:])}
        elif argv[:1] == ["layers"] and len(argv) == 4:
            outcome = {"ok": True, "result": layers(*argv[1:])}
        elif argv[:1] == ["measure"] and len(argv) == 4:
            outcome = {"ok": True, "result": measure(*argv[1:])}
        elif argv[:1] == ["count"] and len(argv) == 4:
            outcome = {"ok": True, "result": count(*argv[1:])}
        elif argv[:1] == ["compare"] and len(argv) == 5:
            from .compare import compare

            outcome = {"ok": True, "result": compare(argv[1], argv[2], argv[3], json.loads(argv[4]))}
        else:
            raise ValueError(f"usage: worker run MODEL INPUTS OUTPUTS | measure MODEL DELEGATE "
                             f"SETTINGS | count MODEL DELEGATE SETTINGS | compare CANDIDATE BASELINE "
                             f"DELEGATE SETTINGS (got {argv})")
    except DelegateUnavailable as exc:
        outcome = {"ok": True, "result": {"status": "unavailable", "reason": str(exc)}}
    except ModelUnsupported as exc:
        outcome = {"ok": True, "result": {"status": "unsupported", "reason": str(exc)}}
    except (UsageError, ModelRejected) as exc:
        outcome = {"ok": True, "result": {"status": "error", "reason": str(exc)}}
    except ImportError as exc:
        # LiteRT itself missing or broken says nothing of the model: the parent names the
        # package and the install command instead of giving a verdict.
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                   "litert_missing": _litert_failed(exc)}
    except Exception as exc:
        # Under the cap (lifetime.apply_memory_cap), running out of memory is the backstop
        # speaking: the parent names the cap.
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "memory": out_of_memory(exc)}
    print(json.dumps(outcome), flush=True)
    return 0 if outcome["ok"] else 1
