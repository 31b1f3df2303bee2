"""Shared fixtures: small real models built in the tests (no model binaries in the repo)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.sessions import INNER_CONFTEST

# Fixed-seed property tests draw a sample in the suite; the full budget runs from
# bench/hardening_hypothesis.py (thousands per property), or as the suite's own tests with
# `pytest tests/unit/budget/test_budget_hypothesis.py -n 0 --hypothesis-profile=full`.
# (The pytest-8.0 floor run in .ci/run installs no hypothesis.)
try:
    from hypothesis import settings
except ImportError:  # pragma: no cover - the floor run only
    pass
else:
    settings.register_profile("suite", max_examples=30)
    settings.register_profile("full", max_examples=100)
    settings.load_profile("suite")

# Inner pytester runs start their own interpreters; keep TensorFlow's start-up banner out of the
# output the tests read.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def no_job_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner pytester runs must not append to the real GitHub job summary of a CI run."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(scope="session", autouse=True)
def preloaded_native_modules() -> None:
    """Import TensorFlow, Keras and LiteRT once, before any inline pytester run.

    pytester's inline runs drop the modules they imported when they end; TensorFlow's native
    extensions abort the process if imported a second time, so they must predate the runs.
    """
    import ai_edge_litert.interpreter  # noqa: F401
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
    import tf_keras  # noqa: F401


@pytest.fixture
def project(pytester: pytest.Pytester) -> Callable[..., pytest.Pytester]:
    """A pytester project with the inner conftest and the given budget files and tests."""

    def make(budgets: dict[str, str] | None = None, **tests: str) -> pytest.Pytester:
        pytester.makeconftest(INNER_CONFTEST)
        for name, text in (budgets or {}).items():
            path = pytester.path / "budgets" / f"{name}.toml"
            path.parent.mkdir(exist_ok=True)
            path.write_text(textwrap.dedent(text))
        pytester.makepyfile(**{k: textwrap.dedent(v) for k, v in tests.items()})
        return pytester

    return make


@pytest.fixture(scope="session")
def cnn_samples() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(64, 12, 12, 1)).astype("float32")


@pytest.fixture
def isolated_cache(tmp_path: Path) -> Any:
    from pytest_tflite.conversion.cache.storage import CacheStats, ConversionCache

    return ConversionCache(tmp_path / "cache"), CacheStats()
