"""A one-op model (RELU on four floats), built from the schema: what every accelerator can run."""

from __future__ import annotations


def trivial_model() -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name: str) -> object:
        value = schema.TensorT()
        value.name, value.shape, value.type, value.buffer = name, [1, 4], schema.TensorType.FLOAT32, 0
        return value

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.RELU
    code.version = 1
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0], [1]
    subgraph = schema.SubGraphT()
    subgraph.tensors = [tensor("x"), tensor("y")]
    subgraph.inputs, subgraph.outputs, subgraph.operators = [0], [1], [operator]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [subgraph]
    model.buffers = [schema.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
