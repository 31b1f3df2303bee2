"""``FlatbufferView``: the read-only view of a ``.tflite`` flatbuffer, read lazily: operators,
tensors, buffers, signatures, and validation that turns a corrupt file into one clear error.

It reads the model through ``ai_edge_litert.schema_py_generated`` (no TensorFlow, no
interpreter), so a corrupt file is reported as such instead of crashing an interpreter.
"""

from __future__ import annotations

from collections import Counter
from functools import cached_property
from typing import Any

from ..errors import ModelError
from .graph import Graph, read_graph
from .info import DimensionInfo, OperatorInfo, QuantizationInfo, SparsityInfo, TensorInfo
from .schema import dtype_name, litert_schema, operator_name, snake_case, vector
from .values import decode_values

TFLITE_IDENTIFIER = b"TFL3"
MAX_TENSOR_ELEMENTS = 2**32  # 4 GiB even at one byte an element


class FlatbufferView:
    """Operators, tensors and subgraphs of a model, read lazily from its flatbuffer."""

    def __init__(self, content: bytes, *, origin: str = "<bytes>") -> None:
        self.content = content
        self.origin = origin

    @cached_property
    def root(self) -> Any:
        schema = litert_schema()
        if len(self.content) < 8:
            raise ModelError(
                f"{self.origin}: not a TFLite model ({len(self.content)} bytes; a .tflite "
                f"flatbuffer starts with an 8-byte header)"
            )
        if self.content[4:8] != TFLITE_IDENTIFIER:
            raise ModelError(
                f"{self.origin}: not a TFLite model (no 'TFL3' file identifier; is it a text, "
                f"Keras or SavedModel file?)"
            )
        return schema.Model.GetRootAs(self.content, 0)

    def validate(self) -> None:
        """Walk everything the measurement reads, so truncation shows up as one clear error."""
        try:
            self.summary()
            for subgraph in range(self.subgraph_count):
                for tensor in self.tensors(subgraph):
                    self._check_shape(subgraph, tensor)
            self._check_calls()
        except (ModelError, ImportError):  # LiteRT's schema missing: not a corrupt model
            raise
        except Exception as exc:  # flatbuffers raises struct/index errors on truncated data
            raise ModelError(
                f"{self.origin}: corrupt TFLite model ({type(exc).__name__}: {exc}); "
                f"the file may be truncated. Re-export it."
            ) from None

    def _check_calls(self) -> None:
        # TFLite has no recursion: a WHILE, IF or CALL_ONCE that leads back to its own subgraph
        # makes the interpreter recurse until it crashes (SIGSEGV, seen), so refuse it here.
        calls = {s: sorted({t for o in self.operators(s) for t in o.called_subgraphs})
                 for s in range(self.subgraph_count)}
        done: set[int] = set()
        for root in calls:
            if root in done:
                continue
            path, stack = [root], [iter(calls[root])]
            while stack:
                target = next(stack[-1], None)
                if target is None:
                    done.add(path.pop())
                    stack.pop()
                elif target in path:
                    cycle = " -> ".join(map(str, [*path[path.index(target):], target]))
                    raise ModelError(f"{self.origin}: corrupt TFLite model: subgraphs call each "
                                     f"other in a cycle ({cycle}); TFLite has no recursion")
                elif target not in done:
                    path.append(target)
                    stack.append(iter(calls[target]))

    def _check_shape(self, subgraph: int, tensor: TensorInfo) -> None:
        # A flipped byte in a shape can claim terabytes; the interpreter would try to allocate
        # them. No tensor of a model meant for a phone comes near 4 GiB.
        elements = 1
        for dimension in tensor.shape:
            if dimension < -1:
                raise ModelError(f"{self.origin}: corrupt TFLite model: tensor {tensor.name!r} "
                                 f"(subgraph {subgraph}) has shape {list(tensor.shape)}")
            elements *= max(dimension, 1)
        if elements > MAX_TENSOR_ELEMENTS:
            raise ModelError(
                f"{self.origin}: corrupt TFLite model: tensor {tensor.name!r} (subgraph "
                f"{subgraph}) claims shape {list(tensor.shape)}, {elements:,} elements: "
                f"more than any tensor of a mobile model holds"
            )

    def summary(self) -> dict[str, Any]:
        return {
            "ops": self.ops,
            "subgraphs": self.subgraphs,
            "inputs": self.io_details("inputs"),
            "outputs": self.io_details("outputs"),
        }

    def _opcodes(self) -> list[str]:
        names = []
        for i in range(self.root.OperatorCodesLength()):
            code = self.root.OperatorCodes(i)
            number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = operator_name(number)
            if name == "CUSTOM" and code.CustomCode():
                name = f"CUSTOM:{code.CustomCode().decode('utf-8', 'replace')}"
            names.append(name)
        return names

    @cached_property
    def ops(self) -> dict[str, int]:
        opcodes = self._opcodes()
        counts: Counter[str] = Counter()
        for s in range(self.root.SubgraphsLength()):
            subgraph = self.root.Subgraphs(s)
            for o in range(subgraph.OperatorsLength()):
                counts[opcodes[subgraph.Operators(o).OpcodeIndex()]] += 1
        return dict(sorted(counts.items()))

    @cached_property
    def subgraphs(self) -> list[dict[str, Any]]:
        result = []
        for s in range(self.root.SubgraphsLength()):
            subgraph = self.root.Subgraphs(s)
            name = subgraph.Name()
            result.append({
                "index": s,
                "name": name.decode("utf-8", "replace") if name else "",
                "operators": subgraph.OperatorsLength(),
                "tensors": subgraph.TensorsLength(),
            })
        return result

    def io_details(self, which: str) -> list[dict[str, Any]]:
        """Inputs or outputs of the main subgraph, in the interpreter's order."""
        if self.root.SubgraphsLength() == 0:
            raise ModelError(f"{self.origin}: the model has no subgraph")
        subgraph = self.root.Subgraphs(0)
        indices = subgraph.InputsAsNumpy() if which == "inputs" else subgraph.OutputsAsNumpy()
        if isinstance(indices, int):  # flatbuffers returns 0 for an absent vector
            return []
        return [self._tensor_details(subgraph, int(i)) for i in indices]

    @property
    def subgraph_count(self) -> int:
        return int(self.root.SubgraphsLength())

    def tensors(self, subgraph: int = 0) -> list[TensorInfo]:
        """Every tensor of one subgraph, in index order."""
        return self._graph(subgraph)[0]

    def operators(self, subgraph: int = 0) -> list[OperatorInfo]:
        """Every operator of one subgraph, in execution order."""
        return self._graph(subgraph)[1]

    def subgraph_inputs(self, subgraph: int = 0) -> list[int]:
        return self._graph(subgraph)[2]

    def subgraph_outputs(self, subgraph: int = 0) -> list[int]:
        return self._graph(subgraph)[3]

    @cached_property
    def _graphs(self) -> dict[int, Graph]:
        return {}

    def _graph(self, index: int) -> Graph:
        if index not in self._graphs:
            count = self.subgraph_count
            if not 0 <= index < count:
                raise ModelError(f"{self.origin}: no subgraph {index} (the model has {count})")
            try:
                self._graphs[index] = read_graph(self.root, index, self._opcodes(), self.origin)
            except (ModelError, ImportError):  # as in validate()
                raise
            except Exception as exc:  # struct/index errors on truncated data, as in validate()
                raise ModelError(
                    f"{self.origin}: corrupt TFLite model ({type(exc).__name__}: {exc}); "
                    f"the file may be truncated. Re-export it."
                ) from None
        return self._graphs[index]

    def _read(self, what: str, read: Any) -> Any:
        """``read()``, with flatbuffer errors on truncated data reported as a corrupt model."""
        try:
            return read()
        except (ModelError, ImportError):  # LiteRT's schema missing: not a corrupt model
            raise
        except Exception as exc:
            raise ModelError(
                f"{self.origin}: corrupt TFLite model reading {what} ({type(exc).__name__}: "
                f"{exc}); the file may be truncated. Re-export it."
            ) from None

    def _tensor_table(self, subgraph: int, tensor: int) -> Any:
        count = len(self.tensors(subgraph))
        if not 0 <= tensor < count:
            raise ModelError(f"{self.origin}: no tensor {tensor} in subgraph {subgraph} "
                             f"(it has {count})")
        return self.root.Subgraphs(subgraph).Tensors(tensor)

    def tensor_quantization(self, subgraph: int, tensor: int) -> QuantizationInfo | None:
        """Scales, zero points (absent zero points read as 0) and quantized dimension; None for
        a tensor without scales."""

        def read() -> QuantizationInfo | None:
            quantization = self._tensor_table(subgraph, tensor).Quantization()
            if quantization is None or quantization.ScaleLength() == 0:
                return None
            scales = tuple(float(quantization.Scale(i)) for i in range(quantization.ScaleLength()))
            zero_points = tuple(int(quantization.ZeroPoint(i))
                                for i in range(quantization.ZeroPointLength())) or (0,)
            return QuantizationInfo(scales, zero_points, int(quantization.QuantizedDimension()))

        result: QuantizationInfo | None = self._read(f"the quantization of tensor {tensor}", read)
        return result

    def tensor_sparsity(self, subgraph: int, tensor: int) -> SparsityInfo | None:
        """The sparse storage of a tensor, or None for a dense one."""

        def read() -> SparsityInfo | None:
            table = self._tensor_table(subgraph, tensor).Sparsity()
            if table is None:
                return None
            schema = litert_schema()
            parameters = schema.SparsityParametersT.InitFromObj(table)
            dimensions = []
            for metadata in parameters.dimMetadata or []:
                sparse = metadata.format == schema.DimensionType.SPARSE_CSR
                dimensions.append(DimensionInfo(
                    format="sparse_csr" if sparse else "dense",
                    dense_size=int(metadata.denseSize),
                    segments=_index_vector(metadata.arraySegments),
                    indices=_index_vector(metadata.arrayIndices),
                ))
            return SparsityInfo(
                traversal_order=_index_tuple(parameters.traversalOrder),
                block_map=_index_tuple(parameters.blockMap),
                dimensions=tuple(dimensions),
            )

        result: SparsityInfo | None = self._read(f"the sparsity of tensor {tensor}", read)
        return result

    def tensor_data(self, subgraph: int, tensor: int) -> memoryview | None:
        """The bytes a constant tensor stores in this file (inline, or at a buffer offset as in
        models over 2 GB), as a read-only view into the file's bytes, never a copy (a model's
        weights are most of its size); None for a tensor without data here (activations,
        external buffers)."""

        def read() -> memoryview | None:
            buffer = self._tensor_table(subgraph, tensor).Buffer()
            if buffer == 0 or not 0 <= buffer < self.root.BuffersLength():
                return None
            table = self.root.Buffers(buffer)
            if table.DataLength() > 0:
                # numpy's view over the file's bytes (np.frombuffer): no copy.
                return memoryview(table.DataAsNumpy()).toreadonly()
            offset, size = int(table.Offset()), int(table.Size())
            if offset > 1 and size > 0:  # TFLite treats offset 0 and 1 as "no data here"
                if offset + size > len(self.content):
                    raise ModelError(f"{self.origin}: corrupt TFLite model: buffer {buffer} "
                                     f"ends at byte {offset + size}, past the file's "
                                     f"{len(self.content)}")
                return memoryview(self.content).toreadonly()[offset:offset + size]
            return None

        result: memoryview | None = self._read(f"the data of tensor {tensor}", read)
        return result

    def tensor_values(self, subgraph: int, tensor: int) -> Any:
        """A constant tensor's stored values as a numpy array, in the stored type (int4/uint4
        unpacked to int8/uint8, bfloat16 widened exactly to float32): shaped like the tensor, or
        1-D for a sparse tensor, whose buffer holds only the stored values."""
        info = self.tensors(subgraph)[tensor]
        data = self.tensor_data(subgraph, tensor)
        if data is None:
            raise ModelError(f"{self.origin}: tensor {info.name!r} has no data in the file")
        sparse = self.tensor_sparsity(subgraph, tensor) is not None
        return decode_values(info, data, sparse, self.origin)

    def operator_options(self, subgraph: int, operator: int) -> dict[str, Any]:
        """An operator's builtin options, by their schema names in snake case (e.g. ``adj_x`` of
        BATCH_MATMUL); empty for an operator without options."""

        def read() -> dict[str, Any]:
            operators = self.operators(subgraph)
            if not 0 <= operator < len(operators):
                raise ModelError(f"{self.origin}: no operator {operator} in subgraph {subgraph}")
            table = self.root.Subgraphs(subgraph).Operators(operator)
            options = litert_schema().OperatorT.InitFromObj(table).builtinOptions
            if options is None:
                return {}
            return {snake_case(key): value for key, value in vars(options).items()}

        result: dict[str, Any] = self._read(f"the options of operator {operator}", read)
        return result

    def _tensor_details(self, subgraph: Any, index: int) -> dict[str, Any]:
        tensor = subgraph.Tensors(index)
        shape = [int(d) for d in vector(tensor.ShapeAsNumpy())]
        signature = [int(d) for d in vector(tensor.ShapeSignatureAsNumpy())] or shape
        scale = zero_point = None
        quantization = tensor.Quantization()
        if quantization is not None and quantization.ScaleLength() > 0:
            scale = float(quantization.Scale(0))
            zero_point = int(quantization.ZeroPoint(0)) if quantization.ZeroPointLength() else 0
        return {
            "name": tensor.Name().decode("utf-8", "replace"),
            "shape": shape,
            "shape_signature": signature,
            "dtype": dtype_name(tensor.Type()),
            "scale": scale,
            "zero_point": zero_point,
        }


def _index_tuple(values: Any) -> tuple[int, ...]:
    """An optional vector of the object API (None, a list or a numpy array) as ints."""
    return () if values is None else tuple(int(v) for v in vector(values))


def _index_vector(union: Any) -> tuple[int, ...]:
    """The values of a ``SparseIndexVector`` union (int32, uint16 or uint8 vector)."""
    return () if union is None else _index_tuple(union.values)
