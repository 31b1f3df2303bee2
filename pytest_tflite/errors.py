"""The errors pytest-tflite raises on bad input: each one says what was wrong and what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'xnnpack'?)``, naming the nearest of ``choices`` to a misspelled
    ``word``, or "" when none is near: the hint an "unknown ..." message puts after the name."""
    near = difflib.get_close_matches(word, sorted(set(choices)), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


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


class LiteRTMissingError(TFLiteError):
    """The LiteRT runtime (``ai_edge_litert``) is missing or does not import: the environment is
    at fault, not the model, so no verdict is given."""

    PACKAGE = "ai_edge_litert"
    INSTALL = "pip install ai-edge-litert"

    @classmethod
    def because(cls, detail: str) -> LiteRTMissingError:
        """The message for ``detail`` (the ImportError in its own words). The message is the
        only argument, so ``type(exc)(str(exc))`` makes the same error again."""
        return cls(f"the LiteRT runtime (package {cls.PACKAGE}) cannot be imported: {detail}. "
                   f"This is the Python environment, not the model: install it with "
                   f"`{cls.INSTALL}` (or repair it: `{cls.INSTALL} --force-reinstall`)")

    @classmethod
    def caused(cls, exc: BaseException) -> LiteRTMissingError | None:
        """The environment error ``exc`` stands for, when it is LiteRT failing to import: its
        name, or a frame of the package in its traceback (a native library it could not load)."""
        if not isinstance(exc, ImportError):
            return None
        named = (exc.name or "").split(".")[0] == cls.PACKAGE
        frame = exc.__traceback__
        while frame is not None and not named:
            named = cls.PACKAGE in frame.tb_frame.f_code.co_filename.replace("\\", "/").split("/")
            frame = frame.tb_next
        return cls.because(f"{type(exc).__name__}: {exc}") if named else None


class CostUnavailable(TFLiteError):
    """Instructions cannot be counted here: valgrind is not installed, or the delegate runs where
    valgrind cannot see (an accelerator, an external library, a runner). The machine, not the
    model: a cost key skips with this reason (``--tflite-require-delegates`` fails it)."""

    PACKAGE = "valgrind"
    INSTALL = "apt-get install valgrind"
    MISSING = "valgrind is not installed"  # how ``missing`` begins, for ``is_missing``

    @classmethod
    def missing(cls) -> CostUnavailable:
        return cls(f"{cls.MISSING} (instructions are counted under valgrind's callgrind): install "
                   f"the {cls.PACKAGE} package, `sudo {cls.INSTALL}` on Debian or Ubuntu")

    @classmethod
    def is_missing(cls, reason: str) -> bool:
        """Whether a recorded ``cost_error`` says valgrind is missing (a skip), not that a count
        failed (a crash, a missing symbol: an error)."""
        return reason.startswith(cls.MISSING)


class BudgetExceeded(AssertionError):
    """One or more budgets failed; the message holds the table of checks."""


class DelegateSkippedWarning(UserWarning):
    """A budget named a delegate this machine lacks; its checks were skipped, not passed."""


class UnusedBudgetWarning(UserWarning):
    """A budget file in the budget directory checks nothing in this run: it has no ``source``
    key and no collected test names it in a ``tflite_budget`` marker."""


class OutputOrderWarning(UserWarning):
    """A model without a SignatureDef: its outputs were paired by tensor order, not by name."""


class CacheEntryWarning(UserWarning):
    """A cache entry was incomplete or corrupt (a run killed while writing it): it was redone."""


class BaselineMismatchWarning(UserWarning):
    """The baseline was measured in another environment (libraries, CPU, threads)."""
