"""One model opened under one delegate, inside the worker process (ai_edge_litert + numpy only).

``xnnpack``, ``builtin`` and ``reference`` are the Interpreter's op resolvers; ``external:PATH``
loads a delegate library into the Interpreter; ``gpu`` and ``npu`` are LiteRT CompiledModel
accelerators, which only say whether they took the whole model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .lifetime import out_of_memory

INTERPRETER_DELEGATES = ("xnnpack", "builtin", "reference")
# A diagnostic for fuzzing (tests/hardening/test_fuzz.py, bench/hardening_fuzz.py): with this variable set
# to a file, the worker appends "allocate_tensors MODEL_PATH" to it just before each
# allocate_tensors(), so a fuzz run can tell which mutants got past the static checks into the
# interpreter. Unset, it costs one dictionary lookup.
TRACE_VARIABLE = "PYTEST_TFLITE_TRACE"
ACCELERATORS = ("gpu", "npu")


class DelegateUnavailable(Exception):
    """The machine lacks the delegate (library missing, no device): reason in the loader's words."""


class ModelUnsupported(Exception):
    """The delegate exists but cannot run this model (e.g. an unresolved custom op)."""


class ModelRejected(Exception):
    """The interpreter refused the model itself (corrupt or invalid), whatever the delegate."""


class UsageError(Exception):
    """The measurement settings do not fit the model (e.g. a dynamic input without a shape)."""


def concrete_shapes(
    details: list[dict[str, Any]], input_shapes: dict[str, list[int]]
) -> list[list[int] | None]:
    """The shape to run each input at: ``input_shapes``, else the model's own.

    A dynamic batch dimension (-1 first, as every Keras export has) runs at the model's stored
    batch of 1; any other dynamic dimension needs a shape from the settings.
    """
    shapes: list[list[int] | None] = []
    for detail in details:
        signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
        name = detail["name"]
        given = _lookup(input_shapes, name)
        if given is not None:
            shapes.append(list(given))
        elif any(d < 0 for d in signature[1:]):
            raise UsageError(
                f"input {name!r} has a dynamic shape {signature}: give it one with "
                f"runtime.input_shapes = {{ \"{name}\" = [...] }} in the budget file"
            )
        else:
            shapes.append(None)
    return shapes


def _lookup(shapes: dict[str, list[int]], name: str) -> list[int] | None:
    # Budget files use the names users see: "serving_default_x:0" also answers to "x".
    if name in shapes:
        return shapes[name]
    short = name.removeprefix("serving_default_").split(":")[0]
    return shapes.get(short)


class InterpreterRunner:
    def __init__(self, model_path: str, delegate: str, threads: int,
                 input_shapes: dict[str, list[int]], batch: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType, load_delegate

        self.delegate = delegate
        resolver = {
            "xnnpack": OpResolverType.AUTO,
            "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            "reference": OpResolverType.BUILTIN_REF,
        }.get(delegate, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        delegates = []
        if delegate.startswith("external:"):
            try:
                delegates = [load_delegate(delegate.removeprefix("external:"))]
            except (ValueError, RuntimeError, OSError) as exc:
                raise DelegateUnavailable(str(exc).strip()) from None
        try:
            self.interpreter = Interpreter(
                model_path=model_path, num_threads=threads,
                experimental_op_resolver_type=resolver, experimental_delegates=delegates,
            )
            details = self.interpreter.get_input_details()
            for detail, shape in zip(details, concrete_shapes(details, input_shapes)):
                if shape is not None:
                    self.interpreter.resize_tensor_input(detail["index"], shape, strict=False)
            at_one = self._resize_batch(batch, model_path) if batch is not None else None
            trace("allocate_tensors", model_path)
            self.interpreter.allocate_tensors()
            if at_one is not None and batch is not None:
                self._check_outputs_follow(batch, at_one)
        except (ValueError, RuntimeError) as exc:
            if out_of_memory(exc):
                raise MemoryError("allocate_tensors() failed without a message") from None
            if batch is not None:  # the model ran at its own batch: this size is what it refuses
                words = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
                raise ModelUnsupported(f"cannot run at batch {batch}: {words[:500]}") from None
            raise _refusal(str(exc)) from None
        self.inputs = self.interpreter.get_input_details()

    @classmethod
    def around(cls, interpreter: Any, delegate: str) -> InterpreterRunner:
        """A runner over an interpreter opened elsewhere (the worker's ``run``) under
        ``delegate``, so that its ``coverage()`` reads the kernels an evaluation ran with."""
        runner = cls.__new__(cls)
        runner.interpreter = interpreter
        runner.delegate = delegate
        runner.inputs = interpreter.get_input_details()
        return runner

    def _resize_batch(self, batch: int, model_path: str) -> dict[int, list[int]] | None:
        """Dimension 0 of every input to ``batch``.

        A model whose inputs declare the batch dynamic (-1 first in the shape_signature), or fix
        it at anything but 1, is resized strictly: only a dynamic dimension may change, in the
        interpreter's words otherwise. A model whose inputs all fix batch 1, as most shipped
        ``.tflite`` files do, is resized anyway (many such graphs follow the batch); what came
        out at batch 1 is returned, per output tensor, for ``_check_outputs_follow``. The other
        dimensions stay as ``input_shapes`` or the model set them.
        """
        details = [d for d in self.interpreter.get_input_details() if len(d["shape"])]
        signatures = [[int(n) for n in d.get("shape_signature", d["shape"])] for d in details]
        fixed_at_one = bool(details) and all(s[:1] == [1] for s in signatures)
        at_one = None
        if fixed_at_one and batch != 1:  # before any resize: batch 1 itself
            trace("allocate_tensors", model_path)
            self.interpreter.allocate_tensors()
            at_one = self._output_shapes()
        for detail in details:
            shape = [int(d) for d in detail["shape"]]
            self.interpreter.resize_tensor_input(detail["index"], [batch, *shape[1:]],
                                                 strict=not fixed_at_one)
        return at_one

    def _output_shapes(self) -> dict[int, list[int]]:
        """Each output's shape after one invoke of the allocated interpreter (random inputs,
        seed 0): invoked, not just allocated, since a data-dependent output has its shape only
        then."""
        from .protocol import random_inputs

        self.inputs = self.interpreter.get_input_details()
        self.set_inputs(random_inputs(self.inputs, 0))
        self.interpreter.invoke()
        return {int(d["index"]): [int(n) for n in self.interpreter.get_tensor(d["index"]).shape]
                for d in self.interpreter.get_output_details()}

    def _check_outputs_follow(self, batch: int, at_one: dict[int, list[int]]) -> None:
        """ModelUnsupported unless every output whose first dimension was 1 at batch 1 has
        ``batch`` there now. Such a model runs, but a reshape to a fixed 1 inside it means it
        computes one sample's worth of output (or mixes the samples): timing it as ``batch``
        samples would time the wrong work. Outputs of rank 0, or that did not start at 1, say
        nothing about the batch and are left out."""
        after = self._output_shapes()
        for detail in self.interpreter.get_output_details():
            before = at_one.get(int(detail["index"]), [])
            now = after.get(int(detail["index"]), [])
            if before[:1] == [1] and now[:1] != [batch]:
                stays = "stays at batch 1" if now[:1] == [1] else "does not follow the batch"
                raise ModelUnsupported(
                    f"cannot run at batch {batch}: the model's inputs fix batch 1, and with "
                    f"{batch} samples in, its output {detail['name']!r} {stays} (shape {now}, "
                    f"shape {before} at batch 1); the graph fixes the batch somewhere (a reshape "
                    f"to 1, say), so timing it would not time {batch} samples")

    def set_inputs(self, arrays: list[Any]) -> None:
        for detail, array in zip(self.inputs, arrays):
            self.interpreter.set_tensor(detail["index"], array)

    def invoke(self) -> None:
        self.interpreter.invoke()

    def arena_bytes(self, constant_tensors: dict[int, set[int]]) -> int | None:
        """Bytes the interpreter placed its non-constant tensors in, read from their addresses.

        Tensors of one arena lie within 64-byte alignment of each other (the planner puts each
        at the lowest free offset, so an arena has no larger holes); a wider gap means another
        block: the persistent arena, or a dynamic tensor allocated on its own. The figure is the
        sum of those blocks' spans. With builtin and reference kernels that is the whole tensor
        memory; under XNNPACK the arena holds only the delegate's I/O, its workspace shows
        only in RSS. Every subgraph's tensors count that are still allocated after the runs;
        WHILE and IF bodies free theirs after each invoke, so only peak RSS sees them.
        ``constant_tensors``: per subgraph, the tensors whose data is in the file.
        """
        wrapper = self.interpreter._interpreter
        extents = []
        for subgraph in range(wrapper.NumSubgraphs()):
            for index in range(wrapper.NumTensors(subgraph)):
                if index in constant_tensors.get(subgraph, ()):
                    continue
                try:
                    # Shape and type first: tensor() on a shape-less kernel temporary, or on a
                    # resource or variant handle (a 4-byte id read as an object), can crash.
                    wrapper.TensorSize(index, subgraph)
                    if np.dtype(wrapper.TensorType(index, subgraph)).kind in "OSUV":
                        continue
                    array = wrapper.tensor(self.interpreter, index, subgraph)
                except (ValueError, RuntimeError, TypeError):
                    continue
                if isinstance(array, np.ndarray) and array.nbytes:
                    # (0-d tensors come back as numpy scalars, copies without an address.)
                    extents.append((array.ctypes.data, array.ctypes.data + array.nbytes))
                del array
        return _block_bytes(extents) if extents else None

    def coverage(self) -> dict[str, Any]:
        """Delegated nodes, partitions, the ops left to CPU kernels and the placement per node
        (see coverage.py)."""
        from .coverage import coverage

        return coverage(self.interpreter, self.delegate)


def trace(event: str, model_path: str) -> None:
    """Append ``EVENT MODEL_PATH`` to the file named by PYTEST_TFLITE_TRACE, when it is set."""
    import os

    path = os.environ.get(TRACE_VARIABLE)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{event} {model_path}\n")


class AcceleratorRunner:
    """A LiteRT CompiledModel on the GPU or NPU, with no CPU fallback: all or nothing."""

    def __init__(self, model_path: str, delegate: str, threads: int,
                 input_shapes: dict[str, list[int]]) -> None:
        from ai_edge_litert.compiled_model import CompiledModel

        self.delegate = delegate
        try:
            self.model = CompiledModel.from_file(model_path,
                                                 options=accelerator_options(delegate))
        except RuntimeError as exc:
            raise ModelUnsupported(_unsupported_reason(str(exc))) from None
        details = self.model.get_input_tensor_details("serving_default") \
            if "serving_default" in self.model.get_signature_list() else None
        if input_shapes and details:
            for position, name in enumerate(details):
                if name in input_shapes:
                    self.model.resize_input_tensor(position, input_shapes[name], 0)
        self.input_buffers = self.model.create_input_buffers(0)
        self.output_buffers = self.model.create_output_buffers(0)
        self.inputs = [buffer.get_tensor_details() for buffer in self.input_buffers]

    def set_inputs(self, arrays: list[Any]) -> None:
        for buffer, array in zip(self.input_buffers, arrays):
            buffer.write(np.ascontiguousarray(array))

    def invoke(self) -> None:
        self.model.run_by_index(0, self.input_buffers, self.output_buffers)

    def arena_bytes(self, constant_tensors: dict[int, set[int]]) -> int | None:
        return None  # the accelerator's memory is not visible from here

    def coverage(self) -> dict[str, Any]:
        full = bool(self.model.is_fully_accelerated())
        return {"fully_accelerated": full,
                "reason": "CompiledModel reports only whether the whole model was accelerated",
                "placement": None,
                "placement_note": f"LiteRT's CompiledModel tells only is_fully_accelerated(), "
                                  f"not which ops the {self.delegate} accelerator took"}


ALIGNMENT_GAP = 64  # TFLite's kDefaultTensorAlignment


def _block_bytes(extents: list[tuple[int, int]]) -> int:
    total, block_start, block_end = 0, *sorted(extents)[0]
    for start, end in sorted(extents)[1:]:
        if start > block_end + ALIGNMENT_GAP:
            total += block_end - block_start
            block_start = start
        block_end = max(block_end, end)
    return total + block_end - block_start


def accelerator_flags(delegate: str) -> Any:
    """The accelerator alone, never with CPU: CompiledModel.is_fully_accelerated() is about the
    whole set, so with NPU|CPU on a machine without an NPU the model runs on the CPU and still
    reads True (tests/unit/measure/test_accelerator_honesty.py shows it). Alone, a missing or
    partial accelerator fails to compile instead, and probe_accelerator tells which."""
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    return HardwareAccelerator.GPU if delegate == "gpu" else HardwareAccelerator.NPU


def accelerator_options(delegate: str) -> Any:
    """The CompiledModel options a timed run uses: the accelerator alone, and on the GPU
    benchmark mode, which waits for the GPU's work to finish on each run: without it an invoke
    times only the command submission (LiteRT's own tool read 274 us for ~17 ms of work)."""
    from ai_edge_litert.options import GpuOptions, Options

    flags = accelerator_flags(delegate)
    if delegate == "gpu":
        return Options(hardware_accelerators=flags, gpu_options=GpuOptions(benchmark_mode=True))
    return Options(hardware_accelerators=flags)


_TOPICS = {
    "gpu": ("gpu", "vulkan", "webgpu", "opencl", "metal", "adapter"),
    "npu": ("npu", "dispatch", "openvino", "qualcomm", "mediatek", "vendor"),
}


def _native_stderr_reason(text: str, delegate: str) -> str:
    """The loader's own words from native stderr: failures that concern this accelerator."""
    failures = ("error", "fail", "couldn't", "could not", "cannot", "no adapter", "not found")
    lines = [line.strip().lstrip("\u2514 ") for line in text.splitlines()]
    relevant = [
        line for line in lines
        if any(k in line.lower() for k in failures)
        and any(k in line.lower() for k in _TOPICS[delegate])
    ]
    return " | ".join(dict.fromkeys(relevant))[:800]


def probe_accelerator(delegate: str, trivial_model_path: str) -> None:
    """Raise DelegateUnavailable unless the accelerator runs a one-op model.

    Without an NPU, LiteRT says "Some ops are not accelerated", which reads like a verdict on
    the model; trying a model every accelerator supports separates "no device" from "not this
    model".
    """
    import os
    import tempfile

    with tempfile.TemporaryFile() as native:
        saved = os.dup(2)
        os.dup2(native.fileno(), 2)
        try:
            runner = AcceleratorRunner(trivial_model_path, delegate, 1, {})
            runner.invoke()
            failure = None
        except (ModelUnsupported, RuntimeError, ValueError) as exc:
            failure = str(exc)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if failure is not None:
            native.seek(0)
            said = _native_stderr_reason(native.read().decode("utf-8", "replace"), delegate)
            raise DelegateUnavailable(said or _unsupported_reason(failure))


def open_runner(model_path: str, delegate: str, threads: int, input_shapes: dict[str, list[int]],
                batch: int | None = None) -> InterpreterRunner | AcceleratorRunner:
    """The model opened under ``delegate``; ``batch``: dimension 0 of every input resized to it
    (a batch the model refuses, or whose outputs do not follow it, is ModelUnsupported)."""
    if delegate in ACCELERATORS:
        if batch is not None:
            raise ModelUnsupported(f"batch sizes are measured under the Interpreter's delegates "
                                   f"(xnnpack, builtin, reference, external), not {delegate}")
        return AcceleratorRunner(model_path, delegate, threads, input_shapes)
    return InterpreterRunner(model_path, delegate, threads, input_shapes, batch)


# Words of a refusal about an op or a delegate; "failed to prepare" alone also follows a corrupt
# node (a bad tensor index), so it does not count.
_OP_SUPPORT = ("custom op", "didn't find op", "not supported", "unsupported", "failed to apply",
               "delegate")


def _refusal(message: str) -> Exception:
    """Unsupported (an op or a delegate said no) or rejected (the model itself is broken)."""
    if any(phrase in message.lower() for phrase in _OP_SUPPORT):
        return ModelUnsupported(_unsupported_reason(message))
    lines = " ".join(line.strip() for line in message.splitlines() if line.strip())
    return ModelRejected(f"the interpreter rejected the model (corrupt or invalid): {lines[:500]}")


def _unsupported_reason(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        lowered = line.lower()
        if "custom op" in lowered or "didn't find op" in lowered or "not supported" in lowered:
            return line
    return " ".join(lines)[:500] or "the interpreter refused the model"
