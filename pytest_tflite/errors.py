"""The errors pytest-tflite raises on bad input: each one says what was wrong and what to do."""

from __future__ import annotations


class TFLiteError(Exception):
    """Base class: a problem with the user's input, reported without an internal traceback."""


class BudgetFileError(TFLiteError):
    """A budget file is missing, is not valid TOML, or does not match the schema."""


class ModelError(TFLiteError):
    """A model source cannot be read: missing path, not a model, corrupt bytes."""


class ConversionError(TFLiteError):
    """The converter refused the model or its arguments (e.g. int8 without representative data)."""


class OptimizationError(ConversionError):
    """Pruning or quantization-aware training was refused or missed its target."""


class SanityError(ConversionError):
    """A converted model disagrees with its source: the converter miscompiled it."""


class EvaluationError(TFLiteError):
    """Evaluation data, labels, reference or metric cannot be used as given."""


class BudgetExceeded(AssertionError):
    """One or more budgets failed; the message holds the table of checks."""


class DelegateSkippedWarning(UserWarning):
    """A budget named a delegate this machine lacks; its checks were skipped, not passed."""


class OutputOrderWarning(UserWarning):
    """A model without a SignatureDef: its outputs were paired by tensor order, not by name."""


class CacheEntryWarning(UserWarning):
    """A cache entry was incomplete or corrupt (a run killed while writing it): it was redone."""


class BaselineMismatchWarning(UserWarning):
    """The baseline was measured in another environment (libraries, CPU, threads)."""
