"""An app team's fixtures: the digits data set (shipped inside scikit-learn) and a small CNN."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass
class Digits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@pytest.fixture(scope="session")
def digits() -> Digits:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]  # 8x8 grey images in [0, 1]
    y = data.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return Digits(x[:1400], y[:1400], x[1400:], y[1400:])


@pytest.fixture(scope="session")
def trained_cnn(digits: Digits):
    import keras

    keras.utils.set_random_seed(0)  # same weights every run, so conversions hit the cache
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=8, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def trained_cnn_tf_keras(digits: Digits):
    """The same CNN built with tf-keras (Keras 2): what tensorflow-model-optimization prunes."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([
        tf_keras.Input((8, 8, 1)),
        tf_keras.layers.Conv2D(16, 3, activation="relu", name="conv"),
        tf_keras.layers.Conv2D(32, 3, activation="relu", name="conv_2"),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dense(64, activation="relu", name="hidden"),
        tf_keras.layers.Dense(10, name="logits"),
    ])
    model.compile("adam", tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=8, batch_size=64, verbose=0)
    return model
