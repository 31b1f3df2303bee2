"""Small, valid ``.tflite`` models built by hand through LiteRT's flatbuffer schema, without
TensorFlow: a test states the exact tensors, shapes and operator order it means.

    model = build_model([Subgraph(
        tensors=[Tensor("x", [4]), Tensor("y", [4])],
        ops=[Op("RELU", [0], [1])],
        inputs=[0], outputs=[1],
    )])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

# Builtin options each supported operator carries, by the schema's option table name. Operators
# not listed (RELU, LOGISTIC, TANH, LESS, ...) take none.
OPTIONS = {
    "ADD": "AddOptions",
    "SUB": "SubOptions",
    "MUL": "MulOptions",
    "CONCATENATION": "ConcatenationOptions",
    "RESHAPE": "ReshapeOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "SOFTMAX": "SoftmaxOptions",
    "WHILE": "WhileOptions",
    "IF": "IfOptions",
    "CALL_ONCE": "CallOnceOptions",
    "VAR_HANDLE": "VarHandleOptions",
    "ASSIGN_VARIABLE": "AssignVariableOptions",
    "READ_VARIABLE": "ReadVariableOptions",
}
# Values the schema's defaults get wrong for a runnable model.
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {"SOFTMAX": {"beta": 1.0}}


@dataclass
class Tensor:
    name: str
    shape: list[int]
    dtype: str = "float32"
    data: Any = None  # array-like: the tensor becomes a constant with its own buffer
    shape_signature: list[int] | None = None
    is_variable: bool = False
    scale: float | None = None
    zero_point: int | None = None


@dataclass
class Op:
    """``kind``: a BuiltinOperator name, or "CUSTOM" with ``custom_code``. ``options``: fields of
    the operator's options table in snake case, e.g. ``{"axis": 0}``, ``{"new_shape": [1, 4]}``,
    ``{"cond_subgraph_index": 1, "body_subgraph_index": 2}``, ``{"init_subgraph_index": 1}``,
    ``{"container": "", "shared_name": "state"}`` (VAR_HANDLE, whose output tensor has dtype
    "resource"; ASSIGN_VARIABLE reads [handle, value], READ_VARIABLE [handle] -> [value])."""

    kind: str
    inputs: list[int]
    outputs: list[int]
    custom_code: str | None = None
    options: dict[str, Any] | None = None


@dataclass
class Subgraph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    name: str = ""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _options(op: Op) -> tuple[int, Any]:
    table = OPTIONS.get(op.kind)
    values = {**DEFAULT_OPTIONS.get(op.kind, {}), **(op.options or {})}
    if table is None:
        if op.options:
            raise ValueError(f"{op.kind}: this builder knows no options table for it")
        return schema.BuiltinOptions.NONE, None
    options = getattr(schema, f"{table}T")()
    for key, value in values.items():
        attribute = _camel(key)
        if not hasattr(options, attribute):
            raise ValueError(f"{op.kind}: {table} has no field {key!r}")
        setattr(options, attribute, value)
    return getattr(schema.BuiltinOptions, table), options


def _tensor(tensor: Tensor, buffers: list[Any]) -> Any:
    result = schema.TensorT()
    result.name = tensor.name
    result.shape = list(tensor.shape)
    result.shapeSignature = None if tensor.shape_signature is None else list(tensor.shape_signature)
    result.type = getattr(schema.TensorType, tensor.dtype.upper())
    result.isVariable = tensor.is_variable
    result.hasRank = True
    if tensor.data is not None:
        data = np.asarray(tensor.data, dtype=tensor.dtype).reshape(tensor.shape)
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data.tobytes(), dtype=np.uint8)
        buffers.append(buffer)
        result.buffer = len(buffers) - 1
    if tensor.scale is not None:
        quantization = schema.QuantizationParametersT()
        quantization.scale = [float(tensor.scale)]
        quantization.zeroPoint = [int(tensor.zero_point or 0)]
        result.quantization = quantization
    return result


def build_model(subgraphs: list[Subgraph], description: str = "flatbuffer_models") -> bytes:
    """The ``.tflite`` bytes of a model made of ``subgraphs`` (the first one is the main one)."""
    model = schema.ModelT()
    model.version = 3
    model.description = description
    model.buffers = [schema.BufferT()]  # buffer 0: the empty buffer of every non-constant tensor
    model.operatorCodes = []
    codes: dict[tuple[int, str | None], int] = {}
    model.subgraphs = []
    for subgraph in subgraphs:
        built = schema.SubGraphT()
        built.name = subgraph.name
        built.tensors = [_tensor(t, model.buffers) for t in subgraph.tensors]
        built.inputs = list(subgraph.inputs)
        built.outputs = list(subgraph.outputs)
        built.operators = []
        for op in subgraph.ops:
            number = getattr(schema.BuiltinOperator, op.kind)
            key = (number, op.custom_code)
            if key not in codes:
                code = schema.OperatorCodeT()
                code.builtinCode = number
                code.deprecatedBuiltinCode = min(number, 127)
                code.customCode = op.custom_code
                code.version = 1
                codes[key] = len(model.operatorCodes)
                model.operatorCodes.append(code)
            operator = schema.OperatorT()
            operator.opcodeIndex = codes[key]
            operator.inputs = list(op.inputs)
            operator.outputs = list(op.outputs)
            operator.builtinOptionsType, operator.builtinOptions = _options(op)
            built.operators.append(operator)
        model.subgraphs.append(built)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def chain_model(sizes: list[int], op: str = "RELU", dtype: str = "float32",
                scale: float | None = None) -> bytes:
    """``x0 -> op -> x1 -> op -> ... -> xN``: one elementwise operator between each pair of 1-D
    tensors of the given sizes (elementwise operators need all sizes equal to run). Integer
    tensors get ``scale`` (default 1.0) and zero point 0, which quantized kernels require."""
    if scale is None and not dtype.startswith("float"):
        scale = 1.0
    tensors = [Tensor(f"x{i}", [n], dtype=dtype, scale=scale, zero_point=None if scale is None else 0)
               for i, n in enumerate(sizes)]
    ops = [Op(op, [i], [i + 1]) for i in range(len(sizes) - 1)]
    return build_model([Subgraph(tensors, ops, inputs=[0], outputs=[len(sizes) - 1])])


def run(content: bytes, *inputs: Any) -> list[Any]:
    """Load, allocate and invoke a model in LiteRT; the outputs, in order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], np.asarray(value, dtype=detail["dtype"]))
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


# Keras models, built with TensorFlow imported inside (only tests that convert pay for it).
def keras3_mlp(inputs: int = 8, hidden: int = 16, outputs: int = 4, seed: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((inputs,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(outputs),
    ])


def tf_keras_cnn(seed: int = 0, filters: int = 8) -> Any:
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    return tf_keras.Sequential([
        tf_keras.Input((12, 12, 1)),
        tf_keras.layers.Conv2D(filters, 3, activation="relu"),
        tf_keras.layers.MaxPooling2D(),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dense(10),
    ])


def dense_model(units: int, inputs: int = 8, seed: int = 0) -> bytes:
    """``y = x @ W.T + b`` as one FULLY_CONNECTED with float32 weights: [1, inputs] -> [1, units].
    A ready ``.tflite`` whose file grows with ``units``, for plugin tests that need a model but
    not a conversion (their inner sessions then never import TensorFlow)."""
    rng = np.random.default_rng(seed)
    tensors = [Tensor("input", [1, inputs]),
               Tensor("dense/kernel", [units, inputs],
                      data=rng.normal(size=(units, inputs)).astype(np.float32)),
               Tensor("dense/bias", [units], data=np.zeros(units, np.float32)),
               Tensor("output", [1, units])]
    return build_model([Subgraph(tensors, [Op("FULLY_CONNECTED", [0, 1, 2], [3])],
                                 inputs=[0], outputs=[3])])
