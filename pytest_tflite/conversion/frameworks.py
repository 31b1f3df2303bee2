"""TensorFlow and Keras, the one home for importing them and telling their models apart.

TensorFlow (3-5 s, ~600 MB) is imported only by ``import_tensorflow``, when a conversion or a
Keras/SavedModel reference actually needs it; Keras only by ``import_keras``. No other module of
the package imports them (``tests/unit/test_rooms.py`` holds it to that).
"""

from __future__ import annotations

import os
from pathlib import Path
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


def load_keras_model(keras: Any, path: Path, custom_objects: Any, *, safe: bool) -> Any:
    """``keras.models.load_model`` in Keras's safe mode unless ``safe`` is False: a model file
    that would run Python code it carries (a ``Lambda`` layer's bytecode) raises ValueError
    naming ``safe_mode`` instead. Keras 3 takes ``safe_mode=`` for every format; tf_keras only
    for ``.keras`` files, and its legacy ``.h5`` loader reads the flag from a scope, off unless
    set, so the scope is set for both."""
    import importlib

    if str(getattr(keras, "__version__", "3")).split(".")[0] >= "3":
        return keras.models.load_model(path, custom_objects=custom_objects, compile=False,
                                       safe_mode=safe)
    try:
        scope = importlib.import_module(f"{keras.__name__}.src.saving.serialization_lib")
    except ImportError:
        scope = None
    if scope is None or not hasattr(scope, "SafeModeScope"):
        if not safe:
            return keras.models.load_model(path, custom_objects=custom_objects, compile=False)
        raise ConversionError(
            f"{path}: this Keras ({keras.__name__} {getattr(keras, '__version__', '?')}) has no "
            f"safe mode, so loading the file could run code it carries: install tf_keras >= 2.13 "
            f"or Keras 3, or set unsafe_source = true in the budget file after reviewing it")
    extra = {"safe_mode": safe} if path.suffix.lower() == ".keras" else {}
    with scope.SafeModeScope(safe):
        return keras.models.load_model(path, custom_objects=custom_objects, compile=False,
                                       **extra)


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
