"""A per-tensor quantized weight's zeros are the values equal to its zero point, not literal
0s: with zero point 5, a stored 5 is 0.0 once dequantized and a stored 0 is -5 x scale.

The model is built by hand (no TensorFlow): int8 weights -> DEQUANTIZE -> FULLY_CONNECTED.
LiteRT itself runs it on the identity, so the zeros asserted are the dequantized weights
LiteRT computes, not a reading of the sparsity code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pytest_tflite.measure.sparsity import check_pattern
from pytest_tflite.measure.static import measure_static
from pytest_tflite.model import TFLiteModel
from tests.helpers.models import Op, Subgraph, Tensor, build_model, run

ZERO_POINT = 5
SCALE = 0.25
# Six stored 5s (zeros once dequantized) and three literal 0s (-1.25 once dequantized).
WEIGHTS = [[5, 0, 5, 1], [0, 0, 5, 9], [5, 5, 5, -3]]


def zero_point_model() -> bytes:
    return build_model([Subgraph(
        tensors=[Tensor("x", [4, 4]),
                 Tensor("model/dense/MatMul", [3, 4], "int8", data=WEIGHTS, scale=SCALE,
                        zero_point=ZERO_POINT),
                 Tensor("model/dense/MatMul_dequantized", [3, 4]),
                 Tensor("y", [4, 3])],
        ops=[Op("DEQUANTIZE", [1], [2]), Op("FULLY_CONNECTED", [0, 2, -1], [3])],
        inputs=[0], outputs=[3])])


def test_int8_weights_count_their_zero_point_as_zero(tmp_path: Path) -> None:
    content = zero_point_model()
    # FULLY_CONNECTED(identity, W) = W transposed: LiteRT's own dequantized weights.
    (product,) = run(content, np.eye(4, dtype="float32"))
    dequantized = product.T
    np.testing.assert_array_equal(dequantized, (np.asarray(WEIGHTS) - ZERO_POINT) * SCALE)
    zeros = int(np.count_nonzero(dequantized == 0.0))
    assert zeros == 6 and int(np.count_nonzero(np.asarray(WEIGHTS) == 0)) == 3

    path = tmp_path / "zp.tflite"
    path.write_bytes(content)
    measurement = measure_static(TFLiteModel.from_path(path))
    (layer,) = measurement.sparsity_layers
    assert (layer["name"], layer["tensor"], layer["dtype"]) == ("dense", "model/dense/MatMul",
                                                                "int8")
    assert (layer["elements"], layer["zeros"]) == (12, zeros)
    assert layer["sparsity"] == measurement.sparsity == 0.5


def test_the_two_of_four_pattern_counts_the_zero_point_as_zero(tmp_path: Path) -> None:
    # Groups of 4 along the input axis (a row): nonzeros once dequantized are 2, 3 and 1, so
    # only row 1 breaks 2:4. Read as literal 0s, rows 0 and 2 would break it instead (3 and 4).
    path = tmp_path / "zp.tflite"
    path.write_bytes(zero_point_model())
    pattern = check_pattern(TFLiteModel.from_path(path).view, 2, 4)
    assert (pattern["groups"], pattern["violating_groups"]) == (3, 1)
    assert pattern["violating_layers"] == ["dense"]
