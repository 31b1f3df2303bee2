"""Pruning (tensorflow-model-optimization) of tf_keras models.

Nothing heavy is imported with this module: TensorFlow, tf_keras and tfmot load when a
function runs, inside ``session.tfmot_session``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import OptimizationError
from .session import (
    DEFAULT_BATCH_SIZE,
    FineTune,
    check_fraction,
    check_training,
    clone_model,
    compile_like,
    describe,
    fine_tune_data,
    require_tf_keras,
    sample_count,
    tfmot_session,
)

DEFAULT_EPOCHS = 2
# The schedule reaches its target after this share of the fine-tune; the rest trains with the
# final mask fixed, which recovers most of the accuracy the last mask update costs.
RAMP_FRACTION = 0.8
MASK_UPDATES = 10  # mask updates along the ramp, when the caller gives no frequency


# ---------------------------------------------------------------- pruning


def prune(
    model: Any,
    target_sparsity: float,
    fine_tune: FineTune = None,
    *,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    begin_step: int = 0,
    end_step: int | None = None,
    frequency: int | None = None,
    loss: Any = None,
    optimizer: Any = None,
    verify: bool = True,
    tolerance: float = 0.01,
) -> Any:
    """A copy of the tf_keras ``model`` whose prunable weights (kernels) are ``target_sparsity`` zeros.

    ``fine_tune``:

    - ``(x, y)``: fine-tune ``epochs`` epochs of ``batch_size``, with a ``PolynomialDecay``
      schedule from ``begin_step`` that reaches the target at ``end_step`` (default: 80% of the
      fine-tune's steps) with a mask update every ``frequency`` steps (default: ten updates on
      the ramp). tfmot's own default of one update per 100 steps would leave a short fine-tune
      at sparsity 0.
    - a callable ``fine_tune(model, callbacks)``: it trains the compiled, wrapped model itself
      and must pass ``callbacks`` to ``fit``. Without ``end_step`` the schedule is
      ``ConstantSparsity`` with a mask update every ``frequency`` steps (default 1), so any
      length of training reaches the target.
    - ``None``: one shot, no training: tfmot's magnitude mask (``ConstantSparsity`` at step 0,
      the same top-k-by-magnitude rule as in training) is computed once and applied.

    The model is compiled with ``loss`` and ``optimizer``, else the source model's (a fresh
    optimizer of the same configuration), else Adam with a loss read from ``y`` (sparse
    categorical cross-entropy for integer labels, mean squared error otherwise). The source
    model is never modified. With ``verify``, the sparsity reached on the prunable weights must
    be within ``tolerance`` of the target, or :class:`OptimizationError` names both.
    """
    __tracebackhide__ = True
    check_fraction("target_sparsity", target_sparsity, upper_open=True)
    check_fraction("tolerance", tolerance)
    check_training(epochs, batch_size)
    source = require_tf_keras(model, "prune")
    data = fine_tune_data(fine_tune, "prune")
    with tfmot_session() as (tf_keras, tfmot):
        clone = clone_model(source, tf_keras)
        sparsity = tfmot.sparsity.keras
        try:
            if fine_tune is None:
                schedule = sparsity.ConstantSparsity(target_sparsity, begin_step=0, frequency=1)
            elif data is not None or end_step is not None:
                steps = epochs * -(-sample_count(data[0]) // batch_size) if data is not None else None
                end, every = _polynomial_plan(steps, begin_step, end_step, frequency)
                schedule = sparsity.PolynomialDecay(0.0, target_sparsity, begin_step=begin_step,
                                                    end_step=end, frequency=every)
            else:
                schedule = sparsity.ConstantSparsity(target_sparsity, begin_step=begin_step,
                                                     frequency=frequency or 1)
            wrapped = sparsity.prune_low_magnitude(clone, pruning_schedule=schedule)
        except ValueError as exc:
            raise OptimizationError(f"tfmot cannot prune {describe(source)}: {exc}") from None
        wrappers = _pruning_wrappers(wrapped)
        if not wrappers:
            raise OptimizationError(f"{describe(source)} has no layer tfmot can prune "
                                    f"(Dense, Conv, ...): nothing to make sparse")
        if fine_tune is None:
            _mask_once(wrappers)
        else:
            compile_like(wrapped, source, loss, optimizer, data, tf_keras)
            callbacks = [sparsity.UpdatePruningStep()]
            if data is not None:
                wrapped.fit(data[0], data[1], epochs=epochs, batch_size=batch_size,
                            callbacks=callbacks, verbose=0)
            else:
                assert callable(fine_tune)
                _run_callable(fine_tune, wrapped, callbacks)
        for wrapper in wrappers:
            # Adam's momentum moves masked weights after the last update: mask them once more.
            wrapper.pruning_obj.weight_mask_op()
        layers = _wrapper_sparsity(wrappers)
        stripped = sparsity.strip_pruning(wrapped)
    if verify:
        reached = _overall(layers)
        if abs(reached - target_sparsity) > tolerance:
            raise OptimizationError(
                f"pruning {describe(source)} reached sparsity {reached:.4f} on its prunable "
                f"weights, not the target {target_sparsity:.4f} (tolerance {tolerance}); per "
                f"layer: {_layer_table(layers)}. "
                + _schedule_hint(fine_tune, schedule)
            )
    return stripped


def _run_callable(fine_tune: Callable[[Any, list[Any]], Any], model: Any, callbacks: list[Any]) -> None:
    try:
        fine_tune(model, callbacks)
    except Exception as exc:
        # tfmot asserts inside the graph that its step counter was started by the callback.
        if "UpdatePruningStep" not in str(exc):
            raise
        raise OptimizationError(
            "the fine_tune callable trained without the callbacks it was given: pass them on, "
            "model.fit(..., callbacks=callbacks), so tfmot's UpdatePruningStep advances the "
            "pruning schedule"
        ) from None


def _polynomial_plan(
    steps: int | None, begin_step: int, end_step: int | None, frequency: int | None
) -> tuple[int, int]:
    """(end_step, frequency) such that a mask update falls exactly on ``end_step``.

    tfmot updates the mask when ``(step - begin_step) % frequency == 0`` and
    ``begin_step <= step <= end_step``; the sparsity reaches its target only at ``end_step``.
    """
    if begin_step < 0:
        raise OptimizationError(f"begin_step must be >= 0, got {begin_step}")
    if frequency is not None and frequency < 1:
        raise OptimizationError(f"frequency must be >= 1 step, got {frequency}")
    if steps is not None and begin_step >= steps:
        raise OptimizationError(
            f"begin_step={begin_step} is at or past the fine-tune's last step ({steps} steps: "
            f"epochs x ceil(samples / batch_size)): pruning would never start"
        )
    if end_step is None:
        assert steps is not None
        ramp = max(1, int((steps - begin_step) * RAMP_FRACTION))
        every = frequency or max(1, ramp // MASK_UPDATES)
        if every > steps - begin_step:
            raise OptimizationError(
                f"frequency={every} is longer than the fine-tune after begin_step "
                f"({steps - begin_step} steps): the mask would never be updated"
            )
        span = max(every, ramp // every * every)
        return begin_step + span, every
    span = end_step - begin_step
    if span <= 0:
        raise OptimizationError(f"end_step={end_step} must be after begin_step={begin_step}")
    if steps is not None and end_step > steps:
        raise OptimizationError(
            f"end_step={end_step} is past the fine-tune's last step ({steps} steps: epochs x "
            f"ceil(samples / batch_size)): the target sparsity would never be reached"
        )
    if frequency is None:
        limit = max(1, span // MASK_UPDATES)
        frequency = max(d for d in range(1, limit + 1) if span % d == 0)
    if span % frequency:
        raise OptimizationError(
            f"end_step - begin_step ({span}) must be a multiple of frequency ({frequency}): "
            f"tfmot updates the mask only every frequency steps, so the final update, the one "
            f"that reaches the target, would be skipped"
        )
    return end_step, frequency


def _pruning_wrappers(model: Any) -> list[Any]:
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    found = []

    def visit(layer: Any) -> None:
        if isinstance(layer, pruning_wrapper.PruneLowMagnitude):
            found.append(layer)
        for inner in getattr(layer, "layers", []):
            visit(inner)

    visit(model)
    return found


def _mask_once(wrappers: list[Any]) -> None:
    """One-shot pruning: tfmot's mask at step 0 of a ConstantSparsity schedule, then applied."""
    for wrapper in wrappers:
        wrapper.pruning_step.assign(0)
        wrapper.pruning_obj.conditional_mask_update()
        wrapper.pruning_obj.weight_mask_op()


def _wrapper_sparsity(wrappers: list[Any]) -> list[tuple[str, int, int]]:
    """(layer name, zeros, elements) over each wrapper's prunable weights."""
    import numpy as np

    rows = []
    for wrapper in wrappers:
        zeros = elements = 0
        for weight, _, _ in wrapper.pruning_vars:
            values = np.asarray(weight.numpy())
            zeros += int(np.count_nonzero(values == 0))
            elements += int(values.size)
        rows.append((str(wrapper.layer.name), zeros, elements))
    return rows


def _overall(rows: Sequence[tuple[str, int, int]]) -> float:
    elements = sum(r[2] for r in rows)
    return sum(r[1] for r in rows) / elements if elements else 0.0


def _layer_table(rows: Sequence[tuple[str, int, int]]) -> str:
    return ", ".join(f"{name} {zeros / max(size, 1):.3f}" for name, zeros, size in rows)


def _schedule_hint(fine_tune: FineTune, schedule: Any) -> str:
    config = schedule.get_config()["config"]
    described = f"{type(schedule).__name__}({', '.join(f'{k}={v}' for k, v in config.items())})"
    if callable(fine_tune):
        return (f"Schedule: {described}. Check that fine_tune passes the callbacks it is given "
                f"to fit() and trains past end_step.")
    return f"Schedule: {described}. A longer fine-tune or a smaller frequency gets closer."
