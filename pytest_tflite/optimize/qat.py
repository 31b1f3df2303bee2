"""Quantization-aware training (tensorflow-model-optimization) of tf_keras models.

Nothing heavy is imported with this module: TensorFlow, tf_keras and tfmot load when a
function runs, inside ``session.tfmot_session``.
"""

from __future__ import annotations

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
    kernel_sparsity,
    require_tf_keras,
    tfmot_session,
)

# ---------------------------------------------------------------- quantization-aware training


def quantize_aware(
    model: Any,
    fine_tune: FineTune,
    *,
    epochs: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    loss: Any = None,
    optimizer: Any = None,
    preserve_sparsity: bool = False,
    tolerance: float = 0.01,
) -> Any:
    """A quantization-aware copy of the tf_keras ``model``, fine-tuned, ready for ``convert``.

    ``fine_tune`` is ``(x, y)`` or a callable ``fine_tune(model, callbacks)`` as in
    :func:`prune`; it is required because the fake-quantization ranges of activations are
    learned while training (untrained, they stay at tfmot's defaults). The result converts with
    ``convert(model, "int8", representative_data)`` or ``"dynamic_int8"``.

    ``preserve_sparsity`` (for a model from :func:`prune`): tfmot's
    ``Default8BitPrunePreserveQuantizeScheme`` keeps the zeros of the kernels through
    training; the kernels' sparsity after training must be within ``tolerance`` of before, or
    :class:`OptimizationError` names both.
    """
    __tracebackhide__ = True
    check_fraction("tolerance", tolerance)
    check_training(epochs, batch_size)
    source = require_tf_keras(model, "quantize_aware")
    data = fine_tune_data(fine_tune, "quantize_aware")
    if fine_tune is None:
        raise OptimizationError(
            "quantize_aware needs fine_tune=(x, y) or a callable: quantization-aware training "
            "learns the activation ranges while training. For post-training quantization, "
            "convert the model with recipe 'int8' and representative_data instead"
        )
    with tfmot_session() as (tf_keras, tfmot):
        clone = clone_model(source, tf_keras)
        quantization = tfmot.quantization.keras
        before = kernel_sparsity(clone) if preserve_sparsity else None
        try:
            if preserve_sparsity:
                annotated = quantization.quantize_annotate_model(clone)
                trained = quantization.quantize_apply(
                    annotated, quantization.collab_opts.Default8BitPrunePreserveQuantizeScheme()
                )
            else:
                trained = quantization.quantize_model(clone)
        except (ValueError, RuntimeError) as exc:
            raise OptimizationError(
                f"tfmot cannot make {describe(source)} quantization-aware: {exc}"
            ) from None
        compile_like(trained, source, loss, optimizer, data, tf_keras)
        if data is not None:
            trained.fit(data[0], data[1], epochs=epochs, batch_size=batch_size, verbose=0)
        else:
            assert callable(fine_tune)
            fine_tune(trained, [])
        after = kernel_sparsity(trained) if before is not None else None
    if before is not None and after is not None and abs(after - before) > tolerance:
        raise OptimizationError(
            f"quantization-aware training of {describe(source)} changed the sparsity of its "
            f"kernels from {before:.4f} to {after:.4f} (tolerance {tolerance}) despite "
            f"preserve_sparsity=True"
        )
    return trained
