"""``pytest_tflite.convert``: recipes, the cache and the sanity check around TFLiteConverter.

TensorFlow is imported only when a conversion actually runs (a cache miss); a cache hit for a
file source reads bytes and hashes them, nothing more.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConversionError, SanityError, TFLiteError
from ..files import write_atomic
from ..model import TFLiteModel
from ..printable import printable
from . import representative
from .cache.keys import cache_key, quantizer_cache_key
from .cache.storage import CacheStats, ConversionCache
from .frameworks import import_tensorflow
from .quantizer import recipes as quantizer
from .quiet import quiet_output
from .sanity import settings as sanity_settings
from .sources import Loaded, Source, classify, first_line, load

RECIPES: dict[str, str] = {
    "float32": "no optimization",
    "float16": "float16 weights, float32 compute",
    "dynamic_int8": "int8 weights, float activations (dynamic range)",
    "int8": "full integer: int8 weights and activations, int8 input/output by default",
    "int16x8": "int8 weights, int16 activations, int16 input/output by default",
}
NEEDS_REPRESENTATIVE_DATA = ("int8", "int16x8")
SANITY_SAMPLES = 8


def convert(
    source: Any,
    recipe: str | None = None,
    representative_data: Any = None,
    *,
    variant: str | None = None,
    custom_objects: Mapping[str, Any] | None = None,
    signature: str | None = None,
    float_io: bool = False,
    sparse_encoding: bool = False,
    sanity: bool | Mapping[str, float] = True,
    cache: ConversionCache | None = None,
    stats: CacheStats | None = None,
    output_dir: Path | None = None,
    quiet: bool = True,
    timeout: float | None = None,
    unsafe_source: bool = False,
) -> TFLiteModel:
    """Convert ``source`` to a TFLite model with ``recipe``, or pass a ready ``.tflite`` through.

    ``source``: a tf-keras or Keras 3 model, a ``.keras``/``.h5`` path, a SavedModel directory
    (``signature`` picks one), or a ``.tflite`` path or bytes. ``representative_data`` (required
    by ``int8`` and ``int16x8``): an array for a one-input model, a list of arrays (one per
    input, in the model's input order) or a dict ``{input_name: array}``; each array holds samples
    along axis 0. ``sparse_encoding`` stores mostly-zero weights in TFLite's sparse format
    (``Optimize.EXPERIMENTAL_SPARSITY``, read back through DENSIFY ops): smaller files, but some
    delegates refuse it, so it is opt-in; pruned zeros otherwise stay dense and shrink only
    under compression. ``sanity`` compares the converted model with its source (``sanity.py``),
    output by output, paired by the signature's output names: True (the recipe's thresholds),
    False, or a dict overriding ``max_relative_error`` / ``min_cosine``; it is part of the cache
    key. ``timeout``: seconds the sanity run of the converted model may take (None: the
    worker's default). ``unsafe_source``: load a ``.keras``/``.h5`` file outside Keras's safe
    mode, running the Python code it carries (a Lambda layer); only for a reviewed file.
    """
    __tracebackhide__ = True
    if variant is not None and printable(variant) != variant:
        raise ConversionError(f"variant={printable(variant)!r} holds a control character (a "
                              f"newline, ESC, DEL, ...): variant names are printed in reports "
                              f"and CI logs, so use printable characters only")
    classified = classify(source, custom_objects=custom_objects, signature=signature,
                          unsafe_source=unsafe_source)
    if quantizer.is_quantizer_recipe(recipe):
        assert recipe is not None
        if sparse_encoding:
            raise ConversionError(f"recipe {recipe!r}: sparse_encoding applies to the converter's "
                                  f"recipes only, not to the LiteRT quantizer's")
        return _quantize(classified, recipe, representative_data, float_io, variant=variant,
                         custom_objects=custom_objects, signature=signature, sanity=sanity,
                         cache=cache, stats=stats, output_dir=output_dir, quiet=quiet,
                         timeout=timeout)
    if classified.kind == "tflite":
        sanity_settings(sanity, "tflite")  # nothing to check, but a typo is still a typo
        return _pass_through(classified, recipe, variant, output_dir)
    recipe = recipe or "float32"
    if recipe not in RECIPES:
        raise ConversionError(
            f"unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}, or a LiteRT "
            f"quantizer recipe: {', '.join(quantizer.SHORT_NAMES)} or litert_quantizer:NAME"
        )
    samples = representative.normalize(representative_data)
    if recipe in NEEDS_REPRESENTATIVE_DATA and samples is None:
        raise ConversionError(
            f"recipe {recipe!r} needs representative_data: a few hundred typical inputs "
            f"(e.g. representative_data=x_train[:256]) to calibrate activation ranges"
        )
    variant = variant or recipe
    # The sanity thresholds are part of the key: a model converted unchecked (sanity=False) or
    # against looser limits must not be served later to a caller who asked for the check.
    thresholds = sanity_settings(sanity, recipe)
    options = {"recipe": recipe, "float_io": float_io, "signature": signature,
               "sparse_encoding": sparse_encoding, "sanity": thresholds}

    def create() -> tuple[bytes, dict[str, Any]]:
        return _convert_and_check(classified, options, samples, thresholds, quiet, timeout)

    key = cache_key(classified, options, samples) if cache is not None else None
    return _cached(key, create, recipe, variant, classified.description, cache, stats, output_dir)


def _cached(
    key: str | None,
    create: Callable[[], tuple[bytes, dict[str, Any]]],
    recipe: str,
    variant: str,
    description: str,
    cache: ConversionCache | None,
    stats: CacheStats | None,
    output_dir: Path | None,
) -> TFLiteModel:
    """The model from the cache under ``key``, else made by ``create`` (and cached)."""
    if cache is not None and key is not None:
        path, content, _, hit = cache.get_or_create(key, create)
        if stats is not None:
            if hit:
                stats.hits += 1
            else:
                stats.misses += 1
        return TFLiteModel(content, path, recipe, variant, description, cache_hit=hit)
    content, _ = create()
    if stats is not None:
        stats.misses += 1
    path = _write_model(content, variant, output_dir)
    return TFLiteModel(content, path, recipe, variant, description, cache_hit=False)


def _quantize(
    source: Source,
    recipe: str,
    representative_data: Any,
    float_io: bool,
    *,
    variant: str | None,
    custom_objects: Mapping[str, Any] | None,
    signature: str | None,
    sanity: bool | Mapping[str, float],
    cache: ConversionCache | None,
    stats: CacheStats | None,
    output_dir: Path | None,
    quiet: bool,
    timeout: float | None,
) -> TFLiteModel:
    """A LiteRT quantizer recipe (quantizer.py) on the float ``.tflite``: the source itself, or
    the ``float32`` recipe's conversion of it (cached and sanity-checked on its own)."""
    from ..measure.worker.protocol import DEFAULT_TIMEOUT_S

    function = quantizer.recipe_function(recipe)  # an unknown name fails before any work
    samples = representative.normalize(representative_data)
    if quantizer.needs_calibration(function) and samples is None:
        raise ConversionError(
            f"recipe {recipe!r} ({quantizer.PREFIX}{function}) quantizes activations statically: "
            f"it needs representative_data, a few hundred typical inputs (e.g. "
            f"representative_data=x_train[:256]) to calibrate their ranges")
    if float_io and quantizer.needs_calibration(function):
        raise ConversionError(
            f"recipe {recipe!r}: float_io=True applies to the converter's int8 and int16x8 "
            f"recipes; the quantizer's static recipes always take and give integers")
    canonical = quantizer.PREFIX + function
    thresholds = sanity_settings(sanity, canonical)
    if source.kind == "tflite":
        float_content = bytes(source.value)
        TFLiteModel(float_content, source.path or Path("<bytes>"), "tflite", "float32",
                    source.description).view.validate()
    else:
        float_content = convert(source.value if source.kind == "keras_model" else source.path,
                                "float32", custom_objects=custom_objects, signature=signature,
                                cache=cache, output_dir=output_dir, quiet=quiet,
                                timeout=timeout, unsafe_source=source.unsafe).content
    origin = f"{source.description} quantized with {recipe!r}"
    seconds = DEFAULT_TIMEOUT_S if timeout is None else float(timeout)

    def create() -> tuple[bytes, dict[str, Any]]:
        content, note = quantizer.quantize(float_content, function, samples, origin, seconds)
        note = {**note, "recipe": canonical, "source": source.description}
        if thresholds is not None:
            note["sanity"] = quantizer.check_against_float(
                float_content, content, samples, canonical, thresholds, origin, timeout)
        return content, note

    options = {"recipe": function, "sanity": thresholds}
    key = quantizer_cache_key(float_content, options, samples) if cache is not None else None
    # litert_quantizer:NAME is variant NAME (a budget section name without quoting); lq_* keep
    # their short name.
    variant = variant or recipe.removeprefix(quantizer.PREFIX)
    return _cached(key, create, recipe, variant, source.description, cache, stats, output_dir)


def _pass_through(
    source: Source, recipe: str | None, variant: str | None, output_dir: Path | None
) -> TFLiteModel:
    if recipe not in (None, "tflite"):
        raise ConversionError(
            f"{source.description} is already a .tflite model: recipe={recipe!r} cannot apply "
            f"(of the recipes, only the LiteRT quantizer's, lq_* and litert_quantizer:NAME, "
            f"take a .tflite). Convert the original Keras or SavedModel source instead, or drop "
            f"recipe="
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
    # Shared by every worker and run on this machine: never truncate what another one reads.
    write_atomic(path, content)
    return path


# ---------------------------------------------------------------- converting




def _convert_and_check(
    source: Source,
    options: dict[str, Any],
    samples: Any,
    thresholds: dict[str, float] | None,
    quiet: bool,
    timeout: float | None = None,
) -> tuple[bytes, dict[str, Any]]:
    from .sanity import compare

    tf = import_tensorflow()
    with quiet_output(quiet):
        loaded = load(source, tf)
        ordered = representative.in_input_order(samples, loaded) if samples is not None else None
        converter = loaded.make_converter()
        _apply_recipe(converter, options, ordered, loaded, tf)
        try:
            content = bytes(converter.convert())
        except TFLiteError:
            raise
        except Exception as exc:
            raise ConversionError(
                f"{source.description}: the TFLite converter failed with recipe "
                f"{options['recipe']!r}: {first_line(exc)}"
            ) from None
    note: dict[str, Any] = {"recipe": options["recipe"], "source": source.description,
                            "tensorflow": tf.__version__}
    if thresholds is not None:
        inputs = _sanity_inputs(ordered, loaded)
        with quiet_output(quiet):
            expected = loaded.reference(inputs)
        origin = f"{source.description} converted with {options['recipe']!r}"
        result = compare(expected, _run_candidate(content, inputs, loaded, origin, timeout),
                         options["recipe"], thresholds=thresholds, origin=origin)
        note["sanity"] = result.to_json()
    return content, note


def _run_candidate(content: bytes, inputs: list[Any], loaded: Loaded, origin: str,
                   timeout: float | None) -> dict[str, Any] | list[Any]:
    """The converted model's outputs by signature name (a list, in tensor order, without one)."""
    from ..measure.isolated import RunRefused, run_model

    with tempfile.TemporaryDirectory(prefix="pytest-tflite-") as scratch:
        path = Path(scratch, "candidate.tflite")
        path.write_bytes(content)
        # Several inputs go in by name; a single one needs none (and a converter may spell
        # its name differently from the source's).
        names = [name for name, _, _ in loaded.inputs] if len(loaded.inputs) > 1 else None
        try:
            found = run_model(path, inputs, names, timeout=timeout)
        except RunRefused as exc:
            raise SanityError(f"{origin}: the converted model cannot be run on its source's "
                              f"inputs: {exc.reason}") from None
        return found.by_name() if found.signature else found.arrays


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
    sparse = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if options.get("sparse_encoding") else []
    if recipe == "float32":
        converter.optimizations = sparse
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT, *sparse]
    if recipe == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return
    if recipe == "dynamic_int8":
        return
    assert samples is not None
    names = [name for name, _, _ in loaded.inputs]
    # TF's calibrator feeds a list in the order of the graph's input tensors, which for a
    # Keras 3 model need not be the model's order: several inputs go by signature name.
    keyed = loaded.keyed_inputs or len(names) > 1

    def representative() -> Iterable[Any]:
        for i in range(len(samples[0])):
            sample = [array[i : i + 1] for array in samples]
            yield dict(zip(names, sample)) if keyed else sample

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
