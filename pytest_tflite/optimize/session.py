"""The tfmot session: tensorflow-model-optimization on tf_keras (Keras 2) models.

tfmot 0.8 works on tf_keras models only. Importing it sets ``TF_USE_LEGACY_KERAS=1`` in
``os.environ``, and ``tf.keras`` resolves to whichever Keras that variable names the first time
it is touched, for the rest of the process. So ``tfmot_session`` pins ``tf.keras`` to the user's
own choice before tfmot is imported and puts the variable back as it was when it returns: the
user's Keras 3 models (and their subprocesses) see no difference. Also here: what pruning and
QAT share (cloning, compiling with a sensible loss, checking arguments and data).

Nothing heavy is imported with this module: TensorFlow, tf_keras and tfmot load when a
function runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import OptimizationError

LEGACY_KERAS = "TF_USE_LEGACY_KERAS"
DEFAULT_BATCH_SIZE = 32

FineTune = tuple[Any, Any] | Callable[[Any, list[Any]], Any] | None


@contextmanager
def tfmot_session(import_tfmot: bool = True) -> Iterator[tuple[Any, Any]]:
    """``(tf_keras, tfmot)`` with ``tf.keras`` pinned and ``TF_USE_LEGACY_KERAS`` restored after.

    ``tf.keras`` (and ``tf.compat.v2.keras``) decide between Keras 2 and 3 once, on first
    touch, from the environment variable that importing tfmot sets: touching them first, under
    the user's own setting, keeps that choice.
    """
    before = os.environ.get(LEGACY_KERAS)
    try:
        from ..conversion.frameworks import import_keras, import_tensorflow

        tf = import_tensorflow()
        for loader in (tf.keras, tf.compat.v2.keras):
            getattr(loader, "__version__", None)  # resolves the lazy loader now
        try:
            tf_keras = import_keras(legacy=True)
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


def require_tf_keras(model: Any, function: str) -> Any:
    from ..conversion.frameworks import keras_flavour

    flavour = keras_flavour(model)
    if flavour == "tf_keras":
        return model
    if flavour == "keras":
        raise OptimizationError(
            f"{function}() needs a tf_keras (Keras 2) model, and {describe(model)} is a Keras 3 "
            f"model: tensorflow-model-optimization refuses Keras 3. Build or load the model with "
            f"tf_keras: `import tf_keras as keras`, then keras.Sequential([...]) or "
            f"keras.models.load_model('model.h5'); when the layers match, a trained Keras 3 "
            f"model's weights carry over with tf_keras_model.set_weights(model.get_weights())"
        )
    raise OptimizationError(
        f"{function}() takes a tf_keras model (import tf_keras as keras), not a "
        f"{type(model).__name__}"
    )


def clone_model(model: Any, tf_keras: Any) -> Any:
    """A copy with its own variables: tfmot's wrappers share weights with what they wrap."""
    try:
        clone = tf_keras.models.clone_model(model)
    except Exception as exc:
        raise OptimizationError(
            f"{describe(model)} cannot be cloned ({exc}); tfmot needs a Sequential or "
            f"functional model (a subclassed model's layers are not reachable)"
        ) from None
    clone.set_weights(model.get_weights())
    return clone


def compile_like(
    target: Any, source: Any, loss: Any, optimizer: Any, data: tuple[Any, Any] | None,
    tf_keras: Any,
) -> None:
    if loss is None:
        loss = getattr(source, "loss", None) or default_loss(source, data, tf_keras)
    if optimizer is None:
        existing = getattr(source, "optimizer", None)
        # A fresh optimizer of the same configuration: the source's holds state for its own
        # variables.
        optimizer = (type(existing).from_config(existing.get_config()) if existing is not None
                     else tf_keras.optimizers.Adam(1e-3))
    target.compile(optimizer=optimizer, loss=loss)


def default_loss(model: Any, data: tuple[Any, Any] | None, tf_keras: Any) -> Any:
    import numpy as np

    if data is None:
        raise OptimizationError(
            f"{describe(model)} is not compiled and fine_tune is a callable: pass loss=... "
            f"(or compile the model) so the fine-tune knows what to minimise"
        )
    labels = np.asarray(array_list(data[1])[0])
    class_ids = labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1)
    outputs = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    if np.issubdtype(labels.dtype, np.integer) and class_ids and outputs and outputs > 1:
        activation = getattr(model.layers[-1], "activation", None)
        softmax = getattr(activation, "__name__", "") == "softmax"
        return tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax)
    return tf_keras.losses.MeanSquaredError()


def fine_tune_data(fine_tune: FineTune, function: str) -> tuple[Any, Any] | None:
    if fine_tune is None or callable(fine_tune):
        return None
    if isinstance(fine_tune, (tuple, list)) and len(fine_tune) == 2:
        x, y = fine_tune
        if sample_count(x) != sample_count(y):
            raise OptimizationError(
                f"{function}(fine_tune=(x, y)): x has {sample_count(x)} samples and y {sample_count(y)}"
            )
        if sample_count(x) == 0:
            raise OptimizationError(f"{function}(fine_tune=(x, y)): no samples")
        return x, y
    raise OptimizationError(
        f"{function}(fine_tune=...) takes (x, y) arrays, a callable fine_tune(model, callbacks) "
        f"or None, not a {type(fine_tune).__name__}"
    )


def sample_count(value: Any) -> int:
    """Samples in an array, or in the first array of a list or dict (one per model input)."""
    return len(array_list(value)[0])


def array_list(value: Any) -> list[Any]:
    """The arrays in (nested) lists, tuples and dicts (dicts in key order)."""
    if isinstance(value, dict):
        return [a for key in sorted(value) for a in array_list(value[key])]
    if isinstance(value, (list, tuple)):
        return [a for item in value for a in array_list(item)]
    return [value]


def check_training(epochs: int, batch_size: int) -> None:
    if not isinstance(epochs, int) or epochs < 1:
        raise OptimizationError(f"epochs must be a whole number >= 1, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise OptimizationError(f"batch_size must be a whole number >= 1, got {batch_size!r}")


def check_fraction(name: str, value: float, upper_open: bool = False) -> None:
    if not isinstance(value, (int, float)) or not 0 <= value <= 1 or (upper_open and value == 1):
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise OptimizationError(f"{name} must be a fraction in {bound}, got {value!r}")


def describe(model: Any) -> str:
    return f"model {getattr(model, 'name', type(model).__name__)!r}"


def kernel_sparsity(model: Any) -> float:
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
