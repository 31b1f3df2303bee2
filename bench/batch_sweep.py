"""Per-sample latency against batch size (runtime.batch_sizes = [1, 8, 32]) for two hand-built
models, under xnnpack and builtin: how much a mobile team saves per inference by batching.

    python bench/batch_sweep.py [--sizes 1,8,32] [--seconds 0.5]

Models (tests/helpers/models.py, no TensorFlow), each with a dynamic batch dimension:
- ``mlp``: 64 -> 128 (ReLU) -> 10, about 9.6k weights;
- ``wide``: 256 -> 1024 (ReLU) -> 1024 (ReLU) -> 10, about 1.3M weights.

Each (model, delegate) is one worker run, as the plugin measures it: the batch-1 figures, then
each batch size in a runner of its own. Printed: median latency and median per sample per batch,
and the per-sample speed-up over batch 1. Figures are from a shared 2-core machine: compare
within one run, not across runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from itertools import pairwise
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_tflite.measure.runtime import measure_delegates
from pytest_tflite.settings import resolve_runtime
from tests.helpers.models import Op, Subgraph, Tensor, build_model

RELU = 1  # ActivationFunctionType.RELU


def mlp_model(widths: list[int], seed: int = 0) -> bytes:
    """Dense layers ``widths[0] -> widths[1] -> ...``, ReLU between them, batch dimension -1."""
    rng = np.random.default_rng(seed)
    tensors = [Tensor("x", [1, widths[0]], shape_signature=[-1, widths[0]])]
    ops = []
    for layer, (n_in, n_out) in enumerate(pairwise(widths)):
        source = len(tensors) - 1
        tensors += [Tensor(f"w{layer}", [n_out, n_in],
                           data=rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))),
                    Tensor(f"b{layer}", [n_out], data=np.zeros(n_out)),
                    Tensor(f"h{layer}", [1, n_out], shape_signature=[-1, n_out])]
        last = layer == len(widths) - 2
        ops.append(Op("FULLY_CONNECTED", [source, len(tensors) - 3, len(tensors) - 2],
                      [len(tensors) - 1],
                      options=None if last else {"fused_activation_function": RELU}))
    return build_model([Subgraph(tensors, ops, inputs=[0], outputs=[len(tensors) - 1])])


MODELS = {"mlp": [64, 128, 10], "wide": [256, 1024, 1024, 10]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=0.5, help="timing per batch size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    settings = resolve_runtime(command_line={
        "batch_sizes": sizes, "threads": 1,
        "warmup": {"min_runs": 5, "min_seconds": 0.1},
        "timing": {"min_runs": 50, "min_seconds": args.seconds}})
    print(f"{'model':6} {'delegate':8} {'batch':>5} {'median':>11} {'per sample':>11} "
          f"{'vs batch 1':>10}  runs")
    with tempfile.TemporaryDirectory() as folder:
        for name, widths in MODELS.items():
            path = Path(folder, f"{name}.tflite")
            path.write_bytes(mlp_model(widths))
            for delegate, found in measure_delegates(path, ["xnnpack", "builtin"],
                                                     settings).items():
                if found.status != "ok" or not found.batches:
                    print(f"{name:6} {delegate:8} {found.status}: {found.reason}")
                    continue
                one = found.batches[0].per_sample_ms
                for at in found.batches:
                    if at.status != "ok" or at.latency_ms is None or at.per_sample_ms is None:
                        print(f"{name:6} {delegate:8} {at.batch:>5} {at.status}: {at.reason}")
                        continue
                    gain = f"x{one / at.per_sample_ms:.2f}" if one else "-"
                    print(f"{name:6} {delegate:8} {at.batch:>5} "
                          f"{at.latency_ms.median * 1000:>8.1f} us "
                          f"{at.per_sample_ms * 1000:>8.2f} us {gain:>10}  {at.latency_ms.n}")


if __name__ == "__main__":
    main()
