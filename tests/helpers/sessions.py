"""What inner pytest sessions (pytester) share."""

from __future__ import annotations

import textwrap

# A conftest for pytester projects: seeded models, so a rerun builds the same weights and can
# hit the conversion cache.
INNER_CONFTEST = textwrap.dedent(
    """
    import numpy as np
    import pytest

    def build_mlp(units=16, seed=0):
        import keras
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(units, activation="relu"),
                                 keras.layers.Dense(4)])

    @pytest.fixture(scope="session")
    def mlp():
        return build_mlp()

    @pytest.fixture(scope="session")
    def samples():
        return np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    """
)
