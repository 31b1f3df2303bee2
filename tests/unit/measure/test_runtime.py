"""Runtime measurement (measure/runtime.py, measure/worker/, lock.py) on real models.

Every figure asserted here is known independently of the code under test: worked out by hand
from TFLite's arena planner, read from the model's flatbuffer, or a physical bound (a process
holds at least the arena it allocated; one thread cannot spend more CPU time than wall time).
Timing settings are small so the file stays fast; timing assertions keep wide margins because
these 2-core machines are noisy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite.measure import lock
from pytest_tflite.measure.runtime import measure_delegate, measure_delegates
from pytest_tflite.results import DelegateResult
from pytest_tflite.settings import Runs, RuntimeSettings
from tests.helpers.models import Op, Subgraph, Tensor, build_model, chain_model, run
from tests.helpers.paths import REPOSITORY

FAST = RuntimeSettings(warmup=Runs(2, 0), timing=Runs(30, 0.05))
QUICK = RuntimeSettings(warmup=Runs(1, 0), timing=Runs(5, 0))
ALIGN = 64  # TFLite's kDefaultTensorAlignment


def aligned(size: int) -> int:
    return -(-size // ALIGN) * ALIGN


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / f"{name}.tflite"
    path.write_bytes(content)
    return path


def ok(result: DelegateResult) -> DelegateResult:
    assert result.status == "ok", result.reason
    return result


# --- flatbuffer facts, read without the package --------------------------------------------------


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated as schema

    return schema


def activation_bytes(content: bytes) -> dict[int, int]:
    """``{tensor index: bytes}`` of subgraph 0's non-constant tensors (no data in the file)."""
    schema = _schema()
    names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(content, 0)
    graph = model.Subgraphs(0)
    sizes = {}
    for index in range(graph.TensorsLength()):
        tensor = graph.Tensors(index)
        if model.Buffers(tensor.Buffer()).DataLength() > 0:
            continue
        itemsize = np.dtype(names[tensor.Type()]).itemsize
        sizes[index] = int(np.prod(tensor.ShapeAsNumpy())) * itemsize
    return sizes


def main_ops(content: bytes) -> tuple[dict[str, int], list[tuple[list[int], list[int]]]]:
    """Op counts of subgraph 0 and each operator's (inputs, outputs), in execution order."""
    schema = _schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(content, 0)
    graph = model.Subgraphs(0)
    counts: Counter[str] = Counter()
    wiring = []
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        code = model.OperatorCodes(op.OpcodeIndex())
        counts[names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]] += 1
        wiring.append((op.InputsAsNumpy().tolist(), op.OutputsAsNumpy().tolist()))
    return dict(counts), wiring


# --- a conv model, shared by the latency, arena, delegation and CPU-time tests -----------------


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tf_keras

    from pytest_tflite import convert

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([
        tf_keras.Input((32, 32, 3)),
        tf_keras.layers.Conv2D(16, 3, activation="relu"),
        tf_keras.layers.Conv2D(32, 3, activation="relu"),
        tf_keras.layers.MaxPooling2D(),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dense(10),
    ])
    return Path(convert(model, output_dir=tmp_path_factory.mktemp("conv")).path)


@pytest.fixture(scope="module")
def conv_results(conv_model: Path) -> dict[str, dict[str, Any]]:
    return measure_delegates(conv_model, ["reference", "builtin", "xnnpack"], FAST)


def test_reference_kernels_are_several_times_slower_than_builtin(conv_results):
    # Optimized (im2col + GEMM) against naive loops: ~10x here (2.8 vs 0.28 ms).
    reference = ok(conv_results["reference"]).latency_ms
    builtin = ok(conv_results["builtin"]).latency_ms
    assert builtin.median >= 0.1  # big enough that the ratio is not timer noise
    assert reference.median > 3 * builtin.median, (reference, builtin)
    assert reference.min > 3 * builtin.min, (reference, builtin)


def test_latency_statistics_are_consistent(conv_results):
    for name, result in conv_results.items():
        latency = ok(result).latency_ms
        assert latency.n >= 30, name
        assert 0 < latency.min <= latency.median <= latency.p90 <= latency.p99, name
        assert latency.min <= latency.mean and latency.std >= 0, name
        assert result.threads == 1
        assert result.init_ms > 0 and result.first_invoke_ms > 0, name


def test_cpu_time_against_wall_time(conv_results):
    # One interpreter thread on a ~3 ms model: process CPU time per invoke stays near wall time.
    # It counts every thread of the worker: under the reference kernels a second thread of the
    # runtime was seen adding ~14% (cpu/wall 1.14 in-process), so the bound leaves room for it.
    reference = ok(conv_results["reference"])
    latency = reference.latency_ms
    assert latency.min >= 1.0
    assert reference.cpu_ms <= latency.mean * 1.5
    assert reference.cpu_ms >= latency.min / 3
    # CPU time does not suffer from a noisy neighbour: the kernels' gap shows there as well.
    assert reference.cpu_ms > 3 * ok(conv_results["builtin"]).cpu_ms
    # The first invoke runs cold (XNNPACK also finishes its setup there).
    for name, result in conv_results.items():
        assert result.first_invoke_ms >= 0.9 * result.latency_ms.min, name


def test_arena_of_a_chain_is_the_hand_planned_value(tmp_path):
    # x0 -> RELU -> x1 -> RELU -> x2 -> RELU -> x3 -> RELU -> x4, 100 floats (400 bytes) each.
    # TFLite's ArenaPlanner (arena_planner.cc, simple_memory_arena.cc):
    #   - each tensor takes its size rounded up to kDefaultTensorAlignment = 64: 400 -> 448;
    #   - graph inputs are allocated at node 0 and never freed, graph outputs never freed:
    #     x0 [0, end], x1 [0, 1], x2 [1, 2], x3 [2, 3], x4 [3, end];
    #   - tensors alive through the whole run are placed first (x0 -> 0), the others by size,
    #     ties by first use, each at the lowest offset free of every tensor alive at the same
    #     time: x1 -> 448, x2 -> 896, x3 -> 448 (x1 died at node 1), x4 -> 896 (x2 died at 2).
    # The non-constant tensors then cover [0, 896 + 400) = 1296 bytes, in one block (the gaps
    # are the 48-byte alignment pads). Without reuse it would be 4 * 448 + 400 = 2192.
    path = write(tmp_path, "chain5", chain_model([100] * 5))
    expected = 2 * aligned(400) + 400
    assert expected == 1296
    for delegate in ("reference", "builtin"):
        assert ok(measure_delegate(path, delegate, QUICK)).arena_bytes == expected, delegate
    # Three tensors of 10 floats, none reusable (x0 and x2 live to the end): 64 + 64 + 40.
    short = write(tmp_path, "chain3", chain_model([10] * 3))
    assert ok(measure_delegate(short, "reference", QUICK)).arena_bytes == 168


def test_conv_arena_reference_is_the_peak_live_set_and_builtin_adds_scratch(conv_model,
                                                                            conv_results):
    content = conv_model.read_bytes()
    activations = activation_bytes(content)
    ops, wiring = main_ops(content)
    assert ops == {"CONV_2D": 2, "MAX_POOL_2D": 1, "RESHAPE": 1, "FULLY_CONNECTED": 1}
    # input 32x32x3, conv 30x30x16, conv 28x28x32, pool 14x14x32, flatten 6272, dense 10 floats.
    assert sorted(activations.values()) == sorted(
        4 * n for n in (32 * 32 * 3, 30 * 30 * 16, 28 * 28 * 32, 14 * 14 * 32, 6272, 10))
    total = sum(aligned(b) for b in activations.values())
    # Peak live set by hand: inputs and outputs live throughout, others from producer to last
    # consumer. At the second conv the input, conv1 and conv2 outputs are alive together:
    # 12288 + 57600 + 100352 = 170240 bytes (all multiples of 64), the largest of any node.
    first = {t: 0 for t in activations}
    last = {t: len(wiring) for t in activations}
    for node, (inputs, outputs) in enumerate(wiring):
        for t in outputs:
            first[t] = node
        for t in inputs:
            if t in activations:
                last[t] = node
    graph = _schema().Model.GetRootAs(content, 0).Subgraphs(0)
    for t in [*graph.InputsAsNumpy().tolist(), *graph.OutputsAsNumpy().tolist()]:
        last[t] = len(wiring)  # never freed (inputs have no producer: first use 0)
    peak = max(sum(aligned(activations[t]) for t in activations if first[t] <= node <= last[t])
               for node in range(len(wiring)))
    assert peak == 12288 + 57600 + 100352 == 170240
    reference = ok(conv_results["reference"]).arena_bytes
    assert reference == peak  # the planner packs this chain with no hole
    assert max(activations.values()) < reference < total
    # The optimized conv kernel adds an im2col buffer (28*28 * 3*3*16 floats = 451584 bytes for
    # the second conv): the arena exceeds the sum of every activation.
    builtin = ok(conv_results["builtin"]).arena_bytes
    assert builtin > total == 220480
    assert builtin >= peak + 451584


def test_plain_conv_is_delegated_whole_under_xnnpack(conv_model, conv_results):
    ops, _ = main_ops(conv_model.read_bytes())
    xnnpack = ok(conv_results["xnnpack"])
    assert (xnnpack.delegated_nodes, xnnpack.total_nodes, xnnpack.partitions) == (5, 5, 1)
    assert xnnpack.fallback_ops == {}
    # Without a delegate every op falls back to the CPU kernels: exactly the model's ops.
    for delegate in ("builtin", "reference"):
        found = ok(conv_results[delegate])
        assert (found.delegated_nodes, found.total_nodes, found.partitions) == (0, 5, 0)
        assert found.fallback_ops == ops


def unary_chain(kinds: list[str], shape: tuple[int, ...] = (1, 8)) -> bytes:
    tensors = [Tensor(f"t{i}", list(shape)) for i in range(len(kinds) + 1)]
    ops = [Op(kind, [i], [i + 1]) for i, kind in enumerate(kinds)]
    return build_model([Subgraph(tensors, ops, inputs=[0], outputs=[len(kinds)])])


def test_an_op_xnnpack_refuses_splits_the_model(tmp_path):
    # XNNPACK has no SIGN kernel (checked with _get_ops_details: two DELEGATE nodes around it);
    # the builtin kernels run it.
    content = unary_chain(["RELU", "SIGN", "RELU"])
    assert run(content, [[-2, -1, 0, 1, 2, 3, -3, 0.5]])[0].tolist() == [[0, 0, 0, 1, 1, 1, 0, 1]]
    path = write(tmp_path, "sign", content)
    xnnpack = ok(measure_delegate(path, "xnnpack", QUICK))
    assert (xnnpack.delegated_nodes, xnnpack.total_nodes, xnnpack.partitions) == (2, 3, 2)
    assert xnnpack.fallback_ops == {"SIGN": 1}
    builtin = ok(measure_delegate(path, "builtin", QUICK))
    assert (builtin.delegated_nodes, builtin.partitions) == (0, 0)
    assert builtin.fallback_ops == {"RELU": 2, "SIGN": 1}
    # Seven ops, two of them SIGN: {RELU, TANH} | SIGN | {LOGISTIC, RELU} | SIGN | {RELU}.
    longer = write(tmp_path, "sign2", unary_chain(
        ["RELU", "TANH", "SIGN", "LOGISTIC", "RELU", "SIGN", "RELU"]))
    found = ok(measure_delegate(longer, "xnnpack", QUICK))
    assert (found.delegated_nodes, found.total_nodes, found.partitions) == (5, 7, 3)
    assert found.fallback_ops == {"SIGN": 2}


# --- memory ------------------------------------------------------------------------------------


def test_peak_rss_holds_a_large_arena(tmp_path):
    # Four tensors of 4 Mi floats (16 MiB, a multiple of 64): x0 at 0, x1 at 16 MiB, x2 at
    # 32 MiB, x3 reuses x1's slot: 48 MiB. Under XNNPACK the TFLite arena keeps only the
    # delegate's I/O, x0 and x3: 32 MiB.
    mib16 = 16 * 2**20
    path = write(tmp_path, "big", chain_model([4 * 2**20] * 4))
    results = measure_delegates(path, ["builtin", "xnnpack"], QUICK)
    builtin, xnnpack = ok(results["builtin"]), ok(results["xnnpack"])
    assert builtin.arena_bytes == 3 * mib16
    assert xnnpack.arena_bytes == 2 * mib16
    # Every byte of the arena was written (inputs set, outputs computed): it is resident.
    assert builtin.peak_rss_bytes >= builtin.arena_bytes
    assert xnnpack.peak_rss_bytes >= xnnpack.arena_bytes
    # A RELU over 16 MiB takes milliseconds; the first invoke also faults the output pages in
    # (and XNNPACK finishes its setup there): ~20 ms against ~1-3 ms in steady state.
    assert builtin.latency_ms.median > 0.5
    for found in (builtin, xnnpack):
        assert found.first_invoke_ms >= found.latency_ms.median


def test_peak_rss_of_a_tiny_model_is_not_the_runtime_library(tmp_path):
    path = write(tmp_path, "tiny", chain_model([16, 16]))
    found = ok(measure_delegate(path, "builtin", QUICK))
    assert found.arena_bytes == 128
    # The worker loads the runtime on a one-op model before taking its baseline; counting the
    # library's ~9 MB of code and one-time set-up here read 16-18 MB for this 64-byte model.
    assert found.peak_rss_bytes < 10 * 2**20


# --- statuses ----------------------------------------------------------------------------------


def test_custom_op_is_unsupported_and_named(tmp_path):
    content = build_model([Subgraph(
        [Tensor("x", [4]), Tensor("y", [4]), Tensor("z", [4])],
        [Op("RELU", [0], [1]), Op("CUSTOM", [1], [2], custom_code="MyOp")],
        inputs=[0], outputs=[2])])
    path = write(tmp_path, "custom", content)
    for delegate in ("xnnpack", "builtin", "reference"):
        found = measure_delegate(path, delegate, QUICK)
        assert found.status == "unsupported", found
        assert "MyOp" in found.reason
        assert found.latency_ms is None and found.arena_bytes is None


def test_converter_custom_op_is_unsupported_and_named(tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def bessel(x):
        return tf.math.special.bessel_i0e(x) + 1.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions([bessel.get_concrete_function()])
    converter.allow_custom_ops = True
    content = converter.convert()
    assert main_ops(content)[0] == {"CUSTOM": 1, "ADD": 1}
    found = measure_delegate(write(tmp_path, "bessel", content), "builtin", QUICK)
    assert found.status == "unsupported", found
    assert "BesselI0e" in found.reason


def _has_gpu_device() -> bool:
    return any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/dri/renderD128", "/dev/kgsl-3d0"))


def test_missing_gpu_and_missing_library_are_unavailable_in_the_loaders_words(tmp_path):
    path = write(tmp_path, "relu", chain_model([4, 4]))
    gpu = measure_delegate(path, "gpu", QUICK)
    if gpu.status != "unavailable" and _has_gpu_device():
        pytest.skip(f"this machine has a GPU (gpu: {gpu.status})")
    assert gpu.status == "unavailable", gpu
    # The words come from native stderr (LiteRT's loader), not from the package.
    assert any(word in gpu.reason for word in ("Vulkan", "WebGPU", "adapter", "OpenCL")), gpu
    assert gpu.latency_ms is None
    missing = measure_delegate(path, "external:/nonexistent.so", QUICK)
    assert missing.status == "unavailable", missing
    assert "/nonexistent.so" in missing.reason
    assert "cannot open shared object file" in missing.reason


# --- a worker that crashes, hangs or talks nonsense ---------------------------------------------


def fake_python(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake_python"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return script


def test_a_segfaulting_worker_is_an_error_naming_the_signal(tmp_path, monkeypatch):
    path = write(tmp_path, "relu", chain_model([4, 4]))
    script = fake_python(tmp_path, """
        import os, signal, sys
        print("about to crash", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    """)
    monkeypatch.setattr(sys, "executable", str(script))
    found = measure_delegate(path, "builtin", QUICK)
    assert found.status == "error"
    assert "crashed" in found.reason and "SIGSEGV" in found.reason
    assert "about to crash" in found.reason  # the native stderr's last words
    assert found.latency_ms is None and found.threads == 1


def test_an_aborting_worker_names_sigabrt(tmp_path, monkeypatch):
    path = write(tmp_path, "relu", chain_model([4, 4]))
    monkeypatch.setattr(sys, "executable", str(fake_python(tmp_path, """
        import os
        os.abort()
    """)))
    found = measure_delegate(path, "xnnpack", QUICK)
    assert found.status == "error" and "SIGABRT" in found.reason, found


def test_a_hanging_worker_times_out(tmp_path, monkeypatch):
    path = write(tmp_path, "relu", chain_model([4, 4]))
    monkeypatch.setattr(sys, "executable", str(fake_python(tmp_path, """
        import time
        time.sleep(300)
    """)))
    start = time.monotonic()
    found = measure_delegate(path, "builtin", replace(QUICK, timeout=1.0))
    # Killed at its 1 s timeout, not waited for: the bound is far from both, so a loaded machine
    # cannot fail it.
    assert time.monotonic() - start < 60
    assert found.status == "error"
    assert "timed out after 1 s" in found.reason, found


def test_a_worker_that_exits_without_a_result_is_an_error(tmp_path, monkeypatch):
    path = write(tmp_path, "relu", chain_model([4, 4]))
    monkeypatch.setattr(sys, "executable", str(fake_python(tmp_path, """
        import sys
        print("not json")
        print("INFO: chatter", file=sys.stderr)
        print("the real trouble", file=sys.stderr)
        sys.exit(3)
    """)))
    found = measure_delegate(path, "builtin", QUICK)
    assert found.status == "error"
    assert "worker exited 3" in found.reason and "the real trouble" in found.reason
    assert "chatter" not in found.reason


# --- models as they come from other projects -------------------------------------------------


def _concrete(fn: Any, module: Any = None, **options: Any) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()],
                                                                module)
    for key, value in options.items():
        setattr(converter, key, value)
    return converter.convert()


def _input_details(content: bytes) -> list[dict[str, Any]]:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=content).get_input_details()


def test_tf_while_loop_model_with_three_subgraphs(tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def loop(x):
        _, y = tf.while_loop(lambda i, y: i < 5, lambda i, y: (i + 1, y * 2.0 + 1.0),
                             (tf.constant(0), x))
        return y

    content = _concrete(loop)
    assert _schema().Model.GetRootAs(content, 0).SubgraphsLength() == 3
    assert run(content, np.zeros((1, 4)))[0].tolist() == [[31.0] * 4]  # 2^5 - 1
    path = write(tmp_path, "while", content)
    for delegate in ("builtin", "xnnpack"):
        found = ok(measure_delegate(path, delegate, QUICK))
        assert (found.total_nodes, found.fallback_ops) == (1, {"WHILE": 1}), delegate


def while_model(hidden: int) -> bytes:
    """``count, x = WHILE(count, x)`` three times; the body maps x [1, 4] through a hidden
    [1, hidden] layer (FULLY_CONNECTED there and back)."""
    rng = np.random.default_rng(0)
    loop = {"cond_subgraph_index": 1, "body_subgraph_index": 2}
    main = Subgraph([Tensor("count", [1]), Tensor("x", [1, 4]), Tensor("count_out", [1]),
                     Tensor("x_out", [1, 4])],
                    [Op("WHILE", [0, 1], [2, 3], options=loop)], inputs=[0, 1], outputs=[2, 3])
    cond = Subgraph([Tensor("count", [1]), Tensor("x", [1, 4]), Tensor("limit", [1], data=[3.0]),
                     Tensor("less", [1], dtype="bool")],
                    [Op("LESS", [0, 2], [3])], inputs=[0, 1], outputs=[3])
    body = Subgraph(
        [Tensor("count", [1]), Tensor("x", [1, 4]), Tensor("one", [1], data=[1.0]),
         Tensor("w1", [hidden, 4], data=rng.normal(size=(hidden, 4)) / 2),
         Tensor("w2", [4, hidden], data=rng.normal(size=(4, hidden)) / 64),
         Tensor("count_next", [1]), Tensor("h", [1, hidden]), Tensor("x_next", [1, 4])],
        [Op("ADD", [0, 2], [5]), Op("FULLY_CONNECTED", [1, 3], [6]),
         Op("FULLY_CONNECTED", [6, 4], [7])],
        inputs=[0, 1], outputs=[5, 7])
    return build_model([main, cond, body])


def test_hand_built_while_model_runs(tmp_path):
    content = while_model(hidden=4096)
    count, _ = run(content, [0.0], np.ones((1, 4)))
    assert count.tolist() == [3.0]
    found = ok(measure_delegate(write(tmp_path, "while", content), "builtin", QUICK))
    assert found.fallback_ops == {"WHILE": 1}


def test_while_body_arena_is_planned_but_released_after_each_run(tmp_path):
    """A WHILE body's tensors live only while the loop runs: LiteRT frees them after each
    invoke, so the measured arena (read after the runs) cannot see them; the static plan can."""
    from pytest_tflite.measure.static import measure_static
    from pytest_tflite.model import TFLiteModel

    path = write(tmp_path, "while", while_model(hidden=4096))
    found = ok(measure_delegate(path, "reference", QUICK))
    planned = measure_static(TFLiteModel.from_path(path))
    assert planned.subgraphs[2]["planned_arena_bytes"] >= 4096 * 4
    assert planned.planned_arena_bytes >= 4096 * 4 > found.arena_bytes


def test_call_once_model_runs(tmp_path):
    # main: CALL_ONCE(init = 1), then x -> RELU -> y; init: k (constant) -> RELU -> TANH.
    main = Subgraph([Tensor("x", [4]), Tensor("y", [4])],
                    [Op("CALL_ONCE", [], [], options={"init_subgraph_index": 1}),
                     Op("RELU", [0], [1])], inputs=[0], outputs=[1])
    init = Subgraph([Tensor("k", [8], data=np.ones(8)), Tensor("a", [8]), Tensor("b", [8])],
                    [Op("RELU", [0], [1]), Op("TANH", [1], [2])], inputs=[], outputs=[])
    content = build_model([main, init])
    assert run(content, [-1, 0, 1, 2])[0].tolist() == [0, 0, 1, 2]
    path = write(tmp_path, "call_once", content)
    builtin = ok(measure_delegate(path, "builtin", QUICK))
    assert builtin.fallback_ops == {"CALL_ONCE": 1, "RELU": 1}
    assert builtin.arena_bytes == 64 + 16  # x, then y after it
    xnnpack = ok(measure_delegate(path, "xnnpack", QUICK))
    assert (xnnpack.delegated_nodes, xnnpack.total_nodes) == (1, 2)
    assert xnnpack.fallback_ops == {"CALL_ONCE": 1}


@pytest.fixture(scope="module")
def variables_model() -> bytes:
    import tensorflow as tf

    class Accumulate(tf.Module):
        def __init__(self) -> None:
            self.total = tf.Variable(tf.zeros([1, 4]))

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
        def __call__(self, x):
            self.total.assign_add(x)
            return self.total * 2.0

    module = Accumulate()
    content = _concrete(module.__call__, module)
    ops, _ = main_ops(content)
    assert ops == {"CALL_ONCE": 1, "VAR_HANDLE": 1, "READ_VARIABLE": 2, "ADD": 1,
                   "ASSIGN_VARIABLE": 1, "MUL": 1}
    return content


def test_resource_variable_model_measures(tmp_path, variables_model):
    ops, _ = main_ops(variables_model)
    # Eight consecutive path lengths move the worker's memory layout through every case.
    for length in range(1, 9):
        path = write(tmp_path, "v" * length, variables_model)
        for delegate in ("reference", "builtin"):
            found = ok(measure_delegate(path, delegate, QUICK))
            assert found.fallback_ops == ops and found.total_nodes == 7


def test_xnnpack_coverage_counts_side_effect_nodes(tmp_path, variables_model):
    found = ok(measure_delegate(write(tmp_path, "variables", variables_model), "xnnpack", QUICK))
    assert (found.delegated_nodes, found.total_nodes, found.partitions) == (6, 7, 1)
    assert found.fallback_ops == {"CALL_ONCE": 1}


@pytest.fixture(scope="module")
def dense_model() -> Any:
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.Input((64,)), tf_keras.layers.Dense(64, activation="relu"),
                                 tf_keras.layers.Dense(8)])
    for layer in model.layers:  # 75% zeros in each kernel (for the sparse test)
        kernel, bias = layer.get_weights()
        kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.75)] = 0
        layer.set_weights([kernel, bias])
    return model


@pytest.mark.parametrize(("recipe", "dtype"), [("int8", np.int8), ("int16x8", np.int16)])
def test_integer_input_models_from_recipes(tmp_path, dense_model, recipe, dtype):
    from pytest_tflite import convert

    data = np.random.default_rng(0).normal(size=(32, 64)).astype("float32")
    model = convert(dense_model, recipe, representative_data=data, output_dir=tmp_path)
    assert [d["dtype"] for d in _input_details(model.content)] == [dtype]
    results = measure_delegates(Path(model.path), ["builtin", "xnnpack"], QUICK)
    builtin = ok(results["builtin"])
    assert builtin.fallback_ops == {"FULLY_CONNECTED": 2}
    # input 64, hidden 64, output 8 elements of 1 or 2 bytes, each 64-aligned; the last one
    # ends the span: 64 + 64 + 8 (int8) or 128 + 128 + 16 (int16).
    size = np.dtype(dtype).itemsize
    assert builtin.arena_bytes == 2 * aligned(64 * size) + 8 * size
    xnnpack = ok(results["xnnpack"])
    # XNNPACK runs int8 fully connected layers, not the int16x8 ones.
    expected = (2, 2) if recipe == "int8" else (0, 2)
    assert (xnnpack.delegated_nodes, xnnpack.total_nodes) == expected


def test_uint8_and_float16_inputs(tmp_path):
    uint8 = chain_model([16, 16, 16], op="TANH", dtype="uint8", scale=0.05)
    assert [d["dtype"] for d in _input_details(uint8)] == [np.uint8]
    found = ok(measure_delegate(write(tmp_path, "uint8", uint8), "builtin", QUICK))
    assert found.arena_bytes == 64 + 64 + 16
    assert found.fallback_ops == {"TANH": 2}
    half = build_model([Subgraph(
        [Tensor("h", [1, 8], dtype="float16"), Tensor("f", [1, 8]), Tensor("y", [1, 8])],
        [Op("DEQUANTIZE", [0], [1]), Op("RELU", [1], [2])], inputs=[0], outputs=[2])])
    assert [d["dtype"] for d in _input_details(half)] == [np.float16]
    path = write(tmp_path, "float16", half)
    builtin = ok(measure_delegate(path, "builtin", QUICK))
    assert builtin.arena_bytes == 64 + 64 + 32
    xnnpack = ok(measure_delegate(path, "xnnpack", QUICK))
    # XNNPACK takes the RELU; DEQUANTIZE of a non-constant float16 input stays on CPU.
    assert xnnpack.fallback_ops == {"DEQUANTIZE": 1} and xnnpack.delegated_nodes == 1


def test_several_inputs_outputs_and_signatures(tmp_path):
    import tensorflow as tf

    class Two(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="a"),
                                      tf.TensorSpec([1, 3], tf.float32, name="b")])
        def pair(self, a, b):
            return {"total": tf.reduce_sum(a, axis=1) + tf.reduce_sum(b, axis=1),
                    "joined": tf.concat([a, b], axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([1, 6], tf.float32, name="x")])
        def triple(self, x):
            return {"z": x * 3.0}

    module = Two()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.pair.get_concrete_function(), module.triple.get_concrete_function()], module)
    content = converter.convert()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    assert set(interpreter.get_signature_list()) == {"pair", "triple"}
    assert len(interpreter.get_input_details()) == 2
    assert len(interpreter.get_output_details()) == 2
    path = write(tmp_path, "signatures", content)
    for delegate in ("builtin", "xnnpack"):
        found = ok(measure_delegate(path, delegate, QUICK))
        assert found.total_nodes == 4, delegate  # SUM, SUM, ADD, CONCATENATION
    assert ok(measure_delegate(path, "xnnpack", QUICK)).delegated_nodes == 4


def _relu_times_two(shape: list[int | None], signature: bool = False) -> bytes:
    import tensorflow as tf

    class Scaled(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="x")])
        def __call__(self, x):
            return tf.nn.relu(x) * 2.0

    module = Scaled()
    return _concrete(module.__call__, module if signature else None)


def test_dynamic_batch_runs_at_batch_one(tmp_path):
    content = _relu_times_two([None, 8])
    assert _input_details(content)[0]["shape_signature"].tolist() == [-1, 8]
    # x [1, 8] (32 bytes) at 0, relu at 64, x*2 reuses nothing (relu alive): 64 + 64 + 32.
    found = ok(measure_delegate(write(tmp_path, "dynbatch", content), "builtin", QUICK))
    assert found.arena_bytes == 160


@pytest.mark.parametrize("signature", [False, True], ids=["plain", "signature"])
def test_dynamic_inner_dimension_needs_input_shapes(tmp_path, signature):
    content = _relu_times_two([1, None], signature)
    name = _input_details(content)[0]["name"]
    assert name == ("serving_default_x:0" if signature else "x")
    path = write(tmp_path, "dynlen", content)
    found = measure_delegate(path, "builtin", QUICK)
    assert found.status == "error"
    assert f"'{name}'" in found.reason and "runtime.input_shapes" in found.reason
    # With a shape, by the name users write ("x" also answers for "serving_default_x:0"):
    # [1, 100] floats are 400 bytes, 448 aligned: x, relu, x*2 take 448 + 448 + 400.
    shaped = replace(QUICK, input_shapes={"x": (1, 100)})
    for delegate in ("builtin", "reference"):
        assert ok(measure_delegate(path, delegate, shaped)).arena_bytes == 1296


def test_sparse_weights_with_densify(tmp_path, dense_model):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(dense_model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    content = converter.convert()
    ops, _ = main_ops(content)
    assert ops == {"DENSIFY": 2, "FULLY_CONNECTED": 2}
    path = write(tmp_path, "sparse", content)
    results = measure_delegates(path, ["builtin", "xnnpack"], QUICK)
    builtin = ok(results["builtin"])
    assert builtin.fallback_ops == ops
    # DENSIFY writes the dense kernels (64x64 and 64x8 floats) into non-constant tensors:
    # they sit in the arena next to the 64 + 64 + 8 float activations.
    assert builtin.arena_bytes == 64 * 64 * 4 + 64 * 8 * 4 + 256 + 256 + 32
    # DESIGN.md warns XNNPACK may refuse DENSIFY; this version takes all four nodes.
    xnnpack = ok(results["xnnpack"])
    assert (xnnpack.delegated_nodes, xnnpack.total_nodes, xnnpack.partitions) == (4, 4, 1)


# --- the reader-writer lock across processes ---------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from pytest_tflite.measure import lock
path, mode, seconds = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
with getattr(lock, mode)(path, 60):
    print("held", time.time(), flush=True)
    time.sleep(seconds)
    print("releasing", time.time(), flush=True)
"""


def _hold(path: Path, mode: str, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode, str(seconds)],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPOSITORY)})
    assert holder.stdout is not None
    assert holder.stdout.readline().startswith("held")
    return holder


def _released_at(holder: subprocess.Popen[str]) -> float:
    out, _ = holder.communicate(timeout=30)
    return float(out.split()[-1])


def test_lock_shared_holders_coexist_and_exclusive_waits(tmp_path):
    path = tmp_path / "lock"
    reader = _hold(path, "shared", 1.5)
    with lock.shared(path, 30):
        shared_at = time.time()
    with lock.exclusive(path, 30):
        acquired = time.time()
    released = _released_at(reader)
    assert shared_at < released  # a second reader does not wait: it held the lock with the first
    assert acquired >= released  # the writer waited for the reader
    writer = _hold(path, "exclusive", 1.0)
    with lock.shared(path, 30):
        acquired = time.time()
    assert acquired >= _released_at(writer)  # a reader waits for the writer
    with lock.exclusive(None, 1), lock.shared(None, 1):
        pass  # no lock file: no locking


def test_measure_delegate_waits_for_shared_holders(tmp_path):
    path = write(tmp_path, "relu", chain_model([4, 4]))
    lock_file = tmp_path / "lock"
    reader = _hold(lock_file, "shared", 1.5)
    found = ok(measure_delegate(path, "builtin", QUICK, lock_file=lock_file))
    finished = time.time()
    assert finished >= _released_at(reader)
    assert found.arena_bytes == 64 + 16
