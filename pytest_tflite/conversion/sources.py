"""Model sources: classify what the user passed (no TensorFlow), then load it (TensorFlow).

``.keras`` files go to the Keras that wrote them (read from the archive's metadata.json);
``.h5`` files, the Keras 2 format, go to tf_keras; SavedModel directories to TensorFlow.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConversionError, ModelError, TFLiteError
from ..model import TFLiteModel
from ..signature_order import signature_order
from .frameworks import (
    flatten_nested,
    import_keras,
    keras_flavour,
    load_keras_model,
    tf_keras_pseudo_output_names,
)

TFLITE_SUFFIXES = (".tflite", ".lite")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass
class Source:
    """What the user handed in, classified before anything heavy is imported."""

    kind: str  # "tflite" | "keras_model" | "keras_file" | "saved_model"
    description: str
    value: Any = None
    path: Path | None = None
    custom_objects: Mapping[str, Any] | None = None
    signature: str | None = None
    # A .keras/.h5 file may carry Python code (a Lambda layer's bytecode) that loading runs:
    # refused (Keras safe mode) unless a reviewer said so (a budget's ``unsafe_source = true``).
    unsafe: bool = False


@dataclass
class Loaded:
    """A source loaded with TensorFlow: its converter, its inputs, and how to run it as reference.

    ``reference`` maps arrays in input order to the outputs by the names the converter gives
    them in the ``.tflite``'s SignatureDef (see ``output_arrays``), in signature order.
    """

    make_converter: Callable[[], Any]
    inputs: list[tuple[str, tuple[int | None, ...], str]]  # name, shape (None = any), dtype
    reference: Callable[[list[Any]], dict[str, Any]]
    keyed_inputs: bool = False  # SavedModel signatures take inputs by name
    keep_alive: Any = None  # a loaded SavedModel: its signatures need the object to live


def classify(
    source: Any, *, custom_objects: Mapping[str, Any] | None = None, signature: str | None = None,
    unsafe_source: bool = False,
) -> Source:
    if isinstance(source, TFLiteModel):
        return Source("tflite", source.source, value=source.content, path=source.path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Source("tflite", "<bytes>", value=bytes(source))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ModelError(f"model path {path} does not exist")
        if path.is_dir():
            if not (path / "saved_model.pb").is_file() and not (path / "saved_model.pbtxt").is_file():
                raise ModelError(
                    f"{path} is a directory without saved_model.pb: expected a SavedModel directory"
                )
            return Source("saved_model", str(path), path=path, signature=signature)
        suffix = path.suffix.lower()
        if suffix in TFLITE_SUFFIXES:
            return Source("tflite", str(path), value=path.read_bytes(), path=path)
        if suffix in KERAS_SUFFIXES:
            return Source("keras_file", str(path), path=path, custom_objects=custom_objects,
                          unsafe=unsafe_source)
        raise ModelError(
            f"{path}: unknown model file type {suffix!r}; expected a .tflite, .keras or .h5 file "
            f"or a SavedModel directory"
        )
    if keras_flavour(source) is not None:
        name = getattr(source, "name", type(source).__name__)
        return Source("keras_model", f"{keras_flavour(source)} model {name!r}", value=source)
    raise ModelError(
        f"cannot convert a {type(source).__name__}: pass a Keras model, a .keras/.h5 path, a "
        f"SavedModel directory, or a .tflite path or bytes"
    )


def load(source: Source, tf: Any) -> Loaded:
    if source.kind == "saved_model":
        return _load_saved_model(source, tf)
    model = source.value if source.kind == "keras_model" else _load_keras_file(source)
    return _keras_loaded(model, source, tf)


def _load_keras_file(source: Source) -> Any:
    """``.keras`` files go to the Keras that wrote them; ``.h5`` (the Keras 2 format) to tf_keras."""
    assert source.path is not None
    path = source.path
    writer = _keras_file_version(path)
    use_tf_keras = writer.startswith("2.") if writer else path.suffix.lower() != ".keras"
    try:
        if use_tf_keras:
            try:
                keras = import_keras(legacy=True)
            except ImportError:
                keras = import_keras(legacy=False)  # Keras 3 reads legacy .h5 files too
        else:
            keras = import_keras(legacy=False)
        return load_keras_model(keras, path, source.custom_objects, safe=not source.unsafe)
    except TFLiteError:
        raise
    except Exception as exc:
        if "safe_mode" in str(exc):  # Keras's own refusal, which tells users to turn it off
            raise ModelError(unsafe_refusal(path)) from None
        raise ModelError(
            f"{path}: could not load it as a Keras model ({type(exc).__name__}: "
            f"{first_line(exc)}). If it uses custom layers, pass custom_objects={{...}}."
        ) from None


def unsafe_refusal(path: Path) -> str:
    """Why a model file that needs unsafe loading was not loaded, and the two ways to allow it."""
    return (f"{path}: loading it would run Python code stored in the file (a Lambda layer's "
            f"bytecode), so it was refused (Keras safe mode). Model files are code: review it, "
            f"then set unsafe_source = true in the budget file that names it (source =), or pass "
            f"unsafe_source=True to convert() / tflite_convert(); better, replace the Lambda "
            f"with a registered custom layer (custom_objects=...)")


def _keras_file_version(path: Path) -> str | None:
    if path.suffix.lower() != ".keras":
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            version = json.loads(archive.read("metadata.json")).get("keras_version")
            return str(version) if version else None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        return None


def _keras_loaded(model: Any, source: Source, tf: Any) -> Loaded:
    inputs = None
    if getattr(model, "built", True):
        try:
            inputs = model.inputs
        except (AttributeError, ValueError):
            inputs = None
    if not inputs:
        raise ConversionError(
            f"{source.description} was never built, so its input shape is unknown: give it an "
            f"Input layer (keras.Input(shape=...)) or call it on a batch before converting"
        )
    specs = [
        (keras_input_name(t, i),
         tuple(None if d is None else int(d) for d in t.shape),
         str(getattr(t.dtype, "name", t.dtype)))
        for i, t in enumerate(inputs)
    ]

    def reference(arrays: list[Any]) -> dict[str, Any]:
        outputs = model(arrays if len(arrays) > 1 else arrays[0], training=False)
        return output_arrays(model, outputs)

    return Loaded(lambda: tf.lite.TFLiteConverter.from_keras_model(model), specs, reference)


def _load_saved_model(source: Source, tf: Any) -> Loaded:
    assert source.path is not None
    try:
        loaded = tf.saved_model.load(str(source.path))
    except Exception as exc:
        raise ModelError(f"{source.path}: could not load the SavedModel: {first_line(exc)}") from None
    name = source.signature or "serving_default"
    if name not in loaded.signatures:
        raise ConversionError(
            f"{source.path}: no signature {name!r}; the SavedModel has "
            f"{sorted(loaded.signatures) or 'none'} (pass signature=...)"
        )
    function = loaded.signatures[name]
    spec = function.structured_input_signature[1]
    names = sorted(spec)
    specs = [(n, tuple(spec[n].shape.as_list()), spec[n].dtype.name) for n in names]

    def reference(arrays: list[Any]) -> dict[str, Any]:
        result = function(**{n: tf.constant(a) for n, a in zip(names, arrays)})
        return _in_signature_order({str(k): v.numpy() for k, v in result.items()})

    def make_converter() -> Any:
        return tf.lite.TFLiteConverter.from_saved_model(str(source.path), signature_keys=[name])

    return Loaded(make_converter, specs, reference, keyed_inputs=True, keep_alive=loaded)


def keras_input_name(tensor: Any, position: int) -> str:
    """A Keras model input's name, as the converter names the signature input."""
    return str(getattr(tensor, "name", f"input_{position}")).split(":")[0]


def output_arrays(model: Any, outputs: Any) -> dict[str, Any]:
    """A Keras model's outputs (from calling or ``predict``) by their ``.tflite`` signature names.

    TF 2.21's converter names them as the SavedModel export it goes through does: Keras 3 a
    dict output by its keys, anything else ``output_0``, ``output_1``... in the model's order;
    tf-keras by ``model.output_names`` (the output layers' names, even for a dict output),
    over the outputs flattened as ``tf.nest`` does (a dict by sorted key).
    """
    import numpy as np

    if keras_flavour(model) == "tf_keras":
        names = getattr(model, "output_names", None)
        if not names:  # a subclassed model: the pseudo names tf-keras's tracing gives
            names = tf_keras_pseudo_output_names(outputs)
        flat = flatten_nested(outputs)
        if len(names) != len(flat):
            raise ConversionError(f"the model has {len(flat)} outputs but {len(names)} output "
                                  f"names {list(names)}: they cannot be paired by name")
        named = {str(n): np.asarray(v) for n, v in zip(names, flat)}
    elif isinstance(outputs, Mapping):
        named = {str(k): np.asarray(v) for k, v in outputs.items()}
    else:
        named = {f"output_{k}": np.asarray(v) for k, v in enumerate(_flatten(outputs))}
    return _in_signature_order(named)


def _flatten(outputs: Any) -> list[Any]:
    if isinstance(outputs, (list, tuple)):
        return [leaf for item in outputs for leaf in _flatten(item)]
    return [outputs]


def _in_signature_order(named: dict[str, Any]) -> dict[str, Any]:
    return {name: named[name] for name in signature_order(named)}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if "error" in line.lower()] or text.splitlines()
    return (lines[0] if lines else type(exc).__name__)[:500]
