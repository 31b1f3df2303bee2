"""TensorFlow and Keras, the one home for importing them and telling their models apart.

TensorFlow (3-5 s, ~600 MB) is imported only by ``import_tensorflow``, when a conversion or a
Keras/SavedModel reference actually needs it.
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
