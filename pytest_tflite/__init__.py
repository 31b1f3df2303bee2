"""pytest-tflite: budgets for TensorFlow Lite models, checked in pytest.

Public API, loaded lazily so that ``import pytest_tflite`` stays free of numpy, pydantic,
TensorFlow and LiteRT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .budget import Budget, load
    from .conversion.recipes import convert
    from .errors import (
        BudgetExceeded,
        BudgetFileError,
        ConversionError,
        ModelError,
        OptimizationError,
        SanityError,
        TFLiteError,
    )
    from .model import TFLiteModel
    from .optimize.pruning import prune
    from .optimize.qat import quantize_aware

__all__ = [
    "Budget",
    "BudgetExceeded",
    "BudgetFileError",
    "ConversionError",
    "ModelError",
    "OptimizationError",
    "SanityError",
    "TFLiteError",
    "TFLiteModel",
    "convert",
    "load",
    "prune",
    "quantize_aware",
]

_HOMES = {
    "Budget": "budget", "load": "budget", "convert": "conversion.recipes", "TFLiteModel": "model",
    "BudgetExceeded": "errors", "BudgetFileError": "errors", "ConversionError": "errors",
    "ModelError": "errors", "SanityError": "errors", "TFLiteError": "errors",
    "OptimizationError": "errors", "prune": "optimize.pruning", "quantize_aware": "optimize.qat",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module 'pytest_tflite' has no attribute {name!r}")
