"""TensorFlow and Keras, the one home for importing them and telling their models apart.

TensorFlow (3-5 s, ~600 MB) is imported only by ``import_tensorflow``, when a conversion or a
Keras/SavedModel reference actually needs it; Keras only by ``import_keras``. No other module of
the package imports them (``tests/unit/test_rooms.py`` holds it to that).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConversionError


def import_tensorflow() -> Any:
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


def import_keras(*, legacy: bool) -> Any:
    """``tf_keras`` (Keras 2) when ``legacy``, else ``keras`` (Keras 3, or whichever ``keras``
    is installed). Raises ImportError when it is not installed: each caller says what to do."""
    if legacy:
        import tf_keras

        return tf_keras
    import keras

    return keras


def tf_keras_pseudo_output_names(outputs: Any) -> list[str]:
    """The output names tf_keras's tracing gives a subclassed model, which declares none."""
    from tf_keras.src.engine import compile_utils

    return list(compile_utils.create_pseudo_output_names(outputs))


def flatten_nested(structure: Any) -> list[Any]:
    """``tf.nest.flatten``: the order tf_keras lists a model's outputs in (a dict by sorted key).
    Only called with a tf_keras model's outputs in hand, so TensorFlow is already loaded."""
    import tensorflow as tf

    return list(tf.nest.flatten(structure))


def keras_flavour(value: Any) -> str | None:
    """"tf_keras" (Keras 2) or "keras" (Keras 3) for a Keras model, else None."""
    for klass in type(value).__mro__:
        module = klass.__module__ or ""
        if klass.__name__ in ("Model", "Functional", "Sequential"):
            if module.startswith("tf_keras") or module.startswith("keras.src.engine"):
                return "tf_keras"
            if module.startswith("keras"):
                return "keras"
    return None
