"""``cached_prune``: pruning for the ``tflite_prune`` fixture, keyed like conversions (model,
target, options, data, versions), so a rerun loads the pruned weights instead of fine-tuning."""

from __future__ import annotations

import hashlib
import io
import json
from typing import TYPE_CHECKING, Any

from . import pruning
from .session import FineTune, array_list, describe, kernel_sparsity, require_tf_keras, tfmot_session

if TYPE_CHECKING:
    from ..conversion.cache.storage import CacheStats, ConversionCache


def cached_prune(
    cache: ConversionCache | None,
    model: Any,
    target_sparsity: float,
    fine_tune: FineTune = None,
    *,
    stats: CacheStats | None = None,
    **options: Any,
) -> Any:
    """:func:`prune` through the conversion cache: a rerun loads the pruned weights, no training.

    The key holds the model (architecture, with generated layer names normalized, and weights),
    the target, the fine-tune data, every option and the versions of tfmot, TensorFlow and
    tf_keras. A callable ``fine_tune``, a ``loss`` or ``optimizer`` object without a config,
    or a model without one (subclassed) cannot be keyed: those prune every time.
    """
    __tracebackhide__ = True
    require_tf_keras(model, "prune")
    key = None if cache is None else _prune_key(model, target_sparsity, fine_tune, options)
    if cache is None or key is None:
        if stats is not None:
            stats.misses += 1
        return pruning.prune(model, target_sparsity, fine_tune, **options)

    def create() -> tuple[bytes, dict[str, Any]]:
        pruned = pruning.prune(model, target_sparsity, fine_tune, **options)
        return _weights_bytes(pruned.get_weights()), {
            "kind": "pruned_weights", "target_sparsity": target_sparsity,
            "kernel_sparsity": kernel_sparsity(pruned), "model": describe(model),
        }

    _, content, _, hit = cache.with_suffix(".npz").get_or_create(key, create)
    if stats is not None:
        if hit:
            stats.hits += 1
        else:
            stats.misses += 1
    with tfmot_session(import_tfmot=False) as (tf_keras, _):
        restored = tf_keras.models.clone_model(model)
        restored.set_weights(_weights_from_bytes(content))
    return restored


def _prune_key(model: Any, target: float, fine_tune: FineTune, options: dict[str, Any]) -> str | None:
    from ..conversion.cache.keys import hash_arrays, model_fingerprint
    from ..conversion.sources import classify
    from ..environment import package_version

    if callable(fine_tune):
        return None
    described = {}
    for name, value in sorted(options.items()):
        if name in ("loss", "optimizer") and value is not None and not isinstance(value, str):
            try:
                value = {"class": type(value).__qualname__, "config": value.get_config()}
            except Exception:
                return None
        described[name] = value
    fingerprint = model_fingerprint(classify(model))
    if fingerprint is None:
        return None
    header = {
        "format": 1, "kind": "pruned_weights", "model": fingerprint, "target": target,
        "options": described, "one_shot": fine_tune is None,
        "versions": {name: package_version(name) for name in
                     ("tensorflow-model-optimization", "tensorflow", "tf-keras")},
    }
    digest = hashlib.sha256()
    try:
        digest.update(json.dumps(header, sort_keys=True, default=repr).encode())
    except (TypeError, ValueError):
        return None
    if fine_tune is not None:
        hash_arrays(digest, array_list(fine_tune))
    return digest.hexdigest()


def _weights_bytes(weights: list[Any]) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, *weights)
    return buffer.getvalue()


def _weights_from_bytes(content: bytes) -> list[Any]:
    import numpy as np

    with np.load(io.BytesIO(content)) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]


