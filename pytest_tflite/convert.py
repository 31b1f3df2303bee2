"""Converter front end: sources, recipes, representative data, the cache, and the sanity check.

TensorFlow is imported only when a conversion actually runs (a cache miss); a cache hit for a
file source reads bytes and hashes them, nothing more.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .cache import CacheStats, ConversionCache
from .errors import ConversionError, ModelError, TFLiteError
from .model import TFLiteModel
from .quiet import quiet_output

RECIPES: dict[str, str] = {
    "float32": "no optimization",
    "float16": "float16 weights, float32 compute",
    "dynamic_int8": "int8 weights, float activations (dynamic range)",
    "int8": "full integer: int8 weights and activations, int8 input/output by default",
    "int16x8": "int8 weights, int16 activations, int16 input/output by default",
}
NEEDS_REPRESENTATIVE_DATA = ("int8", "int16x8")
SANITY_SAMPLES = 8
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


@dataclass
class Loaded:
    """A source loaded with TensorFlow: its converter, its inputs, and how to run it as reference."""

    make_converter: Callable[[], Any]
    inputs: list[tuple[str, tuple[int | None, ...], str]]  # name, shape (None = any), dtype
    reference: Callable[[list[Any]], list[Any]]
    keyed_inputs: bool = False  # SavedModel signatures take inputs by name
    notes: dict[str, Any] = field(default_factory=dict)


def convert(
    source: Any,
    recipe: str | None = None,
    representative_data: Any = None,
    *,
    variant: str | None = None,
    custom_objects: Mapping[str, Any] | None = None,
    signature: str | None = None,
    float_io: bool = False,
    sanity: bool | Mapping[str, float] = True,
    cache: ConversionCache | None = None,
    stats: CacheStats | None = None,
    output_dir: Path | None = None,
    quiet: bool = True,
) -> TFLiteModel:
    """Convert ``source`` to a TFLite model with ``recipe``, or pass a ready ``.tflite`` through.

    ``source``: a tf-keras or Keras 3 model, a ``.keras``/``.h5`` path, a SavedModel directory
    (``signature`` picks one), or a ``.tflite`` path or bytes. ``representative_data`` (required
    by ``int8`` and ``int16x8``): an array for a one-input model, a list of arrays (one per
    input, in the model's input order) or a dict ``{input_name: array}``; each array holds samples
    along axis 0. ``sanity`` compares the converted model with its source (see ``sanity.py``).
    """
    __tracebackhide__ = True
    classified = classify(source, custom_objects=custom_objects, signature=signature)
    if classified.kind == "tflite":
        return _pass_through(classified, recipe, variant, output_dir)
    recipe = recipe or "float32"
    if recipe not in RECIPES:
        raise ConversionError(
            f"unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}"
        )
    samples = _representative_arrays(representative_data)
    if recipe in NEEDS_REPRESENTATIVE_DATA and samples is None:
        raise ConversionError(
            f"recipe {recipe!r} needs representative_data: a few hundred typical inputs "
            f"(e.g. representative_data=x_train[:256]) to calibrate activation ranges"
        )
    variant = variant or recipe
    options = {"recipe": recipe, "float_io": float_io, "signature": signature}

    def create() -> tuple[bytes, dict[str, Any]]:
        return _convert_and_check(classified, options, samples, sanity, quiet)

    key = _cache_key(classified, options, samples) if cache is not None else None
    if cache is not None and key is not None:
        path, content, note, hit = cache.get_or_create(key, create)
        if stats is not None:
            if hit:
                stats.hits += 1
            else:
                stats.misses += 1
        return TFLiteModel(content, path, recipe, variant, classified.description, cache_hit=hit)
    content, note = create()
    if stats is not None:
        stats.misses += 1
    path = _write_model(content, variant, output_dir)
    return TFLiteModel(content, path, recipe, variant, classified.description, cache_hit=False)


def classify(
    source: Any, *, custom_objects: Mapping[str, Any] | None = None, signature: str | None = None
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
            return Source("keras_file", str(path), path=path, custom_objects=custom_objects)
        raise ModelError(
            f"{path}: unknown model file type {suffix!r}; expected a .tflite, .keras or .h5 file "
            f"or a SavedModel directory"
        )
    if _keras_flavour(source) is not None:
        name = getattr(source, "name", type(source).__name__)
        return Source("keras_model", f"{_keras_flavour(source)} model {name!r}", value=source)
    raise ModelError(
        f"cannot convert a {type(source).__name__}: pass a Keras model, a .keras/.h5 path, a "
        f"SavedModel directory, or a .tflite path or bytes"
    )


def _keras_flavour(value: Any) -> str | None:
    """"tf_keras" (Keras 2) or "keras" (Keras 3) for a Keras model, else None."""
    for klass in type(value).__mro__:
        module = klass.__module__ or ""
        if klass.__name__ in ("Model", "Functional", "Sequential"):
            if module.startswith("tf_keras") or module.startswith("keras.src.engine"):
                return "tf_keras"
            if module.startswith("keras"):
                return "keras"
    return None


def _pass_through(
    source: Source, recipe: str | None, variant: str | None, output_dir: Path | None
) -> TFLiteModel:
    if recipe not in (None, "tflite"):
        raise ConversionError(
            f"{source.description} is already a .tflite model: recipe={recipe!r} cannot apply. "
            f"Convert the original Keras or SavedModel source instead, or drop recipe="
        )
    content = source.value
    path = source.path or _write_model(content, variant or "default", output_dir)
    model = TFLiteModel(content, path, "tflite", variant or "default", source.description)
    model.view.validate()
    return model


def _write_model(content: bytes, variant: str, output_dir: Path | None) -> Path:
    folder = output_dir or Path(tempfile.gettempdir()) / "pytest-tflite"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{variant}-{hashlib.sha256(content).hexdigest()[:16]}.tflite"
    path.write_bytes(content)
    return path


# ---------------------------------------------------------------- representative data


def _representative_arrays(data: Any) -> list[Any] | dict[str, Any] | None:
    """Normalise to one float array per input (list in model order, or dict by name)."""
    import numpy as np

    if data is None:
        return None
    if callable(data):  # TF's own format: a generator of per-sample lists or dicts
        data = _collect_generator(data)
    if isinstance(data, Mapping):
        return {str(k): np.asarray(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [np.asarray(v) for v in data]
    return [np.asarray(data)]


def _collect_generator(factory: Callable[[], Iterable[Any]]) -> list[Any] | dict[str, Any]:
    import numpy as np

    batches = list(factory())
    if not batches:
        raise ConversionError("representative_data yielded no samples")
    if isinstance(batches[0], Mapping):
        return {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}
    return [np.concatenate([np.asarray(b[i]) for b in batches]) for i in range(len(batches[0]))]


def _ordered_samples(samples: list[Any] | dict[str, Any], loaded: Loaded) -> list[Any]:
    """Check representative data against the model's inputs; return arrays in input order."""
    import numpy as np

    names = [name for name, _, _ in loaded.inputs]
    if isinstance(samples, dict):
        missing = [n for n in names if n not in samples]
        if missing:
            raise ConversionError(
                f"representative_data has keys {sorted(samples)}, the model's inputs are {names}"
            )
        arrays = [samples[n] for n in names]
    else:
        arrays = list(samples)
    if len(arrays) != len(loaded.inputs):
        raise ConversionError(
            f"representative_data gives {len(arrays)} array(s), the model has {len(names)} "
            f"input(s) {names}: pass one array per input (a list in input order, or a dict)"
        )
    ordered = []
    counts = {len(a) if a.ndim else 0 for a in arrays}
    if len(counts) != 1 or 0 in counts:
        raise ConversionError(
            f"representative_data arrays need the same, non-zero number of samples along axis 0 "
            f"(got {sorted(counts)})"
        )
    for array, (name, shape, dtype) in zip(arrays, loaded.inputs):
        expected = "(N, " + ", ".join("?" if d is None else str(d) for d in shape[1:]) + ")"
        if array.ndim != len(shape) or any(
            want is not None and want != got for want, got in zip(shape[1:], array.shape[1:])
        ):
            raise ConversionError(
                f"representative_data for input {name!r} has shape {array.shape}, the model "
                f"expects {expected}: samples along axis 0, then the input's own shape"
            )
        if dtype.startswith("float") and not np.issubdtype(array.dtype, np.floating):
            raise ConversionError(
                f"representative_data for input {name!r} has dtype {array.dtype}, the model "
                f"expects {dtype}: preprocess it as the model's callers do and cast to {dtype}"
            )
        ordered.append(array.astype(dtype) if dtype.startswith("float") else array)
    return ordered


# ---------------------------------------------------------------- cache key


def _cache_key(source: Source, options: dict[str, Any], samples: Any) -> str | None:
    fingerprint = _fingerprint(source)
    if fingerprint is None:
        return None
    digest = hashlib.sha256()
    versions = {name: _version(name) for name in ("tensorflow", "tf-keras", "keras")}
    header = {"format": 2, "options": options, "versions": versions, "source": fingerprint}
    digest.update(json.dumps(header, sort_keys=True).encode())
    _hash_arrays(digest, samples)
    return digest.hexdigest()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _hash_arrays(digest: Any, samples: Any) -> None:
    import numpy as np

    if samples is None:
        digest.update(b"no-representative-data")
        return
    items = sorted(samples.items()) if isinstance(samples, dict) else enumerate(samples)
    for name, array in items:
        array = np.ascontiguousarray(array)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}".encode())
        digest.update(array.tobytes())


def _fingerprint(source: Source) -> str | None:
    digest = hashlib.sha256(source.kind.encode())
    if source.kind == "keras_model":
        architecture = _architecture(source.value)
        if architecture is None:
            return None  # e.g. a subclassed model without get_config: convert every time
        digest.update(architecture.encode())
        for weight in source.value.get_weights():
            _hash_arrays(digest, [weight])
    elif source.kind == "keras_file":
        assert source.path is not None
        digest.update(source.path.read_bytes())
        if source.custom_objects:
            digest.update(repr(sorted(source.custom_objects)).encode())
    elif source.kind == "saved_model":
        assert source.path is not None
        for file in sorted(p for p in source.path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(source.path)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _architecture(model: Any) -> str | None:
    """The model's config with generated layer names (``dense_3``) made order-independent."""
    try:
        config = json.loads(model.to_json())
    except Exception:
        return None
    renames = _generated_names(config)

    def rename(value: Any) -> Any:
        if isinstance(value, str):
            return renames.get(value, value)
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        return value

    return json.dumps(rename(config), sort_keys=True)


def _snake(name: str) -> str:
    # Keras's own to_snake_case: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d.
    intermediate = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def _generated_names(config: Any) -> dict[str, str]:
    """Names Keras generated (class in snake case plus a counter), mapped to stable ones."""
    renames: dict[str, str] = {}
    counts: Counter[str] = Counter()

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            inner = value.get("config")
            if isinstance(value.get("class_name"), str) and isinstance(inner, dict):
                prefix = _snake(value["class_name"])
                # Besides the snake-case class: tf_keras's "input_N" and "model_N", Keras 3's
                # "input_layer_N" and "functional_N".
                stems = sorted({prefix, "input", "input_layer", "model", "functional"})
                name = inner.get("name")
                pattern = "|".join(re.escape(s) for s in stems)
                if (isinstance(name, str) and name not in renames
                        and re.fullmatch(rf"(?:{pattern})(?:_\d+)?", name)):
                    renames[name] = f"{prefix}#{counts[prefix]}"
                    counts[prefix] += 1
            for child in value.values():
                visit(child)
        elif isinstance(value, list):
            for child in value:
                visit(child)

    visit(config)
    return renames


# ---------------------------------------------------------------- converting


def _import_tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO/WARNING lines, not errors
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ConversionError(
            f"converting a model needs TensorFlow ({exc}). Install it with "
            f"pip install 'pytest-tflite[tensorflow]', or pass a ready .tflite file"
        ) from None
    tf.get_logger().setLevel("ERROR")
    return tf


def _convert_and_check(
    source: Source,
    options: dict[str, Any],
    samples: Any,
    sanity: bool | Mapping[str, float],
    quiet: bool,
) -> tuple[bytes, dict[str, Any]]:
    from .sanity import compare

    tf = _import_tensorflow()
    with quiet_output(quiet):
        loaded = _load(source, tf)
        ordered = _ordered_samples(samples, loaded) if samples is not None else None
        converter = loaded.make_converter()
        _apply_recipe(converter, options, ordered, loaded, tf)
        try:
            content = bytes(converter.convert())
        except TFLiteError:
            raise
        except Exception as exc:
            raise ConversionError(
                f"{source.description}: the TFLite converter failed with recipe "
                f"{options['recipe']!r}: {_first_line(exc)}"
            ) from None
    note: dict[str, Any] = {"recipe": options["recipe"], "source": source.description,
                            "tensorflow": tf.__version__}
    if sanity is not False:
        inputs = _sanity_inputs(ordered, loaded)
        with quiet_output(quiet):
            expected = loaded.reference(inputs)
        thresholds = dict(sanity) if isinstance(sanity, Mapping) else None
        result = compare(expected, _run_candidate(content, inputs, loaded), options["recipe"],
                         thresholds=thresholds,
                         origin=f"{source.description} converted with {options['recipe']!r}")
        note["sanity"] = result.to_json()
    return content, note


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if "error" in line.lower()] or text.splitlines()
    return (lines[0] if lines else type(exc).__name__)[:500]


def _run_candidate(content: bytes, inputs: list[Any], loaded: Loaded) -> list[Any]:
    from .measure.isolated import run_model

    with tempfile.TemporaryDirectory(prefix="pytest-tflite-") as scratch:
        path = Path(scratch, "candidate.tflite")
        path.write_bytes(content)
        return run_model(path, inputs, [name for name, _, _ in loaded.inputs])


def _sanity_inputs(ordered: list[Any] | None, loaded: Loaded) -> list[Any]:
    import numpy as np

    if ordered is not None:
        return [a[:SANITY_SAMPLES] for a in ordered]
    rng = np.random.default_rng(0)
    arrays = []
    for _, shape, dtype in loaded.inputs:
        concrete = (SANITY_SAMPLES, *[d or 1 for d in shape[1:]])
        if dtype.startswith("float"):
            arrays.append(rng.standard_normal(concrete).astype(dtype))
        else:
            arrays.append(rng.integers(0, 2, concrete).astype(dtype))
    return arrays


def _apply_recipe(
    converter: Any, options: dict[str, Any], samples: list[Any] | None, loaded: Loaded, tf: Any
) -> None:
    recipe = options["recipe"]
    if recipe == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if recipe == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return
    if recipe == "dynamic_int8":
        return
    assert samples is not None
    names = [name for name, _, _ in loaded.inputs]

    def representative() -> Iterable[Any]:
        for i in range(len(samples[0])):
            sample = [array[i : i + 1] for array in samples]
            yield dict(zip(names, sample)) if loaded.keyed_inputs else sample

    converter.representative_dataset = representative
    if recipe == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_type = tf.int8
    else:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        io_type = tf.int16
    if not options["float_io"]:
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type


def _load(source: Source, tf: Any) -> Loaded:
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
                import tf_keras as keras
            except ImportError:
                import keras  # Keras 3 reads legacy .h5 files too
        else:
            import keras
        return keras.models.load_model(path, custom_objects=source.custom_objects, compile=False)
    except TFLiteError:
        raise
    except Exception as exc:
        raise ModelError(
            f"{path}: could not load it as a Keras model ({type(exc).__name__}: "
            f"{_first_line(exc)}). If it uses custom layers, pass custom_objects={{...}}."
        ) from None


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
        (str(getattr(t, "name", f"input_{i}")).split(":")[0],
         tuple(None if d is None else int(d) for d in t.shape),
         str(getattr(t.dtype, "name", t.dtype)))
        for i, t in enumerate(inputs)
    ]

    def reference(arrays: list[Any]) -> list[Any]:
        outputs = model(arrays if len(arrays) > 1 else arrays[0], training=False)
        return _as_arrays(outputs)

    return Loaded(lambda: tf.lite.TFLiteConverter.from_keras_model(model), specs, reference)


def _load_saved_model(source: Source, tf: Any) -> Loaded:
    assert source.path is not None
    try:
        loaded = tf.saved_model.load(str(source.path))
    except Exception as exc:
        raise ModelError(f"{source.path}: could not load the SavedModel: {_first_line(exc)}") from None
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

    def reference(arrays: list[Any]) -> list[Any]:
        result = function(**{n: tf.constant(a) for n, a in zip(names, arrays)})
        return [result[k].numpy() for k in sorted(result)]

    def make_converter() -> Any:
        return tf.lite.TFLiteConverter.from_saved_model(str(source.path), signature_keys=[name])

    return Loaded(make_converter, specs, reference, keyed_inputs=True, notes={"loaded": loaded})


def _as_arrays(outputs: Any) -> list[Any]:
    import numpy as np

    if isinstance(outputs, Mapping):
        return [np.asarray(outputs[k]) for k in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]
