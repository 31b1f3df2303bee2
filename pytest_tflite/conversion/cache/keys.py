"""Cache keys: everything that decides the converter's output, hashed.

Keras names layers by build order (``dense``, ``dense_1``), so generated names are replaced by
stable ones; otherwise an identical model built later in the process, or in another xdist
worker, would miss the cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import Any

from ...environment import package_version
from ...flatbuffer import snake_case
from ..sources import Source


def cache_key(source: Source, options: dict[str, Any], samples: Any) -> str | None:
    fingerprint = model_fingerprint(source)
    if fingerprint is None:
        return None
    digest = hashlib.sha256()
    versions = {name: package_version(name) for name in ("tensorflow", "tf-keras", "keras")}
    # options: recipe, converter flags and the sanity thresholds (None: converted unchecked).
    header = {"format": 3, "options": options, "versions": versions, "source": fingerprint}
    digest.update(json.dumps(header, sort_keys=True).encode())
    hash_arrays(digest, samples)
    return digest.hexdigest()


def quantizer_cache_key(float_content: bytes, options: dict[str, Any], samples: Any) -> str:
    """A LiteRT quantizer recipe's key: the float ``.tflite`` it quantizes (for a Keras source,
    the ``float32`` recipe's own cached output), the recipe function, the sanity thresholds,
    the calibration data, and the quantizer's and LiteRT's versions."""
    digest = hashlib.sha256()
    versions = {name: package_version(name) for name in ("litert-quantizer", "ai-edge-litert")}
    header = {"format": "quantizer-1", "options": options, "versions": versions,
              "float_model": hashlib.sha256(float_content).hexdigest()}
    digest.update(json.dumps(header, sort_keys=True).encode())
    hash_arrays(digest, samples)
    return digest.hexdigest()


def hash_arrays(digest: Any, samples: Any) -> None:
    import numpy as np

    if samples is None:
        digest.update(b"no-representative-data")
        return
    items = sorted(samples.items()) if isinstance(samples, dict) else enumerate(samples)
    for name, array in items:
        array = np.ascontiguousarray(array)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}".encode())
        digest.update(array.tobytes())


def model_fingerprint(source: Source) -> str | None:
    digest = hashlib.sha256(source.kind.encode())
    if source.kind == "keras_model":
        architecture = _architecture(source.value)
        if architecture is None:
            return None  # e.g. a subclassed model without get_config: convert every time
        digest.update(architecture.encode())
        for weight in source.value.get_weights():
            hash_arrays(digest, [weight])
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


def _generated_names(config: Any) -> dict[str, str]:
    """Names Keras generated (class in snake case plus a counter), mapped to stable ones."""
    renames: dict[str, str] = {}
    counts: Counter[str] = Counter()

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            inner = value.get("config")
            if isinstance(value.get("class_name"), str) and isinstance(inner, dict):
                prefix = snake_case(value["class_name"])
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
