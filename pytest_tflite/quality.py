"""A variant's quality on the test's data: accuracy (with labels), fidelity (with a float
reference), the same per named delegate, and the quantization error per op
(``--tflite-node-data``). What ``engine.run`` asks when a test gives ``eval_data``; no pytest,
and TensorFlow only when the reference is a Keras or SavedModel model being run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budget import Variant
from .errors import EvaluationError, TFLiteError
from .model import TFLiteModel
from .nodes import LayerError
from .results import Accuracy, CrossFidelity, EvaluationRun, Fidelity, Measurement


@dataclass
class Evaluation:
    """What a test gives to judge quality: data, the float reference, the metric, the output."""

    data: Any = None
    reference: Any = None
    metric: Callable[[Any, Any], float] | None = None
    output: str | int | None = None


def evaluate(model: TFLiteModel, variant: Variant, measurement: Measurement,
             evaluation: Evaluation, *, timeout: float, lock_file: Path | None = None,
             node_data: bool = False) -> None:
    """Accuracy (with labels) and fidelity (with a reference), from one pass over the data; and
    the same per delegate where ``accuracy.delegates``, ``fidelity.delegates`` or
    ``fidelity.cross`` name them, one run of the candidate under each."""
    from .conversion.reference import run_reference
    from .measure import accuracy, metrics
    from .measure.lock import shared, wait_limit

    prepared = accuracy.eval_data(evaluation.data)
    with shared(lock_file, wait_limit(timeout)):
        runs = {name: accuracy.run_candidate_under(model.path, prepared, evaluation.output, name,
                                                   timeout=timeout)
                for name in evaluation_delegates(variant)}
        default = runs.get("xnnpack")
        if default is not None and default.status == "ok":  # what the default run would give
            candidate, batched = default.prediction, default.batched
        else:
            candidate, batched = accuracy.run_candidate(model.path, prepared, evaluation.output,
                                                        timeout=timeout)
        expected = (run_reference(evaluation.reference, prepared, evaluation.output,
                                  timeout=timeout)
                    if evaluation.reference is not None else None)
    budget = variant.accuracy
    if budget is not None:
        name, higher = budget.metric, budget.higher_is_better
    elif callable(evaluation.metric):
        raise EvaluationError(
            "check(metric=...) was given but the variant has no accuracy budget: add "
            "accuracy = { metric = \"custom\", direction = \"higher\" | \"lower\", ... }")
    else:
        name, higher = "top1", True

    def scored(prediction: Any, batched: bool) -> Accuracy:
        found = metrics.score(name, prepared.labels, prediction, evaluation.metric)
        base = (metrics.score(name, prepared.labels, expected, evaluation.metric)
                if expected is not None else None)
        return Accuracy(metric=name, candidate=found, reference=base,
                        drop=metrics.drop(name, found, base, higher) if base is not None else None,
                        samples=prepared.samples, batched=batched)

    if prepared.labels is not None:
        measurement.accuracy = scored(candidate, batched)
    if expected is not None:
        measurement.fidelity = _fidelity(metrics.fidelity(candidate, expected), len(candidate))
    measurement.evaluation_runs = {
        delegate: EvaluationRun(run.status, run.reason, run.delegated_nodes, run.total_nodes,
                                run.batched if run.status == "ok" else None)
        for delegate, run in runs.items()}
    ran = {delegate: run for delegate, run in runs.items() if run.status == "ok"}
    if budget is not None and prepared.labels is not None:
        measurement.accuracy_by_delegate = {delegate: scored(ran[delegate].prediction,
                                                             ran[delegate].batched)
                                            for delegate in budget.delegates or [] if delegate in ran}
    fidelity = variant.fidelity
    if fidelity is not None and expected is not None:
        measurement.fidelity_by_delegate = {
            delegate: _fidelity(metrics.fidelity(ran[delegate].prediction, expected),
                                len(ran[delegate].prediction))
            for delegate in fidelity.delegates or [] if delegate in ran}
    cross = fidelity.cross if fidelity is not None else None
    if cross is not None and cross.delegate in ran and cross.against in ran:
        measurement.fidelity_cross = CrossFidelity(
            cross.delegate, cross.against, samples=prepared.samples,
            **metrics.fidelity(ran[cross.delegate].prediction, ran[cross.against].prediction))
    if node_data:
        _per_op_error(model, evaluation, measurement, timeout)


def _per_op_error(model: TFLiteModel, evaluation: Evaluation, measurement: Measurement,
                  timeout: float) -> None:
    """``layers``: each quantized op's error against the float reference, for the overlays;
    or ``layers_note`` saying why there is none. It explains and never judges: a failure to
    compute it is a note, not an error."""
    if evaluation.reference is None:
        measurement.layers_note = ("no float reference: pass reference= to check() for the "
                                   "quantization error per op")
        return
    try:
        measurement.layers = layer_errors(model, evaluation.reference, evaluation.data, timeout)
    except TFLiteError as exc:
        measurement.layers_note = f"quantization error per op not measured: {exc}"
        return
    if not measurement.layers:
        measurement.layers_note = ("no quantized activation of this variant matched a float "
                                   "tensor of the reference (a float variant, or renamed "
                                   "tensors)")


def layer_errors(model: TFLiteModel, reference: Any, data: Any,
                 timeout: float) -> list[LayerError]:
    """Per operator of the candidate whose quantized output was compared with the float
    reference's, its error, the most added first (measure/layers.py)."""
    from .conversion.reference import float_reference_model
    from .measure import accuracy
    from .measure.layers import layer_errors as per_op

    prepared = accuracy.eval_data(data)
    float_model = float_reference_model(reference)
    return per_op(model, float_model.path, prepared.inputs, prepared.names, timeout=timeout)


def _fidelity(figures: Any, samples: int) -> Fidelity:
    """Fidelity with the counts behind its top-1 agreement: reports say "393 of 397 samples"."""
    agreement = figures["top1_agreement"]
    agreeing = round(agreement * samples) if agreement is not None else None
    return Fidelity(**figures, samples=samples, top1_agreeing=agreeing)


def evaluation_delegates(variant: Variant) -> list[str]:
    """The delegates the variant's accuracy and fidelity budgets are evaluated under, in order;
    none for the default run alone."""
    named: list[str] = [*(variant.accuracy.delegates or [] if variant.accuracy else [])]
    if variant.fidelity is not None:
        named += variant.fidelity.delegates or []
        if variant.fidelity.cross is not None:
            named += [variant.fidelity.cross.delegate, variant.fidelity.cross.against]
    return list(dict.fromkeys(named))
