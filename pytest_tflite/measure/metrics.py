"""Metrics: accuracy of one model's outputs against labels, and fidelity of a candidate's
outputs against its reference's. Plain floats out; a NaN is an error, never a value that
compares as passing. numpy is imported inside the functions. Which metrics are errors (lower is
better) is the key registry's ``ERROR_METRICS``, which the budget file reads too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypedDict

from ..errors import EvaluationError

SNR_CAP_DB = 300.0  # identical outputs: a finite stand-in for infinity (JSON has none)


def score(metric: str, labels: Any, prediction: Any, custom: Callable[..., Any] | None = None) -> float:

    if labels is None:
        raise EvaluationError("an accuracy budget needs labels: pass eval_data=(x, y)")
    if metric == "custom":
        if custom is None:
            raise EvaluationError("the budget's metric is 'custom': pass metric=callable "
                                  "(y_true, y_pred) -> float to check()")
        try:
            value = float(custom(labels, prediction))
        except Exception as exc:
            raise EvaluationError(f"the metric callable {getattr(custom, '__name__', custom)!r} "
                                  f"raised {type(exc).__name__}: {exc}") from None
    elif metric.startswith("top"):
        value = _top_k(int(metric[3:]), labels, prediction)
    else:
        value = _error_metric(metric, labels, prediction)
    if not math.isfinite(value):
        raise EvaluationError(f"metric {metric} came out {value}: it cannot be compared")
    return value


def _top_k(k: int, labels: Any, prediction: Any) -> float:
    import numpy as np

    scores = prediction.reshape(len(prediction), -1)
    classes = scores.shape[1]
    if labels.ndim == 2 and labels.shape[1] == classes:
        labels = labels.argmax(axis=1)
    labels = labels.reshape(len(labels))
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(labels == np.round(labels)):
            raise EvaluationError(f"top{k} needs class indices (or one-hot labels) as labels; "
                                  f"got {labels.dtype} values")
        labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= classes:
        raise EvaluationError(f"labels out of range: they run {labels.min()}..{labels.max()}, "
                              f"the model outputs {classes} classes (0..{classes - 1})")
    if k > classes:
        raise EvaluationError(f"top{k} asked of a model with {classes} classes")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # ties: the lower class wins
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def _error_metric(metric: str, labels: Any, prediction: Any) -> float:
    import numpy as np

    if labels.size != prediction.size:
        raise EvaluationError(f"{metric}: labels have {labels.shape}, predictions "
                              f"{prediction.shape}; they must hold the same number of values")
    difference = prediction.reshape(-1).astype(np.float64) - labels.reshape(-1).astype(np.float64)
    if metric == "mae":
        return float(np.mean(np.abs(difference)))
    mse = float(np.mean(difference**2))
    return mse if metric == "mse" else math.sqrt(mse)


def drop(metric: str, candidate: float, reference: float, higher_is_better: bool) -> float:
    """How much worse the candidate is than the reference (positive = worse)."""
    return reference - candidate if higher_is_better else candidate - reference


class FidelityFigures(TypedDict):
    top1_agreement: float | None  # None for a single-value output: no argmax to agree on
    cosine: float
    max_abs_error: float
    snr_db: float


def fidelity(candidate: Any, reference: Any) -> FidelityFigures:
    """Candidate vs reference on the same inputs: no labels needed."""
    import numpy as np

    if candidate.shape != reference.shape:
        raise EvaluationError(f"candidate outputs {candidate.shape}, the reference "
                              f"{reference.shape}: they are not the same model's outputs")
    got = candidate.astype(np.float64).reshape(len(candidate), -1)
    want = reference.astype(np.float64).reshape(len(reference), -1)
    agreement = (float(np.mean(got.argmax(axis=1) == want.argmax(axis=1)))
                 if got.shape[1] > 1 else None)
    norms = float(np.linalg.norm(got) * np.linalg.norm(want))
    cosine = float(np.dot(got.ravel(), want.ravel()) / norms) if norms else float(
        np.array_equal(got, want))
    noise = float(np.sum((got - want) ** 2))
    signal = float(np.sum(want**2))
    snr = SNR_CAP_DB if noise == 0 else (10 * math.log10(signal / noise) if signal else -SNR_CAP_DB)
    return {
        "top1_agreement": agreement,
        "cosine": cosine,
        "max_abs_error": float(np.max(np.abs(got - want))),
        "snr_db": min(snr, SNR_CAP_DB),
    }
