"""Weight sparsity from the file alone: real conversions (float32, float16, int8, sparse storage)
with zeros the test placed, hand-built models for per-channel zero points, block-sparse storage,
int4 and the weight rules, and the N:M pattern check."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from pytest_tflite.flatbuffer import FlatbufferView
from pytest_tflite.measure.sparsity import (
    check_pattern,
    layer_name,
    measure_sparsity,
    pattern_violations,
    zero_mask,
)
from pytest_tflite.measure.static import measure_static
from pytest_tflite.model import TFLiteModel
from pytest_tflite.results import layer_matches, named_layer_sparsity
from tests.helpers.models import Op, Subgraph, Tensor, build_model, run

CONV_ELEMENTS = 3 * 3 * 4 * 10  # Conv2D(10, 3) on 4 channels
DENSE_ELEMENTS = 4 * 4 * 10 * 5  # Flatten(4x4x10) -> Dense(5)
CONV_ZEROS = CONV_ELEMENTS * 6 // 10  # exactly 60%
DENSE_ZEROS = DENSE_ELEMENTS // 4  # exactly 25%


def far_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """|w| in [0.5, 1.0] with random signs: no value rounds to a zero point when quantized."""
    return (rng.uniform(0.5, 1.0, shape) * rng.choice([-1.0, 1.0], shape)).astype("float32")


def zero_exactly(rng: np.random.Generator, kernel: np.ndarray, count: int) -> np.ndarray:
    flat = kernel.reshape(-1).copy()
    flat[rng.permutation(flat.size)[:count]] = 0.0
    return flat.reshape(kernel.shape)


def convert(model: Any, *, recipe: str, samples: np.ndarray | None = None) -> FlatbufferView:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if recipe == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif recipe in ("int8", "sparse_int8"):
        assert samples is not None
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([s[None]] for s in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if recipe.startswith("sparse"):
        converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected"
        warnings.simplefilter("ignore", UserWarning)
        return FlatbufferView(converter.convert())


@dataclass(frozen=True)
class Converted:
    conv_kernel: np.ndarray  # Keras layout [h, w, in, out]
    dense_kernel: np.ndarray  # Keras layout [in, out]
    views: dict[str, FlatbufferView]


@pytest.fixture(scope="module")
def converted() -> Converted:
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    # Explicit names: Keras numbers generated ones per process, in build order.
    model = tf_keras.Sequential([
        tf_keras.Input((6, 6, 4)),
        tf_keras.layers.Conv2D(10, 3, activation="relu", name="conv2d"),
        tf_keras.layers.Flatten(name="flatten"),
        tf_keras.layers.Dense(5, name="dense"),
    ], name="sequential")
    rng = np.random.default_rng(0)
    conv_kernel, conv_bias, dense_kernel, dense_bias = model.get_weights()
    conv_kernel = zero_exactly(rng, far_from_zero(rng, conv_kernel.shape), CONV_ZEROS)
    dense_kernel = zero_exactly(rng, far_from_zero(rng, dense_kernel.shape), DENSE_ZEROS)
    # Biases full of zeros: they must not count as weights.
    model.set_weights([conv_kernel, np.zeros_like(conv_bias), dense_kernel, np.zeros_like(dense_bias)])
    samples = rng.normal(size=(16, 6, 6, 4)).astype("float32")
    views = {recipe: convert(model, recipe=recipe, samples=samples)
             for recipe in ("float32", "float16", "int8", "sparse", "sparse_int8")}
    return Converted(conv_kernel, dense_kernel, views)


def by_name(measurement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {layer["name"]: layer for layer in measurement["sparsity_layers"]}


@pytest.mark.parametrize(("recipe", "dtype"), [("float32", "float32"), ("float16", "float16"),
                                               ("int8", "int8")])
def test_sparsity_is_the_fraction_of_zeros_set(converted: Converted, recipe: str, dtype: str) -> None:
    view = converted.views[recipe]
    measurement = measure_sparsity(view)
    layers = by_name(measurement)
    assert sorted(layers) == ["conv2d", "dense"]  # no biases
    conv, dense = layers["conv2d"], layers["dense"]
    assert (conv["elements"], conv["zeros"]) == (360, 216)
    assert (dense["elements"], dense["zeros"]) == (800, 200)
    assert conv["sparsity"] == 0.6
    assert dense["sparsity"] == 0.25
    assert measurement["sparsity"] == (216 + 200) / (360 + 800)
    assert conv["dtype"] == dense["dtype"] == dtype
    assert conv["format"] == dense["format"] == "dense"
    assert conv["tensor"].split(";")[0].startswith("sequential/conv2d/")
    if recipe == "float16":  # stored in float16, expanded by DEQUANTIZE at run time
        assert view.ops["DEQUANTIZE"] >= 2
    if recipe == "int8":  # per-channel, symmetric: zero points 0
        weight = next(t for t in view.tensors(0) if t.name == conv["tensor"])
        quantization = view.tensor_quantization(0, weight.index)
        assert quantization is not None
        assert len(quantization.scales) == 10
        assert quantization.quantized_dimension == 0


def test_zero_mask_is_the_keras_kernel_zeros(converted: Converted) -> None:
    view = converted.views["int8"]
    names = {t.name: t.index for t in view.tensors(0)}
    layers = by_name(measure_sparsity(view))
    conv = zero_mask(view, 0, names[layers["conv2d"]["tensor"]])
    dense = zero_mask(view, 0, names[layers["dense"]["tensor"]])
    # TFLite stores conv kernels [out, h, w, in] and dense kernels [out, in].
    np.testing.assert_array_equal(conv, converted.conv_kernel.transpose(3, 0, 1, 2) == 0)
    np.testing.assert_array_equal(dense, converted.dense_kernel.T == 0)


@pytest.mark.parametrize(("recipe", "dtype"), [("sparse", "float32"), ("sparse_int8", "int8")])
def test_sparse_storage_counts_at_its_dense_size(converted: Converted, recipe: str, dtype: str) -> None:
    view = converted.views[recipe]
    assert view.ops["DENSIFY"] == 1
    measurement = measure_sparsity(view)
    conv = by_name(measurement)["conv2d"]
    assert conv["format"] == "sparse"
    assert conv["dtype"] == dtype
    assert (conv["elements"], conv["zeros"], conv["sparsity"]) == (360, 216, 0.6)
    index = next(t.index for t in view.tensors(0) if t.name == conv["tensor"])
    assert view.tensor_values(0, index).shape == (360 - 216,)  # only the nonzeros are stored
    np.testing.assert_array_equal(zero_mask(view, 0, index),
                                  converted.conv_kernel.transpose(3, 0, 1, 2) == 0)
    assert measurement["sparsity"] == (216 + 200) / (360 + 800)
    assert by_name(measurement)["dense"]["zeros"] == 200


@pytest.mark.parametrize(("recipe", "block"), [("sparse", 4), ("sparse_int8", 16)])
def test_block_sparse_storage_from_the_converter(recipe: str, block: int) -> None:
    """Zeros in 1xB blocks along the input axis: the converter stores them block-sparse (1x4 in
    float, 1x16 in int8), read by FULLY_CONNECTED without a DENSIFY."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.Input((128,)), tf_keras.layers.Dense(8, name="dense")])
    rng = np.random.default_rng(1)
    blocks = far_from_zero(rng, (8 * 128 // 16, 16))  # [out, in] in blocks of 16
    blocks[rng.permutation(len(blocks))[:40]] = 0.0
    kernel = blocks.reshape(8, 128).T.copy()
    model.set_weights([kernel, np.zeros(8, "float32")])
    samples = rng.normal(size=(16, 128)).astype("float32")
    view = convert(model, recipe=recipe, samples=samples)
    (layer,) = measure_sparsity(view)["sparsity_layers"]
    assert (layer["elements"], layer["zeros"], layer["format"]) == (1024, 640, "sparse")
    index = next(t.index for t in view.tensors(0) if t.name == layer["tensor"])
    sparsity = view.tensor_sparsity(0, index)
    assert sparsity is not None
    assert sparsity.block_map == (1,)
    assert sparsity.dimensions[-1].dense_size == block
    np.testing.assert_array_equal(zero_mask(view, 0, index), kernel.T == 0)


# --- hand-built models ---------------------------------------------------------------------------


def edit(content: bytes, change: Callable[[Any], None]) -> bytes:
    """The model with ``change`` applied to its object-API tree."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))
    change(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def quantize(tensor: Any, scales: list[float], zero_points: list[int], dimension: int) -> None:
    quantization = schema.QuantizationParametersT()
    quantization.scale = scales
    quantization.zeroPoint = zero_points
    quantization.quantizedDimension = dimension
    tensor.quantization = quantization


def test_per_channel_zero_points() -> None:
    # Channel 0 (zero point 0): 0, 1, 0, 2 -> 2 zeros; channel 1 (zero point 5): 5, 5, 0, 7 ->
    # 2 zeros (0 is not its zero); channel 2 (zero point -3): -3, 1, 2, 3 -> 1 zero.
    rows = [[0, 1, 0, 2], [5, 5, 0, 7], [-3, 1, 2, 3]]
    # Along dimension 1 (zero points 1, -2, 4): [[1, -2, 0], [0, 3, 4]] -> 1, -2 and 4: 3 zeros.
    columns = [[1, -2, 0], [0, 3, 4]]
    content = build_model([Subgraph(
        tensors=[Tensor("x", [1, 4]), Tensor("model/rows/MatMul", [3, 4], "int8", data=rows),
                 Tensor("h", [1, 3]), Tensor("model/columns/MatMul", [2, 3], "int8", data=columns),
                 Tensor("y", [1, 2])],
        ops=[Op("FULLY_CONNECTED", [0, 1, -1], [2]), Op("FULLY_CONNECTED", [2, 3, -1], [4])],
        inputs=[0], outputs=[4],
    )])

    def per_channel(model: Any) -> None:
        tensors = model.subgraphs[0].tensors
        quantize(tensors[1], [0.1, 0.2, 0.3], [0, 5, -3], dimension=0)
        quantize(tensors[3], [0.1, 0.1, 0.1], [1, -2, 4], dimension=1)

    view = FlatbufferView(edit(content, per_channel))
    measurement = measure_sparsity(view)
    layers = by_name(measurement)
    assert (layers["rows"]["elements"], layers["rows"]["zeros"]) == (12, 5)
    assert (layers["columns"]["elements"], layers["columns"]["zeros"]) == (6, 3)
    assert measurement["sparsity"] == 8 / 18
    np.testing.assert_array_equal(zero_mask(view, 0, 1), [[1, 0, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]])
    quantization = view.tensor_quantization(0, 3)
    assert quantization is not None
    assert (quantization.zero_points, quantization.quantized_dimension) == ((1, -2, 4), 1)


# A 4x4 weight in 1x2 blocks along dimension 1, block columns stored in CSR; stored blocks hold
# explicit zeros. Dense:          stored blocks (row: block column -> values):
#   [1, 0, 0, 0]                  0: 0 -> [1, 0]
#   [0, 0, 2, 3]                  1: 1 -> [2, 3]
#   [0, 0, 0, 0]                  2: 0 -> [0, 0]  (an all-zero block, stored)
#   [4, 5, 0, 6]                  3: 0 -> [4, 5], 1 -> [0, 6]
# 16 elements, 6 nonzero: 10 zeros (6 never stored, 4 stored as zeros).
BLOCK_DENSE = [[1, 0, 0, 0], [0, 0, 2, 3], [0, 0, 0, 0], [4, 5, 0, 6]]
BLOCK_VALUES = [1, 0, 2, 3, 0, 0, 4, 5, 0, 6]


def block_sparse_model() -> bytes:
    content = build_model([Subgraph(
        tensors=[Tensor("x", [4, 4]), Tensor("model/blocky/MatMul", [10], data=BLOCK_VALUES),
                 Tensor("w", [4, 4]), Tensor("y", [4, 4])],
        ops=[Op("DENSIFY", [1], [2]), Op("FULLY_CONNECTED", [0, 2, -1], [3])],
        inputs=[0], outputs=[3],
    )])

    def dimension(size: int = 0, segments: list[int] | None = None,
                  indices: list[int] | None = None) -> Any:
        metadata = schema.DimensionMetadataT()
        if segments is None:
            metadata.format = schema.DimensionType.DENSE
            metadata.denseSize = size
            return metadata
        metadata.format = schema.DimensionType.SPARSE_CSR
        metadata.arraySegmentsType = schema.SparseIndexVector.Int32Vector
        metadata.arraySegments = schema.Int32VectorT()
        metadata.arraySegments.values = segments
        metadata.arrayIndicesType = schema.SparseIndexVector.Uint8Vector
        metadata.arrayIndices = schema.Uint8VectorT()
        metadata.arrayIndices.values = indices
        return metadata

    def sparse(model: Any) -> None:
        weight = model.subgraphs[0].tensors[1]
        weight.shape = [4, 4]
        weight.sparsity = schema.SparsityParametersT()
        weight.sparsity.traversalOrder = [0, 1, 2]
        weight.sparsity.blockMap = [1]
        weight.sparsity.dimMetadata = [dimension(4), dimension(segments=[0, 1, 2, 3, 5],
                                                             indices=[0, 1, 0, 0, 1]), dimension(2)]

    return edit(content, sparse)


def test_block_sparse_with_explicit_zeros() -> None:
    content = block_sparse_model()
    # LiteRT's own DENSIFY agrees with the layout: FULLY_CONNECTED(identity, W) = W transposed.
    (product,) = run(content, np.eye(4, dtype="float32"))
    np.testing.assert_array_equal(product.T, BLOCK_DENSE)
    view = FlatbufferView(content)
    (layer,) = measure_sparsity(view)["sparsity_layers"]
    assert layer == {"name": "blocky", "tensor": "model/blocky/MatMul", "dtype": "float32",
                     "elements": 16, "zeros": 10, "sparsity": 10 / 16, "format": "sparse"}
    np.testing.assert_array_equal(zero_mask(view, 0, 1), np.asarray(BLOCK_DENSE) == 0)
    # 2:4 along the input axis: rows 0, 1 and 2 have at most 2 nonzeros, row 3 has 3.
    assert check_pattern(view, 2, 4)["violating_groups"] == 1


def test_a_corrupt_sparse_tensor_is_a_model_error() -> None:
    from pytest_tflite.errors import ModelError

    def truncate(model: Any) -> None:
        model.buffers[model.subgraphs[0].tensors[1].buffer].data = np.zeros(9 * 4, np.uint8)

    view = FlatbufferView(edit(block_sparse_model(), truncate))
    with pytest.raises(ModelError, match="stores 9 values, its sparsity metadata names 10"):
        measure_sparsity(view)


def test_which_tensors_are_weights() -> None:
    """A float16 weight behind DEQUANTIZE read by two operators counts once; a BATCH_MATMUL's
    constant operand counts, whichever side; biases and activations do not."""
    half = [[0, 1, 2, 0], [0, 0, 3, 4], [5, 0, 0, 0]]  # 7 zeros of 12
    lhs = [[0, 1, 2], [0, 0, 3]]  # 3 zeros of 6
    content = build_model([Subgraph(
        tensors=[
            Tensor("x", [1, 4]),
            Tensor("model/shared/MatMul", [3, 4], "float16", data=half),
            Tensor("model/shared/MatMul1", [3, 4]),  # DEQUANTIZE's float32 output
            Tensor("model/shared/BiasAdd", [3], data=[0, 0, 0]),
            Tensor("h1", [1, 3]), Tensor("h2", [1, 3]),
            Tensor("model/lhs/MatMul", [2, 3], data=lhs),
            Tensor("act", [3, 5]), Tensor("y", [2, 5]), Tensor("z", [3, 5]),
        ],
        ops=[Op("DEQUANTIZE", [1], [2]),
             Op("FULLY_CONNECTED", [0, 2, 3], [4]),
             Op("FULLY_CONNECTED", [0, 2, 3], [5]),
             Op("BATCH_MATMUL", [6, 7], [8]),
             Op("BATCH_MATMUL", [7, 7], [9])],  # two activations: no weight
        inputs=[0, 7], outputs=[4, 5, 8, 9],
    )])
    view = FlatbufferView(content)
    measurement = measure_sparsity(view)
    assert [(layer["name"], layer["dtype"], layer["elements"], layer["zeros"])
            for layer in measurement["sparsity_layers"]] == [("shared", "float16", 12, 7),
                                                              ("lhs", "float32", 6, 3)]
    assert measurement["sparsity"] == 10 / 18
    pattern = check_pattern(view, 1, 2)
    # [out, in] along `in` in pairs: shared (0,1)(2,0)(0,0)(3,4)(5,0)(0,0) -> 1 violation;
    # BATCH_MATMUL's lhs [M, K] along K: (0,1)(2,pad)(0,0)(3,pad) -> none.
    assert [(layer["name"], layer["axis"], layer["groups"], layer["violating_groups"])
            for layer in pattern["layers"]] == [("shared", 1, 6, 1), ("lhs", 1, 4, 0)]
    assert pattern["violating_layers"] == ["shared"]


def test_packed_int4_weights() -> None:
    # [[0, 1, -1], [0, 0, 7]] packed low nibble first: (0, 1) (-1, 0) (0, 7) -> 3 zeros of 6.
    packed = [0x10, 0x0F, 0x70]
    content = build_model([Subgraph(
        tensors=[Tensor("x", [1, 3]), Tensor("model/small/MatMul", [3], "uint8", data=packed),
                 Tensor("y", [1, 2])],
        ops=[Op("FULLY_CONNECTED", [0, 1, -1], [2])], inputs=[0], outputs=[2],
    )])

    def as_int4(model: Any) -> None:
        weight = model.subgraphs[0].tensors[1]
        weight.type = schema.TensorType.INT4
        weight.shape = [2, 3]
        quantize(weight, [0.5], [0], dimension=0)

    view = FlatbufferView(edit(content, as_int4))
    np.testing.assert_array_equal(view.tensor_values(0, 1), [[0, 1, -1], [0, 0, 7]])
    (layer,) = measure_sparsity(view)["sparsity_layers"]
    assert (layer["dtype"], layer["elements"], layer["zeros"]) == ("int4", 6, 3)


def test_a_model_without_weights() -> None:
    view = FlatbufferView(build_model([Subgraph([Tensor("x", [4]), Tensor("y", [4])],
                                                [Op("RELU", [0], [1])], inputs=[0], outputs=[1])]))
    assert measure_sparsity(view) == {"sparsity": 0.0, "sparsity_layers": []}
    assert check_pattern(view, 2, 4)["groups"] == 0


# --- N:M patterns --------------------------------------------------------------------------------


def violations_along(kernel: np.ndarray, axis: int, n: int, m: int) -> int:
    """Independent count: groups of m along a Keras kernel's input axis with more than n nonzeros."""
    nonzero = np.moveaxis(kernel != 0, axis, -1)
    return int(((nonzero.reshape(-1, m).sum(axis=1)) > n).sum())


def test_two_of_four_pattern() -> None:
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([
        tf_keras.Input((6, 6, 8)),
        tf_keras.layers.Conv2D(4, 3, name="conv2d"),
        tf_keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise_conv2d"),
        tf_keras.layers.Flatten(name="flatten"),
        tf_keras.layers.Dense(4, name="dense"),
    ], name="sequential")
    rng = np.random.default_rng(2)
    weights = model.get_weights()
    conv = far_from_zero(rng, weights[0].shape)  # [3, 3, 8 in, 4 out]
    groups = np.moveaxis(conv, 2, -1).reshape(-1, 4)  # along the input axis, 4 at a time
    for group in groups:
        group[rng.permutation(4)[:2]] = 0.0  # exactly 2:4
    conv = np.moveaxis(groups.reshape(3, 3, 4, 8), -1, 2).copy()
    dense = zero_exactly(rng, far_from_zero(rng, weights[4].shape), 64 * 4 // 2)  # random 50%
    model.set_weights([conv, weights[1], far_from_zero(rng, weights[2].shape), weights[3],
                       dense, weights[5]])
    expected = violations_along(dense, 0, 2, 4)
    assert violations_along(conv, 2, 2, 4) == 0 < expected

    for recipe in ("float32", "int8"):
        samples = rng.normal(size=(8, 6, 6, 8)).astype("float32")
        pattern = check_pattern(convert(model, recipe=recipe, samples=samples), 2, 4)
        layers = {layer["name"]: layer for layer in pattern["layers"]}
        assert (layers["conv2d"]["groups"], layers["conv2d"]["violating_groups"]) == (72, 0)
        assert (layers["dense"]["groups"], layers["dense"]["violating_groups"]) == (64, expected)
        assert pattern["violating_layers"] == ["dense"]
        assert pattern["violating_groups"] == expected
        assert pattern["groups"] == 72 + 64
        (skipped,) = pattern["skipped"]
        assert skipped["name"] == "depthwise_conv2d"
        assert "DEPTHWISE_CONV_2D" in skipped["reason"]
        assert json.loads(json.dumps(pattern)) == pattern


def test_pattern_violations_of_a_mask() -> None:
    zeros = np.array([[1, 1, 0, 0, 1, 0], [0, 0, 0, 1, 1, 1]], dtype=bool)
    # Nonzeros along rows, 4 at a time (the last group padded): 2, 1 | 3, 0 -> one violation.
    assert pattern_violations(zeros, 2, 4) == (1, 4)
    # Down the columns in pairs: 0, 0, 2, 1, 0, 1 -> one violation of 1:2.
    assert pattern_violations(zeros, 1, 2, axis=0) == (1, 6)
    with pytest.raises(ValueError, match="0 < N < M"):
        pattern_violations(zeros, 4, 4)


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tensor", "layer"), [
    ("sequential/conv2d_1/Conv2D", "conv2d_1"),
    ("model/dense/MatMul;model/dense/BiasAdd", "dense"),
    ("sequential/conv2d/BiasAdd;sequential/conv2d/Conv2D;sequential/conv2d/BiasAdd/ReadVariableOp1",
     "conv2d"),
    ("sequential/dense/MatMul/ReadVariableOp", "dense"),
    ("sequential_1/depthwise_conv2d_1/depthwise", "depthwise_conv2d_1"),
    ("outer/inner/dense_2/MatMul", "dense_2"),
    ("tfl.pseudo_qconst", "tfl.pseudo_qconst"),
])
def test_layer_name(tensor: str, layer: str) -> None:
    assert layer_name(tensor) == layer


def test_layer_matches_whole_segments() -> None:
    assert not layer_matches("dense", "sequential/dense_1/MatMul")
    assert layer_matches("dense_1", "sequential/dense_1/MatMul")
    assert layer_matches("conv2d", "sequential/conv2d/BiasAdd;sequential/conv2d/Conv2D")
    assert not layer_matches("conv", "sequential/conv2d/Conv2D")
    layers = [{"tensor": "m/dense/MatMul", "zeros": 1, "elements": 4},
              {"tensor": "m/dense_1/MatMul", "zeros": 3, "elements": 4}]
    assert named_layer_sparsity(layers, "dense") == 0.25
    assert named_layer_sparsity(layers, "conv2d") is None


def test_measure_static_carries_sparsity(converted: Converted, tmp_path: Any) -> None:
    path = tmp_path / "model.tflite"
    path.write_bytes(converted.views["int8"].content)
    measurement = measure_static(TFLiteModel.from_path(path))
    assert measurement.sparsity == (216 + 200) / (360 + 800)
    assert [layer["name"] for layer in measurement.sparsity_layers] == ["conv2d", "dense"]
    assert json.loads(json.dumps(measurement.to_json())) == measurement.to_json()
