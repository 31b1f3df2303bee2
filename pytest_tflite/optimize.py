"""Pruning and quantization-aware training (tensorflow-model-optimization) on tf_keras models.

tfmot 0.8 works on tf_keras (Keras 2) models only. Importing it sets ``TF_USE_LEGACY_KERAS=1``
in ``os.environ``, and ``tf.keras`` resolves to whichever Keras that variable names the first
time it is touched, for the rest of the process. So every entry point here pins ``tf.keras``
to the user's own choice before tfmot is imported and puts the variable back as it was when it
returns: the user's Keras 3 models (and their subprocesses) see no difference.

Nothing heavy is imported with this module: TensorFlow, tf_keras and tfmot load when a
function runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .errors import OptimizationError

if TYPE_CHECKING:
    from .cache import CacheStats, ConversionCache

LEGACY_KERAS = "TF_USE_LEGACY_KERAS"
DEFAULT_EPOCHS = 2
DEFAULT_BATCH_SIZE = 32
# The schedule reaches its target after this share of the fine-tune; the rest trains with the
# final mask fixed, which recovers most of the accuracy the last mask update costs.
RAMP_FRACTION = 0.8
MASK_UPDATES = 10  # mask updates along the ramp, when the caller gives no frequency

FineTune = tuple[Any, Any] | Callable[[Any, list[Any]], Any] | None


# ---------------------------------------------------------------- pruning


def prune(
    model: Any,
    target_sparsity: float,
    fine_tune: FineTune = None,
    *,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    begin_step: int = 0,
    end_step: int | None = None,
    frequency: int | None = None,
    loss: Any = None,
    optimizer: Any = None,
    verify: bool = True,
    tolerance: float = 0.01,
) -> Any:
    """A copy of the tf_keras ``model`` whose prunable weights (kernels) are ``target_sparsity`` zeros.

    ``fine_tune``:

    - ``(x, y)``: fine-tune ``epochs`` epochs of ``batch_size``, with a ``PolynomialDecay``
      schedule from ``begin_step`` that reaches the target at ``end_step`` (default: 80% of the
      fine-tune's steps) with a mask update every ``frequency`` steps (default: ten updates on
      the ramp). tfmot's own default of one update per 100 steps would leave a short fine-tune
      at sparsity 0.
    - a callable ``fine_tune(model, callbacks)``: it trains the compiled, wrapped model itself
      and must pass ``callbacks`` to ``fit``. Without ``end_step`` the schedule is
      ``ConstantSparsity`` with a mask update every ``frequency`` steps (default 1), so any
      length of training reaches the target.
    - ``None``: one shot, no training: tfmot's magnitude mask (``ConstantSparsity`` at step 0,
      the same top-k-by-magnitude rule as in training) is computed once and applied.

    The model is compiled with ``loss`` and ``optimizer``, else the source model's (a fresh
    optimizer of the same configuration), else Adam with a loss read from ``y`` (sparse
    categorical cross-entropy for integer labels, mean squared error otherwise). The source
    model is never modified. With ``verify``, the sparsity reached on the prunable weights must
    be within ``tolerance`` of the target, or :class:`OptimizationError` names both.
    """
    __tracebackhide__ = True
    _check_fraction("target_sparsity", target_sparsity, upper_open=True)
    _check_fraction("tolerance", tolerance)
    _check_training(epochs, batch_size)
    source = _require_tf_keras(model, "prune")
    data = _fine_tune_data(fine_tune, "prune")
    with tfmot_session() as (tf_keras, tfmot):
        clone = _clone(source, tf_keras)
        sparsity = tfmot.sparsity.keras
        try:
            if fine_tune is None:
                schedule = sparsity.ConstantSparsity(target_sparsity, begin_step=0, frequency=1)
            elif data is not None or end_step is not None:
                steps = epochs * -(-_samples(data[0]) // batch_size) if data is not None else None
                end, every = _polynomial_plan(steps, begin_step, end_step, frequency)
                schedule = sparsity.PolynomialDecay(0.0, target_sparsity, begin_step=begin_step,
                                                    end_step=end, frequency=every)
            else:
                schedule = sparsity.ConstantSparsity(target_sparsity, begin_step=begin_step,
                                                     frequency=frequency or 1)
            wrapped = sparsity.prune_low_magnitude(clone, pruning_schedule=schedule)
        except ValueError as exc:
            raise OptimizationError(f"tfmot cannot prune {_describe(source)}: {exc}") from None
        wrappers = _pruning_wrappers(wrapped)
        if not wrappers:
            raise OptimizationError(f"{_describe(source)} has no layer tfmot can prune "
                                    f"(Dense, Conv, ...): nothing to make sparse")
        if fine_tune is None:
            _mask_once(wrappers)
        else:
            _compile(wrapped, source, loss, optimizer, data, tf_keras)
            callbacks = [sparsity.UpdatePruningStep()]
            if data is not None:
                wrapped.fit(data[0], data[1], epochs=epochs, batch_size=batch_size,
                            callbacks=callbacks, verbose=0)
            else:
                assert callable(fine_tune)
                _run_callable(fine_tune, wrapped, callbacks)
        for wrapper in wrappers:
            # Adam's momentum moves masked weights after the last update: mask them once more.
            wrapper.pruning_obj.weight_mask_op()
        layers = _wrapper_sparsity(wrappers)
        stripped = sparsity.strip_pruning(wrapped)
    if verify:
        reached = _overall(layers)
        if abs(reached - target_sparsity) > tolerance:
            raise OptimizationError(
                f"pruning {_describe(source)} reached sparsity {reached:.4f} on its prunable "
                f"weights, not the target {target_sparsity:.4f} (tolerance {tolerance}); per "
                f"layer: {_layer_table(layers)}. "
                + _schedule_hint(fine_tune, schedule)
            )
    return stripped


def _run_callable(fine_tune: Callable[[Any, list[Any]], Any], model: Any, callbacks: list[Any]) -> None:
    try:
        fine_tune(model, callbacks)
    except Exception as exc:
        # tfmot asserts inside the graph that its step counter was started by the callback.
        if "UpdatePruningStep" not in str(exc):
            raise
        raise OptimizationError(
            "the fine_tune callable trained without the callbacks it was given: pass them on, "
            "model.fit(..., callbacks=callbacks), so tfmot's UpdatePruningStep advances the "
            "pruning schedule"
        ) from None


def _polynomial_plan(
    steps: int | None, begin_step: int, end_step: int | None, frequency: int | None
) -> tuple[int, int]:
    """(end_step, frequency) such that a mask update falls exactly on ``end_step``.

    tfmot updates the mask when ``(step - begin_step) % frequency == 0`` and
    ``begin_step <= step <= end_step``; the sparsity reaches its target only at ``end_step``.
    """
    if begin_step < 0:
        raise OptimizationError(f"begin_step must be >= 0, got {begin_step}")
    if frequency is not None and frequency < 1:
        raise OptimizationError(f"frequency must be >= 1 step, got {frequency}")
    if steps is not None and begin_step >= steps:
        raise OptimizationError(
            f"begin_step={begin_step} is at or past the fine-tune's last step ({steps} steps: "
            f"epochs x ceil(samples / batch_size)): pruning would never start"
        )
    if end_step is None:
        assert steps is not None
        ramp = max(1, int((steps - begin_step) * RAMP_FRACTION))
        every = frequency or max(1, ramp // MASK_UPDATES)
        if every > steps - begin_step:
            raise OptimizationError(
                f"frequency={every} is longer than the fine-tune after begin_step "
                f"({steps - begin_step} steps): the mask would never be updated"
            )
        span = max(every, ramp // every * every)
        return begin_step + span, every
    span = end_step - begin_step
    if span <= 0:
        raise OptimizationError(f"end_step={end_step} must be after begin_step={begin_step}")
    if steps is not None and end_step > steps:
        raise OptimizationError(
            f"end_step={end_step} is past the fine-tune's last step ({steps} steps: epochs x "
            f"ceil(samples / batch_size)): the target sparsity would never be reached"
        )
    if frequency is None:
        limit = max(1, span // MASK_UPDATES)
        frequency = max(d for d in range(1, limit + 1) if span % d == 0)
    if span % frequency:
        raise OptimizationError(
            f"end_step - begin_step ({span}) must be a multiple of frequency ({frequency}): "
            f"tfmot updates the mask only every frequency steps, so the final update, the one "
            f"that reaches the target, would be skipped"
        )
    return end_step, frequency


def _pruning_wrappers(model: Any) -> list[Any]:
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    found = []

    def visit(layer: Any) -> None:
        if isinstance(layer, pruning_wrapper.PruneLowMagnitude):
            found.append(layer)
        for inner in getattr(layer, "layers", []):
            visit(inner)

    visit(model)
    return found


def _mask_once(wrappers: list[Any]) -> None:
    """One-shot pruning: tfmot's mask at step 0 of a ConstantSparsity schedule, then applied."""
    for wrapper in wrappers:
        wrapper.pruning_step.assign(0)
        wrapper.pruning_obj.conditional_mask_update()
        wrapper.pruning_obj.weight_mask_op()


def _wrapper_sparsity(wrappers: list[Any]) -> list[tuple[str, int, int]]:
    """(layer name, zeros, elements) over each wrapper's prunable weights."""
    import numpy as np

    rows = []
    for wrapper in wrappers:
        zeros = elements = 0
        for weight, _, _ in wrapper.pruning_vars:
            values = np.asarray(weight.numpy())
            zeros += int(np.count_nonzero(values == 0))
            elements += int(values.size)
        rows.append((str(wrapper.layer.name), zeros, elements))
    return rows


def _overall(rows: Sequence[tuple[str, int, int]]) -> float:
    elements = sum(r[2] for r in rows)
    return sum(r[1] for r in rows) / elements if elements else 0.0


def _layer_table(rows: Sequence[tuple[str, int, int]]) -> str:
    return ", ".join(f"{name} {zeros / max(size, 1):.3f}" for name, zeros, size in rows)


def _schedule_hint(fine_tune: FineTune, schedule: Any) -> str:
    config = schedule.get_config()["config"]
    described = f"{type(schedule).__name__}({', '.join(f'{k}={v}' for k, v in config.items())})"
    if callable(fine_tune):
        return (f"Schedule: {described}. Check that fine_tune passes the callbacks it is given "
                f"to fit() and trains past end_step.")
    return f"Schedule: {described}. A longer fine-tune or a smaller frequency gets closer."


# ---------------------------------------------------------------- quantization-aware training


def quantize_aware(
    model: Any,
    fine_tune: FineTune,
    *,
    epochs: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    loss: Any = None,
    optimizer: Any = None,
    preserve_sparsity: bool = False,
    tolerance: float = 0.01,
) -> Any:
    """A quantization-aware copy of the tf_keras ``model``, fine-tuned, ready for ``convert``.

    ``fine_tune`` is ``(x, y)`` or a callable ``fine_tune(model, callbacks)`` as in
    :func:`prune`; it is required because the fake-quantization ranges of activations are
    learned while training (untrained, they stay at tfmot's defaults). The result converts with
    ``convert(model, "int8", representative_data)`` or ``"dynamic_int8"``.

    ``preserve_sparsity`` (for a model from :func:`prune`): tfmot's
    ``Default8BitPrunePreserveQuantizeScheme`` keeps the zeros of the kernels through
    training; the kernels' sparsity after training must be within ``tolerance`` of before, or
    :class:`OptimizationError` names both.
    """
    __tracebackhide__ = True
    _check_fraction("tolerance", tolerance)
    _check_training(epochs, batch_size)
    source = _require_tf_keras(model, "quantize_aware")
    data = _fine_tune_data(fine_tune, "quantize_aware")
    if fine_tune is None:
        raise OptimizationError(
            "quantize_aware needs fine_tune=(x, y) or a callable: quantization-aware training "
            "learns the activation ranges while training. For post-training quantization, "
            "convert the model with recipe 'int8' and representative_data instead"
        )
    with tfmot_session() as (tf_keras, tfmot):
        clone = _clone(source, tf_keras)
        quantization = tfmot.quantization.keras
        before = _kernel_sparsity(clone) if preserve_sparsity else None
        try:
            if preserve_sparsity:
                annotated = quantization.quantize_annotate_model(clone)
                trained = quantization.quantize_apply(
                    annotated, quantization.collab_opts.Default8BitPrunePreserveQuantizeScheme()
                )
            else:
                trained = quantization.quantize_model(clone)
        except (ValueError, RuntimeError) as exc:
            raise OptimizationError(
                f"tfmot cannot make {_describe(source)} quantization-aware: {exc}"
            ) from None
        _compile(trained, source, loss, optimizer, data, tf_keras)
        if data is not None:
            trained.fit(data[0], data[1], epochs=epochs, batch_size=batch_size, verbose=0)
        else:
            assert callable(fine_tune)
            fine_tune(trained, [])
        after = _kernel_sparsity(trained) if before is not None else None
    if before is not None and after is not None and abs(after - before) > tolerance:
        raise OptimizationError(
            f"quantization-aware training of {_describe(source)} changed the sparsity of its "
            f"kernels from {before:.4f} to {after:.4f} (tolerance {tolerance}) despite "
            f"preserve_sparsity=True"
        )
    return trained


def _kernel_sparsity(model: Any) -> float:
    """Zeros among the model's kernel weights (Dense, Conv, depthwise, recurrent kernels)."""
    import numpy as np

    zeros = elements = 0
    for weight in model.weights:
        name = weight.name.split(":")[0].rsplit("/", 1)[-1]
        if name.endswith("kernel"):
            values = np.asarray(weight.numpy())
            zeros += int(np.count_nonzero(values == 0))
            elements += int(values.size)
    return zeros / elements if elements else 0.0


# ---------------------------------------------------------------- cached pruning


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
    _require_tf_keras(model, "prune")
    key = None if cache is None else _prune_key(model, target_sparsity, fine_tune, options)
    if cache is None or key is None:
        if stats is not None:
            stats.misses += 1
        return prune(model, target_sparsity, fine_tune, **options)

    def create() -> tuple[bytes, dict[str, Any]]:
        pruned = prune(model, target_sparsity, fine_tune, **options)
        return _weights_bytes(pruned.get_weights()), {
            "kind": "pruned_weights", "target_sparsity": target_sparsity,
            "kernel_sparsity": _kernel_sparsity(pruned), "model": _describe(model),
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
    from .fingerprint import _fingerprint, _hash_arrays, _version
    from .sources import classify

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
    fingerprint = _fingerprint(classify(model))
    if fingerprint is None:
        return None
    header = {
        "format": 1, "kind": "pruned_weights", "model": fingerprint, "target": target,
        "options": described, "one_shot": fine_tune is None,
        "versions": {name: _version(name) for name in
                     ("tensorflow-model-optimization", "tensorflow", "tf-keras")},
    }
    digest = hashlib.sha256()
    try:
        digest.update(json.dumps(header, sort_keys=True, default=repr).encode())
    except (TypeError, ValueError):
        return None
    if fine_tune is not None:
        _hash_arrays(digest, _arrays(fine_tune))
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


# ---------------------------------------------------------------- shared plumbing


@contextmanager
def tfmot_session(import_tfmot: bool = True) -> Iterator[tuple[Any, Any]]:
    """``(tf_keras, tfmot)`` with ``tf.keras`` pinned and ``TF_USE_LEGACY_KERAS`` restored after.

    ``tf.keras`` (and ``tf.compat.v2.keras``) decide between Keras 2 and 3 once, on first
    touch, from the environment variable that importing tfmot sets: touching them first, under
    the user's own setting, keeps that choice.
    """
    before = os.environ.get(LEGACY_KERAS)
    try:
        from .conversion import _import_tensorflow

        tf = _import_tensorflow()
        for loader in (tf.keras, tf.compat.v2.keras):
            getattr(loader, "__version__", None)  # resolves the lazy loader now
        try:
            import tf_keras
        except ImportError:
            raise OptimizationError(
                "pruning and quantization-aware training need tf_keras: "
                "pip install 'pytest-tflite[optimize]'"
            ) from None
        tfmot: Any = None
        if import_tfmot:
            try:
                import tensorflow_model_optimization

                tfmot = tensorflow_model_optimization
            except ImportError:
                raise OptimizationError(
                    "pruning and quantization-aware training need tensorflow-model-optimization:"
                    " pip install 'pytest-tflite[optimize]'"
                ) from None
        yield tf_keras, tfmot
    finally:
        if before is None:
            os.environ.pop(LEGACY_KERAS, None)
        else:
            os.environ[LEGACY_KERAS] = before


def _require_tf_keras(model: Any, function: str) -> Any:
    from .sources import _keras_flavour

    flavour = _keras_flavour(model)
    if flavour == "tf_keras":
        return model
    if flavour == "keras":
        raise OptimizationError(
            f"{function}() needs a tf_keras (Keras 2) model, and {_describe(model)} is a Keras 3 "
            f"model: tensorflow-model-optimization refuses Keras 3. Build or load the model with "
            f"tf_keras: `import tf_keras as keras`, then keras.Sequential([...]) or "
            f"keras.models.load_model('model.h5'); when the layers match, a trained Keras 3 "
            f"model's weights carry over with tf_keras_model.set_weights(model.get_weights())"
        )
    raise OptimizationError(
        f"{function}() takes a tf_keras model (import tf_keras as keras), not a "
        f"{type(model).__name__}"
    )


def _clone(model: Any, tf_keras: Any) -> Any:
    """A copy with its own variables: tfmot's wrappers share weights with what they wrap."""
    try:
        clone = tf_keras.models.clone_model(model)
    except Exception as exc:
        raise OptimizationError(
            f"{_describe(model)} cannot be cloned ({exc}); tfmot needs a Sequential or "
            f"functional model (a subclassed model's layers are not reachable)"
        ) from None
    clone.set_weights(model.get_weights())
    return clone


def _compile(
    target: Any, source: Any, loss: Any, optimizer: Any, data: tuple[Any, Any] | None,
    tf_keras: Any,
) -> None:
    if loss is None:
        loss = getattr(source, "loss", None) or _default_loss(source, data, tf_keras)
    if optimizer is None:
        existing = getattr(source, "optimizer", None)
        # A fresh optimizer of the same configuration: the source's holds state for its own
        # variables.
        optimizer = (type(existing).from_config(existing.get_config()) if existing is not None
                     else tf_keras.optimizers.Adam(1e-3))
    target.compile(optimizer=optimizer, loss=loss)


def _default_loss(model: Any, data: tuple[Any, Any] | None, tf_keras: Any) -> Any:
    import numpy as np

    if data is None:
        raise OptimizationError(
            f"{_describe(model)} is not compiled and fine_tune is a callable: pass loss=... "
            f"(or compile the model) so the fine-tune knows what to minimise"
        )
    labels = np.asarray(_arrays(data[1])[0])
    class_ids = labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1)
    outputs = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    if np.issubdtype(labels.dtype, np.integer) and class_ids and outputs and outputs > 1:
        activation = getattr(model.layers[-1], "activation", None)
        softmax = getattr(activation, "__name__", "") == "softmax"
        return tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax)
    return tf_keras.losses.MeanSquaredError()


def _fine_tune_data(fine_tune: FineTune, function: str) -> tuple[Any, Any] | None:
    if fine_tune is None or callable(fine_tune):
        return None
    if isinstance(fine_tune, (tuple, list)) and len(fine_tune) == 2:
        x, y = fine_tune
        if _samples(x) != _samples(y):
            raise OptimizationError(
                f"{function}(fine_tune=(x, y)): x has {_samples(x)} samples and y {_samples(y)}"
            )
        if _samples(x) == 0:
            raise OptimizationError(f"{function}(fine_tune=(x, y)): no samples")
        return x, y
    raise OptimizationError(
        f"{function}(fine_tune=...) takes (x, y) arrays, a callable fine_tune(model, callbacks) "
        f"or None, not a {type(fine_tune).__name__}"
    )


def _samples(value: Any) -> int:
    """Samples in an array, or in the first array of a list or dict (one per model input)."""
    return len(_arrays(value)[0])


def _arrays(value: Any) -> list[Any]:
    """The arrays in (nested) lists, tuples and dicts (dicts in key order)."""
    if isinstance(value, dict):
        return [a for key in sorted(value) for a in _arrays(value[key])]
    if isinstance(value, (list, tuple)):
        return [a for item in value for a in _arrays(item)]
    return [value]


def _check_training(epochs: int, batch_size: int) -> None:
    if not isinstance(epochs, int) or epochs < 1:
        raise OptimizationError(f"epochs must be a whole number >= 1, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise OptimizationError(f"batch_size must be a whole number >= 1, got {batch_size!r}")


def _check_fraction(name: str, value: float, upper_open: bool = False) -> None:
    if not isinstance(value, (int, float)) or not 0 <= value <= 1 or (upper_open and value == 1):
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise OptimizationError(f"{name} must be a fraction in {bound}, got {value!r}")


def _describe(model: Any) -> str:
    return f"model {getattr(model, 'name', type(model).__name__)!r}"
